//! Conformance at the daemon level: for every visible trace, `cnmd` (own
//! roots, scratch host namespace, `--plugin-dir`) faces recorder plugins of
//! the trace's names that answer as the recorder did; the scenario's steps
//! are driven through the API as `cnmctl` would (a container run = sandbox
//! create + network connect per network; stop = sandbox rm; connect and
//! disconnect on a stopped container change only its configuration); the
//! raw calls the plugins receive — the handshake included — must equal the
//! recorded ones, bodies and headers, command by command.
//!
//! Normalised: network and endpoint ids (labels by first appearance),
//! sandbox keys, the order of exposed-port lists, `Content-Length`.
//! Tolerated, as the traces' README says: how many `EndpointOperInfo` calls
//! are made (at least one for each joined endpoint is required, after its
//! Join), and the order across endpoints when a container with several
//! networks starts (Go map order in dockerd).
//! Also compared: `docker network inspect`'s output where the steps show it,
//! and `network rm` failing where dockerd refused it.

mod common;

use cnm_tests::recorder::{Call, Calls, RecorderPlugin};
use cnm_tests::traces::{Command, Containers, Normaliser};
use cnmd::client::Client;
use common::Daemon;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::IpAddr;

/// A container: its sandbox request, the networks it is connected to (with
/// their endpoint settings), and its sandbox's name while it runs.
#[derive(Clone, Default)]
struct Container {
    sandbox: Map<String, Value>,
    networks: Vec<(String, Value)>,
    running: Option<String>,
}

struct World {
    client: Client,
    containers: HashMap<String, Container>,
    starts: usize,
}

fn key_value(v: &str) -> (String, String) {
    let (k, x) = v.split_once('=').expect("KEY=VALUE");
    (k.to_string(), x.to_string())
}

/// `docker network create` flags as the docker CLI turns them into the API's body.
fn network_create_body(args: &[String]) -> Value {
    let (mut driver, mut name, mut ipam_driver) = (String::new(), String::new(), "default".to_string());
    let (mut subnets, mut ranges, mut gateways, mut aux) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut options, mut labels, mut ipam_options) = (Map::new(), Map::new(), Map::new());
    let (mut ipv6, mut internal) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().expect("a flag's value").clone();
        match a.as_str() {
            "-d" => driver = val(),
            "--subnet" => subnets.push(val().parse::<ipnet::IpNet>().unwrap()),
            "--ip-range" => ranges.push(val().parse::<ipnet::IpNet>().unwrap()),
            "--gateway" => gateways.push(val().parse::<IpAddr>().unwrap()),
            "--aux-address" => aux.push(key_value(&val())),
            "--ipv6" => ipv6 = true,
            "--internal" => internal = true,
            "--opt" | "-o" => {
                let (k, x) = key_value(&val());
                options.insert(k, x.into());
            }
            "--label" => {
                let (k, x) = key_value(&val());
                labels.insert(k, x.into());
            }
            "--ipam-driver" => ipam_driver = val(),
            "--ipam-opt" => {
                let (k, x) = key_value(&val());
                ipam_options.insert(k, x.into());
            }
            other => name = other.to_string(),
        }
    }
    let mut config: Vec<Map<String, Value>> = subnets
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("Subnet".into(), s.to_string().into());
            m
        })
        .collect();
    let holder = |ip: IpAddr| subnets.iter().position(|s| s.contains(&ip)).expect("an address inside a subnet");
    for r in ranges {
        config[holder(r.addr())].insert("IPRange".into(), r.to_string().into());
    }
    for g in gateways {
        config[holder(g)].insert("Gateway".into(), g.to_string().into());
    }
    for (n, ip) in aux {
        let ip: IpAddr = ip.parse().unwrap();
        let entry = config[holder(ip)].entry("AuxiliaryAddresses").or_insert_with(|| json!({}));
        entry[n] = ip.to_string().into();
    }
    json!({
        "Name": name, "Driver": driver, "Internal": internal, "EnableIPv6": ipv6,
        "Options": options, "Labels": labels,
        "IPAM": { "Driver": ipam_driver, "Options": ipam_options, "Config": config },
    })
}

