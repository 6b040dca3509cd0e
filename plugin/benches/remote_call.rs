#![allow(missing_docs)] // criterion's macros generate undocumented functions
//! Remote plugin benchmarks (criterion): `cargo bench -p cnm-driver-remote`.
//!
//! - `remote_call/sequential`: one `NetworkDriver.Leave` round trip over a
//!   unix socket (client encode, HTTP, server decode, driver, answer, client
//!   decode), one at a time on a kept-alive connection. Target ≤ 100 µs.
//! - `remote_call/concurrent_8`: eight such calls at once (time per batch).
//! - `attach/{in_process,remote}` (root only: a scratch host namespace):
//!   create endpoint + create sandbox + join through a controller, with the
//!   bridge driver in process and the same driver behind our plugin server.

use async_trait::async_trait;
use cnm::{Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_driver_remote::{ClientConfig, Discovery, PluginProvider, PluginServer};
use cnm_driverapi::{self as d, Driver};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A driver that does nothing: the benchmark measures the protocol.
struct Noop;

#[async_trait]
impl Driver for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn capability(&self) -> d::Capability {
        d::Capability::local()
    }
    async fn create_network(&self, _: d::CreateNetworkRequest) -> d::Result<()> {
        Ok(())
    }
    async fn delete_network(&self, _: d::DeleteNetworkRequest) -> d::Result<()> {
        Ok(())
    }
    async fn create_endpoint(&self, _: d::CreateEndpointRequest) -> d::Result<d::CreateEndpointResponse> {
        Ok(Default::default())
    }
    async fn delete_endpoint(&self, _: d::DeleteEndpointRequest) -> d::Result<()> {
        Ok(())
    }
    async fn join(&self, _: d::JoinRequest) -> d::Result<d::JoinResponse> {
        Ok(Default::default())
    }
    async fn leave(&self, _: d::LeaveRequest) -> d::Result<()> {
        Ok(())
    }
}

fn serve(rt: &tokio::runtime::Runtime, dir: &std::path::Path, name: &str, driver: Arc<dyn Driver>) {
    let path = dir.join(format!("{name}.sock"));
    let _guard = rt.enter();
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    rt.spawn(PluginServer::new().with_driver(driver).serve(listener));
}

fn remote_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    serve(&rt, dir.path(), "noop", Arc::new(Noop));
    let provider = PluginProvider::new(Discovery::in_dir(dir.path())).client_config(ClientConfig::default());
    let drv = rt.block_on(provider.remote_driver("noop")).unwrap().unwrap();
    let req = d::LeaveRequest {
        network_id: "056cb03a0236ebc1eb16c4707f6e5f78da7b69c5017a1f5f3279c18cafe0e234".into(),
        endpoint_id: "c94ac48d9f4e33442bf54673a059b75e842112ea0fb123a12affcc8965dc19c8".into(),
    };
    let mut g = c.benchmark_group("remote_call");
    g.bench_function("sequential", |b| b.to_async(&rt).iter(|| drv.leave(req.clone())));
    g.bench_function("concurrent_8", |b| {
        b.to_async(&rt).iter(|| async {
            let f = || drv.leave(req.clone());
            let r = tokio::join!(f(), f(), f(), f(), f(), f(), f(), f());
            for x in [r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7] {
                x.unwrap();
            }
        })
    });
    g.finish();
}

async fn attach_once(ctrl: &Controller, net: &cnm::Network, i: usize) -> Duration {
    let start = Instant::now();
    let ep = net.create_endpoint(&format!("e{i}"), EndpointConfig::default()).await.unwrap();
    let sb = ctrl.new_sandbox(&format!("c{i}"), SandboxConfig::default()).await.unwrap();
    ep.join(&sb, JoinOptions::default()).await.unwrap();
    let t = start.elapsed();
    sb.delete().await.unwrap();
    t
}

fn attach(c: &mut Criterion) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED attach benchmark: requires root");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(h) = rt.block_on(cnm_tests::TestHost::new("remote attach benchmark")) else { return };
    let plugins = h.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    serve(&rt, &plugins, "rbridge", Arc::new(cnm_driver_bridge::BridgeDriver::new(h.nl.clone())));
    let provider = Arc::new(PluginProvider::new(Discovery::in_dir(&plugins)));
    let ctrl = rt
        .block_on(
            h.builder()
                .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
                .driver_provider(provider)
                .build(),
        )
        .unwrap();
    let mut g = c.benchmark_group("attach");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    for (label, driver, subnet) in [("in_process", "bridge", "10.210.0.0/16"), ("remote", "rbridge", "10.211.0.0/16")] {
        let net = rt
            .block_on(ctrl.new_network(driver, label, NetworkConfig::default().with_subnet(subnet.parse().unwrap())))
            .unwrap();
        let mut i = 0;
        g.bench_function(label, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (ctrl, net) = (ctrl.clone(), net.clone());
                let first = i;
                i += iters as usize;
                async move {
                    let mut total = Duration::ZERO;
                    for k in 0..iters as usize {
                        total += attach_once(&ctrl, &net, first + k).await;
                        // Endpoints are deleted with their sandbox's teardown.
                    }
                    total
                }
            })
        });
        for ep in rt.block_on(net.endpoints()) {
            rt.block_on(ep.delete()).unwrap();
        }
        rt.block_on(net.delete()).unwrap();
    }
    g.finish();
}

criterion_group!(benches, remote_call, attach);
criterion_main!(benches);
