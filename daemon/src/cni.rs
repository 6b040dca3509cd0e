//! `cnm-cni`: cnm as a CNI plugin (spec 1.1), so runtimes that speak CNI
//! (containerd, podman's CNI backend, CRI-O) get cnm's networks. A thin
//! client of cnmd: a container attached through CNI is a cnmd sandbox on
//! the runtime's network namespace (named `cni-<container id>`), so DNS,
//! published ports, drift repair, the cluster and crash safety are
//! cnmd's, and `cnmctl` shows it.
//!
//! The network config (`type: cnm-cni`) names the cnm network
//! (`network`, else the config's `name`) and, to create it when it does
//! not exist, `driver`, `subnet`, `gateway`, `ipRange`, `internal`,
//! `ipv6`, `options`; `socket` is cnmd's socket (default
//! `/run/cnm/cnmd.sock`). Capabilities: `portMappings` (published in
//! cnm's nftables maps, given with the container's first network),
//! `ips`, `mac`, `aliases` (DNS names on the network, with the
//! `K8S_POD_NAME` of `CNI_ARGS`, which podman sets to the container's name).
//! Podman binds the host ports it publishes itself: with podman as the
//! parent (or `runtimeHoldsPorts`), cnm maps them without binding again.
//! `bandwidth` is refused (code 2): cnm's drivers own the host side of the
//! link, which is what the standard `bandwidth` plugin would shape.

use crate::client::{Client, ClientError, encode};
use crate::listen::ListenAddr;
use crate::wire::network::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest,
};
use crate::wire::ports::HostBinding;
use crate::wire::sandbox::{SandboxCreateRequest, SandboxCreateResponse, SandboxResource};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The CNI versions this plugin speaks.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The prefix of the sandboxes cnm-cni makes (then the container id).
pub const SANDBOX_PREFIX: &str = "cni-";
/// cnmd's socket when the config names none.
pub const DEFAULT_SOCKET: &str = "/run/cnm/cnmd.sock";

/// A CNI error: the spec's code, a message and details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    /// The spec's error code (1–99 the spec's, 100+ the plugin's).
    pub code: u32,
    /// What went wrong.
    pub msg: String,
    /// More detail (a cause, what to do).
    pub details: String,
}

impl CniError {
    fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError { code, msg: msg.into(), details: details.into() }
    }

    /// The error as the spec prints it on standard output.
    pub fn to_json(&self, version: &str) -> Value {
        json!({ "cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details })
    }
}

/// Incompatible CNI version.
pub const E_VERSION: u32 = 1;
/// Unsupported field in the network configuration.
pub const E_UNSUPPORTED_FIELD: u32 = 2;
/// The container is unknown or does not exist.
pub const E_UNKNOWN_CONTAINER: u32 = 3;
/// Invalid necessary environment variables.
pub const E_INVALID_ENV: u32 = 4;
/// Failed to decode content.
pub const E_DECODE: u32 = 6;
/// Invalid network configuration.
pub const E_INVALID_CONFIG: u32 = 7;
/// Try again later (cnmd is starting, say).
pub const E_TRY_LATER: u32 = 11;
/// The plugin is not available (STATUS: cnmd is not running).
pub const E_NOT_AVAILABLE: u32 = 50;
/// cnmd refused the request (cnm-cni's own code): the message says why.
pub const E_CNMD_REFUSED: u32 = 100;
/// How long a call may wait for cnmd.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The plugin's network configuration (what the runtime writes on stdin).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// The config's CNI version.
    #[serde(default)]
    pub cni_version: String,
    /// The config's (network's) name.
    #[serde(default)]
    pub name: String,
    /// `cnm-cni`.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// The cnm network (default: `name`).
    #[serde(default)]
    pub network: Option<String>,
    /// cnmd's socket.
    #[serde(default)]
    pub socket: Option<String>,
    /// The driver, to create the network.
    #[serde(default)]
    pub driver: Option<String>,
    /// Its subnet.
    #[serde(default)]
    pub subnet: Option<String>,
    /// Its gateway.
    #[serde(default)]
    pub gateway: Option<String>,
    /// The range addresses come from.
    #[serde(default)]
    pub ip_range: Option<String>,
    /// No way out.
    #[serde(default)]
    pub internal: bool,
    /// IPv6 too.
    #[serde(default)]
    pub ipv6: bool,
    /// Driver options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Whether the runtime holds published host ports open itself (podman
    /// does): cnm then maps them without binding them again. Default: true
    /// when the plugin's parent is podman.
    #[serde(default)]
    pub runtime_holds_ports: Option<bool>,
    /// What the runtime passes for the capabilities it honours.
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    /// The previous plugin's result (CHECK, DEL; none before cnm-cni in a chain).
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// GC: the attachments the runtime still knows.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// One attachment a runtime still knows (GC).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The container's id.
    #[serde(rename = "containerID", default)]
    pub container_id: String,
    /// Its interface.
    #[serde(default)]
    pub ifname: String,
}

