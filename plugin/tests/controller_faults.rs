//! Our controller with a remote driver under faults (privileged: each test
//! gets a scratch host namespace): a failed or hanging plugin call leaves
//! the controller consistent and leaks nothing; a plugin that is down when
//! the controller starts does not delay the start, and its networks are
//! restored when it is back.

mod common;

use cnm::{Controller, EndpointConfig, ErrorKind, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_driver_remote::{ClientConfig, Discovery, PluginProvider, PluginServer, RetryPolicy};
use cnm_driverapi as d;
use common::{Answers, Log, RecordingDriver, RunningPlugin};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn controller(h: &cnm_tests::TestHost, plugins: &Path, config: ClientConfig) -> Controller {
    let provider = Arc::new(PluginProvider::new(Discovery::in_dir(plugins)).client_config(config));
    h.builder().driver_provider(provider.clone()).ipam_provider(provider).build().await.unwrap()
}

fn plugin(dir: &Path, log: &Log) -> (RunningPlugin, Arc<RecordingDriver>) {
    let drv = Arc::new(RecordingDriver::new("p", log.clone(), Answers::Emulate));
    (RunningPlugin::start(&dir.join("p.sock"), PluginServer::new().with_driver(drv.clone())), drv)
}

/// Refused, failing and hanging calls give clear errors (a timeout for the
/// hang) and each operation is undone: no network, endpoint, join or
/// address is left, and the same operation succeeds afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_leave_the_controller_consistent() {
    let Some(h) = cnm_tests::TestHost::new("failed_calls_leave_the_controller_consistent").await else { return };
    let dir = h.dir.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let log = Log::default();
    let (running, drv) = plugin(&dir, &log);
    let config = ClientConfig { timeout: Duration::from_millis(500), retry: RetryPolicy::none() };
    let ctrl = controller(&h, &dir, config).await;
    let subnet = || NetworkConfig::default().with_subnet("10.77.0.0/24".parse().unwrap());

    *drv.fail.lock().unwrap() = Some(("CreateNetwork".into(), d::Error::invalid("bad option x")));
    let e = ctrl.new_network("p", "n", subnet()).await.unwrap_err();
    assert!(cnm::chain(&e).contains("NetworkDriver.CreateNetwork: bad option x"), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidParameter);
    assert!(ctrl.networks().await.is_empty());
    let net = ctrl.new_network("p", "n", subnet()).await.expect("the pool was released");

    let ip = "10.77.0.9".parse().unwrap();
    let static_ip = || EndpointConfig { ipv4: Some(ip), ..Default::default() };
    *drv.fail.lock().unwrap() = Some(("CreateEndpoint".into(), d::Error::internal("no room")));
    let e = net.create_endpoint("e", static_ip()).await.unwrap_err();
    assert!(cnm::chain(&e).contains("no room"), "{e}");
    assert!(net.endpoints().await.is_empty());
    let ep = net.create_endpoint("e", static_ip()).await.expect("the address was released");

    let sb = ctrl.new_sandbox("c", SandboxConfig::default()).await.unwrap();
    *drv.hang.lock().unwrap() = Some("Join".into());
    let start = Instant::now();
    let e = ep.join(&sb, JoinOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    assert_eq!(ep.info().await.unwrap().sandbox_id, None, "not joined");
    *drv.hang.lock().unwrap() = None;
    *drv.fail.lock().unwrap() = Some(("Join".into(), d::Error::internal("join refused")));
    assert!(ep.join(&sb, JoinOptions::default()).await.is_err());
    log.take();
    ep.join(&sb, JoinOptions::default()).await.expect("joins once the plugin behaves");
    // As dockerd: the operational data is asked right after the join.
    assert_eq!(
        log.methods(),
        ["NetworkDriver.Join", "NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.EndpointOperInfo"]
    );

    // The plugin disappears: teardown still completes in the controller,
    // and succeeds (dockerd logs Leave/DeleteEndpoint/DeleteNetwork
    // failures and goes on).
    running.stop().await;
    sb.delete().await.expect("the driver's failures are logged, the removal goes on");
    assert!(net.endpoints().await.is_empty(), "the endpoint is gone from the controller");
    net.delete().await.expect("network removal ignores driver errors");
    assert!(ctrl.networks().await.is_empty());
    assert!(h.netns_files().is_empty(), "no namespace left");
}

/// A plugin that is down when the controller starts (socket gone, or a
/// socket left by a dead process) does not delay the start; the network is
/// restored in the plugin, with its endpoint, on the network's next use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_down_at_start_is_restored_when_back() {
    let Some(h) = cnm_tests::TestHost::new("plugin_down_at_start_is_restored_when_back").await else { return };
    let dir = h.dir.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let log = Log::default();
    let (running, _) = plugin(&dir, &log);
    {
        let ctrl = controller(&h, &dir, ClientConfig::default()).await;
        let net = ctrl.new_network("p", "n", NetworkConfig::default()).await.unwrap();
        net.create_endpoint("e1", EndpointConfig::default()).await.unwrap();
    }
    running.stop().await;
    for stale_socket in [false, true] {
        if stale_socket {
            // A dead plugin's socket: it exists but nobody listens.
            drop(std::os::unix::net::UnixListener::bind(dir.join("p.sock")).unwrap());
        }
        let start = Instant::now();
        // Docker's default client settings: the start must still not wait for retries.
        let ctrl = controller(&h, &dir, ClientConfig::default()).await;
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "start delayed {:?} (stale socket: {stale_socket})",
            start.elapsed()
        );
        assert_eq!(ctrl.networks().await.len(), 1, "the network is still known");
    }
    let _ = std::fs::remove_file(dir.join("p.sock"));

    let log = Log::default();
    let (running, _) = plugin(&dir, &log);
    let ctrl = controller(&h, &dir, ClientConfig::default()).await;
    // This controller found the plugin at start: the network was replayed.
    let replayed = log.methods();
    assert_eq!(replayed, ["NetworkDriver.CreateNetwork", "NetworkDriver.CreateEndpoint"], "restored at start");
    drop(ctrl);
    running.stop().await;

    // Down at start, back later: restored on the next use.
    let ctrl = controller(&h, &dir, ClientConfig::default()).await;
    let log = Log::default();
    let (running, _) = plugin(&dir, &log);
    let net = ctrl.network_by_name("n").await.unwrap();
    net.create_endpoint("e2", EndpointConfig::default()).await.unwrap();
    assert_eq!(
        log.methods(),
        ["NetworkDriver.CreateNetwork", "NetworkDriver.CreateEndpoint", "NetworkDriver.CreateEndpoint"],
        "the network and its endpoint replayed, then the new endpoint"
    );
    for ep in net.endpoints().await {
        ep.delete().await.unwrap();
    }
    net.delete().await.unwrap();
    running.stop().await;
}

