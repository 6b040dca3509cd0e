//! Conformance (b): our controller, using plugins through the remote driver
//! and remote IPAM, is driven through the same scenarios as the recorded
//! traces (the `.steps.jsonl` commands, interpreted), against test plugins
//! served by our plugin server; per command, the calls the plugins receive
//! and their request bodies (ids normalised) must equal the recorded ones.
//!
//! Differences that follow from our API, documented here rather than hidden:
//! - `EndpointOperInfo` calls are made by dockerd itself (to refresh port
//!   information for `docker inspect`), not by libnetwork's attach/detach
//!   paths; our controller has no containers and makes none. They are
//!   removed from the recorded sequence.
//! - The activation handshake and registration calls (`Plugin.Activate`,
//!   `*.GetCapabilities`, `GetDefaultAddressSpaces`) are answered by the
//!   plugin server without reaching the test driver; their order and shape
//!   are checked by `tests/client.rs` instead, and removed here.
//! - Addresses are compared exactly: our default IPAM hands out the lowest
//!   free address, as Docker 20.10's does.
//! - Docker's quirk on internal networks is reproduced (b2#12, b2#19):
//!   external connectivity is revoked from an internal network's endpoint
//!   that loses the gateway role, and programmed on one that gets it when
//!   another endpoint leaves (never when it joins).
//! - Container starts attach networks in Go map order (random in Docker);
//!   for commands that start a container with several networks, calls are
//!   compared per endpoint (the README's caveat).
//! - A container is a sandbox plus one endpoint per network: `docker run`/
//!   `start` = new sandbox, create endpoint + join per network; `stop`/`rm`
//!   = sandbox delete (leave + delete endpoint per network, libnetwork's
//!   order); `network connect`/`disconnect` on a running container =
//!   create endpoint + join / leave + delete endpoint; on a stopped one only
//!   the configuration changes (Docker makes no plugin call either).

mod common;

use cnm::driverapi::{PortBinding, Protocol, TransportPort};
use cnm::{
    Controller, Endpoint, EndpointConfig, IpamConfig, JoinOptions, Network, NetworkConfig, Sandbox, SandboxConfig,
};
use cnm_driver_remote::{Discovery, PluginProvider, PluginServer};
use cnm_tests::traces::{Command, Containers, Normaliser};
use common::{Answers, Log, RecordingDriver, RecordingIpam, RunningPlugin};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Clone, Default)]
struct Container {
    /// Networks in the order they were attached, with the endpoint configuration.
    networks: Vec<(String, EndpointConfig)>,
    sandbox: SandboxConfig,
    running: Option<(Sandbox, Vec<(String, Endpoint)>)>,
}

struct World {
    ctrl: Controller,
    nets: HashMap<String, Network>,
    containers: HashMap<String, Container>,
    starts: usize,
}

fn port_binding(spec: &str) -> PortBinding {
    let (spec, proto) = match spec.split_once('/') {
        Some((s, p)) => (s, p.parse::<Protocol>().unwrap()),
        None => (spec, Protocol::Tcp),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host_ip, host, port) = match parts.as_slice() {
        [h, c] => (None, h.parse().unwrap(), c.parse().unwrap()),
        [ip, h, c] => (Some(ip.parse().unwrap()), h.parse().unwrap(), c.parse().unwrap()),
        _ => panic!("unsupported -p {spec}"),
    };
    PortBinding { proto, ip: None, port, host_ip, host_port: host, host_port_end: host }
}

