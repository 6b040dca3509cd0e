//! Published ports, proved by connections: from the outside host, from the
//! host through localhost, from the container itself (hairpin) and from a
//! neighbour; host ports reserved while published; conflicts refused; ranges
//! and ephemeral ports; everything undone when the container goes.

use cnm::driverapi::{PortBinding, Protocol};
use cnm::{EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_tests::{
    OUTSIDE, TestHost, UPLINK_HOST, can_bind_tcp, peer_echo_server, seen_as, udp_peer_echo_server, udp_seen_as,
};
use std::net::{IpAddr, SocketAddr};

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn bind(proto: Protocol, port: u16, host_ip: Option<&str>, host_port: u16, host_port_end: u16) -> PortBinding {
    PortBinding { proto, ip: None, port, host_ip: host_ip.map(|s| s.parse().unwrap()), host_port, host_port_end }
}

async fn container(
    ctrl: &cnm::Controller,
    net: &cnm::Network,
    name: &str,
    ports: Vec<PortBinding>,
) -> cnm::Result<(cnm::Sandbox, IpAddr)> {
    let ep = net.create_endpoint(name, EndpointConfig::default()).await?;
    let sb = ctrl.new_sandbox(name, SandboxConfig { port_bindings: ports, ..Default::default() }).await?;
    if let Err(e) = ep.join(&sb, JoinOptions::default()).await {
        sb.delete().await?;
        ep.delete().await?;
        return Err(e);
    }
    Ok((sb, ep.info().await?.ipv4.unwrap().addr()))
}

/// `-p 8080:80` and `-p 127.0.0.1:8053:53/udp` reach the container from
/// everywhere Docker users expect, and go away with the container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_are_reachable_and_released() {
    let Some(h) = TestHost::new("published_ports_are_reachable_and_released").await else { return };
    let out = h.outside().await;
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "pub", NetworkConfig::default()).await.unwrap();
    let ports = vec![bind(Protocol::Tcp, 80, None, 8080, 0), bind(Protocol::Udp, 53, Some("127.0.0.1"), 8053, 8053)];
    let (web, web_ip) = container(&ctrl, &net, "web", ports).await.unwrap();
    let gw = net.info().await.unwrap().ipv4[0].gateway.unwrap().addr().to_string();
    let ns = web.namespace().unwrap();
    let _tcp = peer_echo_server(&ns, sa("0.0.0.0", 80), 5).await;
    let _udp = udp_peer_echo_server(&ns, sa("0.0.0.0", 53), 1).await;

    // From the outside host: the container sees the client itself.
    assert_eq!(seen_as(&out.ns, sa(UPLINK_HOST, 8080)).await.unwrap(), OUTSIDE);
    // From the host, through localhost: masqueraded to the bridge's address.
    assert_eq!(seen_as(&h.ns, sa("127.0.0.1", 8080)).await.unwrap(), gw);
    // From the host, through its own address.
    assert_eq!(seen_as(&h.ns, sa(UPLINK_HOST, 8080)).await.unwrap(), UPLINK_HOST);
    // From the container itself (hairpin).
    assert_eq!(seen_as(&ns, sa(UPLINK_HOST, 8080)).await.unwrap(), gw);
    // From a neighbour on the same network.
    let (nb, _) = container(&ctrl, &net, "neighbour", vec![]).await.unwrap();
    assert_eq!(seen_as(&nb.namespace().unwrap(), sa(UPLINK_HOST, 8080)).await.unwrap(), gw);
    // UDP on 127.0.0.1 only.
    assert_eq!(udp_seen_as(&h.ns, sa("127.0.0.1", 8053)).await.unwrap(), gw);

    // The host port is reserved: no other program can take it.
    assert!(!can_bind_tcp(&h.ns, sa("0.0.0.0", 8080)).await);
    // A second container asking for it gets a clear error, and nothing of it is left.
    let err = container(&ctrl, &net, "clash", vec![bind(Protocol::Tcp, 80, None, 8080, 0)]).await.unwrap_err();
    assert_eq!(err.kind(), cnm::ErrorKind::Conflict, "{err}");
    assert!(cnm::chain(&err).contains("8080"), "{err}");
    assert!(ctrl.sandbox("clash").await.is_err());
    // The sandbox reports what it published.
    let info = web.info().await.unwrap();
    let hp: Vec<u16> = info.published_ports.iter().map(|p| p.host_port).collect();
    assert_eq!(hp, vec![8080, 8053]);

    let fw = cnm::osl::firewall::NftFirewall::new(h.ns.clone());
    let IpAddr::V4(web_v4) = web_ip else { panic!("an IPv4 container") };
    let of_web = |els: Vec<cnm::osl::firewall::SetElement>| -> Vec<_> {
        els.into_iter().filter(|e| e.data.as_ref().is_some_and(|d| d.starts_with(&web_v4.octets()))).collect()
    };
    let mut published = of_web(fw.elements("ports4_any").await.unwrap());
    published.extend(of_web(fw.elements("ports4").await.unwrap()));
    assert_eq!(published.len(), 2, "one DNAT element per published port: {published:?}");

    web.delete().await.unwrap();
    assert!(can_bind_tcp(&h.ns, sa("0.0.0.0", 8080)).await, "released with the container");
    assert!(seen_as(&out.ns, sa(UPLINK_HOST, 8080)).await.is_err(), "no longer published");
    for map in ["ports4_any", "ports4"] {
        let left = of_web(fw.elements(map).await.unwrap());
        assert!(left.is_empty(), "map elements of {web_ip} removed from {map}: {left:?}");
    }
    nb.delete().await.unwrap();
    net.delete().await.unwrap();
}