/// The capabilities' arguments (`runtimeConfig`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Ports to publish.
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// Addresses asked for (CIDR or plain).
    #[serde(default)]
    pub ips: Vec<String>,
    /// The MAC address asked for.
    #[serde(default)]
    pub mac: Option<String>,
    /// DNS names, by network name.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Traffic shaping: refused (see the module's header).
    #[serde(default)]
    pub bandwidth: Option<Value>,
}

/// One `portMappings` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The host port.
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
    /// `tcp` (default), `udp`, `sctp`.
    #[serde(default)]
    pub protocol: String,
    /// The host address (empty: every address).
    #[serde(rename = "hostIP", default)]
    pub host_ip: String,
}

/// The runtime's environment for one call.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` (`K=V;K=V`), by key.
    pub args: BTreeMap<String, String>,
}

impl Call {
    /// The call of `env` (the process's environment), checked for `command`.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Call, CniError> {
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        let call = Call {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS")
                .split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        };
        let need: &[(&str, &str)] = match call.command.as_str() {
            "ADD" => {
                &[("CNI_CONTAINERID", &call.container_id), ("CNI_NETNS", &call.netns), ("CNI_IFNAME", &call.ifname)]
            }
            "CHECK" => {
                &[("CNI_CONTAINERID", &call.container_id), ("CNI_NETNS", &call.netns), ("CNI_IFNAME", &call.ifname)]
            }
            "DEL" => &[("CNI_CONTAINERID", &call.container_id), ("CNI_IFNAME", &call.ifname)],
            "VERSION" | "STATUS" | "GC" => &[],
            "" => return Err(CniError::new(E_INVALID_ENV, "CNI_COMMAND is not set", "")),
            other => return Err(CniError::new(E_INVALID_ENV, format!("unknown CNI_COMMAND {other:?}"), "")),
        };
        if let Some((name, _)) = need.iter().find(|(_, v)| v.is_empty()) {
            return Err(CniError::new(
                E_INVALID_ENV,
                format!("{name} is not set"),
                format!("{} needs it", call.command),
            ));
        }
        if call.command == "ADD" && !call.netns.starts_with('/') {
            return Err(CniError::new(E_INVALID_ENV, format!("CNI_NETNS {:?} is not a path", call.netns), ""));
        }
        Ok(call)
    }
}

