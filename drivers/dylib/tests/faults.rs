//! The loader against a library that misbehaves (`drivers/dylib/fixture`):
//! another ABI version is refused naming both versions; a panic inside a
//! call becomes an internal error naming the call, and the library keeps
//! working; an answer that is not JSON is a clear error; a call the
//! library does not export is "not implemented"; a call that never returns
//! fails at the client's deadline, and the library keeps answering.

use cnm_driver_dylib::{DriverLibrary, Error, OpenError};
use cnm_driver_remote::ClientConfig;
use cnm_driverapi::abi::LibraryConfig;
use cnm_driverapi::{
    CreateEndpointRequest, CreateNetworkRequest, Driver, EndpointOperInfoRequest, ErrorKind, JoinRequest, LeaveRequest,
};
use std::path::PathBuf;

/// The fixture library (built on demand).
fn fixture() -> PathBuf {
    cnm_tests::cdylib("cnm-dylib-fixture", "cnm_dylib_fixture")
}

// One test: the fixture reads its version from the environment, and a
// library is started once per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_library_is_handled_cleanly() {
    let path = fixture();
    // SAFETY (of the environment change): this test binary has one test, and no other thread reads it.
    unsafe { std::env::set_var("CNM_FIXTURE_ABI", "99") };
    let err = DriverLibrary::open(&path, &LibraryConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Open(OpenError::AbiVersion { found: 99, expected: 1, .. })), "{err}");
    let msg = cnm_driverapi::chain(&err);
    assert!(msg.contains("version 99") && msg.contains("version 1"), "{msg}");
    unsafe { std::env::remove_var("CNM_FIXTURE_ABI") };

    let lib = DriverLibrary::open(&path, &LibraryConfig::default()).expect("the right version loads");
    assert_eq!(lib.name(), "fixture");
    // Long enough for a panic's report (a backtrace symbolized under
    // RUST_BACKTRACE on a loaded machine took more than 300 ms in CI), short
    // enough for the hung call below.
    let config = ClientConfig { timeout: std::time::Duration::from_secs(3), ..ClientConfig::default() };
    let plugin = lib.activate(config).await.expect("activate");
    let driver = plugin.network.expect("a network driver").expect("registered");
    let net = CreateNetworkRequest { network_id: "n1".repeat(32), ..Default::default() };
    driver.create_network(net.clone()).await.expect("CreateNetwork works");

    let ep = CreateEndpointRequest {
        network_id: net.network_id.clone(),
        endpoint_id: "e1".repeat(32),
        ..Default::default()
    };
    let e = driver.create_endpoint(ep).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(cnm_driverapi::chain(&e).contains("panicked in NetworkDriver.CreateEndpoint"), "{e}");
    driver.create_network(net.clone()).await.expect("the library still works after a panic");

    let info = EndpointOperInfoRequest { network_id: net.network_id.clone(), endpoint_id: "e1".repeat(32) };
    let e = driver.endpoint_oper_info(info).await.unwrap_err();
    assert!(cnm_driverapi::chain(&e).contains("EndpointOperInfo"), "names the call: {e}");

    let join = JoinRequest { network_id: net.network_id.clone(), endpoint_id: "e1".repeat(32), ..Default::default() };
    let e = driver.join(join).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotImplemented, "{e}");

    // Leave hangs inside the library: a timeout, like a plugin that stopped answering.
    let leave = LeaveRequest { network_id: net.network_id.clone(), endpoint_id: "e1".repeat(32) };
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), driver.leave(leave))
        .await
        .expect("the client's deadline ends a hung library call")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(cnm_driverapi::chain(&e).contains("Leave"), "names the call: {e}");
    driver.create_network(net).await.expect("the library still answers beside the hung call");
}
