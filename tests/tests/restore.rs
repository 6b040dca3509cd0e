//! State survives the controller: dropped and created again over the same
//! data directory, it restores every object, and interrupted operations
//! (a process killed with SIGKILL) leave nothing behind.

use cnm::{EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_tests::{TestHost, assert_ping, links_in};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Dropped and re-created, the controller restores networks, endpoints and
/// sandboxes; the sandboxes still ping; missing kernel state is re-created;
/// new addresses do not collide with restored ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_every_object() {
    let Some(h) = TestHost::new("restart_restores_every_object").await else { return };
    let (a1, a2, net_id) = {
        let ctrl = h.controller().await;
        let net = ctrl.new_network("bridge", "keep", NetworkConfig::default()).await.unwrap();
        let mut addrs = Vec::new();
        for name in ["r1", "r2"] {
            let ep = net.create_endpoint(name, EndpointConfig::default()).await.unwrap();
            let sb =
                ctrl.new_sandbox(name, SandboxConfig { hostname: name.into(), ..Default::default() }).await.unwrap();
            ep.join(&sb, JoinOptions::default()).await.unwrap();
            addrs.push(ep.info().await.unwrap().ipv4.unwrap());
        }
        (addrs[0], addrs[1], net.id().to_string())
        // Every handle and the controller are dropped here.
    };

    let ctrl = h.controller().await;
    let net = ctrl.network_by_name("keep").await.expect("network restored");
    assert_eq!(net.id(), net_id);
    assert_eq!(net.endpoints().await.len(), 2, "endpoints restored");
    let s1 = ctrl.sandbox("r1").await.expect("sandbox restored");
    let s2 = ctrl.sandbox("r2").await.expect("sandbox restored");
    assert_ping(&s1.namespace().unwrap(), a2.addr()).await;
    assert_ping(&s2.namespace().unwrap(), a1.addr()).await;
    // The IPAM knows the restored addresses: a new endpoint gets another one.
    let fresh = net.create_endpoint("fresh", EndpointConfig::default()).await.unwrap();
    let fa = fresh.info().await.unwrap().ipv4.unwrap();
    assert!(fa != a1 && fa != a2, "{fa} collides with a restored address");
    let err = net
        .create_endpoint(
            "dup",
            EndpointConfig {
                ipv4: Some(match a1.addr() {
                    std::net::IpAddr::V4(v) => v,
                    _ => unreachable!(),
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), cnm::ErrorKind::Forbidden, "a restored address is in use: {err}");
    fresh.delete().await.unwrap();
    let key1 = s1.key().to_path_buf();
    // Handles keep the controller (and its store) open: drop them all.
    drop((net, s1, s2, fresh, ctrl));

    // Kernel state lost while the controller was away: one sandbox's
    // interface and the bridge's veth disappear. A restart re-creates them.
    let ns1 = cnm::osl::Namespace::open(&key1).unwrap();
    let nl1 = cnm::osl::Netlink::connect(&ns1, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    nl1.link_del_by_name("eth0").await.unwrap();
    assert_eq!(links_in(&ns1).await, vec!["lo".to_string()]);

    let ctrl = h.controller().await;
    for name in ["r1", "r2"] {
        let sb = ctrl.sandbox(name).await.unwrap();
        assert_eq!(links_in(&sb.namespace().unwrap()).await, vec!["eth0".to_string(), "lo".to_string()], "{name}");
    }
    assert_ping(&ctrl.sandbox("r1").await.unwrap().namespace().unwrap(), a2.addr()).await;
    assert_ping(&ctrl.sandbox("r2").await.unwrap().namespace().unwrap(), a1.addr()).await;

    for sb in ctrl.sandboxes().await {
        sb.delete().await.unwrap();
    }
    ctrl.network_by_name("keep").await.unwrap().delete().await.unwrap();
    assert_eq!(h.settled_links(&["lo"]).await, vec!["lo".to_string()]);
    assert!(h.netns_files().is_empty());
}

/// A controller process killed (SIGKILL) in the middle of a join: after a
/// restart no link, namespace or address is leaked, the endpoint is back to
/// unjoined, and the same address can be allocated again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_join_leaks_nothing() {
    let Some(h) = TestHost::new("sigkill_during_join_leaks_nothing").await else { return };
    let data = h.dir.path().join("data");
    let run = h.dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnm-crash-child"))
        .args([&data, &run, &h.ns_path()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the crash child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Blocking reads on a dedicated thread, bounded by the child's own progress.
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            let done = line == "JOINING";
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let seen = tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
    assert_eq!(seen, vec!["READY".to_string(), "JOINING".to_string()], "the child reached the middle of the join");

    // The half-done join is visible in the kernel: the veth pair exists.
    let veths: Vec<String> = h.links().await.into_iter().filter(|l| l.starts_with("veth")).collect();
    assert_eq!(veths.len(), 1, "the child created the host end: {:?}", h.links().await);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());

    let ctrl = h.controller().await;
    // No leaked link: only lo and the network's bridge in the host, once
    // the rolled-back veth's background deletion is done (bounded).
    let mut links = h.links().await;
    for _ in 0..250 {
        if links.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        links = h.links().await;
    }
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links.iter().any(|l| l.starts_with("br-")) && links.iter().any(|l| l == "lo"), "{links:?}");
    let net = ctrl.network_by_name("crashnet").await.unwrap();
    let ep = net.endpoint("victim").await.unwrap();
    let info = ep.info().await.unwrap();
    assert!(info.sandbox_id.is_none(), "the interrupted join was rolled back");
    let sb = ctrl.sandbox("crash-container").await.unwrap();
    let left = cnm_tests::settled_links_in(&sb.namespace().unwrap(), &["lo"]).await;
    assert_eq!(left, vec!["lo".to_string()], "nothing left in the sandbox");

    // The endpoint can join for real now, and packets flow.
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    assert_ping(&sb.namespace().unwrap(), "10.77.0.1".parse().unwrap()).await;
    ep.leave(&sb).await.unwrap();
    ep.delete().await.unwrap();
    sb.delete().await.unwrap();
    assert!(h.netns_files().is_empty(), "no leaked namespace: {:?}", h.netns_files());
    // The address is free again.
    let again = net
        .create_endpoint("again", EndpointConfig { ipv4: Some("10.77.0.50".parse().unwrap()), ..Default::default() })
        .await
        .unwrap();
    again.delete().await.unwrap();
    net.delete().await.unwrap();
    assert_eq!(h.settled_links(&["lo"]).await, vec!["lo".to_string()]);
}

/// A driver that is down when the controller starts does not stop the start:
/// its network is listed, using it fails clearly while the driver is down,
/// and once it is back the network is replayed to it on first use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_down_at_start_is_restored_on_next_use() {
    use std::sync::atomic::Ordering;
    let Some(h) = TestHost::new("driver_down_at_start_is_restored_on_next_use").await else { return };
    {
        let (ctrl, _) = start_faulty(&h, false).await;
        let net = ctrl.new_network("bridge", "flaky", NetworkConfig::default()).await.unwrap();
        net.create_endpoint("first", EndpointConfig::default()).await.unwrap();
    }
    // The bridge disappears while the controller is away (as after a reboot).
    let bridge: Vec<String> = h.links().await.into_iter().filter(|l| l.starts_with("br-")).collect();
    assert_eq!(bridge.len(), 1);
    h.nl.link_del_by_name(&bridge[0]).await.unwrap();

    let (ctrl, driver) = start_faulty(&h, true).await;
    let net = ctrl.network_by_name("flaky").await.expect("the network is listed while its driver is down");
    let err = net.create_endpoint("second", EndpointConfig::default()).await.unwrap_err();
    assert_eq!(err.kind(), cnm::ErrorKind::Unavailable, "{err}");
    assert!(cnm::chain(&err).contains("the driver is down"), "{err}");

    driver.down.store(false, Ordering::SeqCst);
    let ep = net.create_endpoint("second", EndpointConfig::default()).await.expect("replayed on use");
    assert!(h.links().await.contains(&bridge[0]), "the bridge was re-created by the replay");
    let sb = ctrl.new_sandbox("back", SandboxConfig::default()).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    let gw = net.info().await.unwrap().ipv4[0].gateway.unwrap().addr();
    assert_ping(&sb.namespace().unwrap(), gw).await;
    sb.delete().await.unwrap();
    net.endpoint("first").await.unwrap().delete().await.unwrap();
    net.delete().await.unwrap();
}

/// A controller whose bridge driver can be switched down.
async fn start_faulty(
    h: &TestHost,
    down: bool,
) -> (cnm::Controller, std::sync::Arc<cnm_tests::FaultyDriver<cnm_driver_bridge::BridgeDriver>>) {
    let driver =
        std::sync::Arc::new(cnm_tests::FaultyDriver::new(cnm_driver_bridge::BridgeDriver::new(h.nl.clone()), false));
    driver.down.store(down, std::sync::atomic::Ordering::SeqCst);
    let ctrl = h.builder().driver_arc(driver.clone()).build().await.expect("start controller");
    (ctrl, driver)
}

/// A bridge whose background deletion was cut short (the process died while
/// it was marked for deletion) is deleted when the next driver starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_bridge_deletion_is_finished_at_next_start() {
    let Some(h) = TestHost::new("interrupted_bridge_deletion_is_finished_at_next_start").await else { return };
    let br = h.nl.link_add_bridge("br-dead", None, None, Some("cnm:deleting")).await.unwrap();
    assert_eq!(br.alias.as_deref(), Some("cnm:deleting"));
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "next", NetworkConfig::default()).await.unwrap();
    let links = h.links().await;
    assert!(!links.contains(&"br-dead".to_string()), "swept at the driver's first network: {links:?}");
    net.delete().await.unwrap();
    assert_eq!(h.settled_links(&["lo"]).await, vec!["lo".to_string()]);
}

