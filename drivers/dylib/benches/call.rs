#![allow(missing_docs)] // criterion's macros generate undocumented functions
//! The cost of one driver call (`DeleteNetwork`, which the fixture's driver
//! answers at once) three ways: the driver in process, the same driver as
//! a loaded library, and as a remote plugin on a unix socket. Target: the
//! library adds at most 5 µs per call over in process.
//!
//! Run: `cargo bench -p cnm-driver-dylib --bench call`.

use cnm_driver_remote::{ClientConfig, Discovery, PluginProvider};
use cnm_driverapi::abi::LibraryConfig;
use cnm_driverapi::{DeleteNetworkRequest, Driver, DriverProvider};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

fn fixture() -> std::path::PathBuf {
    cnm_tests::cdylib("cnm-dylib-fixture", "cnm_dylib_fixture")
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let req = || DeleteNetworkRequest { network_id: "n".repeat(64) };

    let direct: Arc<dyn Driver> = Arc::new(cnm_dylib_fixture::FixtureDriver);
    c.bench_function("in process", |b| b.to_async(&rt).iter(|| async { direct.delete_network(req()).await.unwrap() }));

    let path = fixture();
    let lib = cnm_driver_dylib::DriverLibrary::open(&path, &LibraryConfig::default()).unwrap();
    let dylib = rt.block_on(lib.activate(ClientConfig::default())).unwrap().network.unwrap().unwrap();
    c.bench_function("library", |b| b.to_async(&rt).iter(|| async { dylib.delete_network(req()).await.unwrap() }));

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fixture.sock");
    let remote: Arc<dyn Driver> = rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        tokio::spawn(cnm_driver_remote::serve(listener, Arc::new(cnm_dylib_fixture::FixtureDriver)));
        let provider = PluginProvider::new(Discovery::in_dir(dir.path()));
        provider.network_driver("fixture").await.unwrap().unwrap()
    });
    c.bench_function("remote plugin", |b| {
        b.to_async(&rt).iter(|| async { remote.delete_network(req()).await.unwrap() })
    });
}

criterion_group!(benches, calls);
criterion_main!(benches);
