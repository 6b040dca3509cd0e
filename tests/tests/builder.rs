//! The builder: nothing is registered behind the caller's back, and two
//! registrations under one name are refused rather than one silently lost.

use cnm::{Controller, NetworkConfig};
use cnm_driver_host::HostDriver;
use cnm_tests::TestHost;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registrations_under_one_name_are_refused() {
    let Some(h) = TestHost::new("two_registrations_under_one_name_are_refused").await else { return };
    let Err(e) = h.builder().driver(HostDriver::new()).driver(HostDriver::new()).build().await else {
        panic!("refused")
    };
    assert!(matches!(&e, cnm::Error::DuplicateDriver(n) if n == "host"), "{e}");
    assert_eq!(e.kind(), cnm::ErrorKind::InvalidParameter);
    let Err(e) = h.builder().ipam(cnm::ipamapi::DEFAULT_IPAM, cnm_ipams::NullIpam::new()).build().await else {
        panic!("refused")
    };
    assert!(matches!(&e, cnm::Error::DuplicateIpamDriver(n) if n == "default"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_builder_has_no_driver_and_no_ipam() {
    let Some(h) = TestHost::new("a_bare_builder_has_no_driver_and_no_ipam").await else { return };
    let ctrl = Controller::builder(h.config()).driver(HostDriver::new()).build().await.expect("start");
    assert_eq!(ctrl.drivers(), vec!["host".to_string()]);
    assert!(ctrl.ipam_drivers().is_empty());
    let Err(e) = ctrl.new_network("null", "n", NetworkConfig::default()).await else { panic!("no null driver") };
    assert!(matches!(e, cnm::Error::InvalidDriver { .. }), "{e}");
    let Err(e) = ctrl.new_network("host", "h", NetworkConfig::default()).await else { panic!("no default IPAM") };
    assert!(matches!(e, cnm::Error::InvalidIpamDriver { .. }), "{e}");
}