/// A host port range gets the first port no one holds; an ephemeral port
/// comes from the kernel's range; both survive a controller restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_ranges_and_ephemeral_ports() {
    let Some(h) = TestHost::new("port_ranges_and_ephemeral_ports").await else { return };
    let out = h.outside().await;
    h.ns.sysctl_set("net/ipv4/ip_local_port_range", "41000 41009").await.unwrap();
    // Another program holds 9000.
    let holder = h.ns.run(|| std::net::TcpListener::bind("0.0.0.0:9000")).await.unwrap().unwrap();
    let (range_port, eph_port) = {
        let ctrl = h.controller().await;
        let net = ctrl.new_network("bridge", "rng", NetworkConfig::default()).await.unwrap();
        let ports = vec![bind(Protocol::Tcp, 80, None, 9000, 9005), bind(Protocol::Tcp, 81, None, 0, 0)];
        let (sb, _) = container(&ctrl, &net, "r", ports).await.unwrap();
        let published = sb.info().await.unwrap().published_ports;
        (published[0].host_port, published[1].host_port)
    };
    assert_eq!(range_port, 9001, "9000 is held by another program");
    assert!((41000..=41009).contains(&eph_port), "{eph_port}");
    drop(holder);

    // After a restart the same ports are published again.
    let ctrl = h.controller().await;
    let sb = ctrl.sandbox("r").await.unwrap();
    let published: Vec<u16> = sb.info().await.unwrap().published_ports.iter().map(|p| p.host_port).collect();
    assert_eq!(published, vec![range_port, eph_port]);
    let ns = sb.namespace().unwrap();
    let _a = peer_echo_server(&ns, sa("0.0.0.0", 80), 1).await;
    let _b = peer_echo_server(&ns, sa("0.0.0.0", 81), 1).await;
    assert_eq!(seen_as(&out.ns, sa(UPLINK_HOST, range_port)).await.unwrap(), OUTSIDE);
    assert_eq!(seen_as(&out.ns, sa(UPLINK_HOST, eph_port)).await.unwrap(), OUTSIDE);
    assert!(!can_bind_tcp(&h.ns, sa("0.0.0.0", eph_port)).await, "reserved again after the restart");
    sb.delete().await.unwrap();
    ctrl.network_by_name("rng").await.unwrap().delete().await.unwrap();
}