impl NetConf {
    /// Reads the config from `input`, checked (its version, its type).
    pub fn parse(input: &[u8]) -> Result<NetConf, CniError> {
        let conf: NetConf = serde_json::from_slice(input)
            .map_err(|e| CniError::new(E_DECODE, "the network configuration is not valid JSON", e.to_string()))?;
        if !conf.cni_version.is_empty() && !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                E_VERSION,
                format!("CNI version {} is not supported", conf.cni_version),
                format!("supported: {}", SUPPORTED_VERSIONS.join(", ")),
            ));
        }
        if !conf.plugin_type.is_empty() && conf.plugin_type != "cnm-cni" {
            return Err(CniError::new(E_INVALID_CONFIG, format!("type {:?} is not cnm-cni", conf.plugin_type), ""));
        }
        Ok(conf)
    }

    /// The cnm network's name.
    pub fn network(&self) -> Result<&str, CniError> {
        let n = self.network.as_deref().unwrap_or(&self.name);
        if n.is_empty() {
            return Err(CniError::new(E_INVALID_CONFIG, "the config names no network", "set \"network\" or \"name\""));
        }
        Ok(n)
    }

    /// The version of results: the config's, or the newest.
    pub fn version(&self) -> &str {
        if self.cni_version.is_empty() { "1.1.0" } else { &self.cni_version }
    }

    fn client(&self) -> Client {
        Client::new(ListenAddr::Unix(self.socket.clone().unwrap_or_else(|| DEFAULT_SOCKET.to_string()).into()))
    }

    /// The request that creates the network, when the config says how.
    fn create_request(&self, name: &str) -> Option<NetworkCreateRequest> {
        let driver = self.driver.clone()?;
        let pool = IpamConfig {
            subnet: self.subnet.clone().unwrap_or_default(),
            gateway: self.gateway.clone().unwrap_or_default(),
            ip_range: self.ip_range.clone().unwrap_or_default(),
            ..Default::default()
        };
        let has_pool = !(pool.subnet.is_empty() && pool.gateway.is_empty() && pool.ip_range.is_empty());
        Some(NetworkCreateRequest {
            name: name.to_string(),
            driver,
            enable_ipv6: Some(self.ipv6),
            internal: self.internal,
            ipam: has_pool.then(|| Ipam { config: vec![pool], ..Default::default() }),
            options: (!self.options.is_empty()).then(|| self.options.clone()),
            ..Default::default()
        })
    }
}

/// Whether this process was started by podman, which binds the host ports
/// it publishes before it runs its CNI plugins.
fn parent_is_podman() -> bool {
    let ppid = nix::unistd::getppid();
    std::fs::read_to_string(format!("/proc/{ppid}/comm")).is_ok_and(|c| c.trim() == "podman")
}

/// Whether version `v` is before `than` (both `MAJOR.MINOR.PATCH`).
fn older(v: &str, than: &str) -> bool {
    let parse = |s: &str| -> Vec<u32> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(v) < parse(than)
}

/// The sandbox name of container `id`.
pub fn sandbox_name(container_id: &str) -> String {
    format!("{SANDBOX_PREFIX}{container_id}")
}

/// What cnmd's client error means to a runtime.
fn from_client(e: ClientError, what: &str) -> CniError {
    match &e {
        ClientError::Connect { .. } => CniError::new(
            E_TRY_LATER,
            format!("{what}: {}", cnm::chain(&e)),
            "cnm-cni is a client of cnmd: start it (systemctl start cnmd), or set \"socket\" in the network config",
        ),
        _ if e.status().is_none_or(|s| s.is_server_error()) => {
            CniError::new(E_TRY_LATER, format!("{what}: {}", cnm::chain(&e)), "cnmd could not do it now")
        }
        _ => CniError::new(E_CNMD_REFUSED, format!("{what}: {}", cnm::chain(&e)), "cnmd refused it"),
    }
}

fn not_found(e: &ClientError) -> bool {
    e.status() == Some(hyper::StatusCode::NOT_FOUND)
}

/// Runs one call; the JSON to print on success.
pub async fn run(call: &Call, conf: &NetConf) -> Result<Option<Value>, CniError> {
    let version = conf.version();
    let needs = match call.command.as_str() {
        "CHECK" => Some("0.4.0"),
        "STATUS" | "GC" => Some("1.1.0"),
        _ => None,
    };
    if let Some(min) = needs
        && older(version, min)
    {
        return Err(CniError::new(E_VERSION, format!("{} needs CNI {min} or later, not {version}", call.command), ""));
    }
    match tokio::time::timeout(CALL_TIMEOUT, verb(call, conf)).await {
        Ok(r) => r,
        Err(_) => Err(CniError::new(
            E_TRY_LATER,
            format!("cnmd did not answer {} within {} s", call.command, CALL_TIMEOUT.as_secs()),
            "",
        )),
    }
}

