//! Bridge networks end to end, proved with packets between sandboxes of a
//! scratch host.

use cnm::osl::{Netlink, RouteScope};
use cnm::{EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_tests::{TestHost, assert_no_ping, assert_ping, links_in};
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Two sandboxes on one bridge network ping each other and their gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandboxes_on_one_network_ping_each_other() {
    let Some(h) = TestHost::new("two_sandboxes_on_one_network_ping_each_other").await else { return };
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "net1", NetworkConfig::default()).await.unwrap();
    let mut sandboxes = Vec::new();
    let mut addrs = Vec::new();
    for name in ["c1", "c2"] {
        let ep = net.create_endpoint(&format!("ep-{name}"), EndpointConfig::default()).await.unwrap();
        let sb = ctrl.new_sandbox(name, SandboxConfig { hostname: name.into(), ..Default::default() }).await.unwrap();
        ep.join(&sb, JoinOptions::default()).await.unwrap();
        addrs.push(ep.info().await.unwrap().ipv4.unwrap().addr());
        sandboxes.push(sb);
    }
    let gw = net.info().await.unwrap().ipv4[0].gateway.unwrap().addr();
    let (ns1, ns2) = (sandboxes[0].namespace().unwrap(), sandboxes[1].namespace().unwrap());
    assert_ping(&ns1, addrs[1]).await;
    assert_ping(&ns2, addrs[0]).await;
    assert_ping(&ns1, gw).await;
    // The sandbox sees eth0 with the endpoint's address and MAC, and lo.
    assert_eq!(links_in(&ns1).await, vec!["eth0".to_string(), "lo".to_string()]);
    // The hosts file names the container.
    let hosts = std::fs::read_to_string(sandboxes[0].hosts_path()).unwrap();
    assert!(hosts.contains(&format!("{}\tc1", addrs[0])), "{hosts}");
    // resolv.conf: the host's loopback server dropped, the other kept, ndots:0 added.
    let resolv = std::fs::read_to_string(sandboxes[0].resolv_conf_path()).unwrap();
    assert_eq!(resolv, "nameserver 10.255.0.53\nsearch example.test\noptions ndots:0\n");

    for sb in &sandboxes {
        sb.delete().await.unwrap();
    }
    net.delete().await.unwrap();
    assert_eq!(h.settled_links(&["lo"]).await, vec!["lo".to_string()], "bridge and veths are gone");
    assert!(h.netns_files().is_empty(), "sandbox namespaces are gone: {:?}", h.netns_files());
}

/// One sandbox on two networks gets eth0 and eth1, and the default route of
/// the network Docker would choose (by name), which moves when it leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sandbox_on_two_networks() {
    let Some(h) = TestHost::new("one_sandbox_on_two_networks").await else { return };
    let ctrl = h.controller().await;
    let cfg = |s: &str| NetworkConfig::default().with_subnet(s.parse().unwrap());
    // Created in reverse name order, so the choice is not just creation order.
    let net_b = ctrl.new_network("bridge", "net-b", cfg("10.88.2.0/24")).await.unwrap();
    let net_a = ctrl.new_network("bridge", "net-a", cfg("10.88.1.0/24")).await.unwrap();
    let sb = ctrl.new_sandbox("multi", SandboxConfig::default()).await.unwrap();
    let ep_b = net_b.create_endpoint("eb", EndpointConfig::default()).await.unwrap();
    let ep_a = net_a.create_endpoint("ea", EndpointConfig::default()).await.unwrap();
    ep_b.join(&sb, JoinOptions::default()).await.unwrap();
    ep_a.join(&sb, JoinOptions::default()).await.unwrap();

    let ns = sb.namespace().unwrap();
    assert_eq!(links_in(&ns).await, vec!["eth0".to_string(), "eth1".to_string(), "lo".to_string()]);
    let default_via = || async {
        let nl = Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
        let routes = nl.route_list(false).await.unwrap();
        let d: Vec<_> = routes.iter().filter(|r| r.is_default()).map(|r| r.gateway.unwrap()).collect();
        let links = nl.link_list().await.unwrap();
        let oif = routes.iter().find(|r| r.is_default()).and_then(|r| r.oif);
        (d, oif.and_then(|i| links.iter().find(|l| l.index == i).map(|l| l.name.clone())))
    };
    assert_eq!(default_via().await, (vec![ip("10.88.1.1")], Some("eth1".to_string())), "net-a wins by name");
    // Both gateways answer through their own interface.
    assert_ping(&ns, ip("10.88.1.1")).await;
    assert_ping(&ns, ip("10.88.2.1")).await;
    let nl = Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    assert!(
        nl.route_list(false)
            .await
            .unwrap()
            .iter()
            .any(|r| r.scope == RouteScope::Link && r.destination.to_string() == "10.88.2.0/24")
    );

    ep_a.leave(&sb).await.unwrap();
    assert_eq!(default_via().await, (vec![ip("10.88.2.1")], Some("eth0".to_string())), "the role moves to net-b");
    assert_eq!(cnm_tests::settled_links_in(&ns, &["eth0", "lo"]).await, vec!["eth0".to_string(), "lo".to_string()]);
    ep_a.delete().await.unwrap();
    sb.delete().await.unwrap();
    net_a.delete().await.unwrap();
    net_b.delete().await.unwrap();
    assert_eq!(h.settled_links(&["lo"]).await, vec!["lo".to_string()]);
}