/// A UDP port published again for another container reaches the new one at
/// once, even for a client that keeps its source port: the old mapping's
/// conntrack entries are flushed when it is unpublished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublished_udp_flows_are_flushed() {
    let Some(h) = TestHost::new("unpublished_udp_flows_are_flushed").await else { return };
    let out = h.outside().await;
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "udp", NetworkConfig::default()).await.unwrap();
    let publish = vec![bind(Protocol::Udp, 53, None, 8054, 0)];
    let (first, _) = container(&ctrl, &net, "first", publish.clone()).await.unwrap();
    let _a = cnm_tests::udp_server(&first.namespace().unwrap(), sa("0.0.0.0", 53), 1, Some("first")).await;
    assert_eq!(cnm_tests::udp_ask_from(&out.ns, 5353, sa(UPLINK_HOST, 8054)).await.unwrap(), "first");
    first.delete().await.unwrap();
    // Another container takes the freed address (the IPAM gives the lowest
    // free one), so the new owner of the port has another address.
    let (filler, _) = container(&ctrl, &net, "filler", vec![]).await.unwrap();
    let (second, _) = container(&ctrl, &net, "second", publish).await.unwrap();
    let _b = cnm_tests::udp_server(&second.namespace().unwrap(), sa("0.0.0.0", 53), 1, Some("second")).await;
    // Same client port: without the flush, the old flow would still point at `first`.
    assert_eq!(cnm_tests::udp_ask_from(&out.ns, 5353, sa(UPLINK_HOST, 8054)).await.unwrap(), "second");
    second.delete().await.unwrap();
    filler.delete().await.unwrap();
    net.delete().await.unwrap();
}

