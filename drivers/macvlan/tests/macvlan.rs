//! The macvlan driver on a scratch host whose `uplink` veth (the parent)
//! leads to an "outside" namespace on the same segment (10.250.0.2/24):
//! sandboxes reach each other and the outside by packets, modes and
//! internal networks behave as Docker's, and what this kernel lacks (802.1q
//! and dummy links) is refused with an error that names it.

use cnm::osl::{Namespace, Netlink};
use cnm::{Controller, EndpointConfig, IpamConfig, JoinOptions, NetworkConfig, Sandbox, SandboxConfig};
use cnm_driver_macvlan::MacvlanDriver;
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
/// ways), with the default route via the network's gateway; everything goes
/// with the network, the parent stays.
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

    // One network per parent.
    let mut other = on_uplink(&[("parent", "uplink")], false);
    other.ipv4 = vec![IpamConfig::subnet("10.251.0.0/24".parse().unwrap())];
    let e = ctrl.new_network("macvlan", "mv2", other).await.unwrap_err();
    assert!(e.to_string().contains("already using parent interface uplink"), "{e}");

    a.delete().await.unwrap();
    b.delete().await.unwrap();
    net.delete().await.unwrap();
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

/// What this kernel lacks is named, and a refused network leaves nothing;
/// a parent that does not exist and a bad mode are clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_kernel_features_and_bad_options_are_named() {
    let Some(h) = TestHost::new("macvlan_missing_kernel_features_and_bad_options_are_named").await else { return };
    let _outside = h.outside().await;
    let ctrl = controller(&h).await;
    let before = h.links().await;
    let e = ctrl.new_network("macvlan", "vlan10", on_uplink(&[("parent", "uplink.10")], false)).await.unwrap_err();
    assert!(e.to_string().contains("802.1q VLAN links (kernel module 8021q)"), "{e}");
    let e = ctrl.new_network("macvlan", "hostonly", on_uplink(&[], false)).await.unwrap_err();
    assert!(e.to_string().contains("dummy links (kernel module dummy)"), "{e}");
    let e = ctrl.new_network("macvlan", "nope", on_uplink(&[("parent", "eth9")], false)).await.unwrap_err();
    assert!(e.to_string().contains("parent interface was not found on the host: eth9"), "{e}");
    let e = ctrl.new_network("macvlan", "mode", on_uplink(&[("parent", "uplink"), ("macvlan_mode", "l3")], false));
    assert!(e.await.unwrap_err().to_string().contains("expected bridge, private, vepa or passthru"));
    assert!(ctrl.networks().await.is_empty(), "no network kept");
    assert_eq!(h.links().await, before, "no link left");
    // The parent is still free for a network.
    let net = ctrl.new_network("macvlan", "ok", on_uplink(&[("parent", "uplink")], false)).await.unwrap();
    net.delete().await.unwrap();
}