/// A static IP is honoured (seen by a peer's ping) and refused when taken;
/// the MAC is derived from it as Docker does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_ip_is_honoured_and_refused_when_taken() {
    let Some(h) = TestHost::new("static_ip_is_honoured_and_refused_when_taken").await else { return };
    let ctrl = h.controller().await;
    let net = ctrl
        .new_network("bridge", "st", NetworkConfig::default().with_subnet("10.99.0.0/24".parse().unwrap()))
        .await
        .unwrap();
    let fixed = EndpointConfig { ipv4: Some("10.99.0.77".parse().unwrap()), ..Default::default() };
    let ep1 = net.create_endpoint("fixed", fixed.clone()).await.unwrap();
    let info = ep1.info().await.unwrap();
    assert_eq!(info.ipv4.unwrap().to_string(), "10.99.0.77/24");
    assert_eq!(info.mac.unwrap().to_string(), "02:42:0a:63:00:4d");
    let err = net.create_endpoint("clash", fixed).await.unwrap_err();
    assert_eq!(err.kind(), cnm::ErrorKind::Forbidden, "address in use, as dockerd: {err}");
    assert!(cnm::chain(&err).contains("10.99.0.77"), "{err}");

    let ep2 = net.create_endpoint("dyn", EndpointConfig::default()).await.unwrap();
    let sb1 = ctrl.new_sandbox("s1", SandboxConfig::default()).await.unwrap();
    let sb2 = ctrl.new_sandbox("s2", SandboxConfig::default()).await.unwrap();
    ep1.join(&sb1, JoinOptions::default()).await.unwrap();
    ep2.join(&sb2, JoinOptions::default()).await.unwrap();
    assert_ping(&sb2.namespace().unwrap(), ip("10.99.0.77")).await;
    let nl = Netlink::connect(&sb1.namespace().unwrap(), cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    let eth0 = nl.link_get("eth0").await.unwrap().unwrap();
    assert_eq!(eth0.mac, Some([0x02, 0x42, 10, 99, 0, 77]));
    sb1.delete().await.unwrap();
    sb2.delete().await.unwrap();
    net.delete().await.unwrap();
}

/// An MTU option reaches the bridge and both veth ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtu_option_applies_to_bridge_and_veth() {
    let Some(h) = TestHost::new("mtu_option_applies_to_bridge_and_veth").await else { return };
    let ctrl = h.controller().await;
    let cfg = NetworkConfig::default()
        .with_option("com.docker.network.driver.mtu", "1400")
        .with_option("com.docker.network.bridge.name", "cnmtest0");
    let net = ctrl.new_network("bridge", "mtu", cfg).await.unwrap();
    let ep = net.create_endpoint("e", EndpointConfig::default()).await.unwrap();
    let sb = ctrl.new_sandbox("m", SandboxConfig::default()).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    let br = h.nl.link_get("cnmtest0").await.unwrap().expect("the bridge has the name asked for");
    assert_eq!(br.mtu, 1400);
    let nl = Netlink::connect(&sb.namespace().unwrap(), cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    assert_eq!(nl.link_get("eth0").await.unwrap().unwrap().mtu, 1400);
    sb.delete().await.unwrap();
    net.delete().await.unwrap();
    assert_eq!(h.settled_links(&["lo"]).await, vec!["lo".to_string()], "cnmtest0 is deleted");
}

