//! Multi-host figures on simulated hosts (the multi-host tests' harness:
//! scratch namespaces on an underlay bridge, a real etcd, one cnmd each):
//!
//! - convergence: from `network connect` on host 2 until a sandbox on host
//!   1 reaches the new sandbox by ping (target ≤ 50 ms median);
//! - attach latency (connect through the API) on an overlay network beside
//!   a bridge network (target ≤ 2× the bridge);
//! - etcd operations per attach (from etcd's own request counters) and
//!   what etcd's write-ahead log fsyncs cost;
//! - iperf3 TCP throughput sandbox to sandbox over the overlay vs host to
//!   host over the underlay (target ≥ 0.85×), when `iperf3` is installed.
//!
//! Needs real root, etcd (etcd-server), nsenter. Run:
//! `cargo bench -p cnmd --features overlay --bench multihost`.

#[path = "../tests/common/mod.rs"]
mod common;

use cnm_tests::eventually;
use common::cluster::{cluster, listed, metric_sum, pings, sandbox_on};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const N: usize = 50;

/// iperf3 runs per path.
const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What etcd has done so far: KV requests handled (Range, Txn, Put,
/// DeleteRange), and its write-ahead log's fsyncs (count, seconds).
#[derive(Clone, Copy)]
struct EtcdWork {
    kv_requests: f64,
    fsyncs: f64,
    fsync_seconds: f64,
}

async fn etcd_work(underlay: &common::cluster::Underlay) -> EtcdWork {
    let m = underlay.etcd_metrics().await;
    EtcdWork {
        kv_requests: metric_sum(&m, "grpc_server_handled_total{", |l| l.contains("etcdserverpb.KV")),
        fsyncs: metric_sum(&m, "etcd_disk_wal_fsync_duration_seconds_count", |_| true),
        fsync_seconds: metric_sum(&m, "etcd_disk_wal_fsync_duration_seconds_sum", |_| true),
    }
}

/// iperf3 from namespace `client` to `server_ip` served in namespace
/// `server` (a 3 s run, the client on CPU 0 and the server on CPU 1, so two
/// runs differ by their path and not by where the scheduler put them); bits
/// per second.
fn iperf(server: &Path, client: &Path, server_ip: IpAddr) -> Option<f64> {
    let mut srv = Command::new("nsenter")
        .arg(format!("--net={}", server.display()))
        .args(["iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("nsenter")
        .arg(format!("--net={}", client.display()))
        .args(["iperf3", "-A", "0,1", "-c", &server_ip.to_string(), "-t", "3", "-J"])
        .output()
        .ok()?;
    let _ = srv.kill();
    let _ = srv.wait();
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["end"]["sum_received"]["bits_per_second"].as_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some((underlay, hosts)) = cluster("bench_multihost", 2).await else {
        eprintln!("skipped: needs real root, etcd and nsenter");
        return;
    };
    let c: Vec<_> = hosts.iter().map(|d| d.client()).collect();
    let ov = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.70.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &ov).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov")).await;
    let br = json!({ "Name": "br", "IPAM": { "Config": [{ "Subnet": "10.231.71.0/24" }] } });
    let _: Value = c[1].post("/networks/create", &br).await.unwrap();
    let (ip1, ns1) = sandbox_on(&c[0], "watcher", "ov").await;

    // Convergence: connect on host 2, then ping from host 1 until it answers.
    let mut converge = Vec::new();
    for i in 0..N {
        let name = format!("c{i}");
        let _: Value = c[1].post("/sandboxes", &json!({ "Name": name })).await.unwrap();
        let start = Instant::now();
        c[1].post_unit("/networks/ov/connect", &json!({ "Container": name })).await.unwrap();
        let sb: Value = c[1].get(&format!("/sandboxes/{name}")).await.unwrap();
        let ip: IpAddr = sb["Networks"]["ov"]["IPAddress"].as_str().unwrap().parse().unwrap();
        loop {
            if cnm::osl::probe::ping(&ns1, ip, Duration::from_millis(5)).await.is_ok() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "c{i} never answered");
        }
        converge.push(start.elapsed());
        c[1].delete(&format!("/sandboxes/{name}")).await.unwrap();
    }
    println!(
        "convergence (connect on host 2 → ping from host 1): median {:.1} ms (target ≤ 50 ms)",
        ms(median(converge))
    );

    // Attach latency, overlay vs bridge, and etcd requests per overlay attach.
    let mut lat = std::collections::BTreeMap::new();
    for net in ["br", "ov"] {
        let mut v = Vec::new();
        let before = etcd_work(&underlay).await;
        for i in 0..N {
            let name = format!("{net}{i}");
            let _: Value = c[1].post("/sandboxes", &json!({ "Name": name })).await.unwrap();
            let start = Instant::now();
            c[1].post_unit(&format!("/networks/{net}/connect"), &json!({ "Container": name })).await.unwrap();
            v.push(start.elapsed());
        }
        let after = etcd_work(&underlay).await;
        let per_attach = (after.kv_requests - before.kv_requests) / N as f64;
        if net == "ov" && after.fsyncs > before.fsyncs {
            println!(
                "etcd's write-ahead log during the overlay attaches: {:.1} fsyncs per attach, {:.2} ms each",
                (after.fsyncs - before.fsyncs) / N as f64,
                (after.fsync_seconds - before.fsync_seconds) * 1e3 / (after.fsyncs - before.fsyncs)
            );
        }
        for i in 0..N {
            c[1].delete(&format!("/sandboxes/{net}{i}")).await.unwrap();
        }
        lat.insert(net, (median(v), per_attach));
    }
    let (br_lat, br_ops) = lat["br"];
    let (ov_lat, ov_ops) = lat["ov"];
    println!(
        "attach: bridge {:.2} ms, overlay {:.2} ms median = {:.2}× (target ≤ 2×)",
        ms(br_lat),
        ms(ov_lat),
        ov_lat.as_secs_f64() / br_lat.as_secs_f64()
    );
    println!("etcd KV requests per attach: overlay {ov_ops:.1}, bridge {br_ops:.1}");

    // Throughput: overlay (sandbox to sandbox) vs underlay (host to host),
    // with GRO on the underlay links as real NICs have it (if ethtool is there).
    let gro = underlay.gro(&hosts[0].host, 1) && underlay.gro(&hosts[1].host, 2);
    println!("underlay GRO: {}", if gro { "on" } else { "off (no ethtool)" });
    let (ip2, _ns2) = sandbox_on(&c[1], "t2", "ov").await;
    eventually("the watcher reaches t2", 5, || pings(&ns1, ip2)).await;
    let sb1: Value = c[0].get("/sandboxes/watcher").await.unwrap();
    let sb2: Value = c[1].get("/sandboxes/t2").await.unwrap();
    let key = |v: &Value| std::path::PathBuf::from(v["Key"].as_str().unwrap());
    // Runs alternate between the two paths, and each overlay run is set
    // against the underlay run beside it, so a machine that is slower for a
    // while slows both sides of a ratio.
    let (mut overlay, mut underlay_bps, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let o = iperf(&key(&sb1), &key(&sb2), ip1);
        let u = iperf(&hosts[0].host.ns_path(), &hosts[1].host.ns_path(), "192.168.231.1".parse().unwrap());
        if let (Some(o), Some(u)) = (o, u) {
            overlay.push(o);
            underlay_bps.push(u);
            ratios.push(o / u);
        }
    }
    let middle = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v.len() == RUNS).then(|| v[RUNS / 2])
    };
    match (middle(overlay), middle(underlay_bps), middle(ratios)) {
        (Some(o), Some(u), Some(r)) => println!(
            "iperf3 TCP, medians of {RUNS} pairs: overlay {:.2} Gbit/s, underlay {:.2} Gbit/s; overlay/underlay {r:.2}× (target ≥ 0.85×)",
            o / 1e9,
            u / 1e9,
        ),
        _ => println!("iperf3 not available, or a run of it failed: throughput not measured"),
    }
}