impl World {
    async fn network_create(&mut self, args: &[String]) {
        let mut driver = String::new();
        let mut cfg = NetworkConfig::default();
        let mut subnets: Vec<IpamConfig> = Vec::new();
        let (mut ranges, mut gateways, mut aux) = (Vec::new(), Vec::new(), Vec::new());
        let mut it = args.iter();
        let mut name = String::new();
        while let Some(a) = it.next() {
            let mut val = || it.next().unwrap().clone();
            match a.as_str() {
                "-d" => driver = val(),
                "--subnet" => subnets.push(IpamConfig::subnet(val().parse().unwrap())),
                "--ip-range" => ranges.push(val().parse::<ipnet::IpNet>().unwrap()),
                "--gateway" => gateways.push(val().parse::<IpAddr>().unwrap()),
                "--aux-address" => {
                    let v = val();
                    let (n, ip) = v.split_once('=').unwrap();
                    aux.push((n.to_string(), ip.parse::<IpAddr>().unwrap()));
                }
                "--ipv6" => cfg.enable_ipv6 = true,
                "--internal" => cfg.internal = true,
                "--opt" | "-o" => {
                    let v = val();
                    let (k, x) = v.split_once('=').unwrap();
                    cfg.driver_options.insert(k.into(), x.into());
                }
                "--label" => {
                    let v = val();
                    let (k, x) = v.split_once('=').unwrap();
                    cfg.labels.insert(k.into(), x.into());
                }
                "--ipam-driver" => cfg.ipam_driver = val(),
                "--ipam-opt" => {
                    let v = val();
                    let (k, x) = v.split_once('=').unwrap();
                    cfg.ipam_options.insert(k.into(), x.into());
                }
                other => name = other.to_string(),
            }
        }
        let holder = |subnets: &mut Vec<IpamConfig>, ip: IpAddr| -> usize {
            subnets.iter().position(|s| s.subnet.unwrap().contains(&ip)).expect("address in a subnet")
        };
        for r in ranges {
            let i = holder(&mut subnets, r.addr());
            subnets[i].ip_range = Some(r);
        }
        for g in gateways {
            let i = holder(&mut subnets, g);
            subnets[i].gateway = Some(g);
        }
        for (n, ip) in aux {
            let i = holder(&mut subnets, ip);
            subnets[i].aux_addresses.insert(n, ip);
        }
        for s in subnets {
            if s.subnet.unwrap().addr().is_ipv6() { cfg.ipv6.push(s) } else { cfg.ipv4.push(s) }
        }
        let net = self.ctrl.new_network(&driver, &name, cfg).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
        self.nets.insert(name, net);
    }

    /// The Engine API container create of b1 (a curl command).
    fn api_create(&mut self, name: &str, body: &Value) {
        let net = body["HostConfig"]["NetworkMode"].as_str().unwrap().to_string();
        let ipam = &body["NetworkingConfig"]["EndpointsConfig"][&net]["IPAMConfig"];
        let ep = EndpointConfig {
            ipv4: ipam["IPv4Address"].as_str().map(|s| s.parse().unwrap()),
            ipv6: ipam["IPv6Address"].as_str().map(|s| s.parse().unwrap()),
            mac: body["MacAddress"].as_str().map(|s| s.parse().unwrap()),
            dns_servers: serde_json::from_value(body["HostConfig"]["Dns"].clone()).unwrap(),
            aliases: serde_json::from_value(body["NetworkingConfig"]["EndpointsConfig"][&net]["Aliases"].clone())
                .unwrap(),
            ..Default::default()
        };
        let c = Container { networks: vec![(net, ep)], ..Default::default() };
        self.containers.insert(name.to_string(), c);
    }

    async fn attach(&mut self, sb: &Sandbox, name: &str, net: &str, ep: &EndpointConfig) -> Endpoint {
        let e =
            self.nets[net].create_endpoint(name, ep.clone()).await.unwrap_or_else(|e| panic!("{name} on {net}: {e}"));
        e.join(sb, JoinOptions::default()).await.unwrap_or_else(|e| panic!("join {name} to {net}: {e}"));
        e
    }

