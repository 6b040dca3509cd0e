//! How the cluster grows: N simulated hosts (the multi-host tests'
//! harness: scratch namespaces on an underlay bridge, one cnmd each, one
//! etcd over TLS), for N = 2, 5, 10, 20 (`CNM_BENCH_HOSTS=2,5` to choose),
//! with M sandboxes attached per host (`CNM_BENCH_SANDBOXES`, 3). The
//! simulated hosts share this machine's
//! kernel, whose one ARP table serves every namespace (1024 entries by
//! default, `gc_thresh3`): 20 hosts' sandboxes, overlay namespaces and
//! underlay overflow it, which real hosts, each with its own kernel, never
//! would. For the run, the bench raises the table's limits (printing it)
//! and puts the machine's values back when it ends, panic or not. For each N:
//!
//! - an attach on one host → the first answered ping from every other
//!   host (a watcher sandbox on each pings the new one): p50 and p99 over
//!   every (attach, host) pair, and the time until all hosts answered;
//! - etcd's unary requests, request and answer bytes, and watch events
//!   sent, per attach (etcd's own counters; events per host per attach);
//! - cnmd's resident memory per host;
//! - convergence after a host's cnmd restarts (SIGKILL, start: until a
//!   sandbox attached there answers every other host) and after a host cut
//!   off the underlay longer than its lease (until its keys have left the
//!   store) is plugged back (until its sandbox answers every other host
//!   again).
//!
//! Requests per attach must not grow with N. Needs real root, etcd
//! (etcd-server), openssl and nsenter; bounded (each N is torn down before
//! the next). Run: `cargo bench -p cnmd --bench cluster_scale`.

#[path = "../tests/common/mod.rs"]
mod common;

use cnm_tests::eventually;
use common::cluster::{cluster, listed, metric_sum, sandbox_on};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// etcd's counters: unary requests, bytes in and out, watch events sent.
#[derive(Clone, Copy, Default)]
struct Work {
    unary: f64,
    bytes_in: f64,
    bytes_out: f64,
    events: f64,
}