/// A sandbox whose namespace disappeared while the controller was away (as
/// after a reboot, /run being empty) gets it back at restart, with its
/// endpoint joined again: the same address, and packets flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_sandbox_namespace_is_recreated_at_restart() {
    let Some(h) = TestHost::new("lost_sandbox_namespace_is_recreated_at_restart").await else { return };
    let (key, addr, peer) = {
        let ctrl = h.controller().await;
        let net = ctrl.new_network("bridge", "re", NetworkConfig::default()).await.unwrap();
        let mut out = Vec::new();
        for name in ["lost", "kept"] {
            let ep = net.create_endpoint(name, EndpointConfig::default()).await.unwrap();
            let sb = ctrl.new_sandbox(name, SandboxConfig::default()).await.unwrap();
            ep.join(&sb, JoinOptions::default()).await.unwrap();
            out.push((sb.key().to_path_buf(), ep.info().await.unwrap().ipv4.unwrap()));
        }
        (out[0].0.clone(), out[0].1, out[1].1)
    };
    cnm::osl::Namespace::remove(&key).unwrap();
    assert!(!cnm::osl::Namespace::is_mounted(&key));

    let ctrl = h.controller().await;
    let sb = ctrl.sandbox("lost").await.unwrap();
    assert_eq!(sb.key(), key.as_path());
    assert!(cnm::osl::Namespace::is_mounted(&key), "the namespace is back");
    let ns = sb.namespace().unwrap();
    assert_eq!(links_in(&ns).await, vec!["eth0".to_string(), "lo".to_string()]);
    let ep = ctrl.network_by_name("re").await.unwrap().endpoint("lost").await.unwrap();
    assert_eq!(ep.info().await.unwrap().ipv4, Some(addr), "the same address");
    assert_ping(&ns, peer.addr()).await;
    assert_ping(&ctrl.sandbox("kept").await.unwrap().namespace().unwrap(), addr.addr()).await;
    for sb in ctrl.sandboxes().await {
        sb.delete().await.unwrap();
    }
    ctrl.network_by_name("re").await.unwrap().delete().await.unwrap();
    assert_eq!(h.settled_links(&["lo"]).await, vec!["lo".to_string()]);
}

