//! Attach benchmark (a bench binary, run as root):
//! `cargo bench -p cnm-tests --bench attach`.
//!
//! For N = 1, 50 and 200 containers on one bridge network of a scratch host:
//! per container, attach = create sandbox + connect (endpoint created and
//! joined in one step, as the API's connect), then detach = disconnect
//! (leave and endpoint delete in one step) + delete sandbox; medians and p95.
//! In the same run, the raw-netlink floor: per container a namespace, a veth
//! created in place (peer inside the namespace, host end a bridge port, up),
//! the peer brought up, an address and a default route — no bookkeeping.
//!
//! Each N on a scratch host and on one whose iptables `FORWARD` chain is a
//! Docker host's (policy DROP, dockerd's chains; "docker" in the table).
//!
//! The state directory is the system's temporary directory (`TMPDIR`); run
//! with `TMPDIR=/dev/shm` to see the cost without the store's fsyncs.

use cnm::osl::{Namespace, Netlink, Route, VethSpec};
use cnm::{EndpointConfig, JoinOptions, NetworkConfig, SandboxConfig};
use std::time::{Duration, Instant};

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = ms(v[v.len() / 2]);
    let p95 = ms(v[((v.len() * 95).div_ceil(100)).saturating_sub(1).min(v.len() - 1)]);
    (median, p95)
}

async fn floor(h: &cnm_tests::TestHost, n: usize) -> Vec<Duration> {
    let br = h.nl.link_add_bridge("floorbr", None, None, None).await.unwrap();
    h.nl.addr_add(br.index, "10.201.0.1/16".parse().unwrap()).await.unwrap();
    h.nl.link_set_up(br.index).await.unwrap();
    let dir = h.dir.path().join("floor");
    let mut times = Vec::new();
    let mut paths = Vec::new();
    for i in 0..n {
        let start = Instant::now();
        let path = dir.join(format!("ns{i}"));
        let (ns, nl) = Netlink::create_namespace(&path, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
        let host = format!("fv{i}");
        let spec = VethSpec {
            name: &host,
            peer_name: "eth0",
            peer_namespace: Some(&ns),
            controller: Some(br.index),
            up: true,
            ..Default::default()
        };
        h.nl.link_add_veth(&spec).await.unwrap();
        let eth0 = nl.link_get("eth0").await.unwrap().unwrap();
        nl.link_set_up(eth0.index).await.unwrap();
        let addr = format!("10.201.{}.{}/16", (i + 2) / 256, (i + 2) % 256);
        nl.addr_add(eth0.index, addr.parse().unwrap()).await.unwrap();
        nl.route_add(&Route::default_via("10.201.0.1".parse().unwrap(), eth0.index)).await.unwrap();
        times.push(start.elapsed());
        paths.push(path);
    }
    for p in paths {
        Namespace::remove(&p).unwrap();
    }
    h.nl.link_del(br.index).await.unwrap();
    times
}

async fn controller_run(h: &cnm_tests::TestHost, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "bench", NetworkConfig::default()).await.unwrap();
    let mut attach = Vec::new();
    let mut live = Vec::new();
    let mut parts = [Vec::new(), Vec::new()];
    for i in 0..n {
        let start = Instant::now();
        let sb = ctrl.new_sandbox(&format!("c{i}"), SandboxConfig::default()).await.unwrap();
        let t1 = Instant::now();
        let ep = net.connect(&format!("ep{i}"), EndpointConfig::default(), &sb, JoinOptions::default()).await.unwrap();
        attach.push(start.elapsed());
        parts[0].push(t1 - start);
        parts[1].push(t1.elapsed());
        live.push((ep, sb));
    }
    let [s, c] = parts.map(|p| stats(p).0);
    println!("       attach, median parts: sandbox {s:.2}, connect (endpoint + join) {c:.2} ms");
    // One packet proves the last attach is real.
    let (_, sb) = live.last().unwrap();
    let gw = net.info().await.unwrap().ipv4[0].gateway.unwrap().addr();
    cnm::osl::probe::ping(&sb.namespace().unwrap(), gw, Duration::from_secs(5)).await.expect("attached sandbox pings");
    let mut detach = Vec::new();
    let mut parts = [Vec::new(), Vec::new()];
    for (ep, sb) in live {
        let start = Instant::now();
        ep.leave_and_delete(&sb).await.unwrap();
        let t1 = Instant::now();
        sb.delete().await.unwrap();
        detach.push(start.elapsed());
        parts[0].push(t1 - start);
        parts[1].push(t1.elapsed());
    }
    let [d, s] = parts.map(|p| stats(p).0);
    println!("       detach, median parts: disconnect (leave + endpoint delete) {d:.2}, sandbox delete {s:.2} ms");
    net.delete().await.unwrap();
    (attach, detach)
}