impl World {
    /// The Engine API container create of b1 (a curl command) in our API's terms.
    fn api_create(&mut self, name: &str, body: &Value) {
        let net = body["HostConfig"]["NetworkMode"].as_str().unwrap().to_string();
        let mut settings = body["NetworkingConfig"]["EndpointsConfig"][&net].clone();
        if let Some(mac) = body["MacAddress"].as_str() {
            settings["MacAddress"] = mac.into();
        }
        let mut c = Container::default();
        c.sandbox.insert("Dns".into(), body["HostConfig"]["Dns"].clone());
        if let Some(h) = body["Hostname"].as_str() {
            c.sandbox.insert("Hostname".into(), h.into());
        }
        c.networks.push((net, settings));
        self.containers.insert(name.to_string(), c);
    }

    async fn connect_sandbox(&self, sandbox: &str, net: &str, settings: &Value) {
        let body = json!({ "Container": sandbox, "EndpointConfig": settings });
        self.client
            .post_unit(&format!("/networks/{net}/connect"), &body)
            .await
            .unwrap_or_else(|e| panic!("connect {sandbox} to {net}: {e}"));
    }

    async fn connect(&mut self, args: &[String]) {
        let mut ipam = Map::new();
        let mut aliases = Vec::new();
        let mut pos = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().expect("a flag's value").clone();
            match a.as_str() {
                "--ip" => drop(ipam.insert("IPv4Address".into(), val().into())),
                "--ip6" => drop(ipam.insert("IPv6Address".into(), val().into())),
                "--alias" => aliases.push(val()),
                "--link-local-ip" => {
                    let ip = val();
                    ipam.entry("LinkLocalIPs").or_insert_with(|| json!([])).as_array_mut().unwrap().push(ip.into());
                }
                other => pos.push(other.to_string()),
            }
        }
        let (net, name) = (pos[0].clone(), pos[1].clone());
        let mut settings = json!({});
        if !ipam.is_empty() {
            settings["IPAMConfig"] = ipam.into();
        }
        if !aliases.is_empty() {
            settings["Aliases"] = aliases.into();
        }
        let c = self.containers.get_mut(&name).unwrap();
        c.networks.push((net.clone(), settings.clone()));
        if let Some(sandbox) = c.running.clone() {
            self.connect_sandbox(&sandbox, &net, &settings).await;
        }
    }

    async fn disconnect(&mut self, net: &str, name: &str) {
        let c = self.containers.get_mut(name).unwrap();
        c.networks.retain(|(n, _)| n != net);
        if let Some(sandbox) = c.running.clone() {
            let body = json!({ "Container": sandbox });
            self.client.post_unit(&format!("/networks/{net}/disconnect"), &body).await.unwrap();
        }
    }

    /// `docker network inspect` as the step shows it: the fields compared.
    async fn network_inspect(&self, w: &[String], stdout: &str) {
        let names: Vec<&String> = w.iter().filter(|a| !a.starts_with('-') && !a.starts_with("{{")).collect();
        let theirs: Vec<Value> = if w.iter().any(|a| a == "-f") {
            stdout.lines().map(|l| json!({ "IPAM": serde_json::from_str::<Value>(l).unwrap() })).collect()
        } else {
            serde_json::from_str(stdout).unwrap()
        };
        for (name, theirs) in names.iter().zip(theirs) {
            let ours: Value = self.client.get(&format!("/networks/{name}")).await.unwrap();
            for (field, value) in theirs.as_object().unwrap() {
                if [
                    "IPAM",
                    "Options",
                    "Labels",
                    "Internal",
                    "EnableIPv6",
                    "Attachable",
                    "Ingress",
                    "ConfigOnly",
                    "Scope",
                ]
                .contains(&field.as_str())
                {
                    assert_eq!(&ours[field], value, "network inspect {name}: {field}");
                }
            }
        }
    }

    /// Runs one step; returns whether its calls may interleave across endpoints.
    async fn run(&mut self, cmd: &str, rc: i64, stdout: &str) -> bool {
        let command = Command::parse(cmd);
        if let Some(unordered) = cnm_tests::traces::lifecycle(self, &command).await {
            return unordered;
        }
        match command {
            Command::ApiCreate(name, body) => self.api_create(&name, &body),
            Command::NetworkCreate(args) => {
                let body = network_create_body(&args);
                let _: Value =
                    self.client.post("/networks/create", &body).await.unwrap_or_else(|e| panic!("{cmd}: {e}"));
            }
            Command::NetworkConnect(args) => self.connect(&args).await,
            Command::NetworkDisconnect(net, name) => self.disconnect(&net, &name).await,
            Command::NetworkRm(nets) => {
                for n in &nets {
                    let r = self.client.delete(&format!("/networks/{n}")).await;
                    assert_eq!(r.is_ok(), rc == 0, "`{cmd}` exited {rc} with dockerd; ours: {r:?}");
                }
            }
            Command::NetworkInspect(args) => self.network_inspect(&args, stdout).await,
            Command::Inspect(name) => {
                // dockerd answers from what it recorded: no plugin call.
                if let Some(sandbox) = self.containers.get(&name).and_then(|c| c.running.clone()) {
                    let _: Value = self.client.get(&format!("/sandboxes/{sandbox}")).await.unwrap();
                }
            }
            // Lifecycle commands ran above; `exec` is nothing the network sees.
            _ => {}
        }
        false
    }
}

