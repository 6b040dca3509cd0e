//! The real `docker` CLI against cnmd (privileged): every `docker network`
//! subcommand works unmodified with `DOCKER_HOST` pointing at the daemon.

mod common;

use common::{Daemon, stderr, stdout};
use std::time::{Duration, Instant};

fn docker_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(out.status.success(), "docker {args:?} failed: {}\n{}", stderr(&out), d.log());
    stdout(&out)
}

/// create, ls, inspect, connect, disconnect, rm and prune, with docker's
/// output formats and error messages; packets flow between the sandboxes docker connected.
#[tokio::test]
async fn docker_cli_drives_every_network_subcommand() {
    if !cnm_tests::tools("docker_cli_drives_every_network_subcommand", &["docker"], "docker.io") {
        return;
    }
    let Some(d) = Daemon::start("docker_cli_drives_every_network_subcommand").await else { return };
    let id = docker_ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.232.1.0/24",
            "--gateway",
            "10.232.1.254",
            "--ip-range",
            "10.232.1.128/25",
            "--aux-address",
            "router=10.232.1.200",
            "--label",
            "team=net",
            "-o",
            "com.docker.network.bridge.name=brdocker",
            "dn1",
        ],
    );
    assert_eq!(id.len(), 64, "docker prints the new id: {id:?}");
    docker_ok(&d, &["network", "create", "--internal", "dn2"]);

    let ls = docker_ok(&d, &["network", "ls"]);
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&id[..12]) && l.contains("dn1") && l.contains("bridge") && l.contains("local")),
        "{ls}"
    );
    assert!(ls.contains("bridge"), "the default network is listed: {ls}");
    let names = docker_ok(&d, &["network", "ls", "--filter", "label=team=net", "--format", "{{.Name}}"]);
    assert_eq!(names, "dn1");
    let names = docker_ok(&d, &["network", "ls", "-q", "--filter", "name=dn2"]);
    assert_eq!(names.len(), 12);

    let v: serde_json::Value = serde_json::from_str(&docker_ok(&d, &["network", "inspect", "dn1"])).unwrap();
    let n = &v[0];
    assert_eq!(n["Id"], id.as_str());
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.232.1.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.232.1.254");
    assert_eq!(n["IPAM"]["Config"][0]["IPRange"], "10.232.1.128/25");
    assert_eq!(n["IPAM"]["Config"][0]["AuxiliaryAddresses"]["router"], "10.232.1.200");
    assert_eq!(n["Labels"]["team"], "net");
    assert_eq!(n["Options"]["com.docker.network.bridge.name"], "brdocker");
    let internal = docker_ok(&d, &["network", "inspect", "-f", "{{.Internal}}", "dn2"]);
    assert_eq!(internal, "true");

    d.ok(&["sandbox", "create", "web"]);
    d.ok(&["sandbox", "create", "cli"]);
    docker_ok(&d, &["network", "connect", "--ip", "10.232.1.130", "--alias", "www", "dn1", "web"]);
    docker_ok(&d, &["network", "connect", "dn1", "cli"]);
    let v: serde_json::Value = serde_json::from_str(&docker_ok(&d, &["network", "inspect", "dn1"])).unwrap();
    let containers = v[0]["Containers"].as_object().unwrap();
    assert_eq!(containers.len(), 2);
    let web = containers.values().find(|c| c["Name"] == "web").expect("web listed");
    assert_eq!(web["IPv4Address"], "10.232.1.130/24");
    assert_eq!(web["MacAddress"].as_str().unwrap().len(), 17);
    assert_eq!(web["EndpointID"].as_str().unwrap().len(), 64);
    assert!(d.pings("cli", "10.232.1.130").await, "cli cannot reach web");

    let out = d.docker(&["network", "connect", "dn1", "web"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already connected"), "{}", stderr(&out));
    let out = d.docker(&["network", "rm", "dn1"]);
    assert!(!out.status.success(), "docker network rm of a network in use must fail");
    assert!(stderr(&out).contains("active endpoints"), "{}", stderr(&out));

    docker_ok(&d, &["network", "disconnect", "dn1", "web"]);
    assert!(!d.pings("cli", "10.232.1.130").await, "web still answers after disconnect");
    let out = d.docker(&["network", "disconnect", "dn1", "web"]);
    assert!(!out.status.success());
    docker_ok(&d, &["network", "disconnect", "--force", "dn1", "cli"]);

    let out = d.docker(&["network", "create", "dn1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("network with name dn1 already exists"), "{}", stderr(&out));
    let out = d.docker(&["network", "inspect", "nope"]);
    assert!(!out.status.success());
    // docker 28 prints the daemon's message, docker 20.10 its own.
    let msg = stderr(&out).to_lowercase();
    assert!(msg.contains("not found") || msg.contains("no such network"), "{msg}");
    let start = Instant::now();
    let out = d.docker(&["network", "create", "-d", "brigde", "typo"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("available drivers: bridge"), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(5), "an unknown driver is refused at once");
    let out = d.docker(&["network", "create", "--subnet", "10.232.9.1/33", "badnet"]);
    assert!(!out.status.success(), "an invalid subnet is refused");

    let out = d.docker(&["network", "rm", "bridge"]);
    assert!(!out.status.success(), "the default network cannot be removed");
    assert!(stderr(&out).contains("pre-defined"), "{}", stderr(&out));
    let out = d.docker(&["network", "rm", "host"]);
    assert!(!out.status.success(), "the host network cannot be removed");
    assert!(stderr(&out).contains("pre-defined"), "{}", stderr(&out));
    docker_ok(&d, &["network", "rm", "dn2"]);
    let pruned = docker_ok(&d, &["network", "prune", "-f"]);
    assert!(pruned.contains("dn1"), "{pruned}");
    let ls = docker_ok(&d, &["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls, "bridge\nhost\nnone", "only the pre-defined networks survive prune");
    d.ok(&["sandbox", "rm", "web", "cli"]);
    assert_eq!(d.host.settled_links(&["cnm0", "lo"]).await, ["cnm0", "lo"]);
}

/// `docker network connect --driver-opt com.docker.network.endpoint.ifname=NAME`
/// (Docker 28's endpoint option) names the interface in the sandbox:
/// packets flow through it; a name the sandbox has already, an invalid
/// name and an option cnmd does not know are refused, and nothing is left.
/// Also `docker info`'s firewall backend (API 1.49+'s `FirewallBackend`).
#[tokio::test]
async fn docker_connect_names_the_interface() {
    if !cnm_tests::tools("docker_connect_names_the_interface", &["docker"], "docker.io") {
        return;
    }
    let Some(d) = Daemon::start("docker_connect_names_the_interface").await else { return };
    docker_ok(&d, &["network", "create", "--subnet", "10.232.5.0/24", "dn5"]);
    docker_ok(&d, &["network", "create", "--subnet", "10.232.6.0/24", "dn6"]);
    d.ok(&["sandbox", "create", "s1"]);
    d.ok(&["sandbox", "create", "s2"]);
    // `docker info` reads the firewall backend as dockerd's.
    let backend = docker_ok(&d, &["info", "--format", "{{.FirewallBackend.Driver}}"]);
    assert_eq!(backend, "nftables");
    let ifname = "com.docker.network.endpoint.ifname";
    docker_ok(&d, &["network", "connect", "--driver-opt", &format!("{ifname}=data0"), "dn5", "s1"]);
    docker_ok(&d, &["network", "connect", "dn5", "s2"]);
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", "s1"])).unwrap();
    let ns = cnm::osl::Namespace::open(v[0]["Key"].as_str().unwrap()).unwrap();
    let nl = cnm::osl::Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    let data0 = nl.link_get("data0").await.unwrap().expect("the interface has the name asked for");
    let addrs = nl.addr_list(Some(data0.index)).await.unwrap();
    let s1_ip = d.ip("s1", "dn5");
    assert!(addrs.iter().any(|a| a.net.addr().to_string() == s1_ip), "{addrs:?}");
    assert!(d.pings("s2", &s1_ip).await, "s2 reaches s1 through data0");
    assert!(d.pings("s1", &d.ip("s2", "dn5")).await, "s1 reaches s2 through data0");

    let out = d.docker(&["network", "connect", "--driver-opt", &format!("{ifname}=data0"), "dn6", "s1"]);
    assert!(!out.status.success() && stderr(&out).contains("already in use"), "{}", stderr(&out));
    let out = d.docker(&["network", "connect", "--driver-opt", &format!("{ifname}=bad/name"), "dn6", "s1"]);
    assert!(!out.status.success() && stderr(&out).contains("invalid interface name"), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&docker_ok(&d, &["network", "inspect", "dn6"])).unwrap();
    assert_eq!(v[0]["Containers"], serde_json::json!({}), "the refused connects left nothing");
    // Another endpoint option is the driver's, as dockerd hands it over
    // (the bridge takes none and ignores it).
    docker_ok(&d, &["network", "connect", "--driver-opt", "com.example.unknown=1", "dn6", "s1"]);
    docker_ok(&d, &["network", "disconnect", "dn6", "s1"]);
    // (The refused join's veth pair goes with the background deletion.)
    let names = cnm_tests::settled_links_in(&ns, &["data0", "lo"]).await;
    assert_eq!(names, ["data0", "lo"], "the refused connects left no interface");

    d.ok(&["sandbox", "rm", "s1", "s2"]);
    docker_ok(&d, &["network", "rm", "dn5", "dn6"]);
}

/// `docker events`: a listener started before sees the network events
/// (create, connect, disconnect, destroy), filtered by type, each once,
/// and stops at `--until`; `--since` and `--until` replay them afterwards,
/// `--filter event=` narrows them, sandboxes have events of their own.
#[tokio::test]
async fn docker_events_show_network_events() {
    if !cnm_tests::tools("docker_events_show_network_events", &["docker"], "docker.io") {
        return;
    }
    let Some(d) = Daemon::start("docker_events_show_network_events").await else { return };
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let since = now();
    // From `since` (what happened before it connected is replayed, the
    // rest comes live, nothing twice) until a few seconds from now.
    let (from, to) = (since.to_string(), (since + 4).to_string());
    let live = std::process::Command::new("docker")
        .args(["events", "--since", &from, "--until", &to, "--filter", "type=network"])
        .args(["--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"])
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.host.dir.path().join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run docker events");
    d.ok(&["sandbox", "create", "ev"]);
    docker_ok(&d, &["network", "create", "evnet"]);
    docker_ok(&d, &["network", "connect", "evnet", "ev"]);
    docker_ok(&d, &["network", "disconnect", "evnet", "ev"]);
    docker_ok(&d, &["network", "rm", "evnet"]);
    let out = live.wait_with_output().expect("docker events output");
    let seen = String::from_utf8_lossy(&out.stdout).to_string();
    let want = ["network create evnet", "network connect evnet", "network disconnect evnet", "network destroy evnet"];
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines, want, "live: {seen}\n{}", d.log());

    let (since, until) = (since.to_string(), now().to_string());
    let replay = docker_ok(
        &d,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "type=network",
            "--filter",
            "event=connect",
            "--format",
            "{{.Action}} {{.Actor.Attributes.container}}",
        ],
    );
    let sandbox: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", "ev"])).unwrap();
    assert_eq!(replay, format!("connect {}", sandbox[0]["Id"].as_str().unwrap()), "replayed: {replay}");
    let all = docker_ok(&d, &["events", "--since", &since, "--until", &until, "--format", "{{.Type}} {{.Action}}"]);
    assert!(all.lines().any(|l| l == "sandbox create"), "cnm's own sandbox events: {all}");
    // `--until` alone replays what is kept up to it, as dockerd's; a
    // sandbox named by a prefix of its id (dockerd's fuzzy match).
    let upto = docker_ok(&d, &["events", "--until", &until, "--filter", "type=network", "--format", "{{.Action}}"]);
    assert!(upto.lines().any(|l| l == "destroy"), "--until alone: {upto}");
    let short = &sandbox[0]["Id"].as_str().unwrap()[..8];
    let by_prefix = docker_ok(
        &d,
        &["events", "--until", &until, "--filter", &format!("container={short}"), "--format", "{{.Type}} {{.Action}}"],
    );
    assert!(by_prefix.lines().any(|l| l == "sandbox create"), "a short id: {by_prefix}");
    d.ok(&["sandbox", "rm", "ev"]);
}

/// The address of `sandbox` on `network` in family `v6`, as sandbox inspect shows it.
fn address(d: &Daemon, sandbox: &str, network: &str, v6: bool) -> String {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", sandbox])).unwrap();
    let field = if v6 { "GlobalIPv6Address" } else { "IPAddress" };
    v[0]["Networks"][network][field].as_str().unwrap_or_default().to_string()
}

/// The docker CLI 28 at the API it negotiates with cnmd (1.50: cnmd
/// serves up to 1.52) sends Docker 28's network fields, each tested by
/// packets: an IPv6-only network (`--ipv4=false`: its sandboxes have no
/// IPv4 address and reach each other over IPv6); `--ipv6` without a
/// subnet gets a /64 of the daemon's own unique local /48 (derived from
/// `docker info`'s ID as Docker's); an interface sysctl given at connect
/// (`com.docker.network.endpoint.sysctls`, `arp_ignore=8`: the sandbox
/// answers no ARP, so a neighbour cannot reach it, while one without it
/// is reached); `--gw-priority` picks the default route's network; inspect
/// at API 1.52 counts the addresses in use (`Status`).
#[tokio::test]
async fn docker_cli_at_api_1_50_drives_docker_28_networks() {
    let test = "docker_cli_at_api_1_50_drives_docker_28_networks";
    if !cnm_tests::tools(test, &["docker"], "docker.io") {
        return;
    }
    let Some(d) = Daemon::start(test).await else { return };
    let versions = docker_ok(&d, &["version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}"]);
    assert_eq!(versions, "1.50 1.52", "the CLI speaks its newest API to cnmd");

    // IPv6 only.
    docker_ok(&d, &["network", "create", "--ipv4=false", "--ipv6", "--subnet", "fd00:232:7::/64", "v6only"]);
    let v: serde_json::Value = serde_json::from_str(&docker_ok(&d, &["network", "inspect", "v6only"])).unwrap();
    assert_eq!((v[0]["EnableIPv4"].as_bool(), v[0]["EnableIPv6"].as_bool()), (Some(false), Some(true)));
    d.ok(&["sandbox", "create", "s1"]);
    d.ok(&["sandbox", "create", "s2"]);
    docker_ok(&d, &["network", "connect", "v6only", "s1"]);
    docker_ok(&d, &["network", "connect", "v6only", "s2"]);
    assert_eq!(address(&d, "s1", "v6only", false), "", "no IPv4 address on an IPv6-only network");
    let s2 = address(&d, "s2", "v6only", true);
    assert!(s2.starts_with("fd00:232:7::"), "{s2}");
    assert!(d.pings("s1", &s2).await, "s1 reaches s2 over IPv6");
    let out = d.docker(&["network", "create", "--ipv4=false", "neither"]);
    assert!(!out.status.success() && stderr(&out).contains("IPv4 or IPv6 must be enabled"), "{}", stderr(&out));

    // Inspect at 1.52 (the CLI asks at 1.50): the addresses in use.
    let status: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "v6only"]))
        .map(|v: serde_json::Value| v[0]["Status"].clone())
        .unwrap_or_default();
    let sub = &status["IPAM"]["Subnets"]["fd00:232:7::/64"];
    assert_eq!(sub["IPsInUse"], 4, "anycast, gateway and two sandboxes: {status}");
    assert_eq!(sub["DynamicIPsAvailable"], u64::MAX - 3, "2^64 less the four: {status}");
    let at_150: serde_json::Value = serde_json::from_str(&docker_ok(&d, &["network", "inspect", "v6only"])).unwrap();
    assert!(at_150[0].get("Status").is_none(), "no Status below API 1.52");

    // An IPv6 pool of the daemon's own ULA /48, one /64 per network.
    docker_ok(&d, &["network", "create", "--ipv6", "--subnet", "10.232.8.0/24", "dual"]);
    docker_ok(&d, &["network", "create", "--ipv6", "--subnet", "10.232.9.0/24", "dual2"]);
    let id = docker_ok(&d, &["info", "--format", "{{.ID}}"]);
    let ula = cnmd::drivers::ula_prefix(&id);
    let mut seen = Vec::new();
    for n in ["dual", "dual2"] {
        let v: serde_json::Value = serde_json::from_str(&docker_ok(&d, &["network", "inspect", n])).unwrap();
        let v6: ipnet::Ipv6Net = v[0]["IPAM"]["Config"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|c| c["Subnet"].as_str()?.parse().ok())
            .expect("an IPv6 subnet");
        assert!(ula.contains(&v6) && v6.prefix_len() == 64, "{v6} is a /64 of {ula}");
        seen.push(v6);
    }
    assert_ne!(seen[0], seen[1], "one /64 each");

    // An interface sysctl at connect.
    d.ok(&["sandbox", "create", "s3"]);
    let sysctl = "com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.arp_ignore=8";
    docker_ok(&d, &["network", "connect", "--driver-opt", sysctl, "dual", "s1"]);
    docker_ok(&d, &["network", "connect", "dual", "s2"]);
    docker_ok(&d, &["network", "connect", "dual", "s3"]);
    assert!(d.pings("s3", &address(&d, "s2", "dual", false)).await, "control: s3 reaches s2");
    assert!(!d.pings("s3", &address(&d, "s1", "dual", false)).await, "s1 answers no ARP (arp_ignore=8)");
    assert!(d.pings("s3", &address(&d, "s1", "dual", true)).await, "s1 is reached over IPv6");
    let bad = "com.docker.network.endpoint.sysctls=net.ipv4.ip_forward=1";
    let out = d.docker(&["network", "connect", "--driver-opt", bad, "dual2", "s1"]);
    assert!(
        !out.status.success() && stderr(&out).contains("unrecognised network interface sysctl"),
        "{}",
        stderr(&out)
    );

    // The gateway: the highest --gw-priority wins, whatever the order.
    let default_gateway = |sandbox: &str| {
        let ns = sandbox_ns(&d, sandbox);
        async move {
            let nl = cnm::osl::Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
            let routes = nl.route_list(false).await.unwrap();
            routes.iter().find(|r| r.destination.prefix_len() == 0).and_then(|r| r.gateway).map(|g| g.to_string())
        }
    };
    d.ok(&["sandbox", "create", "s4"]);
    docker_ok(&d, &["network", "connect", "dual", "s4"]);
    docker_ok(&d, &["network", "connect", "--gw-priority", "10", "dual2", "s4"]);
    assert_eq!(default_gateway("s4").await.as_deref(), Some("10.232.9.1"), "the later network, of higher priority");
    d.ok(&["sandbox", "create", "s5"]);
    docker_ok(&d, &["network", "connect", "--gw-priority", "10", "dual", "s5"]);
    docker_ok(&d, &["network", "connect", "dual2", "s5"]);
    assert_eq!(default_gateway("s5").await.as_deref(), Some("10.232.8.1"), "the earlier network, of higher priority");

    d.ok(&["sandbox", "rm", "s1", "s2", "s3", "s4", "s5"]);
    docker_ok(&d, &["network", "rm", "v6only", "dual", "dual2"]);

    // A subnet asked by its size alone (Docker 29): one of that size from
    // the predefined pools, shown and kept as allocated.
    docker_ok(&d, &["network", "create", "--ipv6", "--subnet", "0.0.0.0/27", "--subnet", "::/56", "sized"]);
    let subnets = |d: &Daemon| -> Vec<ipnet::IpNet> {
        let v: serde_json::Value = serde_json::from_str(&docker_ok(d, &["network", "inspect", "sized"])).unwrap();
        v[0]["IPAM"]["Config"].as_array().unwrap().iter().filter_map(|c| c["Subnet"].as_str()?.parse().ok()).collect()
    };
    let shown = subnets(&d);
    assert_eq!(shown.iter().map(|n| n.prefix_len()).collect::<Vec<_>>(), [27, 56], "{shown:?}");
    assert!(shown.iter().all(|n| !n.addr().is_unspecified()), "{shown:?}");
    assert!(ipnet::IpNet::V6(ula).contains(&shown[1]), "{shown:?} from the ULA /48");
    d.ok(&["sandbox", "create", "z1"]);
    d.ok(&["sandbox", "create", "z2"]);
    docker_ok(&d, &["network", "connect", "sized", "z1"]);
    docker_ok(&d, &["network", "connect", "sized", "z2"]);
    let z2 = address(&d, "z2", "sized", false);
    assert!(shown[0].contains(&z2.parse::<std::net::IpAddr>().unwrap()), "{z2} in {}", shown[0]);
    assert!(d.pings("z1", &z2).await, "z1 reaches z2 on the sized subnet");
    let mut d = d;
    assert!(d.sigterm());
    d.spawn();
    assert_eq!(subnets(&d), shown, "the same subnets after a restart");
    let out = d.docker(&["network", "create", "--subnet", "0.0.0.0/4", "huge"]);
    assert!(!out.status.success() && stderr(&out).contains("no predefined pool can hold"), "{}", stderr(&out));
    d.ok(&["sandbox", "rm", "z1", "z2"]);
    docker_ok(&d, &["network", "rm", "sized"]);
}

/// The namespace of sandbox `name`.
fn sandbox_ns(d: &Daemon, name: &str) -> cnm::osl::Namespace {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["sandbox", "inspect", name])).unwrap();
    cnm::osl::Namespace::open(v[0]["Key"].as_str().unwrap()).unwrap()
}