/// 50 attaches (endpoint + join of an existing sandbox) one after another,
/// then 50 at once (their store writes share commits): total times.
async fn parallel(h: &cnm_tests::TestHost) -> (Duration, Duration) {
    let ctrl = h.controller().await;
    let net = ctrl.new_network("bridge", "par", NetworkConfig::default()).await.unwrap();
    let mut totals = Vec::new();
    for round in 0..2 {
        let mut sandboxes = Vec::new();
        for i in 0..50 {
            sandboxes.push(ctrl.new_sandbox(&format!("p{round}-{i}"), SandboxConfig::default()).await.unwrap());
        }
        let start = Instant::now();
        if round == 0 {
            for (i, sb) in sandboxes.iter().enumerate() {
                let ep = net.create_endpoint(&format!("p{round}-{i}"), EndpointConfig::default()).await.unwrap();
                ep.join(sb, JoinOptions::default()).await.unwrap();
            }
        } else {
            let mut set = tokio::task::JoinSet::new();
            for (i, sb) in sandboxes.iter().cloned().enumerate() {
                let net = net.clone();
                set.spawn(async move {
                    let ep = net.create_endpoint(&format!("p{round}-{i}"), EndpointConfig::default()).await.unwrap();
                    ep.join(&sb, JoinOptions::default()).await.unwrap();
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        }
        totals.push(start.elapsed());
        for sb in sandboxes {
            sb.delete().await.unwrap();
        }
    }
    for ep in net.endpoints().await {
        ep.delete().await.unwrap();
    }
    net.delete().await.unwrap();
    (totals[0], totals[1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        // `cargo test --benches` probes bench binaries; nothing to run then.
        return;
    }
    println!("attach benchmark (ms per container; median / p95)");
    println!("{:>5}  {:>8}  {:>17}  {:>17}  {:>17}  {:>8}", "N", "host", "floor", "attach", "detach", "ratio");
    for (n, foreign) in [1usize, 50, 200].into_iter().flat_map(|n| [(n, false), (n, true)]) {
        let Some(h) = cnm_tests::TestHost::new("attach benchmark").await else { return };
        if foreign {
            cnm_tests::docker_like_forward_chain(&h.ns).await;
        }
        let f = floor(&h, n).await;
        let (a, d) = controller_run(&h, n).await;
        let (fm, fp) = stats(f);
        let (am, ap) = stats(a);
        let (dm, dp) = stats(d);
        let host = if foreign { "docker" } else { "scratch" };
        println!(
            "{n:>5}  {host:>8}  {fm:>8.2} / {fp:>6.2}  {am:>8.2} / {ap:>6.2}  {dm:>8.2} / {dp:>6.2}  {:>7.2}x",
            am / fm
        );
    }
    let Some(h) = cnm_tests::TestHost::new("attach benchmark").await else { return };
    let (one_by_one, at_once) = parallel(&h).await;
    println!(
        "50 attaches: one after another {:.1} ms, all at once {:.1} ms",
        one_by_one.as_secs_f64() * 1e3,
        at_once.as_secs_f64() * 1e3
    );
}