/// A bridge the user made is adopted and left in place when the network goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_bridge_is_adopted_and_kept() {
    let Some(h) = TestHost::new("user_bridge_is_adopted_and_kept").await else { return };
    h.nl.link_add_bridge("userbr0", None, None, None).await.unwrap();
    let ctrl = h.controller().await;
    let cfg = NetworkConfig::default().with_option("com.docker.network.bridge.name", "userbr0");
    let net = ctrl.new_network("bridge", "adopt", cfg).await.unwrap();
    let ep = net.create_endpoint("e", EndpointConfig::default()).await.unwrap();
    let sb = ctrl.new_sandbox("a", SandboxConfig::default()).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    let gw = net.info().await.unwrap().ipv4[0].gateway.unwrap();
    assert_ping(&sb.namespace().unwrap(), gw.addr()).await;
    sb.delete().await.unwrap();
    net.delete().await.unwrap();
    let br = h.nl.link_get("userbr0").await.unwrap();
    assert!(br.is_some(), "the user's bridge stays");
    assert!(!h.nl.addr_exists(gw.addr()).await.unwrap(), "the gateway address cnm added is removed");
}

/// The null driver gives loopback only; the host driver joins host-namespace sandboxes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_and_host_drivers() {
    let Some(h) = TestHost::new("null_and_host_drivers").await else { return };
    let ctrl = h.controller().await;
    let none = ctrl
        .new_network("null", "none", NetworkConfig { ipam_driver: "null".into(), ..Default::default() })
        .await
        .unwrap();
    let ep = none.create_endpoint("n", EndpointConfig::default()).await.unwrap();
    assert!(ep.info().await.unwrap().ipv4.is_none());
    let sb = ctrl.new_sandbox("isolated", SandboxConfig::default()).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    let ns = sb.namespace().unwrap();
    assert_eq!(links_in(&ns).await, vec!["lo".to_string()]);
    assert_ping(&ns, ip("127.0.0.1")).await;

    let host = ctrl
        .new_network("host", "host", NetworkConfig { ipam_driver: "null".into(), ..Default::default() })
        .await
        .unwrap();
    let hep = host.create_endpoint("h", EndpointConfig::default()).await.unwrap();
    let hsb =
        ctrl.new_sandbox("hostmode", SandboxConfig { use_host_namespace: true, ..Default::default() }).await.unwrap();
    hep.join(&hsb, JoinOptions::default()).await.unwrap();
    // The host sandbox's key is the scratch host's namespace: same links.
    assert_eq!(links_in(&hsb.namespace().unwrap()).await, h.links().await);
    // A bridge endpoint cannot join a host-namespace sandbox.
    let br = ctrl.new_network("bridge", "b", NetworkConfig::default()).await.unwrap();
    let bep = br.create_endpoint("b", EndpointConfig::default()).await.unwrap();
    let err = bep.join(&hsb, JoinOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), cnm::ErrorKind::Forbidden, "{err}");
    sb.delete().await.unwrap();
    hsb.delete().await.unwrap();
    bep.delete().await.unwrap();
    for n in [none, host, br] {
        n.delete().await.unwrap();
    }
    assert!(h.netns_files().is_empty(), "{:?}", h.netns_files());
}

/// The default bridge network (docker0's role) is created at start with its
/// bridge name, address and fixed range, once, and containers on it work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_bridge_network_is_created_once() {
    let Some(h) = TestHost::new("default_bridge_network_is_created_once").await else { return };
    let bridge = cnm_driver_bridge::BridgeConfig {
        bridge_name: Some("cnm0".into()),
        default_bridge: true,
        ..Default::default()
    };
    let ipam = cnm::IpamConfig {
        subnet: Some("10.70.0.0/16".parse().unwrap()),
        gateway: Some("10.70.0.1".parse().unwrap()),
        ip_range: Some("10.70.5.0/24".parse().unwrap()),
        ..Default::default()
    };
    let config = cnm::NetworkConfig { driver_options: bridge.to_options(), ipv4: vec![ipam], ..Default::default() };
    let default = cnm::DefaultNetwork::new("bridge", "bridge", config);
    let start = || {
        cnm_tests::with_defaults(cnm::Controller::builder(h.config().default_network(default.clone())))
            .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
            .build()
    };
    let id = {
        let ctrl = start().await.unwrap();
        let net = ctrl.default_network().await.expect("created at start");
        assert_eq!(net.name(), "bridge");
        let ep = net.create_endpoint("e", EndpointConfig::default()).await.unwrap();
        let addr = ep.info().await.unwrap().ipv4.unwrap();
        let range: ipnet::IpNet = "10.70.5.0/24".parse().unwrap();
        assert!(range.contains(&addr.addr()), "{addr} comes from the fixed range");
        assert_eq!(addr.prefix_len(), 16, "with the subnet's prefix");
        let sb = ctrl.new_sandbox("d", SandboxConfig::default()).await.unwrap();
        ep.join(&sb, JoinOptions::default()).await.unwrap();
        assert_ping(&sb.namespace().unwrap(), ip("10.70.0.1")).await;
        assert!(h.nl.link_get("cnm0").await.unwrap().is_some());
        sb.delete().await.unwrap();
        net.id().to_string()
    };
    let ctrl = start().await.unwrap();
    assert_eq!(ctrl.networks().await.len(), 1, "not created twice");
    assert_eq!(ctrl.default_network().await.unwrap().id(), id);
    ctrl.default_network().await.unwrap().delete().await.unwrap();
}