/// Docker's gateway modes (`-o com.docker.network.bridge.gateway_mode_ipv4=…`,
/// created through the docker CLI), by packets between the sandboxes and an
/// outside host that routes the sandboxes' subnets through this host:
/// `nat` masquerades out and lets in only the published host port;
/// `nat-unprotected` also lets anything in at the containers' addresses;
/// `routed` does not masquerade and lets in ICMP and the published port at
/// the container's own address, nothing else; `isolated` (internal only)
/// puts no gateway on the bridge. Bad values are refused with dockerd's words.
#[tokio::test]
async fn docker_gateway_modes_by_packets() {
    let test = "docker_gateway_modes_by_packets";
    if !cnm_tests::tools(test, &["docker"], "docker.io") {
        return;
    }
    let Some(d) = Daemon::start(test).await else { return };
    let outside = d.host.outside().await;
    let via = cnm::osl::Route {
        destination: "10.232.0.0/16".parse().unwrap(),
        gateway: Some(cnm_tests::UPLINK_HOST.parse().unwrap()),
        oif: None,
        scope: cnm::osl::RouteScope::Universe,
    };
    outside.nl.route_add(&via).await.unwrap();
    let mode = "com.docker.network.bridge.gateway_mode_ipv4";
    let modes = [("nat", 20), ("nat-unprotected", 21), ("routed", 22)];
    for (m, n) in modes {
        let subnet = format!("10.232.{n}.0/24");
        docker_ok(&d, &["network", "create", "-o", &format!("{mode}={m}"), "--subnet", &subnet, &format!("g{n}")]);
        d.ok(&["sandbox", "create", "-p", &format!("90{n}:80"), &format!("s{n}")]);
        docker_ok(&d, &["network", "connect", &format!("g{n}"), &format!("s{n}")]);
    }
    let v: serde_json::Value = serde_json::from_str(&docker_ok(&d, &["network", "inspect", "g22"])).unwrap();
    assert_eq!(v[0]["Options"][mode], "routed", "inspect shows the mode");
    let outside_server = cnm_tests::peer_echo_server(&outside.ns, "10.250.0.2:7000".parse().unwrap(), 3).await;
    for (m, n) in modes {
        let ns = sandbox_ns(&d, &format!("s{n}"));
        let ip = format!("10.232.{n}.2");
        let _published = cnm_tests::peer_echo_server(&ns, "0.0.0.0:80".parse().unwrap(), 2).await;
        let _other = cnm_tests::peer_echo_server(&ns, "0.0.0.0:81".parse().unwrap(), 1).await;
        let at = |port: u16| format!("{ip}:{port}").parse().unwrap();
        // Out: masqueraded to the host's address, or the container's own.
        let out = cnm_tests::seen_as(&ns, "10.250.0.2:7000".parse().unwrap()).await;
        let expected_source = if m == "routed" { ip.as_str() } else { cnm_tests::UPLINK_HOST };
        assert_eq!(out.as_deref(), Ok(expected_source), "{m}: the outside host sees the sandbox as");
        // In through the host's published port, except for routed.
        if m != "routed" {
            let host = format!("{}:90{n}", cnm_tests::UPLINK_HOST).parse().unwrap();
            assert!(cnm_tests::seen_as(&outside.ns, host).await.is_ok(), "{m}: the published host port answers");
        }
        let direct_published = cnm_tests::seen_as(&outside.ns, at(80)).await;
        let direct_other = cnm_tests::seen_as(&outside.ns, at(81)).await;
        let pinged = cnm::osl::probe::ping(&outside.ns, ip.parse().unwrap(), Duration::from_secs(1)).await.is_ok();
        match m {
            "nat" => {
                assert!(direct_published.is_err(), "nat: the container's address is not reached directly");
                assert!(direct_other.is_err() && !pinged, "nat: nothing unsolicited gets in");
            }
            "nat-unprotected" => {
                assert_eq!(direct_other.as_deref(), Ok(cnm_tests::OUTSIDE), "nat-unprotected: any port, directly");
                assert!(pinged, "nat-unprotected: pinged directly");
            }
            _ => {
                assert_eq!(direct_published.as_deref(), Ok(cnm_tests::OUTSIDE), "routed: the published port, directly");
                assert!(direct_other.is_err(), "routed: an unpublished port is not reached");
                assert!(pinged, "routed: ICMP gets in");
            }
        }
    }
    drop(outside_server);

    // Isolated: internal only, and no gateway on the bridge.
    let out = d.docker(&["network", "create", "-o", &format!("{mode}=isolated"), "--subnet", "10.232.23.0/24", "g23"]);
    assert!(
        !out.status.success() && stderr(&out).contains("can only be used for an internal network"),
        "{}",
        stderr(&out)
    );
    let args =
        ["network", "create", "--internal", "-o", &format!("{mode}=isolated"), "--subnet", "10.232.23.0/24", "g23"];
    docker_ok(&d, &args);
    d.ok(&["sandbox", "create", "s23"]);
    docker_ok(&d, &["network", "connect", "g23", "s23"]);
    d.ok(&["sandbox", "create", "t23"]);
    docker_ok(&d, &["network", "connect", "g23", "t23"]);
    assert!(d.pings("s23", &d.ip("t23", "g23")).await, "isolated: the containers reach each other");
    assert!(!d.pings("s23", "10.232.23.1").await, "isolated: no gateway address on the bridge");
    let addrs = d.host.nl.addr_list(None).await.unwrap();
    assert!(!addrs.iter().any(|a| a.net.to_string().starts_with("10.232.23.")), "{addrs:?}");
    let out = d.docker(&["network", "create", "-o", &format!("{mode}=foo"), "gbad"]);
    assert!(!out.status.success() && stderr(&out).contains("unknown gateway mode foo"), "{}", stderr(&out));

    d.ok(&["sandbox", "rm", "s20", "s21", "s22", "s23", "t23"]);
    docker_ok(&d, &["network", "rm", "g20", "g21", "g22", "g23"]);
}