/// A join that would take the gateway role but fails to program external
/// connectivity is undone, and the previous gateway endpoint keeps its
/// default route and its published port. A disconnect whose leave fails in
/// the driver keeps the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_join_gives_the_gateway_back() {
    use std::sync::atomic::Ordering;
    let Some(h) = TestHost::new("failed_join_gives_the_gateway_back").await else { return };
    let out = h.outside().await;
    let driver =
        std::sync::Arc::new(cnm_tests::FaultyDriver::new(cnm_driver_bridge::BridgeDriver::new(h.nl.clone()), false));
    let ctrl = h.builder().driver_arc(driver.clone()).build().await.unwrap();
    let cfg = |s: &str| NetworkConfig::default().with_subnet(s.parse().unwrap());
    let net_b = ctrl.new_network("bridge", "net-b", cfg("10.71.0.0/24")).await.unwrap();
    let net_a = ctrl.new_network("bridge", "net-a", cfg("10.72.0.0/24")).await.unwrap();
    let (sb, _) = container(&ctrl, &net_b, "gw", vec![bind(Protocol::Tcp, 80, None, 8081, 0)]).await.unwrap();
    let ns = sb.namespace().unwrap();
    let _srv = peer_echo_server(&ns, sa("0.0.0.0", 80), 3).await;
    assert_eq!(seen_as(&out.ns, sa(UPLINK_HOST, 8081)).await.unwrap(), OUTSIDE);

    driver.fail_program.store(true, Ordering::SeqCst);
    let ep_a = net_a.create_endpoint("a", EndpointConfig::default()).await.unwrap();
    let err = ep_a.join(&sb, JoinOptions::default()).await.unwrap_err();
    assert!(cnm::chain(&err).contains("programming failed"), "{err}");

    // net-b's endpoint is the gateway again: default route and published port.
    let nl = cnm::osl::Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    let defaults: Vec<_> = nl.route_list(false).await.unwrap().into_iter().filter(|r| r.is_default()).collect();
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    assert_eq!(defaults[0].gateway, Some("10.71.0.1".parse().unwrap()));
    assert_eq!(seen_as(&out.ns, sa(UPLINK_HOST, 8081)).await.unwrap(), OUTSIDE);
    assert!(ep_a.info().await.unwrap().sandbox_id.is_none(), "the failed join left nothing");
    assert_eq!(cnm_tests::settled_links_in(&ns, &["eth0", "lo"]).await, vec!["eth0".to_string(), "lo".to_string()]);
    assert_eq!(ctrl.rollback_failures(), 0, "every step of that rollback worked");

    // Again, with the driver's leave failing in the rollback: the failure is
    // counted (and logged), the rest of the rollback still happens.
    driver.fail_program.store(true, Ordering::SeqCst);
    driver.fail_leave.store(true, Ordering::SeqCst);
    let err = ep_a.join(&sb, JoinOptions::default()).await.unwrap_err();
    assert!(cnm::chain(&err).contains("programming failed"), "{err}");
    assert!(!driver.fail_leave.load(Ordering::SeqCst), "the rollback asked the driver to leave");
    assert_eq!(ctrl.rollback_failures(), 1, "the failed leave of the rollback is counted");
    assert!(ep_a.info().await.unwrap().sandbox_id.is_none(), "the failed join is undone");
    assert_eq!(cnm_tests::settled_links_in(&ns, &["eth0", "lo"]).await, vec!["eth0".to_string(), "lo".to_string()]);
    assert_eq!(seen_as(&out.ns, sa(UPLINK_HOST, 8081)).await.unwrap(), OUTSIDE, "net-b's port still answers");

    // A disconnect whose leave fails in the driver goes on (as dockerd's:
    // the failure is logged): the interface leaves the sandbox, the
    // endpoint is deleted and its address is free again.
    ep_a.join(&sb, JoinOptions::default()).await.unwrap();
    let address = ep_a.info().await.unwrap().ipv4;
    driver.fail_leave.store(true, Ordering::SeqCst);
    ep_a.leave_and_delete(&sb).await.expect("the driver's failed leave does not stop the disconnect");
    assert!(!driver.fail_leave.load(Ordering::SeqCst), "the driver was asked to leave");
    assert!(ep_a.info().await.is_err(), "the endpoint is deleted");
    assert_eq!(cnm_tests::settled_links_in(&ns, &["eth0", "lo"]).await, vec!["eth0".to_string(), "lo".to_string()]);
    let again = net_a.create_endpoint("a2", EndpointConfig::default()).await.unwrap();
    assert_eq!(again.info().await.unwrap().ipv4, address, "the address went back to the pool");
    again.delete().await.unwrap();
    sb.delete().await.unwrap();
    net_a.delete().await.unwrap();
    net_b.delete().await.unwrap();
}

/// On a dual-stack network a port published on every address answers over
/// IPv6 too (the outside host reaches the host's IPv6 address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_port_over_ipv6() {
    let Some(h) = TestHost::new("published_port_over_ipv6").await else { return };
    let out = h.outside().await;
    // No duplicate address detection on the link: an address stays
    // tentative (answering nothing) for a second or more otherwise.
    h.ns.sysctl_set("net/ipv6/conf/uplink/accept_dad", "0").await.unwrap();
    out.ns.sysctl_set("net/ipv6/conf/eth0/accept_dad", "0").await.unwrap();
    let uplink = h.nl.link_get("uplink").await.unwrap().unwrap();
    h.nl.addr_add(uplink.index, "fd00:250::1/64".parse().unwrap()).await.unwrap();
    let oeth = out.nl.link_get("eth0").await.unwrap().unwrap();
    out.nl.addr_add(oeth.index, "fd00:250::2/64".parse().unwrap()).await.unwrap();
    let ctrl = h.controller().await;
    let cfg = NetworkConfig { enable_ipv6: true, ..NetworkConfig::default() }
        .with_subnet("10.73.0.0/24".parse().unwrap())
        .with_subnet("fd00:73::/64".parse().unwrap());
    let net = ctrl.new_network("bridge", "v6pub", cfg).await.unwrap();
    let (sb, _) = container(&ctrl, &net, "v6web", vec![bind(Protocol::Tcp, 80, None, 8090, 0)]).await.unwrap();
    let _srv = peer_echo_server(&sb.namespace().unwrap(), sa("::", 80), 2).await;
    assert_eq!(seen_as(&out.ns, sa("fd00:250::1", 8090)).await.unwrap(), "fd00:250::2");
    assert_eq!(seen_as(&out.ns, sa(UPLINK_HOST, 8090)).await.unwrap(), "::ffff:10.250.0.2", "IPv4 too");
    sb.delete().await.unwrap();
    net.delete().await.unwrap();
}