/// `Network::connect` (an endpoint created and joined in one step, as the
/// API's connect) gives a sandbox that pings its neighbour;
/// `Endpoint::leave_and_delete` takes the interface away (the neighbour no
/// longer answers from it) and frees the address: the next connect gets it
/// and answers pings there; a sandbox connected again at once gets eth0
/// again (the old interface is renamed out of the way). A connect whose join is refused (a sandbox on
/// the host's namespace) leaves no endpoint and no address taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_disconnect_in_one_step() {
    let Some(h) = TestHost::new("connect_and_disconnect_in_one_step").await else { return };
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "net1", NetworkConfig::default()).await.unwrap();
    let sb1 = ctrl.new_sandbox("c1", SandboxConfig::default()).await.unwrap();
    let sb2 = ctrl.new_sandbox("c2", SandboxConfig::default()).await.unwrap();
    let ep1 = net.connect("c1", EndpointConfig::default(), &sb1, JoinOptions::default()).await.unwrap();
    let ep2 = net.connect("c2", EndpointConfig::default(), &sb2, JoinOptions::default()).await.unwrap();
    let a1 = ep1.info().await.unwrap().ipv4.unwrap().addr();
    let a2 = ep2.info().await.unwrap().ipv4.unwrap().addr();
    let (ns1, ns2) = (sb1.namespace().unwrap(), sb2.namespace().unwrap());
    assert_ping(&ns1, a2).await;
    assert_ping(&ns2, a1).await;
    // The driver's operational data came with the join (dockerd asks it then).
    let info = ep2.info().await.unwrap();
    let mac = info.mac.unwrap().to_string();
    assert_eq!(info.driver_info.get(cnm::driverapi::label::MAC_ADDRESS), Some(&serde_json::Value::String(mac)));

    ep2.leave_and_delete(&sb2).await.unwrap();
    assert!(net.endpoint("c2").await.is_err(), "the endpoint is gone");
    assert!(ep2.leave_and_delete(&sb2).await.is_err(), "a second disconnect is refused");
    // Connected again at once: the old interface, down and waiting for its
    // background delete, still has the name eth0; the new one takes it.
    let again = net.connect("c2", EndpointConfig::default(), &sb2, JoinOptions::default()).await.unwrap();
    assert!(links_in(&ns2).await.contains(&"eth0".to_string()), "the new interface is eth0");
    let a2_again = again.info().await.unwrap().ipv4.unwrap().addr();
    assert_ping(&ns1, a2_again).await;
    assert_ping(&ns2, a1).await;
    again.leave_and_delete(&sb2).await.unwrap();
    assert_no_ping(&ns1, a2_again).await;

    // Refused join: nothing stays.
    let host_sb =
        ctrl.new_sandbox("hostmode", SandboxConfig { use_host_namespace: true, ..Default::default() }).await.unwrap();
    let refused = net.connect("hostmode", EndpointConfig::default(), &host_sb, JoinOptions::default()).await;
    assert_eq!(refused.unwrap_err().kind(), cnm::ErrorKind::Forbidden);
    assert!(net.endpoint("hostmode").await.is_err(), "no endpoint of a refused join");

    // The freed address goes to the next connect, which answers there.
    let sb3 = ctrl.new_sandbox("c3", SandboxConfig::default()).await.unwrap();
    let ep3 = net.connect("c3", EndpointConfig::default(), &sb3, JoinOptions::default()).await.unwrap();
    assert_eq!(ep3.info().await.unwrap().ipv4.unwrap().addr(), a2, "the released address is handed out again");
    assert_ping(&ns1, a2).await;

    for sb in [&sb1, &sb2, &sb3, &host_sb] {
        sb.delete().await.unwrap();
    }
    net.delete().await.unwrap();
    assert_eq!(h.settled_links(&["lo"]).await, vec!["lo".to_string()], "bridge and veths are gone");
    assert!(h.netns_files().is_empty(), "sandbox namespaces are gone: {:?}", h.netns_files());
}