async fn work(underlay: &common::cluster::Underlay) -> Work {
    let m = underlay.etcd_metrics().await;
    Work {
        unary: metric_sum(&m, "grpc_server_handled_total{", |l| l.contains("grpc_type=\"unary\"")),
        bytes_in: metric_sum(&m, "etcd_network_client_grpc_received_bytes_total", |_| true),
        bytes_out: metric_sum(&m, "etcd_network_client_grpc_sent_bytes_total", |_| true),
        events: metric_sum(&m, "etcd_debugging_mvcc_events_total", |_| true),
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// How long until every namespace of `watchers` gets an answer from `ip`
/// (each ping waits 30 ms for its answer: 20 hosts' daemons, etcd and
/// the watchers share two cores here; at most 20 s): each one's time
/// from `start`.
async fn first_answers(watchers: &[cnm::osl::Namespace], ip: IpAddr, start: Instant) -> Result<Vec<Duration>, String> {
    let tasks: Vec<_> = watchers
        .iter()
        .cloned()
        .map(|ns| {
            tokio::spawn(async move {
                loop {
                    if cnm::osl::probe::ping(&ns, ip, Duration::from_millis(30)).await.is_ok() {
                        return Ok(start.elapsed());
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    if start.elapsed() > Duration::from_secs(20) {
                        let name = ns.path().map(|p| p.display().to_string()).unwrap_or_default();
                        return Err(format!("{ip} never answered {name}"));
                    }
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap()?);
    }
    Ok(out)
}

/// The answers, or the daemons' warnings and a panic.
fn answered(hosts: &[common::Daemon], answers: Result<Vec<Duration>, String>) -> Vec<Duration> {
    answers.unwrap_or_else(|e| {
        for (i, d) in hosts.iter().enumerate() {
            for l in d.log().lines().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
                eprintln!("host {}: {l}", i + 1);
            }
        }
        panic!("{e}")
    })
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn run(n: u8, m: usize) {
    let Some((underlay, mut hosts)) = cluster(&format!("bench_cluster_scale_{n}"), n).await else {
        eprintln!("skipped: needs real root, etcd, openssl and nsenter");
        return;
    };
    let c: Vec<_> = hosts.iter().map(|d| d.client()).collect();
    let ov = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.232.0.0/16" }] } });
    let _: Value = c[0].post("/networks/create", &ov).await.unwrap();
    for h in &c {
        eventually("the network is everywhere", 20, || listed(h, "ov")).await;
    }
    let mut watchers = Vec::new();
    for (i, h) in c.iter().enumerate() {
        watchers.push(sandbox_on(h, &format!("w{i}"), "ov").await.1);
    }

    // Attaches, M per host in turns; each new sandbox pinged from every other host.
    let before = work(&underlay).await;
    let (mut each, mut all) = (Vec::new(), Vec::new());
    for round in 0..m {
        for (i, h) in c.iter().enumerate() {
            let name = format!("s{i}-{round}");
            let _: Value = h.post("/sandboxes", &json!({ "Name": name })).await.unwrap();
            let start = Instant::now();
            h.post_unit("/networks/ov/connect", &json!({ "Container": name })).await.unwrap();
            let sb: Value = h.get(&format!("/sandboxes/{name}")).await.unwrap();
            let ip: IpAddr = sb["Networks"]["ov"]["IPAddress"].as_str().unwrap().parse().unwrap();
            let others: Vec<_> = watchers.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, w)| w.clone()).collect();
            let got = first_answers(&others, ip, start).await;
            let answers = answered(&hosts, got);
            all.push(*answers.iter().max().unwrap());
            each.extend(answers);
        }
    }
    let after = work(&underlay).await;
    let attaches = (m * n as usize) as f64;
    // The pings' own work is none of etcd's: the counters are per attach.
    let per = |a: f64, b: f64| (a - b) / attaches;
    let mem: Vec<f64> = hosts.iter().filter_map(|d| d.pid()).map(rss_mib).collect();
    let mem_avg = mem.iter().sum::<f64>() / mem.len() as f64;

    // A host's cnmd restarted: until a sandbox attached there answers every other host.
    let last = usize::from(n) - 1;
    let restart = Instant::now();
    hosts[last].sigkill();
    hosts[last].spawn();
    let (ip, _) = sandbox_on(&c[last], "after-restart", "ov").await;
    let others: Vec<_> = watchers[..last].to_vec();
    let restarted = *answered(&hosts, first_answers(&others, ip, restart).await).iter().max().unwrap();

    // A host cut off longer than its lease (until its keys leave the store), then plugged back.
    let nid = c[0].get::<Value>("/networks/ov").await.unwrap()["Id"].as_str().unwrap().to_string();
    underlay.cut(n, true).await;
    let cut = format!("192.168.231.{n}");
    eventually("the cut host's keys leave the store", 20, || async { underlay.peers_of(&nid, &cut).await == 0 }).await;
    let heal = Instant::now();
    underlay.cut(n, false).await;
    let healed = *answered(&hosts, first_answers(&others, ip, heal).await).iter().max().unwrap();

    println!(
        "| {n} | {} | {:.1} / {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
        n as usize * m,
        ms(percentile(&mut each, 0.5)),
        ms(percentile(&mut each, 0.99)),
        ms(percentile(&mut all, 0.5)),
        per(after.unary, before.unary),
        per(after.bytes_in, before.bytes_in) / 1024.0,
        per(after.bytes_out, before.bytes_out) / 1024.0,
        per(after.events, before.events) / f64::from(n),
        mem_avg,
        ms(restarted),
        ms(healed),
    );
}

/// The kernel's ARP table limits, raised for the run and put back on drop.
struct ArpLimits(Vec<(String, String)>);

impl ArpLimits {
    fn raise() -> ArpLimits {
        let mut saved = Vec::new();
        for (n, v) in [("gc_thresh1", "1024"), ("gc_thresh2", "8192"), ("gc_thresh3", "16384")] {
            let path = format!("/proc/sys/net/ipv4/neigh/default/{n}");
            if let Ok(old) = std::fs::read_to_string(&path)
                && std::fs::write(&path, v).is_ok()
            {
                println!("(ARP table {n}: {} → {v} for the run)", old.trim());
                saved.push((path, old));
            }
        }
        ArpLimits(saved)
    }
}

impl Drop for ArpLimits {
    fn drop(&mut self) {
        // Back in reverse order (thresh3 ≥ thresh2 ≥ thresh1 at every step).
        for (path, old) in self.0.iter().rev() {
            let _ = std::fs::write(path, old.trim());
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _limits = std::env::var_os("CNM_BENCH_KEEP_ARP").is_none().then(ArpLimits::raise);
    let ns: Vec<u8> = std::env::var("CNM_BENCH_HOSTS")
        .unwrap_or_else(|_| "2,5,10,20".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let m: usize = std::env::var("CNM_BENCH_SANDBOXES").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    println!(
        "| hosts | attaches | attach → first ping, each other host p50 / p99 (ms) | → all hosts p50 (ms) | etcd unary requests / attach | KiB in / out per attach | watch events per host per attach | cnmd RSS per host (MiB) | restart → reachable (ms) | partition > lease healed → reachable (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for n in ns {
        run(n, m).await;
    }
}