/// What a crash leaves is cleaned at the next start: a port mapping into
/// the network that no container claims (its container was removed while
/// the mapping stayed) is gone after a restart — a new container on the
/// freed address is not reached through it — while the live one is
/// published again; a bridge whose network's creation was interrupted
/// (no record of it made it) goes when the controller finishes its removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_port_mappings_and_orphan_bridges_go_at_restart() {
    let Some(h) = TestHost::new("stale_port_mappings_and_orphan_bridges_go_at_restart").await else { return };
    let out = h.outside().await;
    let cfg = || NetworkConfig {
        ipv4: vec![cnm::IpamConfig::subnet("10.231.80.0/24".parse().unwrap())],
        ..Default::default()
    };
    {
        let ctrl = h.controller().await;
        let net = ctrl.new_network("bridge", "st", cfg()).await.unwrap();
        container(&ctrl, &net, "live", vec![bind(Protocol::Tcp, 80, None, 8080, 0)]).await.unwrap();
    }
    // A crash's leftover: 8081 still sends to 10.231.80.3, which no container holds.
    let fw = cnm::osl::firewall::NftFirewall::new(h.ns.clone());
    use cnm::osl::firewall::{Firewall, PortMapping, Protocol};
    let stale = PortMapping {
        proto: Protocol::Tcp,
        host_ip: None,
        host_port: 8081,
        host_port_end: 8081,
        container_ip: "10.231.80.3".parse().unwrap(),
        container_port: 80,
    };
    fw.add_ports(std::slice::from_ref(&stale)).await.unwrap();
    // And of a network that is gone altogether: its bridge's elements and a
    // mapping into its subnet, which no network of the restart claims.
    let gone = cnm::osl::firewall::NetworkRules {
        bridge: "br-gone".into(),
        subnets_v4: vec!["10.231.84.0/24".parse().unwrap()],
        subnets_v6: vec![],
        masquerade: true,
        internal: false,
        icc: true,
        gateway_v4: Default::default(),
        gateway_v6: None,
    };
    fw.add_network(&gone).await.unwrap();
    let outside_any = PortMapping {
        container_ip: "10.231.84.5".parse().unwrap(),
        host_port: 8083,
        host_port_end: 8083,
        ..stale.clone()
    };
    fw.add_ports(std::slice::from_ref(&outside_any)).await.unwrap();

    let ctrl = h.controller().await;
    let ifname = |name: &str| {
        let mut k = name.as_bytes().to_vec();
        k.resize(16, 0);
        k
    };
    for set in ["bridges", "masq", "icc_same", "hairpin4"] {
        let left = fw.elements(set).await.unwrap();
        assert!(!left.iter().any(|e| e.key.starts_with(&ifname("br-gone"))), "{set} keeps br-gone: {left:?}");
    }
    assert_eq!(fw.elements("bridges").await.unwrap().len(), 1, "the live network's bridge stays");
    let mapped = fw.elements("ports4_any").await.unwrap();
    assert!(
        !mapped.iter().any(|e| e.data.as_ref().is_some_and(|d| d.starts_with(&[10, 231, 84, 5]))),
        "the mapping into no network is gone: {mapped:?}"
    );
    let net = ctrl.network_by_name("st").await.unwrap();
    let (newcomer, ip) = container(&ctrl, &net, "newcomer", vec![]).await.unwrap();
    assert_eq!(ip.to_string(), "10.231.80.3", "the freed address is handed out again");
    let _srv = peer_echo_server(&newcomer.namespace().unwrap(), sa("0.0.0.0", 80), 1).await;
    assert!(seen_as(&out.ns, sa(UPLINK_HOST, 8081)).await.is_err(), "the stale mapping is gone");
    let live = ctrl.sandbox("live").await.unwrap();
    let _live_srv = peer_echo_server(&live.namespace().unwrap(), sa("0.0.0.0", 80), 1).await;
    assert_eq!(seen_as(&out.ns, sa(UPLINK_HOST, 8080)).await.unwrap(), OUTSIDE, "the live one is published again");

    // An orphan: the bridge and elements of a network whose record never made it.
    let orphan_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let link = h.nl.link_add_bridge("br-orphan", None, None, Some(&format!("cnm:{orphan_id}"))).await.unwrap();
    h.nl.addr_add(link.index, "10.231.81.1/24".parse().unwrap()).await.unwrap();
    let orphan_port =
        PortMapping { container_ip: "10.231.81.2".parse().unwrap(), host_port: 8082, host_port_end: 8082, ..stale };
    fw.add_ports(std::slice::from_ref(&orphan_port)).await.unwrap();
    let drv = cnm_driver_bridge::BridgeDriver::new(h.nl.clone());
    use cnm::driverapi::Driver;
    drv.delete_network(cnm::driverapi::DeleteNetworkRequest { network_id: orphan_id.into() }).await.unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while h.links().await.contains(&"br-orphan".to_string()) {
        assert!(std::time::Instant::now() < end, "the orphan bridge is gone");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let left: Vec<_> = fw.elements("ports4_any").await.unwrap();
    assert!(
        !left.iter().any(|e| e.data.as_ref().is_some_and(|d| d.starts_with(&[10, 231, 81, 2]))),
        "its port mapping is gone: {left:?}"
    );

    newcomer.delete().await.unwrap();
    live.delete().await.unwrap();
    net.delete().await.unwrap();
}