    async fn connect(&mut self, args: &[String]) {
        let mut ep = EndpointConfig::default();
        let mut pos = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().unwrap().clone();
            match a.as_str() {
                "--ip" => ep.ipv4 = Some(val().parse().unwrap()),
                "--ip6" => ep.ipv6 = Some(val().parse().unwrap()),
                "--alias" => ep.aliases.push(val()),
                "--link-local-ip" => {
                    val();
                }
                other => pos.push(other.to_string()),
            }
        }
        let (net, name) = (pos[0].clone(), pos[1].clone());
        let c = self.containers.get_mut(&name).unwrap();
        ep.exposed_ports = c.sandbox.exposed_ports.clone();
        ep.port_bindings = c.sandbox.port_bindings.clone();
        c.networks.push((net.clone(), ep.clone()));
        if let Some((sb, _)) = c.running.clone() {
            let e = self.attach(&sb, &name, &net, &ep).await;
            if let Some((_, eps)) = self.containers.get_mut(&name).unwrap().running.as_mut() {
                eps.push((net, e));
            }
        }
    }

    async fn disconnect(&mut self, net: &str, name: &str) {
        let c = self.containers.get_mut(name).unwrap();
        c.networks.retain(|(n, _)| n != net);
        if let Some((sb, eps)) = c.running.as_mut() {
            let i = eps.iter().position(|(n, _)| n == net).unwrap();
            let (_, e) = eps.remove(i);
            e.leave(sb).await.unwrap();
            e.delete().await.unwrap();
        }
    }

    /// Runs one step; returns whether its calls may interleave across endpoints.
    async fn run(&mut self, cmd: &str) -> bool {
        let command = Command::parse(cmd);
        if let Some(unordered) = cnm_tests::traces::lifecycle(self, &command).await {
            return unordered;
        }
        match command {
            Command::ApiCreate(name, body) => self.api_create(&name, &body),
            Command::NetworkCreate(args) => self.network_create(&args).await,
            Command::NetworkConnect(args) => self.connect(&args).await,
            Command::NetworkDisconnect(net, name) => self.disconnect(&net, &name).await,
            Command::NetworkRm(nets) => {
                for n in &nets {
                    let net = self.nets[n].clone();
                    if net.delete().await.is_ok() {
                        self.nets.remove(n);
                    }
                }
            }
            // Lifecycle commands ran above; the others read only.
            _ => {}
        }
        false
    }
}

impl Containers for World {
    /// `docker run`/`docker create` flags; returns (container, image position reached).
    fn define(&mut self, args: &[String]) -> String {
        let mut c = Container::default();
        let mut ep = EndpointConfig::default();
        let mut name = String::new();
        let mut net = String::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().unwrap().clone();
            match a.as_str() {
                "-d" => {}
                "--name" => name = val(),
                "--network" => net = val(),
                "--ip" => ep.ipv4 = Some(val().parse().unwrap()),
                "--ip6" => ep.ipv6 = Some(val().parse().unwrap()),
                "-p" => {
                    let b = port_binding(&val());
                    c.sandbox.exposed_ports.push(TransportPort { proto: b.proto, port: b.port });
                    c.sandbox.port_bindings.push(b);
                }
                "--expose" => {
                    c.sandbox.exposed_ports.push(TransportPort { proto: Protocol::Tcp, port: val().parse().unwrap() })
                }
                _ => break, // the image: the command follows
            }
        }
        ep.exposed_ports = c.sandbox.exposed_ports.clone();
        ep.port_bindings = c.sandbox.port_bindings.clone();
        c.networks.push((net, ep));
        self.containers.insert(name.clone(), c);
        name
    }
    fn network_count(&self, name: &str) -> usize {
        self.containers.get(name).map_or(0, |c| c.networks.len())
    }
    async fn start(&mut self, name: &str) {
        self.starts += 1;
        let c = self.containers[name].clone();
        let sb = self.ctrl.new_sandbox(&format!("{name}-{}", self.starts), c.sandbox.clone()).await.unwrap();
        let mut eps = Vec::new();
        for (net, cfg) in &c.networks {
            eps.push((net.clone(), self.attach(&sb, name, net, cfg).await));
        }
        self.containers.get_mut(name).unwrap().running = Some((sb, eps));
    }
    async fn stop(&mut self, name: &str) {
        if let Some((sb, _)) = self.containers.get_mut(name).and_then(|c| c.running.take()) {
            sb.delete().await.unwrap();
        }
    }
    fn forget(&mut self, name: &str) {
        self.containers.remove(name);
    }
}