/// The same modes for IPv6 (`gateway_mode_ipv6`), on dual-stack networks
/// with global (documentation) IPv6 subnets, by packets between the
/// sandboxes and an outside host that routes 2001:db8:232::/48 through this
/// host's IPv6 address on the segment: `nat` masquerades out and lets in
/// only the published host port; `nat-unprotected` also lets anything in
/// at the container's address; `routed` does not masquerade and lets in
/// ICMP and the published port at the container's address; without a mode
/// a global subnet goes out unmasqueraded and is let in only through the
/// published host port (see the README's table of differences).
#[tokio::test]
async fn docker_ipv6_gateway_modes_by_packets() {
    let test = "docker_ipv6_gateway_modes_by_packets";
    if !cnm_tests::tools(test, &["docker"], "docker.io") {
        return;
    }
    let Some(d) = Daemon::start(test).await else { return };
    let outside = d.host.outside().await;
    // No duplicate address detection on the segment (a tentative address answers nothing).
    d.host.ns.sysctl_set("net/ipv6/conf/uplink/accept_dad", "0").await.unwrap();
    outside.ns.sysctl_set("net/ipv6/conf/eth0/accept_dad", "0").await.unwrap();
    let uplink = d.host.nl.link_get("uplink").await.unwrap().unwrap();
    d.host.nl.addr_add(uplink.index, "fd00:250::1/64".parse().unwrap()).await.unwrap();
    let oeth = outside.nl.link_get("eth0").await.unwrap().unwrap();
    outside.nl.addr_add(oeth.index, "fd00:250::2/64".parse().unwrap()).await.unwrap();
    let via = cnm::osl::Route {
        destination: "2001:db8:232::/48".parse().unwrap(),
        gateway: Some("fd00:250::1".parse().unwrap()),
        oif: None,
        scope: cnm::osl::RouteScope::Universe,
    };
    outside.nl.route_add(&via).await.unwrap();
    let mode = "com.docker.network.bridge.gateway_mode_ipv6";
    let modes = [("nat", 30), ("nat-unprotected", 31), ("routed", 32), ("", 33)];
    for (m, n) in modes {
        let (v4, v6) = (format!("10.232.{n}.0/24"), format!("2001:db8:232:{n}::/64"));
        let mut args = vec!["network", "create", "--ipv6", "--subnet", &v4, "--subnet", &v6];
        let opt = format!("{mode}={m}");
        if !m.is_empty() {
            args.extend(["-o", &opt]);
        }
        let name = format!("g{n}");
        args.push(&name);
        docker_ok(&d, &args);
        d.ok(&["sandbox", "create", "-p", &format!("91{n}:80"), &format!("s{n}")]);
        docker_ok(&d, &["network", "connect", &format!("g{n}"), &format!("s{n}")]);
    }
    let outside_server = cnm_tests::peer_echo_server(&outside.ns, "[fd00:250::2]:7000".parse().unwrap(), 4).await;
    for (m, n) in modes {
        let ns = sandbox_ns(&d, &format!("s{n}"));
        let ip = address(&d, &format!("s{n}"), &format!("g{n}"), true);
        assert!(ip.starts_with(&format!("2001:db8:232:{n}::")), "{m}: {ip}");
        let _published = cnm_tests::peer_echo_server(&ns, "[::]:80".parse().unwrap(), 2).await;
        let _other = cnm_tests::peer_echo_server(&ns, "[::]:81".parse().unwrap(), 1).await;
        let at = |port: u16| std::net::SocketAddr::new(ip.parse().unwrap(), port);
        // Out: masqueraded to the host's address, or the container's own.
        let out = cnm_tests::seen_as(&ns, "[fd00:250::2]:7000".parse().unwrap()).await;
        let expected_source = if matches!(m, "routed" | "") { ip.as_str() } else { "fd00:250::1" };
        assert_eq!(out.as_deref(), Ok(expected_source), "{m}: the outside host sees the sandbox as");
        // In through the host's published port, except for routed.
        if m != "routed" {
            let host = format!("[fd00:250::1]:91{n}").parse().unwrap();
            assert!(cnm_tests::seen_as(&outside.ns, host).await.is_ok(), "{m}: the published host port answers");
        }
        let direct_published = cnm_tests::seen_as(&outside.ns, at(80)).await;
        let direct_other = cnm_tests::seen_as(&outside.ns, at(81)).await;
        let pinged = cnm::osl::probe::ping(&outside.ns, ip.parse().unwrap(), Duration::from_secs(1)).await.is_ok();
        match m {
            "nat" | "" => {
                assert!(direct_published.is_err(), "{m}: the container's address is not reached directly");
                assert!(direct_other.is_err() && !pinged, "{m}: nothing unsolicited gets in");
            }
            "nat-unprotected" => {
                assert_eq!(direct_other.as_deref(), Ok("fd00:250::2"), "nat-unprotected: any port, directly");
                assert!(pinged, "nat-unprotected: pinged directly");
            }
            _ => {
                assert_eq!(direct_published.as_deref(), Ok("fd00:250::2"), "routed: the published port, directly");
                assert!(direct_other.is_err(), "routed: an unpublished port is not reached");
                assert!(pinged, "routed: ICMP gets in");
            }
        }
    }
    drop(outside_server);
    d.ok(&["sandbox", "rm", "s30", "s31", "s32", "s33"]);
    docker_ok(&d, &["network", "rm", "g30", "g31", "g32", "g33"]);
}