async fn verb(call: &Call, conf: &NetConf) -> Result<Option<Value>, CniError> {
    match call.command.as_str() {
        "VERSION" => Ok(Some(json!({ "cniVersion": conf.version(), "supportedVersions": SUPPORTED_VERSIONS }))),
        "STATUS" => status(conf).await.map(|()| None),
        "ADD" => add(call, conf).await.map(Some),
        "DEL" => del(call, conf).await.map(|()| None),
        "CHECK" => check(call, conf).await.map(|()| None),
        "GC" => gc(conf).await.map(|()| None),
        other => Err(CniError::new(E_INVALID_ENV, format!("unknown CNI_COMMAND {other:?}"), "")),
    }
}

async fn status(conf: &NetConf) -> Result<(), CniError> {
    let client = conf.client();
    match client.raw(hyper::Method::GET, "/_ping", None).await {
        Ok(_) => Ok(()),
        Err(e) => Err(CniError::new(
            E_NOT_AVAILABLE,
            format!("cnmd is not available: {e}"),
            "cnm-cni is a client of cnmd: start it, or set \"socket\" in the network config",
        )),
    }
}

async fn add(call: &Call, conf: &NetConf) -> Result<Value, CniError> {
    refuse_bandwidth(conf)?;
    let client = conf.client();
    let network = conf.network()?;
    // The network, made if the config says how and it does not exist.
    if let Err(e) = client.get::<Value>(&format!("/networks/{}", encode(network))).await {
        if !not_found(&e) {
            return Err(from_client(e, "look up the network"));
        }
        let Some(req) = conf.create_request(network) else {
            return Err(CniError::new(
                E_INVALID_CONFIG,
                format!("cnm network {network:?} does not exist"),
                "create it (cnmctl network create), or give \"driver\" (and \"subnet\") in the config",
            ));
        };
        match client.post::<_, Value>("/networks/create", &req).await {
            Ok(_) => {}
            // Another container's ADD made it meanwhile.
            Err(e) if e.status() == Some(hyper::StatusCode::CONFLICT) => {
                let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while client.get::<Value>(&format!("/networks/{}", encode(network))).await.is_err() {
                    if std::time::Instant::now() > end {
                        return Err(from_client(e, "create the network"));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            Err(e) => return Err(from_client(e, "create the network")),
        }
    }
    let name = sandbox_name(&call.container_id);
    let sandbox_path = format!("/sandboxes/{}", encode(&name));
    let existing = match client.get::<SandboxResource>(&sandbox_path).await {
        Ok(s) => Some(s),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(from_client(e, "look up the sandbox")),
    };
    // The same container id on another namespace: the runtime made the
    // container again (ctr reuses ids and runs no DEL for detached
    // tasks), so the old attachment is stale.
    let existing = match existing {
        Some(s) if s.key != call.netns => {
            tracing::info!(sandbox = %name, old = %s.key, new = %call.netns, "replacing a stale attachment");
            match client.delete(&sandbox_path).await {
                Ok(()) => None,
                Err(e) if not_found(&e) => None,
                Err(e) => return Err(from_client(e, "remove a stale attachment")),
            }
        }
        other => other,
    };
    let created = existing.is_none();
    if created {
        let mut port_bindings: BTreeMap<String, Vec<HostBinding>> = BTreeMap::new();
        for p in &conf.runtime_config.port_mappings {
            let proto = if p.protocol.is_empty() { "tcp".to_string() } else { p.protocol.to_lowercase() };
            port_bindings
                .entry(format!("{}/{proto}", p.container_port))
                .or_default()
                .push(HostBinding { host_ip: p.host_ip.clone(), host_port: p.host_port.to_string() });
        }
        let req = SandboxCreateRequest {
            name: name.clone(),
            netns: call.netns.clone(),
            port_bindings,
            host_ports_held: conf.runtime_holds_ports.unwrap_or_else(parent_is_podman),
            ..Default::default()
        };
        let _: SandboxCreateResponse =
            client.post("/sandboxes", &req).await.map_err(|e| from_client(e, "create the sandbox"))?;
    }
    // The runtime's names for the container: its aliases, and the name
    // podman and Kubernetes runtimes pass in CNI_ARGS.
    let mut aliases = conf.runtime_config.aliases.get(&conf.name).cloned().unwrap_or_default();
    if let Some(name) = call.args.get("K8S_POD_NAME").filter(|n| !n.is_empty() && !aliases.contains(n)) {
        aliases.push(name.clone());
    }
    let mut settings = EndpointSettings {
        aliases,
        mac_address: conf.runtime_config.mac.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut ipam = EndpointIpamConfig::default();
    for ip in &conf.runtime_config.ips {
        let plain = ip.split('/').next().unwrap_or_default().to_string();
        match plain.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => ipam.ipv4_address = plain,
            Ok(std::net::IpAddr::V6(_)) => ipam.ipv6_address = plain,
            Err(_) => return Err(CniError::new(E_INVALID_CONFIG, format!("ips: {ip:?} is not an address"), "")),
        }
    }
    if ipam != EndpointIpamConfig::default() {
        settings.ipam_config = Some(ipam);
    }
    // The interface name the runtime asks for.
    settings.driver_opts.insert(crate::api::network_config::IFNAME_OPTION.to_string(), call.ifname.clone());
    let connect = NetworkConnectRequest { container: name.clone(), endpoint_config: Some(settings) };
    let connected = client.post_unit(&format!("/networks/{}/connect", encode(network)), &connect).await;
    let sandbox: SandboxResource = match connected {
        Ok(()) => client.get(&sandbox_path).await.map_err(|e| from_client(e, "inspect the sandbox"))?,
        Err(e) => {
            // Connected already (an ADD asked again) is fine; any other refusal is not.
            let again = client.get::<SandboxResource>(&sandbox_path).await.ok();
            match again.filter(|s| s.networks.contains_key(network)) {
                Some(s) if !created => s,
                _ => {
                    if created && let Err(undo) = client.delete(&sandbox_path).await {
                        tracing::warn!(sandbox = %name, error = %cnm::chain(&undo), "removing a sandbox whose connect failed");
                    }
                    return Err(from_client(e, "connect the container"));
                }
            }
        }
    };
    let ours = result(conf, call, network, &sandbox)?;
    Ok(chain_onto(conf.prev_result.as_ref(), ours))
}

/// `ours` added to the previous plugins' result, if any (the spec: a
/// plugin passes on what came before): its interface appended, its
/// addresses pointing at it, its routes appended, its DNS where there was none.
pub fn chain_onto(prev: Option<&Value>, ours: Value) -> Value {
    let Some(prev) = prev.filter(|p| p.is_object()) else { return ours };
    let mut out = prev.clone();
    out["cniVersion"] = ours["cniVersion"].clone();
    let offset = out["interfaces"].as_array().map_or(0, Vec::len);
    let append = |out: &mut Value, key: &str, items: Vec<Value>| {
        let list = out[key].as_array().cloned().unwrap_or_default();
        out[key] = Value::Array(list.into_iter().chain(items).collect());
    };
    append(&mut out, "interfaces", ours["interfaces"].as_array().cloned().unwrap_or_default());
    let ips: Vec<Value> = ours["ips"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut ip| {
            ip["interface"] = json!(offset);
            ip
        })
        .collect();
    append(&mut out, "ips", ips);
    append(&mut out, "routes", ours["routes"].as_array().cloned().unwrap_or_default());
    if out.get("dns").is_none_or(|d| d.is_null() || d.as_object().is_some_and(|o| o.is_empty())) {
        out["dns"] = ours["dns"].clone();
    }
    out
}

/// cnm's drivers own the host side of a container's link, which the
/// standard `bandwidth` plugin shapes: a limit given to cnm-cni is refused
/// rather than silently dropped.
fn refuse_bandwidth(conf: &NetConf) -> Result<(), CniError> {
    match &conf.runtime_config.bandwidth {
        Some(b) if !b.is_null() => Err(CniError::new(
            E_UNSUPPORTED_FIELD,
            "cnm-cni does not shape bandwidth",
            "cnm's drivers own the host side of the link; leave the bandwidth capability out of cnm-cni's config",
        )),
        _ => Ok(()),
    }
}

/// The spec's result for the container's endpoint on `network`.
pub fn result(conf: &NetConf, call: &Call, network: &str, sandbox: &SandboxResource) -> Result<Value, CniError> {
    let ep = sandbox.networks.get(network).ok_or_else(|| {
        CniError::new(E_UNKNOWN_CONTAINER, format!("the container is not on network {network:?}"), "")
    })?;
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    // The default routes are this network's only if it gives the sandbox its gateway.
    let default_route = sandbox.gateway_endpoint.as_deref() == Some(ep.endpoint_id.as_str());
    // Before 1.0.0, each address says its family.
    let versioned = older(conf.version(), "1.0.0");
    if !ep.ip_address.is_empty() {
        let mut ip = json!({ "address": format!("{}/{}", ep.ip_address, ep.ip_prefix_len), "interface": 0 });
        if versioned {
            ip["version"] = json!("4");
        }
        if !ep.gateway.is_empty() {
            ip["gateway"] = json!(ep.gateway);
            if default_route {
                routes.push(json!({ "dst": "0.0.0.0/0", "gw": ep.gateway }));
            }
        }
        ips.push(ip);
    }
    if !ep.global_ipv6_address.is_empty() {
        let mut ip =
            json!({ "address": format!("{}/{}", ep.global_ipv6_address, ep.global_ipv6_prefix_len), "interface": 0 });
        if versioned {
            ip["version"] = json!("6");
        }
        if !ep.ipv6_gateway.is_empty() {
            ip["gateway"] = json!(ep.ipv6_gateway);
            if default_route {
                routes.push(json!({ "dst": "::/0", "gw": ep.ipv6_gateway }));
            }
        }
        ips.push(ip);
    }
    let ifname = if ep.interface.is_empty() { call.ifname.clone() } else { ep.interface.clone() };
    let mut iface = json!({ "name": ifname, "sandbox": call.netns });
    if !ep.mac_address.is_empty() {
        iface["mac"] = json!(ep.mac_address);
    }
    Ok(json!({
        "cniVersion": conf.version(),
        "interfaces": [iface],
        "ips": ips,
        "routes": routes,
        "dns": { "nameservers": ["127.0.0.11"] },
    }))
}

async fn del(call: &Call, conf: &NetConf) -> Result<(), CniError> {
    let client = conf.client();
    let network = conf.network()?;
    let name = sandbox_name(&call.container_id);
    detach(&client, &name, network).await
}

/// Takes sandbox `name` off `network`, and removes it once it is on none;
/// gone already is fine (DEL must be idempotent).
async fn detach(client: &Client, name: &str, network: &str) -> Result<(), CniError> {
    let path = format!("/sandboxes/{}", encode(name));
    let sandbox = match client.get::<SandboxResource>(&path).await {
        Ok(s) => s,
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(from_client(e, "look up the sandbox")),
    };
    if !sandbox.networks.contains_key(network) {
        // Not on this network (an ADD that failed, or DEL asked again): the
        // container's other networks are not this DEL's.
        return Ok(());
    }
    if sandbox.networks.len() > 1 {
        let req = NetworkDisconnectRequest { container: name.to_string(), force: true };
        return match client.post_unit(&format!("/networks/{}/disconnect", encode(network)), &req).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(from_client(e, "disconnect the container")),
        };
    }
    match client.delete(&path).await {
        Ok(()) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(from_client(e, "remove the sandbox")),
    }
}

async fn check(call: &Call, conf: &NetConf) -> Result<(), CniError> {
    let client = conf.client();
    let network = conf.network()?;
    let name = sandbox_name(&call.container_id);
    let sandbox: SandboxResource = match client.get(&format!("/sandboxes/{}", encode(&name))).await {
        Ok(s) => s,
        Err(e) if not_found(&e) => {
            return Err(CniError::new(
                E_UNKNOWN_CONTAINER,
                format!("container {} is not attached", call.container_id),
                "",
            ));
        }
        Err(e) => return Err(from_client(e, "look up the sandbox")),
    };
    if !sandbox.networks.contains_key(network) {
        return Err(CniError::new(E_UNKNOWN_CONTAINER, format!("the container is not on network {network:?}"), ""));
    }
    if sandbox.key != call.netns {
        return Err(CniError::new(
            E_UNKNOWN_CONTAINER,
            format!("the container is attached on namespace {}, not {}", sandbox.key, call.netns),
            "",
        ));
    }
    if let Some(problem) = sandbox.errors.first() {
        return Err(CniError::new(100, format!("the container's network is broken: {problem}"), ""));
    }
    Ok(())
}

async fn gc(conf: &NetConf) -> Result<(), CniError> {
    let client = conf.client();
    let network = conf.network()?;
    let valid: Vec<String> = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| CniError::new(E_INVALID_CONFIG, "GC without cni.dev/valid-attachments", ""))?
        .iter()
        .map(|a| sandbox_name(&a.container_id))
        .collect();
    let sandboxes: Vec<SandboxResource> =
        client.get("/sandboxes").await.map_err(|e| from_client(e, "list the sandboxes"))?;
    // Every forgotten attachment is tried; the first failure is reported.
    let mut first_error = None;
    for s in sandboxes {
        if s.name.starts_with(SANDBOX_PREFIX) && s.networks.contains_key(network) && !valid.contains(&s.name) {
            tracing::info!(sandbox = %s.name, network, "removing an attachment the runtime has forgotten");
            if let Err(e) = detach(&client, &s.name, network).await {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_environment_is_checked_per_verb() {
        let add = Call::from_env(&env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/c1"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap();
        assert_eq!((add.command.as_str(), add.ifname.as_str()), ("ADD", "eth0"));
        let named = Call::from_env(&env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=web"),
        ]))
        .unwrap();
        assert_eq!(named.args.get("K8S_POD_NAME").map(String::as_str), Some("web"));
        let missing = Call::from_env(&env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1")])).unwrap_err();
        assert_eq!(missing.code, E_INVALID_ENV);
        assert!(missing.msg.contains("CNI_NETNS"), "{missing:?}");
        let relative = Call::from_env(&env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "netns"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap_err();
        assert_eq!(relative.code, E_INVALID_ENV);
        // DEL needs no namespace (it may be gone already).
        Call::from_env(&env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")])).unwrap();
        Call::from_env(&env(&[("CNI_COMMAND", "VERSION")])).unwrap();
        Call::from_env(&env(&[("CNI_COMMAND", "GC")])).unwrap();
        assert_eq!(Call::from_env(&env(&[("CNI_COMMAND", "FROB")])).unwrap_err().code, E_INVALID_ENV);
        assert_eq!(Call::from_env(&env(&[])).unwrap_err().code, E_INVALID_ENV);
    }

    #[test]
    fn configs_are_read_and_checked() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"podnet","type":"cnm-cni","network":"web","driver":"bridge",
                 "subnet":"10.88.0.0/24","ipRange":"10.88.0.128/25","options":{"com.docker.network.bridge.name":"cni0"},
                 "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
                                  "ips":["10.88.0.200/24"],"aliases":{"podnet":["web1"]}},
                 "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(conf.network().unwrap(), "web");
        let req = conf.create_request("web").unwrap();
        assert_eq!(req.driver, "bridge");
        let pool = &req.ipam.as_ref().unwrap().config[0];
        assert_eq!((pool.subnet.as_str(), pool.ip_range.as_str()), ("10.88.0.0/24", "10.88.0.128/25"));
        assert_eq!(conf.runtime_config.port_mappings[0].host_port, 8080);
        assert_eq!(conf.valid_attachments.as_ref().unwrap()[0].container_id, "c1");
        // Without "network", the config's name; without "driver", nothing to create.
        let plain = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"cnm-cni"}"#).unwrap();
        assert_eq!(plain.network().unwrap(), "n");
        assert!(plain.create_request("n").is_none());

        assert_eq!(NetConf::parse(b"{not json").unwrap_err().code, E_DECODE);
        assert_eq!(NetConf::parse(br#"{"cniVersion":"9.9.9","name":"n"}"#).unwrap_err().code, E_VERSION);
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","type":"bridge"}"#).unwrap_err().code,
            E_INVALID_CONFIG
        );
        let shaped =
            NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","runtimeConfig":{"bandwidth":{"ingressRate":1000}}}"#)
                .unwrap();
        assert_eq!(refuse_bandwidth(&shaped).unwrap_err().code, E_UNSUPPORTED_FIELD);
        assert!(refuse_bandwidth(&plain).is_ok());
        let nameless = NetConf::parse(br#"{"cniVersion":"1.1.0"}"#).unwrap();
        assert_eq!(nameless.network().unwrap_err().code, E_INVALID_CONFIG);
    }

    #[test]
    fn results_have_the_specs_shape() {
        let conf = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","type":"cnm-cni"}"#).unwrap();
        let call = Call {
            command: "ADD".into(),
            container_id: "c1".into(),
            netns: "/run/netns/c1".into(),
            ifname: "eth0".into(),
            args: BTreeMap::new(),
        };
        let mut sandbox = SandboxResource::default();
        sandbox.networks.insert(
            "n".into(),
            crate::wire::sandbox::SandboxEndpoint {
                interface: "eth0".into(),
                ip_address: "10.88.0.2".into(),
                ip_prefix_len: 24,
                gateway: "10.88.0.1".into(),
                mac_address: "02:42:0a:58:00:02".into(),
                ..Default::default()
            },
        );
        let r = result(&conf, &call, "n", &sandbox).unwrap();
        assert_eq!(r["cniVersion"], "1.1.0");
        assert_eq!(r["interfaces"][0], json!({"name": "eth0", "sandbox": "/run/netns/c1", "mac": "02:42:0a:58:00:02"}));
        assert_eq!(r["ips"][0], json!({"address": "10.88.0.2/24", "gateway": "10.88.0.1", "interface": 0}));
        let mut gw = sandbox.clone();
        gw.gateway_endpoint = Some("ep1".into());
        if let Some(e) = gw.networks.get_mut("n") {
            e.endpoint_id = "ep1".into();
        }
        let routed = result(&conf, &call, "n", &gw).unwrap();
        assert_eq!(routed["routes"][0], json!({"dst": "0.0.0.0/0", "gw": "10.88.0.1"}));
        assert_eq!(r["dns"]["nameservers"][0], "127.0.0.11");
        assert_eq!(result(&conf, &call, "other", &sandbox).unwrap_err().code, E_UNKNOWN_CONTAINER);
        // Routes only for the network that gives the gateway; families before 1.0.0.
        assert_eq!(r["routes"], json!([]), "not the gateway endpoint: no default route");
        let old = NetConf::parse(br#"{"cniVersion":"0.4.0","name":"n","type":"cnm-cni"}"#).unwrap();
        assert_eq!(result(&old, &call, "n", &sandbox).unwrap()["ips"][0]["version"], "4");
        // Chained after another plugin: its result goes on, ours appended.
        let prev = json!({"cniVersion": "1.1.0", "interfaces": [{"name": "lo0"}], "ips": [], "dns": {"nameservers": ["10.0.0.53"]}});
        let chained = chain_onto(Some(&prev), r.clone());
        assert_eq!(chained["interfaces"].as_array().unwrap().len(), 2);
        assert_eq!(chained["ips"][0]["interface"], 1, "our address points at our interface");
        assert_eq!(chained["dns"]["nameservers"][0], "10.0.0.53", "earlier DNS kept");
        assert_eq!(chain_onto(None, r.clone()), r);
        assert!(older("0.4.0", "1.0.0") && !older("1.1.0", "1.1.0") && older("1.0.0", "1.1.0"));
        let e = CniError::new(E_TRY_LATER, "m", "d").to_json("1.1.0");
        assert_eq!(e, json!({"cniVersion": "1.1.0", "code": 11, "msg": "m", "details": "d"}));
    }
}