/// An IPAM that keeps its own state (as a remote one does), shared by the
/// controllers of a test, whose IPv6 address requests can be made to hang.
#[derive(Clone)]
struct KeeperIpam {
    inner: std::sync::Arc<cnm_ipams::DefaultIpam>,
    hang_v6: std::sync::Arc<std::sync::atomic::AtomicBool>,
    asked_v6: std::sync::Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl cnm::ipamapi::Ipam for KeeperIpam {
    async fn default_address_spaces(&self) -> cnm::ipamapi::Result<cnm::ipamapi::AddressSpaces> {
        self.inner.default_address_spaces().await
    }
    async fn request_pool(
        &self,
        req: cnm::ipamapi::RequestPoolRequest,
    ) -> cnm::ipamapi::Result<cnm::ipamapi::RequestPoolResponse> {
        self.inner.request_pool(req).await
    }
    async fn release_pool(&self, req: cnm::ipamapi::ReleasePoolRequest) -> cnm::ipamapi::Result<()> {
        self.inner.release_pool(req).await
    }
    async fn request_address(
        &self,
        req: cnm::ipamapi::RequestAddressRequest,
    ) -> cnm::ipamapi::Result<cnm::ipamapi::RequestAddressResponse> {
        let v6 = req.pool_id.contains(':');
        if v6 && !req.is_gateway() && self.hang_v6.load(std::sync::atomic::Ordering::SeqCst) {
            self.asked_v6.notify_one();
            std::future::pending::<()>().await;
        }
        self.inner.request_address(req).await
    }
    async fn release_address(&self, req: cnm::ipamapi::ReleaseAddressRequest) -> cnm::ipamapi::Result<()> {
        self.inner.release_address(req).await
    }
}

/// With an IPAM that keeps its own state, an address it gave is recorded
/// before the next is asked for: the controller dies while the IPv6 address
/// is being asked for, and the restart releases the IPv4 one it had got
/// (it can be had again), rather than leaking it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_of_an_interrupted_endpoint_are_released_by_an_ipam_that_keeps_state() {
    let test = "addresses_of_an_interrupted_endpoint_are_released_by_an_ipam_that_keeps_state";
    let Some(h) = TestHost::new(test).await else { return };
    let ipam = KeeperIpam {
        inner: std::sync::Arc::new(cnm_ipams::DefaultIpam::default()),
        hang_v6: Default::default(),
        asked_v6: Default::default(),
    };
    let build = |ipam: KeeperIpam| {
        h.builder()
            .ipam("keeper", ipam)
            .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
            .build()
    };
    let cfg = NetworkConfig {
        ipam_driver: "keeper".into(),
        enable_ipv6: true,
        ipv4: vec![cnm::IpamConfig::subnet("10.231.82.0/24".parse().unwrap())],
        ipv6: vec![cnm::IpamConfig::subnet("fd00:231:82::/64".parse().unwrap())],
        ..Default::default()
    };
    let ip: std::net::Ipv4Addr = "10.231.82.7".parse().unwrap();
    let static_ip = move || EndpointConfig { ipv4: Some(ip), ..Default::default() };
    {
        let ctrl = build(ipam.clone()).await.unwrap();
        let net = ctrl.new_network("bridge", "kept", cfg).await.unwrap();
        ipam.hang_v6.store(true, std::sync::atomic::Ordering::SeqCst);
        let asked = ipam.asked_v6.notified();
        let creating = tokio::spawn(async move { net.create_endpoint("e", static_ip()).await });
        asked.await;
        // The process dies here: the operation never finishes.
        creating.abort();
        let _ = creating.await;
        ipam.hang_v6.store(false, std::sync::atomic::Ordering::SeqCst);
    }
    let ctrl = build(ipam.clone()).await.unwrap();
    let net = ctrl.network_by_name("kept").await.unwrap();
    assert!(net.endpoints().await.is_empty(), "the interrupted endpoint is rolled back");
    let ep = net.create_endpoint("e", static_ip()).await.expect("its IPv4 address was released at restart");
    ep.delete().await.unwrap();
    net.delete().await.unwrap();
}