/// A host port another program took while the controller was down is not
/// published again — the program keeps it, nothing is forwarded to the
/// container — and the sandbox says why in its info.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_meanwhile_is_reported_on_its_sandbox() {
    let Some(h) = TestHost::new("a_port_taken_meanwhile_is_reported_on_its_sandbox").await else { return };
    let out = h.outside().await;
    {
        let ctrl = h.controller().await;
        let net = ctrl.new_network("bridge", "taken", NetworkConfig::default()).await.unwrap();
        container(&ctrl, &net, "p", vec![bind(Protocol::Tcp, 80, None, 18090, 0)]).await.unwrap();
    }
    let holder = h.ns.run(|| std::net::TcpListener::bind("0.0.0.0:18090")).await.unwrap().unwrap();
    let ctrl = h.controller().await;
    let sb = ctrl.sandbox("p").await.unwrap();
    let errors = sb.info().await.unwrap().errors;
    assert!(errors.iter().any(|e| e.contains("18090")), "the sandbox reports the port: {errors:?}");
    let _srv = peer_echo_server(&sb.namespace().unwrap(), sa("0.0.0.0", 80), 1).await;
    assert!(seen_as(&out.ns, sa(UPLINK_HOST, 18090)).await.is_err(), "nothing is forwarded to the container");
    drop(holder);
    sb.delete().await.unwrap();
    ctrl.network_by_name("taken").await.unwrap().delete().await.unwrap();
}
