//! The behaviour suite (`cnm-driver-suite`) against every driver there is:
//! bridge, host, null, the remote driver (our bridge behind our plugin
//! server), the example ptp driver compiled in, and the same driver loaded
//! as a library. Each runs in a scratch host of its own.

use cnm_driver_suite::{ScratchHost, check_driver};
use cnm_driverapi::{Driver, DriverProvider};
use std::sync::Arc;

async fn host(test: &str) -> Option<ScratchHost> {
    if !cnm_tests::privileged(test) {
        return None;
    }
    Some(ScratchHost::new().await.expect("scratch host"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_passes_the_suite() {
    let Some(h) = host("bridge_passes_the_suite").await else { return };
    let d = Arc::new(cnm_driver_bridge::BridgeDriver::new(h.netlink().clone()));
    check_driver(d, &h).await.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_null_pass_the_suite() {
    let Some(h) = host("host_and_null_pass_the_suite").await else { return };
    check_driver(Arc::new(cnm_driver_host::HostDriver::new()), &h).await.assert_passed();
    check_driver(Arc::new(cnm_driver_null::NullDriver::new()), &h).await.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_bridge_passes_the_suite() {
    let Some(h) = host("remote_bridge_passes_the_suite").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::UnixListener::bind(dir.path().join("suite-bridge.sock")).unwrap();
    let served = Arc::new(cnm_driver_bridge::BridgeDriver::new(h.netlink().clone()));
    let server = tokio::spawn(cnm_driver_remote::serve(listener, served));
    let provider = cnm_driver_remote::PluginProvider::new(cnm_driver_remote::Discovery::in_dir(dir.path()));
    let d: Arc<dyn Driver> = provider.network_driver("suite-bridge").await.unwrap().expect("the plugin is found");
    check_driver(d, &h).await.assert_passed();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptp_compiled_in_passes_the_suite() {
    let Some(h) = host("ptp_compiled_in_passes_the_suite").await else { return };
    let d = Arc::new(cnm_example_ptp::PtpDriver::new(h.netlink().clone()));
    check_driver(d, &h).await.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptp_library_passes_the_suite() {
    let Some(h) = host("ptp_library_passes_the_suite").await else { return };
    let lib = cnm_tests::cdylib("cnm-example-ptp", "cnm_example_ptp");
    let config = cnm_driverapi::abi::LibraryConfig { host_namespace: Some(h.path().display().to_string()) };
    let loaded = cnm_driver_dylib::DriverLibrary::open(&lib, &config).expect("load the ptp library");
    let plugin = loaded.activate(cnm_driver_remote::ClientConfig::default()).await.unwrap();
    let d: Arc<dyn Driver> = plugin.network.expect("a network driver").expect("registered");
    check_driver(d, &h).await.assert_passed();
}

/// A driver that breaks the contract: its join names an interface that
/// does not exist, and an unknown network is an internal error to it.
#[derive(Debug)]
struct Broken;

#[cnm_driverapi::async_trait]
impl Driver for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn capability(&self) -> cnm_driverapi::Capability {
        cnm_driverapi::Capability::local()
    }
    async fn create_network(&self, _: cnm_driverapi::CreateNetworkRequest) -> cnm_driverapi::Result<()> {
        Ok(())
    }
    async fn delete_network(&self, _: cnm_driverapi::DeleteNetworkRequest) -> cnm_driverapi::Result<()> {
        Err(cnm_driverapi::Error::internal("no such network"))
    }
    async fn create_endpoint(
        &self,
        _: cnm_driverapi::CreateEndpointRequest,
    ) -> cnm_driverapi::Result<cnm_driverapi::CreateEndpointResponse> {
        Ok(Default::default())
    }
    async fn delete_endpoint(&self, _: cnm_driverapi::DeleteEndpointRequest) -> cnm_driverapi::Result<()> {
        Ok(())
    }
    async fn join(&self, _: cnm_driverapi::JoinRequest) -> cnm_driverapi::Result<cnm_driverapi::JoinResponse> {
        Ok(cnm_driverapi::JoinResponse {
            interface_name: Some(cnm_driverapi::InterfaceName { src_name: "nope0".into(), dst_prefix: "eth".into() }),
            ..Default::default()
        })
    }
    async fn leave(&self, _: cnm_driverapi::LeaveRequest) -> cnm_driverapi::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_driver_fails_the_suite() {
    let Some(h) = host("a_broken_driver_fails_the_suite").await else { return };
    let report = check_driver(Arc::new(Broken), &h).await;
    let failed: Vec<&str> = report
        .cases
        .iter()
        .filter(|(_, o)| matches!(o, cnm_driver_suite::Outcome::Failed(_)))
        .map(|(n, _)| *n)
        .collect();
    assert!(failed.contains(&"join and leave"), "{report:?}");
    assert!(failed.contains(&"unknown network and endpoint"), "{report:?}");
    assert!(failed.contains(&"network lifecycle and re-creation"), "{report:?}");
}

/// The IPAM part of the suite: Docker's default IPAM in process, behind our
/// plugin server, and loaded from a library (the dylib fixture serves it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ipam_passes_the_suite_three_ways() {
    use cnm_driver_suite::check_ipam;
    use cnm_ipamapi::{Ipam, IpamProvider};
    let direct = Arc::new(cnm_ipams::DefaultIpam::new(Default::default()));
    check_ipam("default", direct).await.assert_passed();

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::UnixListener::bind(dir.path().join("suite-ipam.sock")).unwrap();
    let server = tokio::spawn(cnm_driver_remote::serve_ipam(
        listener,
        Arc::new(cnm_ipams::DefaultIpam::new(Default::default())),
    ));
    let provider = cnm_driver_remote::PluginProvider::new(cnm_driver_remote::Discovery::in_dir(dir.path()));
    let remote: Arc<dyn Ipam> = provider.ipam_driver("suite-ipam").await.unwrap().expect("the plugin is found");
    check_ipam("remote default", remote).await.assert_passed();
    server.abort();

    let lib = cnm_tests::cdylib("cnm-dylib-fixture", "cnm_dylib_fixture");
    let loaded = cnm_driver_dylib::DriverLibrary::open(&lib, &Default::default()).expect("load the fixture library");
    let plugin = loaded.activate(cnm_driver_remote::ClientConfig::default()).await.unwrap();
    let from_lib: Arc<dyn Ipam> = plugin.ipam.expect("an IPAM").expect("registered");
    check_ipam("library default", from_lib).await.assert_passed();
}
