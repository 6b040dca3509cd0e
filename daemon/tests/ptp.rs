//! The example `ptp` driver (examples/ptp), one code base shipped three
//! ways, each used by the daemon with sandboxes pinging through it:
//! compiled in (the daemon's API over a controller that registers it), as
//! a library loaded by `cnmd --driver-dir`, and as a remote plugin on a
//! socket in /run/docker/plugins that `cnmd` finds by name.

mod common;

use cnmd::client::Client;
use cnmd::wire::network::{NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse};
use cnmd::wire::sandbox::{SandboxCreateRequest, SandboxCreateResponse, SandboxResource};
use common::Daemon;
use std::path::PathBuf;
use std::time::Duration;

/// The ptp library (built on demand).
fn library() -> PathBuf {
    cnm_tests::cdylib("cnm-example-ptp", "cnm_example_ptp")
}

/// Through `client`: a network of `driver` on `subnet` (a /24), sandboxes
/// `a` and `b` on it, a ping between them, and everything removed again;
/// the host keeps no ptp link.
async fn ptp_works(client: &Client, host: &cnm::osl::Netlink, driver: &str, subnet: &str) {
    let net = format!("{driver}-net");
    let req = NetworkCreateRequest {
        name: net.clone(),
        driver: driver.to_string(),
        ipam: Some(serde_json::from_value(serde_json::json!({ "Config": [{ "Subnet": subnet }] })).unwrap()),
        ..Default::default()
    };
    let _: NetworkCreateResponse = client.post("/networks/create", &req).await.expect("create a ptp network");
    let mut ips = Vec::new();
    let mut keys = Vec::new();
    for s in ["a", "b"] {
        let req = SandboxCreateRequest { name: format!("{driver}-{s}"), ..Default::default() };
        let _: SandboxCreateResponse = client.post("/sandboxes", &req).await.unwrap();
        let req = NetworkConnectRequest { container: format!("{driver}-{s}"), endpoint_config: None };
        client.post_unit(&format!("/networks/{net}/connect"), &req).await.expect("connect through ptp");
        let sb: SandboxResource = client.get(&format!("/sandboxes/{driver}-{s}")).await.unwrap();
        ips.push(sb.networks[&net].ip_address.clone());
        keys.push(sb.key);
    }
    let a = cnm::osl::Namespace::open(&keys[0]).unwrap();
    let b_ip: std::net::IpAddr = ips[1].parse().unwrap();
    cnm::osl::probe::ping(&a, b_ip, Duration::from_secs(3)).await.unwrap_or_else(|e| panic!("{driver}: a → b: {e}"));
    let links: Vec<String> = host.link_list().await.unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(links.iter().filter(|l| l.starts_with("ptp")).count(), 2, "a host end per endpoint: {links:?}");
    for s in ["a", "b"] {
        client.delete(&format!("/sandboxes/{driver}-{s}")).await.unwrap();
    }
    client.delete(&format!("/networks/{net}")).await.unwrap();
    let links: Vec<String> = host.link_list().await.unwrap().into_iter().map(|l| l.name).collect();
    assert!(!links.iter().any(|l| l.starts_with("ptp")), "host ends removed: {links:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptp_as_a_library() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(library(), dir.path().join("libcnm_example_ptp.so")).unwrap();
    let args = ["--driver-dir", dir.path().to_str().unwrap()];
    let Some(d) = Daemon::start_with_args("ptp_as_a_library", &args).await else { return };
    ptp_works(&d.client(), &d.host.nl, "ptp", "10.231.40.0/24").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptp_as_a_remote_plugin() {
    // The plugin socket goes in /run/docker/plugins, which only real root may write.
    if !cnm_tests::real_root("ptp_as_a_remote_plugin") {
        return;
    }
    let Some(d) = Daemon::start("ptp_as_a_remote_plugin").await else { return };
    let name = format!("cnm-test-ptp-{}", std::process::id());
    let plugins = std::path::Path::new(cnm_driver_remote::DEFAULT_SOCKET_DIR);
    std::fs::create_dir_all(plugins).unwrap();
    let sock = plugins.join(format!("{name}.sock"));
    let _ = std::fs::remove_file(&sock);
    let ctx = cnm_driver_sdk::Context { host_namespace: Some(d.host.ns_path()) };
    let exported = cnm_example_ptp::plugin(ctx).await.unwrap();
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let server = tokio::spawn(exported.plugin_server().serve(listener));
    ptp_works(&d.client(), &d.host.nl, &name, "10.231.41.0/24").await;
    server.abort();
    let _ = std::fs::remove_file(&sock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptp_compiled_in() {
    let Some(host) = cnm_tests::TestHost::new("ptp_compiled_in").await else { return };
    let ctrl = host
        .builder()
        // A shared driver that needs the host's netlink (`driver_arc_on_host`).
        .driver_arc_on_host(|h| std::sync::Arc::new(cnm_example_ptp::PtpDriver::new(h.clone())))
        .build()
        .await
        .expect("controller");
    let state = cnmd::api::ApiState::new(ctrl, cnmd::api::DaemonFacts::default());
    let addr = cnmd::listen::ListenAddr::Unix(host.dir.path().join("api.sock"));
    let listener = cnmd::listen::Listener::bind(&addr).await.unwrap();
    let inflight = state.inflight.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cnmd::server::serve(vec![listener], cnmd::server::router(state), inflight, async {
        let _ = stopped.await;
    }));
    ptp_works(&Client::new(addr), &host.nl, "ptp", "10.231.42.0/24").await;
    let _ = stop.send(());
    let _ = server.await;
}