const NOT_COMPARED: [&str; 5] = [
    "Plugin.Activate",
    "NetworkDriver.GetCapabilities",
    "NetworkDriver.EndpointOperInfo",
    "IpamDriver.GetCapabilities",
    "IpamDriver.GetDefaultAddressSpaces",
];

fn normalise(norm: &mut Normaliser, calls: Vec<(String, Value)>) -> Vec<(String, Value)> {
    calls.into_iter().filter(|(m, _)| !NOT_COMPARED.contains(&m.as_str())).map(|(m, v)| (m, norm.body(&v))).collect()
}

async fn scenario(prefix: &str) {
    let test = format!("conformance_{prefix}");
    let Some(h) = cnm_tests::TestHost::new(&test).await else { return };
    let (trace, steps) = cnm_tests::traces::scenario(prefix);
    let plugins_dir = h.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins_dir).unwrap();

    // The test plugins, configured as the recorder was for this scenario.
    let log = Log::default();
    let mut running = Vec::new();
    for (name, conf) in steps[0]["plugins"].as_object().unwrap() {
        let roles: Vec<String> = serde_json::from_value(conf["implements"].clone()).unwrap();
        let mut server = PluginServer::new();
        if roles.iter().any(|r| r == "NetworkDriver") {
            let mut d = RecordingDriver::new(name, log.clone(), Answers::Emulate);
            d.gateway6 = conf.get("join_gateway6").is_some();
            server = server.with_driver(Arc::new(d));
        }
        if roles.iter().any(|r| r == "IpamDriver") {
            server = server.with_ipam(Arc::new(RecordingIpam::new(log.clone(), Answers::Emulate)));
        }
        running.push(RunningPlugin::start(&plugins_dir.join(format!("{name}.sock")), server));
    }
    let provider = Arc::new(PluginProvider::new(Discovery::in_dir(&plugins_dir)).client_config(common::quick_config()));
    let ctrl = h
        .builder()
        .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
        .driver_provider(provider.clone())
        .ipam_provider(provider)
        .build()
        .await
        .unwrap();
    let mut world = World { ctrl, nets: HashMap::new(), containers: HashMap::new(), starts: 0 };
    let (mut ours_norm, mut theirs_norm) = (Normaliser::default(), Normaliser::default());
    let mut compared = 0;
    for step in &steps {
        let Some(cmd) = step["cmd"].as_str() else { continue };
        let unordered = world.run(cmd).await;
        let ours = normalise(&mut ours_norm, log.take());
        let recorded: Vec<(String, Value)> = cnm_tests::traces::calls_of(&trace, step)
            .into_iter()
            .map(|c| (c["path"].as_str().unwrap().trim_start_matches('/').to_string(), c["request"].clone()))
            .collect();
        let theirs = normalise(&mut theirs_norm, recorded);
        let (o, t) = if unordered {
            let ep = |c: &(String, Value)| c.1["EndpointID"].as_str().unwrap_or("").to_string();
            (cnm_tests::traces::per_endpoint(&ours, ep), cnm_tests::traces::per_endpoint(&theirs, ep))
        } else {
            (ours, theirs)
        };
        if o != t {
            let show =
                |v: &[(String, Value)]| v.iter().map(|(m, r)| format!("  {m} {r}")).collect::<Vec<_>>().join("\n");
            panic!("{prefix}: `{cmd}`\nours:\n{}\nrecorded:\n{}", show(&o), show(&t));
        }
        compared += t.len();
    }
    assert!(compared > 0, "{prefix}: nothing compared");
    for (_, c) in world.containers.drain() {
        if let Some((sb, _)) = c.running {
            sb.delete().await.unwrap();
        }
    }
    for (_, n) in world.nets.drain() {
        n.delete().await.unwrap();
    }
    for r in running {
        r.stop().await;
    }
}

cnm_tests::trace_tests!(scenario, "our controller's plugin traffic equals Docker Engine's.");