impl Containers for World {
    /// `docker run`/`docker create` flags: the container's sandbox and its network.
    fn define(&mut self, args: &[String]) -> String {
        let mut c = Container::default();
        let (mut name, mut net) = (String::new(), String::new());
        let mut ipam = Map::new();
        let (mut exposed, mut bindings) = (Map::new(), Map::new());
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().expect("a flag's value").clone();
            match a.as_str() {
                "-d" => {}
                "--name" => name = val(),
                "--network" => net = val(),
                "--ip" => drop(ipam.insert("IPv4Address".into(), val().into())),
                "--ip6" => drop(ipam.insert("IPv6Address".into(), val().into())),
                "-p" => {
                    let spec = val();
                    let (key, binding) = cnmd::wire::ports::parse_publish(&spec).unwrap();
                    exposed.insert(key.clone(), json!({}));
                    bindings.entry(key).or_insert_with(|| json!([])).as_array_mut().unwrap().push(json!(binding));
                }
                "--expose" => drop(exposed.insert(format!("{}/tcp", val()), json!({}))),
                _ => break, // the image: the command follows
            }
        }
        c.sandbox.insert("ExposedPorts".into(), exposed.into());
        c.sandbox.insert("PortBindings".into(), bindings.into());
        let settings = if ipam.is_empty() { json!({}) } else { json!({ "IPAMConfig": ipam }) };
        c.networks.push((net, settings));
        self.containers.insert(name.clone(), c);
        name
    }
    fn network_count(&self, name: &str) -> usize {
        self.containers.get(name).map_or(0, |c| c.networks.len())
    }
    async fn start(&mut self, name: &str) {
        self.starts += 1;
        let c = self.containers[name].clone();
        let sandbox = format!("{name}-{}", self.starts);
        let mut req = c.sandbox.clone();
        req.insert("Name".into(), sandbox.clone().into());
        let _: Value = self.client.post("/sandboxes", &req).await.unwrap_or_else(|e| panic!("sandbox {name}: {e}"));
        for (net, settings) in &c.networks {
            self.connect_sandbox(&sandbox, net, settings).await;
        }
        self.containers.get_mut(name).unwrap().running = Some(sandbox);
    }
    async fn stop(&mut self, name: &str) {
        if let Some(sandbox) = self.containers.get_mut(name).and_then(|c| c.running.take()) {
            self.client.delete(&format!("/sandboxes/{sandbox}")).await.unwrap();
        }
    }
    fn forget(&mut self, name: &str) {
        self.containers.remove(name);
    }
}

/// A call as compared: plugin, method, body, headers (sorted, without `Content-Length`).
type Compared = (String, String, Value, Vec<(String, String)>);

/// A call as received, normalised for comparison.
fn as_compared(
    norm: &mut Normaliser,
    plugin: &str,
    path: &str,
    body: &Value,
    headers: &[(String, String)],
) -> Compared {
    let mut headers: Vec<(String, String)> =
        headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-length")).cloned().collect();
    headers.sort();
    (plugin.to_string(), path.trim_start_matches('/').to_string(), norm.body(body), headers)
}

