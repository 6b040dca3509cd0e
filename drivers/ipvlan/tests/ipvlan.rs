//! The ipvlan driver on a scratch host whose `uplink` veth (the parent,
//! 10.250.0.1 on the host's side) leads to an "outside" namespace on the
//! same segment (10.250.0.2/24): by packets, `l2` sandboxes reach each
//! other and the outside through the gateway, `l3` and `l3s` sandboxes are
//! routed by the host between subnets and to the outside, the `private`
//! flag keeps sandboxes apart, 802.1q and dummy parents carry packets and
//! go with their networks. This VM's kernel may lack ipvlan: each test
//! probes it, and where it is missing proves that the error names the
//! module and leaves nothing. `in_the_second_kernel` runs every test again
//! in Debian's stock kernel, which has ipvlan, 802.1q and dummy links.

use cnm::osl::{Namespace, Netlink, Route, RouteScope};
use cnm::{Controller, EndpointConfig, IpamConfig, JoinOptions, NetworkConfig, Sandbox, SandboxConfig};
use cnm_driver_ipvlan::IpvlanDriver;
use cnm_driverapi::{CreateNetworkRequest, DeleteNetworkRequest, Driver as _, NetworkOptions};
use cnm_tests::kernel::{self, Feature};
use cnm_tests::{OUTSIDE, TestHost, UPLINK_HOST, assert_no_ping, assert_ping};
use std::net::IpAddr;

async fn controller(h: &TestHost) -> Controller {
    h.builder().driver_on_host(|host| IpvlanDriver::new(host.clone())).build().await.expect("start controller")
}

