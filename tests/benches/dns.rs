//! Embedded DNS benchmark (a bench binary; root or a user namespace):
//! `cargo bench -p cnm-tests --bench dns`.
//!
//! One bridge network in a scratch host with two sandboxes; the asker looks
//! the other up by container name at 127.0.0.11, from inside its namespace.
//! * sequential latency: one query at a time, median and p99 (target ≤ 50 µs median);
//! * throughput: one client thread keeping a window of queries in flight,
//!   bounded in count and time (target ≥ 150 000 queries/s);
//! * memory: resident memory added per running sandbox server (200 servers).

use cnm::{Controller, EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_dns::proto::rr::RecordType;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const SEQUENTIAL: usize = 20_000;
const THROUGHPUT: usize = 400_000;
const WINDOW: usize = 64;
const TIME_LIMIT: Duration = Duration::from_secs(10);
const SERVERS: usize = 200;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Queries for `name` with ids 0..=65535 in turn (ids tell answers apart).
fn queries(name: &str) -> Vec<Vec<u8>> {
    (0..=u16::MAX).map(|id| cnm_dns::query_bytes(id, name, RecordType::A, false)).collect()
}

fn sequential(qs: &[Vec<u8>]) -> std::io::Result<Vec<Duration>> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(cnm_dns::RESOLVER_ADDR)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 1500];
    let mut times = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let start = Instant::now();
        s.send(&qs[i % qs.len()])?;
        let n = s.recv(&mut buf)?;
        times.push(start.elapsed());
        assert!(n > 12 && buf[3] & 0x0f == 0 && buf[7] == 1, "one answer");
    }
    Ok(times)
}

fn throughput(qs: &[Vec<u8>]) -> std::io::Result<(usize, usize, Duration)> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(cnm_dns::RESOLVER_ADDR)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    let (mut sent, mut answered, mut lost) = (0usize, 0usize, 0usize);
    while sent < WINDOW {
        s.send(&qs[sent % qs.len()])?;
        sent += 1;
    }
    while answered + lost < sent {
        match s.recv(&mut buf) {
            Ok(_) => answered += 1,
            // A lost query or answer: count it and keep the window full.
            Err(_) => lost += 1,
        }
        if sent < THROUGHPUT && start.elapsed() < TIME_LIMIT {
            s.send(&qs[sent % qs.len()])?;
            sent += 1;
        }
    }
    Ok((answered, lost, start.elapsed()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let Some(h) = cnm_tests::TestHost::new("dns benchmark").await else { return };
    let ctrl = cnm_tests::with_defaults(Controller::builder(h.config().embedded_dns(true)))
        .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
        .build()
        .await
        .expect("controller");
    let net = ctrl.new_network("bridge", "bench", NetworkConfig::default()).await.unwrap();
    let mut sandboxes = Vec::new();
    for name in ["asker", "target"] {
        let ep = net.create_endpoint(name, EndpointConfig::default()).await.unwrap();
        let sb = ctrl.new_sandbox(name, SandboxConfig::default()).await.unwrap();
        ep.join(&sb, JoinOptions::default()).await.unwrap();
        sandboxes.push(sb);
    }
    let ns = sandboxes[0].namespace().unwrap();
    let qs = std::sync::Arc::new(queries("target"));

    let q = qs.clone();
    let mut times = ns.run(move || sequential(&q)).await.unwrap().expect("sequential queries");
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "sequential: {SEQUENTIAL} queries, median {:.1} µs, p99 {:.1} µs (target <= 50 µs median)",
        us(times[times.len() / 2]),
        us(times[times.len() * 99 / 100])
    );

    let q = qs.clone();
    let (answered, lost, took) = ns.run(move || throughput(&q)).await.unwrap().expect("throughput");
    println!(
        "throughput: {answered} answers in {:.2} s, {:.0} queries/s, {lost} lost (window {WINDOW}; target >= 150000/s)",
        took.as_secs_f64(),
        answered as f64 / took.as_secs_f64()
    );

    // Memory: servers on fresh namespaces, sharing one resolver whose records
    // name each of them (so each can be asked for its own name).
    let resolver = cnm_dns::Resolver::new();
    resolver.update(cnm_dns::Records::new((0..SERVERS).map(|i| cnm_dns::Entry {
        network_id: "mem".into(),
        network_name: "mem".into(),
        sandbox_id: format!("s{i}"),
        names: vec![format!("s{i}")],
        addrs: vec![std::net::IpAddr::from([10, 99, (i / 250) as u8, (i % 250 + 1) as u8])],
    })));
    let dir = h.dir.path().join("dns-mem");
    let mut namespaces = Vec::new();
    for i in 0..SERVERS {
        let (ns, nl) =
            cnm::osl::Netlink::create_namespace(dir.join(format!("ns{i}")), cnm::osl::DEFAULT_DEADLINE).await.unwrap();
        nl.link_set_up(1).await.unwrap();
        namespaces.push(ns);
    }
    let before = rss_kib();
    let mut servers = Vec::new();
    for (i, ns) in namespaces.iter().enumerate() {
        let upstreams = ["10.255.0.53".parse().unwrap()];
        servers.push(
            cnm_dns::SandboxServer::start(resolver.clone(), &format!("s{i}"), ns, &h.ns, &upstreams).await.unwrap(),
        );
    }
    // Every server answers once (they are serving, not just spawned).
    for (i, ns) in namespaces.iter().enumerate() {
        let found = cnm_dns::lookup_ipv4(ns, &format!("s{i}"), Duration::from_secs(2)).await.expect("a server answers");
        assert_eq!(found.len(), 1);
    }
    let after = rss_kib();
    println!(
        "memory: {SERVERS} servers added {} KiB resident, {:.1} KiB per sandbox",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / SERVERS as f64
    );
    drop(servers);
    for i in 0..SERVERS {
        let _ = cnm::osl::Namespace::remove(dir.join(format!("ns{i}")));
    }
    for sb in sandboxes {
        sb.delete().await.unwrap();
    }
    for ep in net.endpoints().await {
        ep.delete().await.unwrap();
    }
    net.delete().await.unwrap();
}