const OPER_INFO: &str = "NetworkDriver.EndpointOperInfo";

/// Ours: every endpoint that joined during the step got at least one
/// `EndpointOperInfo` after its Join.
fn check_oper_info(step: &str, ours: &[Compared]) {
    for (i, (_, m, v, _)) in ours.iter().enumerate() {
        if m == "NetworkDriver.Join" {
            let ep = &v["EndpointID"];
            assert!(
                ours[i..].iter().any(|(_, m2, v2, _)| m2 == OPER_INFO && &v2["EndpointID"] == ep),
                "{step}: no EndpointOperInfo for {ep} after its Join"
            );
        }
    }
}

async fn scenario(prefix: &str) {
    let (trace, steps) = cnm_tests::traces::scenario(prefix);
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path().to_str().unwrap().to_string();
    let test = format!("daemon_conformance_{}", prefix.trim_end_matches('-'));
    let Some(d) = Daemon::start_with_args(&test, &["--plugin-dir", &dir]).await else { return };
    let calls = Calls::default();
    let mut running = Vec::new();
    for (name, conf) in steps[0]["plugins"].as_object().unwrap() {
        let sock = plugins.path().join(format!("{name}.sock"));
        running.push(RecorderPlugin::start(&sock, name, conf, calls.clone()));
    }
    let client = d.client();
    let _: Value = client.get("/networks").await.expect("the daemon serves");
    let mut world = World { client, containers: HashMap::new(), starts: 0 };
    let (mut ours_norm, mut theirs_norm) = (Normaliser::default(), Normaliser::default());
    let mut compared = 0;
    for step in &steps {
        let Some(cmd) = step["cmd"].as_str() else { continue };
        let rc = step["rc"].as_i64().unwrap_or(0);
        let unordered = world.run(cmd, rc, step["stdout"].as_str().unwrap_or_default()).await;
        let raw: Vec<Call> = calls.take();
        let ours: Vec<Compared> =
            raw.iter().map(|c| as_compared(&mut ours_norm, &c.plugin, &c.path, &c.body, &c.headers)).collect();
        check_oper_info(cmd, &ours);
        let recorded: Vec<Compared> = cnm_tests::traces::calls_of(&trace, step)
            .into_iter()
            .map(|c| {
                let headers: Vec<(String, String)> = c["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                as_compared(
                    &mut theirs_norm,
                    c["plugin"].as_str().unwrap(),
                    c["path"].as_str().unwrap(),
                    &c["request"],
                    &headers,
                )
            })
            .collect();
        let drop_oper = |v: Vec<Compared>| -> Vec<Compared> { v.into_iter().filter(|c| c.1 != OPER_INFO).collect() };
        let (o, t) = (drop_oper(ours), drop_oper(recorded));
        let (o, t) = if unordered {
            let ep = |c: &Compared| c.2["EndpointID"].as_str().unwrap_or("").to_string();
            (cnm_tests::traces::per_endpoint(&o, ep), cnm_tests::traces::per_endpoint(&t, ep))
        } else {
            (o, t)
        };
        if o != t {
            let show = |v: &[Compared]| {
                v.iter().map(|(p, m, r, h)| format!("  {p} {m} {r}\n      {h:?}")).collect::<Vec<_>>().join("\n")
            };
            panic!("{prefix}: `{cmd}`\nours:\n{}\nrecorded:\n{}\ncnmd log:\n{}", show(&o), show(&t), d.log());
        }
        compared += t.len();
    }
    assert!(compared > 0, "{prefix}: nothing compared");
    // Everything the scenario created is gone: only the pre-defined networks are left.
    let nets: Vec<Value> = world.client.get("/networks").await.unwrap();
    assert!(nets.iter().all(|n| !n["Name"].as_str().unwrap().starts_with("rec-")), "left over: {nets:?}");
    for r in running {
        r.stop();
    }
}

cnm_tests::trace_tests!(scenario, "cnmd's plugin traffic, driven through its API, equals dockerd's.");
