//! The behaviour suite (`cnm-driver-suite`) against every driver there is,
//! each in a scratch host of its own: bridge, host, null, macvlan, ipvlan
//! (in the second kernel) and
//! overlay (two hosts, a real etcd) compiled in; the example ptp driver
//! compiled in and loaded as a library; the bridge served as a remote
//! plugin. Cases follow what each declares; the declared abilities are
//! proved by packets. Controls: a driver that breaks the contract, and
//! drivers declaring more than they do, fail the cases that probe it.

use cnm::osl::{Netlink, VethSpec};
use cnm_driver_suite::{Declared, ScratchHost, Suite};
use cnm_driverapi::{Driver, DriverProvider};
use std::sync::Arc;

async fn host(test: &str) -> Option<ScratchHost> {
    if !cnm_tests::privileged(test) {
        return None;
    }
    Some(ScratchHost::new().await.expect("scratch host"))
}

const BRIDGE_OPTIONS: &str = "com.docker.network.bridge.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_passes_the_suite() {
    let Some(h) = host("bridge_passes_the_suite").await else { return };
    let nl = h.netlink().clone();
    let d = Arc::new(cnm_driver_bridge::BridgeDriver::new(nl.clone()));
    let report = Suite::new(d, &h)
        .declare(Declared::bridge_like(BRIDGE_OPTIONS))
        .restart_with(move || Arc::new(cnm_driver_bridge::BridgeDriver::new(nl.clone())))
        .run()
        .await;
    report.assert_passed();
    assert!(report.passed_cases().contains(&"restart and replay"), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_null_pass_the_suite() {
    let Some(h) = host("host_and_null_pass_the_suite").await else { return };
    for d in
        [Arc::new(cnm_driver_host::HostDriver::new()) as Arc<dyn Driver>, Arc::new(cnm_driver_null::NullDriver::new())]
    {
        let again = d.clone();
        Suite::new(d, &h)
            .declare(Declared::no_interface())
            .restart_with(move || again.clone())
            .run()
            .await
            .assert_passed();
    }
}

/// A LAN for macvlan: the scratch host's `lan0` is a veth whose peer is in
/// a namespace of its own holding the suite's gateway address (.1): the
/// router a macvlan network's containers reach.
async fn lan(h: &ScratchHost) -> cnm::osl::Namespace {
    let path = h.dir().join("lan.netns");
    let (ns, lan) = Netlink::create_namespace(&path, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
    let spec =
        VethSpec { name: "lan0", peer_name: "router0", peer_namespace: Some(&ns), up: true, ..Default::default() };
    h.netlink().link_create_veth(&spec).await.unwrap();
    let router = lan.link_get("router0").await.unwrap().unwrap();
    lan.addr_add(router.index, "10.236.0.1/24".parse().unwrap()).await.unwrap();
    lan.link_set_up(router.index).await.unwrap();
    ns
}

fn macvlan_declared() -> Declared {
    Declared::routed().with_option("parent", "lan0").with_option_prefix("macvlan_")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macvlan_passes_the_suite() {
    let Some(h) = host("macvlan_passes_the_suite").await else { return };
    let _lan = lan(&h).await;
    let nl = h.netlink().clone();
    let d = Arc::new(cnm_driver_macvlan::MacvlanDriver::new(nl.clone()));
    let report = Suite::new(d, &h)
        .declare(macvlan_declared())
        .restart_with(move || Arc::new(cnm_driver_macvlan::MacvlanDriver::new(nl.clone())))
        .run()
        .await;
    cnm::osl::Namespace::remove(h.dir().join("lan.netns")).unwrap();
    report.assert_passed();
}

/// ipvlan (`l2`, the default) on the same LAN. This VM's kernel may lack
/// ipvlan: the suite runs where the kernel has it, and
/// `ipvlan_in_the_second_kernel` runs it in Debian's stock kernel, which
/// has it (the error of a kernel without it is `drivers/ipvlan`'s test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipvlan_passes_the_suite() {
    let Some(h) = host("ipvlan_passes_the_suite").await else { return };
    if !cnm_tests::kernel::has(cnm_tests::kernel::Feature::Ipvlan).await {
        return;
    }
    let _lan = lan(&h).await;
    let nl = h.netlink().clone();
    let d = Arc::new(cnm_driver_ipvlan::IpvlanDriver::new(nl.clone()));
    let report = Suite::new(d, &h)
        .declare(Declared::routed().with_option("parent", "lan0").with_option_prefix("ipvlan_"))
        .restart_with(move || Arc::new(cnm_driver_ipvlan::IpvlanDriver::new(nl.clone())))
        .run()
        .await;
    cnm::osl::Namespace::remove(h.dir().join("lan.netns")).unwrap();
    report.assert_passed();
}

#[test]
fn ipvlan_in_the_second_kernel() {
    cnm_tests::kernel::run_in_second_kernel("ipvlan_in_the_second_kernel", &["ipvlan_passes_the_suite"]);
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
    Suite::new(d, &h).declare(Declared::bridge_like(BRIDGE_OPTIONS)).run().await.assert_passed();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptp_compiled_in_passes_the_suite() {
    let Some(h) = host("ptp_compiled_in_passes_the_suite").await else { return };
    let nl = h.netlink().clone();
    let d = Arc::new(cnm_example_ptp::PtpDriver::new(nl.clone()));
    Suite::new(d, &h)
        .declare(Declared::routed())
        .restart_with(move || Arc::new(cnm_example_ptp::PtpDriver::new(nl.clone())))
        .run()
        .await
        .assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptp_library_passes_the_suite() {
    let Some(h) = host("ptp_library_passes_the_suite").await else { return };
    let lib = cnm_tests::cdylib("cnm-example-ptp", "cnm_example_ptp");
    let config = cnm_driverapi::abi::LibraryConfig { host_namespace: Some(h.path().display().to_string()) };
    let loaded = cnm_driver_dylib::DriverLibrary::open(&lib, &config).expect("load the ptp library");
    let plugin = loaded.activate(cnm_driver_remote::ClientConfig::default()).await.unwrap();
    let d: Arc<dyn Driver> = plugin.network.expect("a network driver").expect("registered");
    Suite::new(d, &h).declare(Declared::routed()).run().await.assert_passed();
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
    let report = Suite::new(Arc::new(Broken), &h).declare(Declared::routed()).run().await;
    let failed = report.failed();
    assert!(failed.contains(&"join proved by packets, and leave"), "{report:?}");
    assert!(failed.contains(&"unknown network and endpoint"), "{report:?}");
    assert!(failed.contains(&"network lifecycle and re-creation"), "{report:?}");
}

/// Controls for the packet probes: a driver declaring more than it does
/// fails the case that probes it. Null declaring connectivity fails the
/// join; macvlan declaring published ports fails external connectivity;
/// the bridge declaring that it refuses a key it does not know, under a
/// prefix that is not its own, fails the options case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_declaring_more_than_they_do_fail_the_suite() {
    let Some(h) = host("drivers_declaring_more_than_they_do_fail_the_suite").await else { return };
    let null = Suite::new(Arc::new(cnm_driver_null::NullDriver::new()), &h)
        .declare(Declared { interface: false, stateless: true, ..Declared::routed() })
        .run()
        .await;
    assert_eq!(null.failed(), ["join proved by packets, and leave"], "{null:?}");

    let _lan = lan(&h).await;
    let macvlan = Suite::new(Arc::new(cnm_driver_macvlan::MacvlanDriver::new(h.netlink().clone())), &h)
        .declare(Declared { publishes_ports: true, ..macvlan_declared() })
        .run()
        .await;
    cnm::osl::Namespace::remove(h.dir().join("lan.netns")).unwrap();
    assert_eq!(macvlan.failed(), ["external connectivity observed"], "{macvlan:?}");

    let bridge = Suite::new(Arc::new(cnm_driver_bridge::BridgeDriver::new(h.netlink().clone())), &h)
        .declare(Declared::bridge_like("com.example.not-the-bridge."))
        .run()
        .await;
    assert_eq!(bridge.failed(), ["options: foreign kept, unknown own refused by name"], "{bridge:?}");
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

/// The overlay driver on two scratch hosts linked by an underlay veth
/// (192.168.232.1 and .2), sharing state through a real etcd: the second
/// sandbox of every case is on the other host, so "between sandboxes" is
/// VXLAN across the underlay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_across_two_hosts_passes_the_suite() {
    let test = "overlay_across_two_hosts_passes_the_suite";
    if !cnm_tests::privileged(test)
        || !cnm_tests::tools(test, &["etcd"], "etcd-server")
        || !cnm_tests::tools(test, &["openssl"], "openssl")
    {
        return;
    }
    let etcd = cnm_tests::etcd::Etcd::start().await;
    let (h1, h2) = (ScratchHost::new().await.unwrap(), ScratchHost::new().await.unwrap());
    let spec = VethSpec {
        name: "ul0",
        peer_name: "ul0",
        peer_namespace: Some(h2.namespace()),
        up: true,
        ..Default::default()
    };
    let ul1 = h1.netlink().link_create_veth(&spec).await.unwrap();
    h1.netlink().addr_add(ul1.index, "192.168.232.1/24".parse().unwrap()).await.unwrap();
    let ul2 = h2.netlink().link_get("ul0").await.unwrap().unwrap();
    h2.netlink().addr_add(ul2.index, "192.168.232.2/24".parse().unwrap()).await.unwrap();
    h2.netlink().link_set_up(ul2.index).await.unwrap();

    let member = |h: &ScratchHost, advertise: [u8; 4]| {
        let config = etcd.member("/cnm-suite", advertise.into());
        let overlay = cnm_driver_overlay::OverlayConfig { netns_dir: h.dir().join("overlay"), ..Default::default() };
        (config, overlay, h.netlink().clone())
    };
    let (c1, o1, nl1) = member(&h1, [192, 168, 232, 1]);
    let (c2, o2, nl2) = member(&h2, [192, 168, 232, 2]);
    let cluster1 = cnm_cluster::Cluster::connect(c1).await.unwrap();
    let cluster2 = cnm_cluster::Cluster::connect(c2).await.unwrap();
    let d1 = Arc::new(cnm_driver_overlay::OverlayDriver::new(nl1.clone(), cluster1.clone(), o1.clone()));
    let d2 = Arc::new(cnm_driver_overlay::OverlayDriver::new(nl2, cluster2, o2));
    let report = Suite::new(d1, &h1)
        .second_host(d2, &h2)
        .declare(Declared::routed().with_option_prefix("com.docker.network.driver.overlay."))
        .restart_with(move || {
            Arc::new(cnm_driver_overlay::OverlayDriver::new(nl1.clone(), cluster1.clone(), o1.clone()))
        })
        .run()
        .await;
    report.assert_passed();
    assert!(report.passed_cases().contains(&"restart and replay"), "{report:?}");
    drop(etcd);
}
