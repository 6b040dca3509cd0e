//! The macvlan driver on a scratch host whose `uplink` veth (the parent)
//! leads to an "outside" namespace on the same segment (10.250.0.2/24):
//! sandboxes reach each other and the outside by packets, modes and
//! internal networks behave as Docker's. 802.1q and dummy parents are
//! probed: where the kernel has them, their networks carry packets (VLAN
//! tags kept apart) and their links go with the network; where it does
//! not, the error names the module. `in_the_second_kernel` runs those
//! tests again in Debian's stock kernel, which has both.

use cnm::osl::{Namespace, Netlink};
use cnm::{Controller, EndpointConfig, IpamConfig, JoinOptions, NetworkConfig, Sandbox, SandboxConfig};
use cnm_driver_macvlan::MacvlanDriver;
use cnm_driverapi::{CreateNetworkRequest, DeleteNetworkRequest, Driver as _, NetworkOptions};
use cnm_tests::kernel::{self, Feature};
use cnm_tests::{OUTSIDE, TestHost, assert_no_ping, assert_ping};
use std::net::IpAddr;

async fn controller(h: &TestHost) -> Controller {
    h.builder().driver_on_host(|host| MacvlanDriver::new(host.clone())).build().await.expect("start controller")
}

/// A macvlan network on `uplink` sharing the outside host's segment; its
/// sandboxes get addresses from .128/25 (the outside host is the gateway).
fn on_uplink(options: &[(&str, &str)], internal: bool) -> NetworkConfig {
    let mut ipam = IpamConfig::subnet("10.250.0.0/24".parse().unwrap());
    ipam.ip_range = Some("10.250.0.128/25".parse().unwrap());
    ipam.gateway = Some(OUTSIDE.parse().unwrap());
    NetworkConfig {
        ipv4: vec![ipam],
        internal,
        driver_options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

/// A sandbox joined to `net`: its namespace and address.
async fn sandbox(ctrl: &Controller, net: &cnm::Network, name: &str) -> (Sandbox, Namespace, IpAddr) {
    let sb = ctrl.new_sandbox(name, SandboxConfig::default()).await.unwrap();
    let ep = net.create_endpoint(name, EndpointConfig::default()).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap_or_else(|e| panic!("join {name}: {e}"));
    let ip = ep.info().await.unwrap().ipv4.unwrap().addr();
    let ns = Namespace::open(sb.info().await.unwrap().key).unwrap();
    (sb, ns, ip)
}

async fn default_route(ns: &Namespace) -> Option<IpAddr> {
    let nl = Netlink::connect(ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    nl.route_list(false).await.unwrap().into_iter().find(|r| r.destination.prefix_len() == 0).and_then(|r| r.gateway)
}

/// Bridge mode: sandboxes reach each other and the outside host (both
/// ways), with the default route via the network's gateway; a second
/// network shares the parent (not in passthru mode); everything goes with
/// the networks, the parent stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_reach_each_other_and_the_segment() {
    let Some(h) = TestHost::new("macvlan_sandboxes_reach_each_other_and_the_segment").await else { return };
    let outside = h.outside().await;
    let ctrl = controller(&h).await;
    let net = ctrl.new_network("macvlan", "mv", on_uplink(&[("parent", "uplink")], false)).await.unwrap();
    let (a, a_ns, a_ip) = sandbox(&ctrl, &net, "a").await;
    let (b, b_ns, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_eq!(a_ip.to_string(), "10.250.0.128");
    assert_ping(&a_ns, b_ip).await;
    assert_ping(&b_ns, OUTSIDE.parse().unwrap()).await;
    assert_ping(&outside.ns, a_ip).await;
    assert_eq!(default_route(&a_ns).await, Some(OUTSIDE.parse().unwrap()), "default route via the gateway");

    // Several networks on one parent (Docker 28's rule): a second subnet
    // on the same segment, reaching the outside host's address there, and
    // still reaching it once the first network is gone.
    let oeth = outside.nl.link_get("eth0").await.unwrap().unwrap().index;
    outside.nl.addr_add(oeth, "10.251.0.2/24".parse().unwrap()).await.unwrap();
    let mut second = on_uplink(&[("parent", "uplink")], false);
    second.ipv4 = vec![IpamConfig::subnet("10.251.0.0/24".parse().unwrap())];
    let net2 = ctrl.new_network("macvlan", "mv2", second).await.expect("a second network on the parent");
    let (c, c_ns, c_ip) = sandbox(&ctrl, &net2, "c").await;
    assert_ping(&c_ns, "10.251.0.2".parse().unwrap()).await;
    assert_ping(&outside.ns, c_ip).await;
    // Passthru takes the parent whole: not beside another network.
    let mut passthru = on_uplink(&[("parent", "uplink"), ("macvlan_mode", "passthru")], false);
    passthru.ipv4 = vec![IpamConfig::subnet("10.252.0.0/24".parse().unwrap())];
    let e = ctrl.new_network("macvlan", "pt", passthru).await.unwrap_err();
    assert!(cnm::chain(&e).contains("cannot use mode passthru, macvlan network"), "{e}");
    assert!(cnm::chain(&e).contains("is already using parent interface uplink"), "{e}");

    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
    assert_ping(&c_ns, "10.251.0.2".parse().unwrap()).await;
    c.delete().await.unwrap();
    net2.delete().await.unwrap();
    let links = h.links().await;
    assert!(links.contains(&"uplink".to_string()), "the parent stays: {links:?}");
    assert!(!links.iter().any(|l| l.starts_with("mv")), "no macvlan link left: {links:?}");
}

/// Private mode keeps sandboxes apart while both reach the outside host; an
/// internal network gives no default route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_mode_and_internal_networks() {
    let Some(h) = TestHost::new("macvlan_private_mode_and_internal_networks").await else { return };
    let _outside = h.outside().await;
    let ctrl = controller(&h).await;
    let options = [("parent", "uplink"), ("macvlan_mode", "private")];
    let net = ctrl.new_network("macvlan", "mvp", on_uplink(&options, true)).await.unwrap();
    let (a, a_ns, _) = sandbox(&ctrl, &net, "a").await;
    let (b, b_ns, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_ping(&a_ns, OUTSIDE.parse().unwrap()).await;
    assert_ping(&b_ns, OUTSIDE.parse().unwrap()).await;
    assert_no_ping(&a_ns, b_ip).await;
    assert_eq!(default_route(&a_ns).await, None, "an internal network gives no default route");
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
}

/// A parent that does not exist and a bad mode are clear errors, and a
/// refused network leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_named() {
    let Some(h) = TestHost::new("macvlan_bad_options_are_named").await else { return };
    let _outside = h.outside().await;
    let ctrl = controller(&h).await;
    let before = h.links().await;
    let e = ctrl.new_network("macvlan", "nope", on_uplink(&[("parent", "eth9")], false)).await.unwrap_err();
    assert!(cnm::chain(&e).contains("parent interface was not found on the host: eth9"), "{e}");
    let e = ctrl.new_network("macvlan", "nope", on_uplink(&[("parent", "eth9.10")], false)).await.unwrap_err();
    assert!(cnm::chain(&e).contains("parent interface was not found on the host: eth9"), "{e}");
    let e = ctrl.new_network("macvlan", "mode", on_uplink(&[("parent", "uplink"), ("macvlan_mode", "l3")], false));
    assert!(cnm::chain(&e.await.unwrap_err()).contains("expected bridge, private, vepa or passthru"));
    assert!(ctrl.networks().await.is_empty(), "no network kept");
    assert_eq!(h.links().await, before, "no link left");
    // The parent is still free for a network.
    let net = ctrl.new_network("macvlan", "ok", on_uplink(&[("parent", "uplink")], false)).await.unwrap();
    net.delete().await.unwrap();
}

/// A network refused for a missing kernel feature: the error names
/// `feature`, and no network or link is left.
async fn refused_cleanly(h: &TestHost, ctrl: &Controller, before: &[String], e: cnm::Error, feature: &str) {
    assert!(cnm::chain(&e).contains(feature), "{e}");
    assert!(ctrl.networks().await.is_empty(), "no network kept");
    assert_eq!(h.links().await, before, "no link left");
}

/// A network on VLAN `vlan` of `uplink` (`-o parent=uplink.VLAN`), subnet
/// 10.250.10.0/24 with sandboxes from .128/25.
fn on_vlan(vlan: u16) -> NetworkConfig {
    let mut ipam = IpamConfig::subnet("10.250.10.0/24".parse().unwrap());
    ipam.ip_range = Some("10.250.10.128/25".parse().unwrap());
    ipam.gateway = Some("10.250.10.1".parse().unwrap());
    let parent = format!("uplink.{vlan}");
    NetworkConfig { ipv4: vec![ipam], driver_options: [("parent".to_string(), parent)].into(), ..Default::default() }
}

/// `-o parent=uplink.10` makes the 802.1q link (and removes it with the
/// network): sandboxes reach each other and a peer tagged 10 on the
/// segment, never a peer on VLAN 20 with an address of the same subnet; a
/// network on VLAN 20 then reaches that one and not the first. On a kernel
/// without 802.1q the error names the module and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlan_parent_is_made_and_removed_with_the_network() {
    let Some(h) = TestHost::new("macvlan_vlan_parent_is_made_and_removed_with_the_network").await else { return };
    let outside = h.outside().await;
    let ctrl = controller(&h).await;
    let before = h.links().await;
    if !kernel::has(Feature::Vlan).await {
        let e = ctrl.new_network("macvlan", "vlan10", on_vlan(10)).await.unwrap_err();
        return refused_cleanly(&h, &ctrl, &before, e, "802.1q VLAN links (kernel module 8021q)").await;
    }
    // The segment: the outside host on VLAN 10 (10.250.10.2), and a second
    // peer on VLAN 20 (10.250.10.3) in a namespace of its own, so that each
    // answers only frames of its own VLAN.
    let eth0 = outside.nl.link_get("eth0").await.unwrap().unwrap().index;
    outside.nl.link_add_vlan("eth0.10", eth0, 10).await.unwrap();
    let v10 = outside.nl.link_get("eth0.10").await.unwrap().unwrap().index;
    outside.nl.addr_add(v10, "10.250.10.2/24".parse().unwrap()).await.unwrap();
    let peer20_path = h.dir.path().join("peer20.netns");
    let (peer20, peer20_nl) =
        cnm::osl::Netlink::create_namespace(&peer20_path, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    outside.nl.link_add_vlan("eth0.20", eth0, 20).await.unwrap();
    let v20 = outside.nl.link_get("eth0.20").await.unwrap().unwrap().index;
    outside.nl.link_move(v20, &peer20, None).await.unwrap();
    let v20 = peer20_nl.link_get("eth0.20").await.unwrap().unwrap().index;
    peer20_nl.addr_add(v20, "10.250.10.3/24".parse().unwrap()).await.unwrap();
    peer20_nl.link_set_up(v20).await.unwrap();

    let net = ctrl.new_network("macvlan", "vlan10", on_vlan(10)).await.unwrap();
    assert!(h.links().await.contains(&"uplink.10".to_string()), "the VLAN link is made");
    let (a, a_ns, _) = sandbox(&ctrl, &net, "a").await;
    let (b, _, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_ping(&a_ns, b_ip).await;
    assert_ping(&a_ns, "10.250.10.2".parse().unwrap()).await;
    assert_no_ping(&a_ns, "10.250.10.3".parse().unwrap()).await;
    // A second network on the same VLAN parent (another subnet): the
    // VLAN link stays while either uses it, and goes with the last.
    outside.nl.addr_add(v10, "10.250.11.2/24".parse().unwrap()).await.unwrap();
    let mut shared = on_vlan(10);
    shared.ipv4 = vec![IpamConfig::subnet("10.250.11.0/24".parse().unwrap())];
    let net2 = ctrl.new_network("macvlan", "vlan10b", shared).await.expect("a second network on uplink.10");
    let (d, d_ns, _) = sandbox(&ctrl, &net2, "d").await;
    assert_ping(&d_ns, "10.250.11.2".parse().unwrap()).await;
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
    assert!(h.links().await.contains(&"uplink.10".to_string()), "the VLAN link stays while vlan10b uses it");
    assert_ping(&d_ns, "10.250.11.2".parse().unwrap()).await;
    d.delete().await.unwrap();
    net2.delete().await.unwrap();
    assert!(!h.links().await.contains(&"uplink.10".to_string()), "the VLAN link goes with the last network");

    // The control: the same probe from VLAN 20 sees the peer there, not the one on 10.
    let net = ctrl.new_network("macvlan", "vlan20", on_vlan(20)).await.unwrap();
    let (c, c_ns, _) = sandbox(&ctrl, &net, "c").await;
    assert_ping(&c_ns, "10.250.10.3".parse().unwrap()).await;
    assert_no_ping(&c_ns, "10.250.10.2".parse().unwrap()).await;
    c.delete().await.unwrap();
    net.delete().await.unwrap();
    // A restart between creating and deleting a network: the driver made
    // again (as a restarted cnmd makes it) and told of the network again
    // takes the VLAN link it made for its own (marked when made), and
    // removes it with the network.
    let on_vlan40 = || CreateNetworkRequest {
        network_id: "4".repeat(64),
        options: NetworkOptions {
            generic: [("parent".to_string(), "uplink.40".to_string())].into(),
            ..Default::default()
        },
        ..Default::default()
    };
    MacvlanDriver::new(h.nl.clone()).create_network(on_vlan40()).await.unwrap();
    assert!(h.links().await.contains(&"uplink.40".to_string()), "the VLAN link is made");
    let restarted = MacvlanDriver::new(h.nl.clone());
    restarted.create_network(on_vlan40()).await.unwrap();
    restarted.delete_network(DeleteNetworkRequest { network_id: "4".repeat(64) }).await.unwrap();
    assert!(!h.links().await.contains(&"uplink.40".to_string()), "the VLAN link made before the restart goes");
    // The control: a VLAN link the user made is used as it is, and stays.
    let uplink = h.nl.link_get("uplink").await.unwrap().unwrap().index;
    h.nl.link_add_vlan("uplink.30", uplink, 30).await.unwrap();
    let net = ctrl.new_network("macvlan", "vlan30", on_vlan(30)).await.unwrap();
    net.delete().await.unwrap();
    assert!(h.links().await.contains(&"uplink.30".to_string()), "the user's VLAN link stays");
    h.nl.link_del_by_name("uplink.30").await.unwrap();
    assert_eq!(h.links().await, before, "no link left");
    drop(peer20);
    cnm::osl::Namespace::remove(&peer20_path).unwrap();
}

/// A network without `-o parent` hangs off a dummy link of its own (as
/// Docker's host-only macvlan networks, internal): its sandboxes reach
/// each other, have no default route, and the dummy goes with the network. On a kernel without dummy links the
/// error names the module.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parentless_network_on_a_dummy_link() {
    let Some(h) = TestHost::new("macvlan_parentless_network_on_a_dummy_link").await else { return };
    let ctrl = controller(&h).await;
    let before = h.links().await;
    let mut ipam = IpamConfig::subnet("10.251.0.0/24".parse().unwrap());
    ipam.gateway = Some("10.251.0.1".parse().unwrap());
    let config = NetworkConfig { ipv4: vec![ipam], ..Default::default() };
    if !kernel::has(Feature::Dummy).await {
        let e = ctrl.new_network("macvlan", "hostonly", config).await.unwrap_err();
        return refused_cleanly(&h, &ctrl, &before, e, "dummy links (kernel module dummy)").await;
    }
    let net = ctrl.new_network("macvlan", "hostonly", config).await.unwrap();
    let links = h.links().await;
    assert!(links.iter().any(|l| l.starts_with("dm-")), "a dummy parent is made: {links:?}");
    let (a, a_ns, _) = sandbox(&ctrl, &net, "a").await;
    let (b, b_ns, b_ip) = sandbox(&ctrl, &net, "b").await;
    assert_ping(&a_ns, b_ip).await;
    assert_eq!(default_route(&b_ns).await, None, "a network without a parent is internal, as Docker's");
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
    assert_eq!(h.links().await, before, "the dummy goes with the network");
}

/// The kernel-feature tests again, in Debian's stock kernel (which has
/// 802.1q and dummy links), booted under qemu: their success paths.
#[test]
fn in_the_second_kernel() {
    kernel::run_in_second_kernel(
        "macvlan_in_the_second_kernel",
        &["vlan_parent_is_made_and_removed_with_the_network", "parentless_network_on_a_dummy_link"],
    );
}

/// A router on the segment advertises an IPv6 prefix: an IPv4-only macvlan
/// sandbox configures nothing from it (IPv6 is off on its interface), so
/// it never gets a global address or a route outside any firewall
/// (CVE-2024-32473 class). Control: a macvlan link made by hand on the same
/// parent, with IPv6 left on, takes an address from the same advertisement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_only_sandbox_ignores_the_segments_router_advertisements() {
    use cnm_tests::attack::{router_advertisement, send_frame};
    let Some(h) = TestHost::new("macvlan_an_ipv4_only_sandbox_ignores_the_segments_router_advertisements").await else {
        return;
    };
    let outside = h.outside().await;
    let ctrl = controller(&h).await;
    let net = ctrl.new_network("macvlan", "mv", on_uplink(&[("parent", "uplink")], false)).await.unwrap();
    let (_a, a_ns, _) = sandbox(&ctrl, &net, "a").await;
    // The control: a plain macvlan on the same parent in a namespace of its own.
    let control_path = h.dir.path().join("control.netns");
    let (control, control_nl) =
        cnm::osl::Netlink::create_namespace(&control_path, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    let uplink = h.nl.link_get("uplink").await.unwrap().unwrap().index;
    h.nl.link_add_macvlan("mvcontrol", uplink, cnm::osl::MacvlanMode::Bridge, None).await.unwrap();
    let idx = h.nl.link_get("mvcontrol").await.unwrap().unwrap().index;
    h.nl.link_move(idx, &control, Some("eth0")).await.unwrap();
    let idx = control_nl.link_get("eth0").await.unwrap().unwrap().index;
    control.sysctl_set("net/ipv6/conf/eth0/accept_ra", "2").await.unwrap();
    // No duplicate address detection: the link-local address is usable at
    // once, so an RA is taken as soon as it arrives (the loop below resends).
    control.sysctl_set("net/ipv6/conf/eth0/accept_dad", "0").await.unwrap();
    control_nl.link_set_up(idx).await.unwrap();

    let prefix: std::net::Ipv6Addr = "2001:db8:5e00::".parse().unwrap();
    let router_mac = outside.nl.link_get("eth0").await.unwrap().unwrap().mac.unwrap();
    let global = |ns: cnm::osl::Namespace| async move {
        let nl = cnm::osl::Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
        nl.addr_list(None).await.unwrap().iter().any(|a| a.net.addr().to_string().starts_with("2001:db8:5e00:"))
    };
    let start = std::time::Instant::now();
    while !global(control.clone()).await {
        send_frame(&outside.ns, "eth0", router_advertisement(router_mac, "fe80::1".parse().unwrap(), prefix)).await;
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "control: the advertisement was never taken");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(!global(a_ns.clone()).await, "the IPv4-only sandbox configured an address from the router's prefix");
    let v6_off = a_ns.sysctl_get("net/ipv6/conf/eth0/disable_ipv6").await.unwrap();
    assert_eq!(v6_off, "1", "IPv6 is off on the sandbox's interface");
    drop(control);
    cnm::osl::Namespace::remove(&control_path).unwrap();
    cnm_tests::remove_all(&ctrl).await;
}