/// Two macvlan networks on one parent (Docker 28 allows it; their
/// subnets differ), created with the docker CLI: a sandbox on each
/// reaches the outside host on the parent's segment at that network's
/// address, and the outside host reaches each sandbox.
#[tokio::test]
async fn docker_two_macvlan_networks_share_a_parent() {
    let test = "docker_two_macvlan_networks_share_a_parent";
    if !cnm_tests::tools(test, &["docker"], "docker.io") {
        return;
    }
    let Some(d) = Daemon::start(test).await else { return };
    let outside = d.host.outside().await;
    let eth0 = outside.nl.link_get("eth0").await.unwrap().unwrap();
    outside.nl.addr_add(eth0.index, "10.251.0.2/24".parse().unwrap()).await.unwrap();
    for (name, subnet, range, gateway) in [
        ("mva", "10.250.0.0/24", "10.250.0.128/26", "10.250.0.2"),
        ("mvb", "10.251.0.0/24", "10.251.0.64/26", "10.251.0.2"),
    ] {
        let args = [
            "network",
            "create",
            "-d",
            "macvlan",
            "-o",
            "parent=uplink",
            "--subnet",
            subnet,
            "--ip-range",
            range,
            "--gateway",
            gateway,
            name,
        ];
        docker_ok(&d, &args);
    }
    d.ok(&["sandbox", "create", "a"]);
    d.ok(&["sandbox", "create", "b"]);
    docker_ok(&d, &["network", "connect", "mva", "a"]);
    docker_ok(&d, &["network", "connect", "mvb", "b"]);
    let (a, b) = (d.ip("a", "mva"), d.ip("b", "mvb"));
    assert_eq!((a.as_str(), b.as_str()), ("10.250.0.128", "10.251.0.64"));
    assert!(d.pings("a", cnm_tests::OUTSIDE).await, "a reaches the outside host");
    assert!(d.pings("b", "10.251.0.2").await, "b reaches the outside host");
    cnm_tests::assert_ping(&outside.ns, a.parse().unwrap()).await;
    cnm_tests::assert_ping(&outside.ns, b.parse().unwrap()).await;
    d.ok(&["sandbox", "rm", "a", "b"]);
    docker_ok(&d, &["network", "rm", "mva", "mvb"]);
}