/// An ipvlan network with `options` on subnet `subnet`, sandboxes from its
/// upper half, gateway `gateway`.
fn network(subnet: &str, gateway: &str, options: &[(&str, &str)], internal: bool) -> NetworkConfig {
    let subnet: ipnet::Ipv4Net = subnet.parse().unwrap();
    let mut ipam = IpamConfig::subnet(subnet.into());
    ipam.ip_range = subnet.subnets(subnet.prefix_len() + 1).unwrap().nth(1).map(Into::into);
    ipam.gateway = Some(gateway.parse().unwrap());
    NetworkConfig {
        ipv4: vec![ipam],
        internal,
        driver_options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

/// A network on `uplink`'s segment, 10.250.0.0/24, whose gateway is the outside host.
fn on_uplink(options: &[(&str, &str)], internal: bool) -> NetworkConfig {
    network("10.250.0.0/24", OUTSIDE, options, internal)
}

/// A sandbox joined to `net`: its namespace and address.
async fn sandbox(ctrl: &Controller, net: &cnm::Network, name: &str) -> (Sandbox, Namespace, IpAddr) {
    let sb = ctrl.new_sandbox(name, SandboxConfig::default()).await.unwrap();
    let ep = net.create_endpoint(name, EndpointConfig::default()).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap_or_else(|e| panic!("join {name}: {}", cnm::chain(&e)));
    let ip = ep.info().await.unwrap().ipv4.unwrap().addr();
    let ns = Namespace::open(sb.info().await.unwrap().key).unwrap();
    (sb, ns, ip)
}

/// The sandbox's IPv4 default route, if it has one.
async fn default_route(ns: &Namespace) -> Option<Route> {
    let nl = Netlink::connect(ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    nl.route_list(false).await.unwrap().into_iter().find(|r| r.destination.prefix_len() == 0)
}

/// The MAC address of the sandbox's `eth0`.
async fn mac_in(ns: &Namespace) -> Option<[u8; 6]> {
    let nl = Netlink::connect(ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    nl.link_get("eth0").await.unwrap().and_then(|l| l.mac)
}

/// Whether the kernel makes ipvlan links; where it does not, a network is
/// refused with the module's name and nothing is left, and the caller stops.
async fn ipvlan_or_refused(h: &TestHost, ctrl: &Controller, config: NetworkConfig) -> bool {
    if kernel::has(Feature::Ipvlan).await {
        return true;
    }
    let before = h.links().await;
    let e = ctrl.new_network("ipvlan", "refused", config).await.unwrap_err();
    refused_cleanly(h, ctrl, &before, e, "ipvlan links (kernel module ipvlan)").await;
    false
}

/// A network refused for a missing kernel feature: the error names
/// `feature`, and no network or link is left.
async fn refused_cleanly(h: &TestHost, ctrl: &Controller, before: &[String], e: cnm::Error, feature: &str) {
    assert!(cnm::chain(&e).contains(feature), "{}", cnm::chain(&e));
    assert_eq!(e.kind(), cnm::ErrorKind::NotImplemented, "{e}");
    assert!(ctrl.networks().await.is_empty(), "no network kept");
    assert_eq!(h.links().await, before, "no link left");
}

/// `l2` with the `bridge` flag (the defaults): sandboxes reach each other
/// and the outside host (both ways) with the default route via the
/// network's gateway, and have the parent's MAC address (another is
/// refused); a second network in the same mode shares the parent, one in
/// another mode is refused (the kernel would switch the first network's
/// links to it); everything goes with the networks, the parent stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_sandboxes_reach_each_other_and_the_segment() {
    let Some(h) = TestHost::new("ipvlan_l2_sandboxes_reach_each_other_and_the_segment").await else { return };
    let outside = h.outside().await;
    let ctrl = controller(&h).await;
    if !ipvlan_or_refused(&h, &ctrl, on_uplink(&[("parent", "uplink")], false)).await {
        return;
    }
    let net = ctrl.new_network("ipvlan", "iv", on_uplink(&[("parent", "uplink")], false)).await.unwrap();
    let (a, a_ns, a_ip) = sandbox(&ctrl, &net, "a").await;
    let (b, b_ns, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_eq!(a_ip.to_string(), "10.250.0.128");
    assert_ping(&a_ns, b_ip).await;
    assert_ping(&b_ns, OUTSIDE.parse().unwrap()).await;
    assert_ping(&outside.ns, a_ip).await;
    let route = default_route(&a_ns).await.expect("a default route");
    assert_eq!(route.gateway, Some(OUTSIDE.parse().unwrap()), "default route via the gateway");
    let parent_mac = h.nl.link_get("uplink").await.unwrap().unwrap().mac;
    assert_eq!(mac_in(&a_ns).await, parent_mac, "an ipvlan link has its parent's MAC address");
    // Another MAC address cannot be had.
    let config = EndpointConfig { mac: Some(cnm_driverapi::MacAddress([2, 0, 0, 0, 0, 9])), ..Default::default() };
    let e = net.create_endpoint("mac", config).await.unwrap_err();
    assert!(cnm::chain(&e).contains("ipvlan links have their parent's MAC address"), "{}", cnm::chain(&e));
    // A disconnected sandbox's address is given again at once (the parent
    // lets one link hold it): to a new endpoint that asks for it, of a
    // sandbox that stays, and back.
    let IpAddr::V4(a_v4) = a_ip else { unreachable!("an IPv4 address") };
    let a_ep = net.endpoints().await.into_iter().find(|e| e.name() == "a").expect("a's endpoint");
    a_ep.leave_and_delete(&a).await.unwrap();
    let again = net.create_endpoint("a2", EndpointConfig { ipv4: Some(a_v4), ..Default::default() }).await.unwrap();
    again.join(&b, JoinOptions::default()).await.unwrap_or_else(|e| panic!("{}", cnm::chain(&e)));
    assert_ping(&outside.ns, a_ip).await;
    again.leave_and_delete(&b).await.unwrap();
    let back = net.create_endpoint("a", EndpointConfig { ipv4: Some(a_v4), ..Default::default() }).await.unwrap();
    back.join(&a, JoinOptions::default()).await.unwrap_or_else(|e| panic!("{}", cnm::chain(&e)));
    assert_ping(&a_ns, b_ip).await;

    // A second network in the same mode on the parent: another subnet of
    // the segment, reaching the outside host's address there.
    let oeth = outside.nl.link_get("eth0").await.unwrap().unwrap().index;
    outside.nl.addr_add(oeth, "10.251.0.2/24".parse().unwrap()).await.unwrap();
    let net2 = ctrl
        .new_network("ipvlan", "iv2", network("10.251.0.0/24", "10.251.0.2", &[("parent", "uplink")], false))
        .await
        .expect("a second network on the parent");
    let (c, c_ns, c_ip) = sandbox(&ctrl, &net2, "c").await;
    assert_ping(&c_ns, "10.251.0.2".parse().unwrap()).await;
    assert_ping(&outside.ns, c_ip).await;
    // Another mode on the same parent is refused, naming the network in the way.
    let l3 = network("10.252.0.0/24", "10.252.0.1", &[("parent", "uplink"), ("ipvlan_mode", "l3")], false);
    let e = ctrl.new_network("ipvlan", "l3", l3).await.unwrap_err();
    assert_eq!(e.kind(), cnm::ErrorKind::Conflict, "{e}");
    assert!(cnm::chain(&e).contains("is already using parent interface uplink in mode l2 flag bridge"), "{e}");
    assert_ping(&a_ns, b_ip).await;

    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
    assert_ping(&c_ns, "10.251.0.2".parse().unwrap()).await;
    c.delete().await.unwrap();
    net2.delete().await.unwrap();
    let links = h.links().await;
    assert!(links.contains(&"uplink".to_string()), "the parent stays: {links:?}");
    assert!(!links.iter().any(|l| l.starts_with("iv")), "no ipvlan link left: {links:?}");
}

/// `l3` and `l3s`: the host's namespace routes. Sandboxes of two networks
/// (two subnets) on one parent reach each other; they reach the outside
/// host, which routes the subnets to the host's address on the segment,
/// and it reaches them; their default route is the interface itself, with
/// no gateway. Control: without that route the outside host cannot reach
/// them (no ARP answers for routed links).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_sandboxes_are_routed_between_subnets_and_to_the_segment() {
    let Some(h) = TestHost::new("ipvlan_l3_sandboxes_are_routed_between_subnets_and_to_the_segment").await else {
        return;
    };
    let outside = h.outside().await;
    let ctrl = controller(&h).await;
    let l3 = |subnet: &str, gateway: &str, mode: &str| {
        network(subnet, gateway, &[("parent", "uplink"), ("ipvlan_mode", mode)], false)
    };
    if !ipvlan_or_refused(&h, &ctrl, l3("10.252.0.0/24", "10.252.0.1", "l3")).await {
        return;
    }
    let oeth = outside.nl.link_get("eth0").await.unwrap().unwrap().index;
    for mode in ["l3", "l3s"] {
        let one = ctrl.new_network("ipvlan", "one", l3("10.252.0.0/24", "10.252.0.1", mode)).await.unwrap();
        let two = ctrl.new_network("ipvlan", "two", l3("10.253.0.0/24", "10.253.0.1", mode)).await.unwrap();
        let (a, a_ns, a_ip) = sandbox(&ctrl, &one, "a").await;
        let (b, b_ns, b_ip) = sandbox(&ctrl, &two, "b").await;
        assert_ping(&a_ns, b_ip).await;
        assert_ping(&b_ns, a_ip).await;
        let route = default_route(&a_ns).await.expect("a default route");
        assert_eq!(
            (route.gateway, route.scope),
            (None, RouteScope::Link),
            "{mode}: the default route is the interface"
        );
        // The outside host has no route to the subnets yet: the control.
        assert_no_ping(&outside.ns, a_ip).await;
        let to_host = |subnet: &str| Route {
            destination: subnet.parse().unwrap(),
            gateway: Some(UPLINK_HOST.parse().unwrap()),
            oif: Some(oeth),
            scope: RouteScope::Universe,
        };
        outside.nl.route_add(&to_host("10.252.0.0/24")).await.unwrap();
        outside.nl.route_add(&to_host("10.253.0.0/24")).await.unwrap();
        assert_ping(&outside.ns, a_ip).await;
        assert_ping(&outside.ns, b_ip).await;
        assert_ping(&a_ns, OUTSIDE.parse().unwrap()).await;
        a.delete().await.unwrap();
        b.delete().await.unwrap();
        one.delete().await.unwrap();
        two.delete().await.unwrap();
        outside.nl.route_del(&to_host("10.252.0.0/24")).await.unwrap();
        outside.nl.route_del(&to_host("10.253.0.0/24")).await.unwrap();
    }
    let links = h.links().await;
    assert!(!links.iter().any(|l| l.starts_with("iv")), "no ipvlan link left: {links:?}");
}

/// The `private` flag keeps sandboxes apart while both reach the outside
/// host (the control: the same pair talks with the `bridge` flag); an
/// internal network gives no default route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_flag_and_internal_networks() {
    let Some(h) = TestHost::new("ipvlan_private_flag_and_internal_networks").await else { return };
    let _outside = h.outside().await;
    let ctrl = controller(&h).await;
    let options = [("parent", "uplink"), ("ipvlan_flag", "private")];
    if !ipvlan_or_refused(&h, &ctrl, on_uplink(&options, true)).await {
        return;
    }
    let net = ctrl.new_network("ipvlan", "ivp", on_uplink(&options, true)).await.unwrap();
    let (a, a_ns, _) = sandbox(&ctrl, &net, "a").await;
    let (b, b_ns, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_ping(&a_ns, OUTSIDE.parse().unwrap()).await;
    assert_ping(&b_ns, OUTSIDE.parse().unwrap()).await;
    assert_no_ping(&a_ns, b_ip).await;
    assert_eq!(default_route(&a_ns).await, None, "an internal network gives no default route");
    // The namespaces go with the sandboxes (the kernel tears them down in
    // the background): their links' addresses are given again at once.
    drop((a_ns, b_ns));
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
    // The control: with the bridge flag the same pair talks.
    let net = ctrl.new_network("ipvlan", "ivb", on_uplink(&[("parent", "uplink")], true)).await.unwrap();
    let (a, a_ns, _) = sandbox(&ctrl, &net, "a").await;
    let (b, _, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_ping(&a_ns, b_ip).await;
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
}

/// A network on VLAN `vlan` of `uplink` (`-o parent=uplink.VLAN`), subnet
/// 10.250.10.0/24 with sandboxes from .128/25.
fn on_vlan(vlan: u16) -> NetworkConfig {
    network("10.250.10.0/24", "10.250.10.1", &[("parent", &format!("uplink.{vlan}"))], false)
}

/// `-o parent=uplink.10` makes the 802.1q link and removes it with the
/// network, also when the driver was made again in between (a restart):
/// sandboxes reach each other and a peer tagged 10, never a peer on VLAN 20
/// with an address of the same subnet; a network on VLAN 20 reaches that
/// one and not the first (the control). A VLAN link the user made stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlan_parent_is_made_and_removed_with_the_network() {
    let Some(h) = TestHost::new("ipvlan_vlan_parent_is_made_and_removed_with_the_network").await else { return };
    let outside = h.outside().await;
    let ctrl = controller(&h).await;
    if !ipvlan_or_refused(&h, &ctrl, on_uplink(&[("parent", "uplink")], false)).await {
        return;
    }
    let before = h.links().await;
    if !kernel::has(Feature::Vlan).await {
        let e = ctrl.new_network("ipvlan", "vlan10", on_vlan(10)).await.unwrap_err();
        return refused_cleanly(&h, &ctrl, &before, e, "802.1q VLAN links (kernel module 8021q)").await;
    }
    // The segment: the outside host on VLAN 10 (10.250.10.2), and a peer
    // on VLAN 20 (10.250.10.3) in a namespace of its own.
    let eth0 = outside.nl.link_get("eth0").await.unwrap().unwrap().index;
    outside.nl.link_add_vlan("eth0.10", eth0, 10).await.unwrap();
    let v10 = outside.nl.link_get("eth0.10").await.unwrap().unwrap().index;
    outside.nl.addr_add(v10, "10.250.10.2/24".parse().unwrap()).await.unwrap();
    let peer20_path = h.dir.path().join("peer20.netns");
    let (peer20, peer20_nl) = Netlink::create_namespace(&peer20_path, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    outside.nl.link_add_vlan("eth0.20", eth0, 20).await.unwrap();
    let v20 = outside.nl.link_get("eth0.20").await.unwrap().unwrap().index;
    outside.nl.link_move(v20, &peer20, None).await.unwrap();
    let v20 = peer20_nl.link_get("eth0.20").await.unwrap().unwrap().index;
    peer20_nl.addr_add(v20, "10.250.10.3/24".parse().unwrap()).await.unwrap();
    peer20_nl.link_set_up(v20).await.unwrap();

    let net = ctrl.new_network("ipvlan", "vlan10", on_vlan(10)).await.unwrap();
    assert!(h.links().await.contains(&"uplink.10".to_string()), "the VLAN link is made");
    let (a, a_ns, _) = sandbox(&ctrl, &net, "a").await;
    let (b, _, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_ping(&a_ns, b_ip).await;
    assert_ping(&a_ns, "10.250.10.2".parse().unwrap()).await;
    assert_no_ping(&a_ns, "10.250.10.3".parse().unwrap()).await;
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
    assert!(!h.links().await.contains(&"uplink.10".to_string()), "the VLAN link goes with the network");

    // The control: the same probe from VLAN 20 sees the peer there, not the one on 10.
    let net = ctrl.new_network("ipvlan", "vlan20", on_vlan(20)).await.unwrap();
    let (c, c_ns, _) = sandbox(&ctrl, &net, "c").await;
    assert_ping(&c_ns, "10.250.10.3".parse().unwrap()).await;
    assert_no_ping(&c_ns, "10.250.10.2".parse().unwrap()).await;
    c.delete().await.unwrap();
    net.delete().await.unwrap();
    // A restart between creating and deleting a network: the driver made
    // again and told of the network again takes the VLAN link it made for
    // its own, and removes it with the network.
    let on_vlan40 = || CreateNetworkRequest {
        network_id: "4".repeat(64),
        options: NetworkOptions {
            generic: [("parent".to_string(), "uplink.40".to_string())].into(),
            ..Default::default()
        },
        ..Default::default()
    };
    IpvlanDriver::new(h.nl.clone()).create_network(on_vlan40()).await.unwrap();
    assert!(h.links().await.contains(&"uplink.40".to_string()), "the VLAN link is made");
    let restarted = IpvlanDriver::new(h.nl.clone());
    restarted.create_network(on_vlan40()).await.unwrap();
    restarted.delete_network(DeleteNetworkRequest { network_id: "4".repeat(64) }).await.unwrap();
    assert!(!h.links().await.contains(&"uplink.40".to_string()), "the VLAN link made before the restart goes");
    // A VLAN link the user made is used as it is, and stays.
    let uplink = h.nl.link_get("uplink").await.unwrap().unwrap().index;
    h.nl.link_add_vlan("uplink.30", uplink, 30).await.unwrap();
    let net = ctrl.new_network("ipvlan", "vlan30", on_vlan(30)).await.unwrap();
    net.delete().await.unwrap();
    assert!(h.links().await.contains(&"uplink.30".to_string()), "the user's VLAN link stays");
    h.nl.link_del_by_name("uplink.30").await.unwrap();
    assert_eq!(h.links().await, before, "no link left");
    drop(peer20);
    Namespace::remove(&peer20_path).unwrap();
}

/// A network without `-o parent` hangs off a dummy link of its own (as
/// Docker's host-only ipvlan networks, internal): its sandboxes reach each
/// other, have no default route, and the dummy goes with the network;
/// `-o parent=lo` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parentless_network_on_a_dummy_link() {
    let Some(h) = TestHost::new("ipvlan_parentless_network_on_a_dummy_link").await else { return };
    let ctrl = controller(&h).await;
    let config = network("10.251.0.0/24", "10.251.0.1", &[], false);
    if !ipvlan_or_refused(&h, &ctrl, config.clone()).await {
        return;
    }
    let before = h.links().await;
    if !kernel::has(Feature::Dummy).await {
        let e = ctrl.new_network("ipvlan", "hostonly", config).await.unwrap_err();
        return refused_cleanly(&h, &ctrl, &before, e, "dummy links (kernel module dummy)").await;
    }
    let net = ctrl.new_network("ipvlan", "hostonly", config).await.unwrap();
    let links = h.links().await;
    assert!(links.iter().any(|l| l.starts_with("di-")), "a dummy parent is made: {links:?}");
    let (a, a_ns, _) = sandbox(&ctrl, &net, "a").await;
    let (b, b_ns, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_ping(&a_ns, b_ip).await;
    assert_eq!(default_route(&b_ns).await, None, "a network without a parent is internal, as Docker's");
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
    assert_eq!(h.links().await, before, "the dummy goes with the network");
    let e = ctrl.new_network("ipvlan", "lo", network("10.251.1.0/24", "10.251.1.1", &[("parent", "lo")], false));
    let e = e.await.unwrap_err();
    assert!(cnm::chain(&e).contains("loopback interface is not a valid ipvlan parent link"), "{e}");
}

/// Every test above again, in Debian's stock kernel (which has ipvlan,
/// 802.1q and dummy links), booted under qemu: their success paths.
#[test]
fn in_the_second_kernel() {
    kernel::run_in_second_kernel(
        "ipvlan_in_the_second_kernel",
        &[
            "l2_sandboxes_reach_each_other_and_the_segment",
            "l3_sandboxes_are_routed_between_subnets_and_to_the_segment",
            "private_flag_and_internal_networks",
            "vlan_parent_is_made_and_removed_with_the_network",
            "parentless_network_on_a_dummy_link",
        ],
    );
}
