//! Benchmarks of the default IPAM through the `Ipam` trait: filling pools,
//! churn in a half-full /16, and 100k addresses in an IPv6 /64.

use cnm_ipamapi::{Ipam, LOCAL_DEFAULT, ReleaseAddressRequest, RequestAddressRequest, RequestPoolRequest};
use cnm_ipams::{AddressPool, DefaultIpam, DefaultIpamConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_main};
use std::collections::{BTreeMap, VecDeque};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};

/// A current-thread runtime for driving the async calls.
fn runtime() -> Runtime {
    Builder::new_current_thread().build().expect("tokio runtime")
}

/// A fresh IPAM with `pool` allocated; returns the IPAM and the pool id.
fn with_pool(rt: &Runtime, pool: &str) -> (DefaultIpam, String) {
    let ipam = DefaultIpam::new(DefaultIpamConfig::default());
    let req = RequestPoolRequest {
        address_space: LOCAL_DEFAULT.to_string(),
        pool: Some(pool.parse().expect("bench pool")),
        sub_pool: None,
        options: BTreeMap::new(),
        v6: pool.contains(':'),
    };
    let id = rt.block_on(ipam.request_pool(req)).expect("pool").pool_id;
    (ipam, id)
}

/// Requests `count` addresses one call at a time.
async fn fill(ipam: &DefaultIpam, id: &str, count: u64) -> Option<IpAddr> {
    let mut last = None;
    for _ in 0..count {
        let req = RequestAddressRequest { pool_id: id.to_string(), address: None, options: None };
        last = Some(ipam.request_address(req).await.expect("free address").address.addr());
    }
    last
}

/// Fills a whole IPv4 pool of each size.
fn fill_v4(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("fill_v4");
    for (prefix, samples, secs) in [(24u8, 100, 3), (16, 50, 5), (8, 10, 20)] {
        let count = (1u64 << (32 - prefix)) - 2;
        group.sample_size(samples);
        group.measurement_time(Duration::from_secs(secs));
        group.throughput(Throughput::Elements(count));
        let pool = format!("10.0.0.0/{prefix}");
        group.bench_function(prefix.to_string(), |b| {
            b.iter_batched(
                || with_pool(&rt, &pool),
                |(ipam, id)| {
                    black_box(rt.block_on(fill(&ipam, &id, count)));
                    ipam
                },
                BatchSize::PerIteration,
            )
        });
        if prefix == 8 {
            let (ipam, id) = with_pool(&rt, &pool);
            rt.block_on(fill(&ipam, &id, count));
            eprintln!("full /8 allocator memory: {} bytes", ipam.memory_bytes());
        }
    }
    group.finish();
}

/// Fills a /16 through `AddressPool` directly: the allocator without the trait's overhead.
fn fill_raw(c: &mut Criterion) {
    let pool: ipnet::IpNet = "10.0.0.0/16".parse().expect("bench pool");
    let mut group = c.benchmark_group("fill_v4_raw");
    group.throughput(Throughput::Elements(65_534));
    group.bench_function("16", |b| {
        b.iter_batched(
            || AddressPool::new(pool, None).expect("pool"),
            |mut p| {
                for _ in 0..65_534 {
                    black_box(p.allocate_next().expect("free address"));
                }
                p
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Releases the oldest address and requests a new one in a half-full /16.
fn churn(c: &mut Criterion) {
    let rt = runtime();
    let (ipam, id) = with_pool(&rt, "10.0.0.0/16");
    let mut held: VecDeque<IpAddr> = VecDeque::new();
    rt.block_on(async {
        for _ in 0..32_767 {
            let req = RequestAddressRequest { pool_id: id.clone(), address: None, options: None };
            held.push_back(ipam.request_address(req).await.expect("free").address.addr());
        }
    });
    c.bench_function("churn", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let Some(old) = held.pop_front() else { break };
                    let rel = ReleaseAddressRequest { pool_id: id.clone(), address: old };
                    ipam.release_address(rel).await.expect("release");
                    let req = RequestAddressRequest { pool_id: id.clone(), address: None, options: None };
                    held.push_back(ipam.request_address(req).await.expect("free").address.addr());
                }
                start.elapsed()
            })
        })
    });
}

/// Requests 100k addresses in a fresh IPv6 /64.
fn fill_v6(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("fill_v6_64_100k");
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(20);
    group.bench_function("fd00::/64", |b| {
        b.iter_batched(
            || with_pool(&rt, "fd00::/64"),
            |(ipam, id)| {
                black_box(rt.block_on(fill(&ipam, &id, 100_000)));
                ipam
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The benchmark group (its generated function carries no doc).
#[allow(missing_docs)]
mod group {
    use super::{churn, fill_raw, fill_v4, fill_v6};
    criterion::criterion_group!(benches, fill_v4, fill_raw, churn, fill_v6);
}

criterion_main!(group::benches);