/// A plugin that hangs in `CreateNetwork` stalls only that call: while it
/// hangs, listing networks, inspecting them, and a connect on a bridge
/// network (endpoint, sandbox, join, packets) all complete; the hung call
/// then fails cleanly when the plugin goes away, and leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_plugin_stalls_only_its_own_call() {
    let Some(h) = cnm_tests::TestHost::new("a_hung_plugin_stalls_only_its_own_call").await else { return };
    let dir = h.dir.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let log = Log::default();
    let (running, drv) = plugin(&dir, &log);
    // Far longer than the test: only the plugin's going away ends the hang.
    let config = ClientConfig { timeout: Duration::from_secs(120), retry: RetryPolicy::none() };
    let provider = Arc::new(PluginProvider::new(Discovery::in_dir(&dir)).client_config(config));
    let ctrl = h
        .builder()
        .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
        .driver_provider(provider.clone())
        .ipam_provider(provider)
        .build()
        .await
        .unwrap();
    let bridge = ctrl.new_network("bridge", "b", NetworkConfig::default()).await.unwrap();

    *drv.hang.lock().unwrap() = Some("CreateNetwork".into());
    let hung = tokio::spawn({
        let ctrl = ctrl.clone();
        async move { ctrl.new_network("p", "stuck", NetworkConfig::default()).await.map(|_| ()) }
    });
    // Wait (bounded) until the plugin has the request.
    let asked = async {
        while !log.methods().iter().any(|m| m == "NetworkDriver.CreateNetwork") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), asked).await.expect("the plugin received CreateNetwork");

    let names: Vec<String> = ctrl.networks().await.iter().map(|n| n.name().to_string()).collect();
    assert_eq!(names, ["b"], "the network being created is not listed yet");
    assert!(bridge.info().await.is_ok());
    let (a, b) = (
        ctrl.new_sandbox("a", SandboxConfig::default()).await.unwrap(),
        ctrl.new_sandbox("b", SandboxConfig::default()).await.unwrap(),
    );
    for (name, sb) in [("a", &a), ("b", &b)] {
        let ep = bridge.create_endpoint(name, EndpointConfig::default()).await.unwrap();
        ep.join(sb, JoinOptions::default()).await.unwrap();
    }
    let ip_b = bridge.endpoint("b").await.unwrap().info().await.unwrap().ipv4.unwrap().addr();
    cnm_tests::assert_ping(&a.namespace().unwrap(), ip_b).await;
    let e = ctrl.new_network("p", "stuck", NetworkConfig::default()).await.unwrap_err();
    assert!(matches!(e, cnm::Error::NetworkNameExists(_)), "the name is held by the creation under way: {e}");
    assert!(!hung.is_finished(), "everything above completed while the plugin hung");

    running.stop().await;
    let result = tokio::time::timeout(Duration::from_secs(30), hung).await.expect("the hung call ends").unwrap();
    assert!(result.is_err(), "the plugin went away: {result:?}");
    let names: Vec<String> = ctrl.networks().await.iter().map(|n| n.name().to_string()).collect();
    assert_eq!(names, ["b"]);
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    bridge.delete().await.unwrap();
}
