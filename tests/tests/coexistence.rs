//! Beside other firewalls: a scratch host whose iptables `FORWARD` policy is
//! DROP (as dockerd, ufw and firewalld leave it), with br_netfilter on.
//! cnm's containers still reach each other, the outside and their published
//! ports; isolation holds; the foreign chain keeps its policy and rules,
//! and gets back exactly what it had when cnm's last network goes.

use cnm::osl::firewall::iptables::COMMENT;
use cnm::{EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_driverapi::{PortBinding, Protocol};
use cnm_tests::{OUTSIDE, TestHost, UPLINK_HOST, assert_no_ping, assert_ping, iptables, peer_echo_server, seen_as};
use std::net::{IpAddr, SocketAddr};

const TEST: &str = "beside_an_iptables_forward_drop_policy";

async fn container(
    ctrl: &cnm::Controller,
    net: &cnm::Network,
    name: &str,
    ports: Vec<PortBinding>,
) -> (cnm::Sandbox, IpAddr) {
    let ep = net.create_endpoint(name, EndpointConfig::default()).await.unwrap();
    let sb = ctrl.new_sandbox(name, SandboxConfig { port_bindings: ports, ..Default::default() }).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    (sb, ep.info().await.unwrap().ipv4.unwrap().addr())
}

/// cnm's side of both tests: networks `front` (containers `a`, and `b`
/// with port 8080 published) and `other` (container `c`); checks that `a`
/// reaches `b` and the outside host, `c` cannot reach `b`, and the
/// published port answers from outside. Returns the controller and `b`'s address.
async fn cnm_side(h: &TestHost, out: &cnm_tests::OutsideHost) -> (cnm::Controller, IpAddr) {
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "front", NetworkConfig::default()).await.unwrap();
    let other = ctrl.new_network("bridge", "other", NetworkConfig::default()).await.unwrap();
    let port =
        PortBinding { proto: Protocol::Tcp, ip: None, port: 80, host_ip: None, host_port: 8080, host_port_end: 8080 };
    let (a, _) = container(&ctrl, &net, "a", vec![]).await;
    let (b, b_ip) = container(&ctrl, &net, "b", vec![port]).await;
    let (c, _) = container(&ctrl, &other, "c", vec![]).await;
    let a_ns = a.namespace().unwrap();
    assert_ping(&a_ns, b_ip).await;
    assert_ping(&a_ns, OUTSIDE.parse().unwrap()).await;
    assert_no_ping(&c.namespace().unwrap(), b_ip).await;
    let _srv = peer_echo_server(&b.namespace().unwrap(), "0.0.0.0:80".parse().unwrap(), 1).await;
    let published: SocketAddr = format!("{UPLINK_HOST}:8080").parse().unwrap();
    assert_eq!(seen_as(&out.ns, published).await.unwrap(), OUTSIDE, "cnm's published port answers from outside");
    (ctrl, b_ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_an_iptables_forward_drop_policy() {
    if !cnm_tests::real_root(TEST) || !cnm_tests::tools(TEST, &["iptables-nft"], "iptables") {
        return;
    }
    let Some(h) = TestHost::new(TEST).await else { return };
    h.ns.sysctl_set("net/bridge/bridge-nf-call-iptables", "1").await.expect("br_netfilter on");
    iptables(&h.ns, &["-P", "FORWARD", "DROP"]).await;
    iptables(&h.ns, &["-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "ACCEPT"]).await;
    let before = iptables(&h.ns, &["-S", "FORWARD"]).await;
    let out = h.outside().await;
    let (ctrl, _) = cnm_side(&h, &out).await;

    let during = iptables(&h.ns, &["-S", "FORWARD"]).await;
    let ours = format!("-A FORWARD -m mark --mark 0x1000/0x1000 -m comment --comment \"{COMMENT}\" -j ACCEPT\n");
    assert!(during.starts_with(&format!("-P FORWARD DROP\n{ours}")), "{during}");
    assert!(during.contains("-A FORWARD -s 192.0.2.0/24 -j ACCEPT"), "{during}");

    cnm_tests::remove_all(&ctrl).await;
    assert_eq!(iptables(&h.ns, &["-S", "FORWARD"]).await, before, "the foreign chain is as it was");
    assert!(!iptables(&h.ns, &["-S"]).await.contains(COMMENT), "cnm's rule is gone");
}

const DOCKERD_TEST: &str = "beside_a_real_dockerd_with_iptables";

/// A real dockerd with `--iptables=true` in the scratch host (its chains,
/// its FORWARD policy of DROP, its default bridge) next to cnm: a Docker
/// container and cnm's sandboxes each keep their connectivity, cnm's
/// isolation holds (from Docker's containers too), cnm's published port and
/// Docker's both answer from the outside host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_real_dockerd_with_iptables() {
    use cnm_tests::dockerd::{Engine, address, import_busybox};
    if !cnm_tests::dockerd::available(DOCKERD_TEST) {
        return;
    }
    let Some(h) = TestHost::new(DOCKERD_TEST).await else { return };
    let out = h.outside().await;
    let dir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    let ns_path = h.ns_path();
    let engine = tokio::task::spawn_blocking(move || Engine::start(dir, &ns_path, true)).await.unwrap();
    let e = &engine;
    import_busybox(e);
    assert!(iptables(&h.ns, &["-S", "FORWARD"]).await.starts_with("-P FORWARD DROP\n"), "dockerd set the policy");
    e.ok(&["run", "-d", "--name", "dweb", "-p", "8081:80", "busybox:local", "httpd", "-f", "-p", "80", "-h", "/www"]);
    e.ok(&["run", "-d", "--name", "dc", "busybox:local", "sleep", "3600"]);
    let dweb_ip = address(e, "dweb", "bridge");

    let (ctrl, b_ip) = cnm_side(&h, &out).await;

    let dping = |to: String| e.docker(&["exec", "dc", "ping", "-c", "1", "-W", "2", &to]);
    dping(dweb_ip.clone()).expect("Docker's containers reach each other");
    dping(OUTSIDE.to_string()).expect("Docker's containers reach the outside");
    dping(b_ip.to_string()).expect_err("cnm's containers are isolated from Docker's");
    let docker_port: SocketAddr = format!("{UPLINK_HOST}:8081").parse().unwrap();
    cnm_tests::dockerd::page_answers(&out.ns, docker_port).await.expect("Docker's published port answers from outside");

    cnm_tests::remove_all(&ctrl).await;
    assert!(!iptables(&h.ns, &["-S"]).await.contains(COMMENT), "cnm's rule is gone");
    dping(dweb_ip).expect("Docker's containers still reach each other");
    e.ok(&["rm", "-f", "dweb", "dc"]);
    let engine = engine.stop_async().await;
    assert!(engine.processes().is_empty(), "dockerd and containerd are gone");
}
