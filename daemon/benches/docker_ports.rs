//! `docker run -p` with 1000 published ports, Docker's way and cnm's:
//!
//! - Docker's own bridge network (dockerd with iptables: a rule set and a
//!   `docker-proxy` process per port and family);
//! - a `cnm-bridge` network served by `cnmd --docker-plugins` (the ports
//!   in cnm's nftables maps, no process per port), on a host with a
//!   Docker host's iptables FORWARD chain beside it.
//!
//! Reported for each: `docker run` (setup) and `docker rm -f` (teardown)
//! wall time, processes and resident memory (the engine's processes, and
//! cnmd's) while the container runs, and one published port answering.
//! Needs real root, Debian's docker.io, busybox-static, iptables. Run:
//! `cargo bench -p cnmd --bench docker_ports [-- PORTS]` (default 1000).

#[path = "../tests/common/mod.rs"]
mod common;

use cnm_tests::dockerd::{DockerHost, Engine, import_busybox};
use cnm_tests::{TestHost, UPLINK_HOST};
use common::plugins::Plugins;
use std::time::{Duration, Instant};

/// Resident memory of process `pid` in KiB (0 if gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn is_proxy(pid: &i32) -> bool {
    cnm_tests::dockerd::is_docker_proxy(*pid as u32)
}

/// Processes of the engine whose command line is `docker-proxy`'s… and
/// their parents': docker-proxy's command line names no scratch directory,
/// so every docker-proxy on the machine is counted (none runs otherwise).
fn proxies() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(is_proxy)
        .collect()
}

struct Figures {
    setup: Duration,
    teardown: Duration,
    processes: usize,
    proxies: usize,
    rss_mib: f64,
}

/// Runs the container with `ports` published on `network` of `e`, measures, removes it.
async fn measure(e: &Engine, network: &str, ports: u16, extra: &[u32], out: &cnm_tests::OutsideHost) -> Figures {
    let range = format!("21000-{}:21000-{}", 21000 + ports - 1, 21000 + ports - 1);
    let first: std::net::SocketAddr = format!("{UPLINK_HOST}:21000").parse().unwrap();
    let start = Instant::now();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "many",
        "--network",
        network,
        "-p",
        &range,
        "busybox:local",
        "httpd",
        "-f",
        "-p",
        "21000",
        "-h",
        "/www",
    ]);
    let setup = start.elapsed();
    cnm_tests::dockerd::page_answers(&out.ns, first).await.expect("the first published port answers from outside");
    let procs: Vec<i32> =
        e.processes().into_iter().chain(proxies()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let rss: u64 =
        procs.iter().map(|p| rss_kib(*p as u32)).sum::<u64>() + extra.iter().map(|p| rss_kib(*p)).sum::<u64>();
    let figures = Figures {
        setup,
        teardown: Duration::ZERO,
        processes: procs.len() + extra.len(),
        proxies: procs.iter().filter(|p| is_proxy(p)).count(),
        rss_mib: rss as f64 / 1024.0,
    };
    let start = Instant::now();
    e.ok(&["rm", "-f", "many"]);
    Figures { teardown: start.elapsed(), ..figures }
}

fn print(what: &str, ports: u16, f: &Figures) {
    println!(
        "{what:<34} {ports} ports: setup {:>8.2} s, teardown {:>8.2} s, {:>5} processes ({} docker-proxy), {:>8.1} MiB resident",
        f.setup.as_secs_f64(),
        f.teardown.as_secs_f64(),
        f.processes,
        f.proxies,
        f.rss_mib
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ports: u16 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000).clamp(1, 10_000);
    if !cnm_tests::dockerd::available("docker_ports bench")
        || !cnm_tests::tools("docker_ports bench", &["iptables-nft"], "iptables")
    {
        return;
    }

    // Docker's bridge, with its proxies.
    let Some(h) = TestHost::new("docker_ports bench").await else { return };
    let out = h.outside().await;
    let dir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    let ns = h.ns_path();
    let engine = tokio::task::spawn_blocking(move || Engine::start(dir, &ns, true)).await.unwrap();
    import_busybox(&engine);
    let docker = measure(&engine, "bridge", ports, &[], &out).await;
    print("Docker's bridge (docker-proxy)", ports, &docker);
    let engine = engine.stop_async().await;
    drop((engine, out, h));

    // cnm-bridge through the plugin host, beside a Docker host's FORWARD chain.
    let Some(h) = cnm_tests::bench_host("docker_ports bench", true).await else { return };
    let out = h.outside().await;
    let dhost = std::sync::Arc::new(DockerHost::new(&h.ns_path()));
    let mut plugins = Plugins::new(h.dir.path(), &[]);
    plugins.start(&dhost, &["cnm-bridge", "cnm"]);
    let dir = tempfile::Builder::new().prefix("cnm-dockerd-").tempdir().unwrap();
    let on = dhost.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::start_on(dir, &on)).await.unwrap();
    import_busybox(&engine);
    engine.ok(&["network", "create", "-d", "cnm-bridge", "--ipam-driver", "cnm", "--subnet", "10.231.230.0/24", "p"]);
    let cnmd = plugins.pid().into_iter().collect::<Vec<_>>();
    let cnm = measure(&engine, "p", ports, &cnmd, &out).await;
    print("cnm-bridge (cnmd --docker-plugins)", ports, &cnm);
    engine.ok(&["network", "rm", "p"]);
    let engine = engine.stop_async().await;
    plugins.stop();
    drop((engine, dhost, out, h));
    println!(
        "ratio: setup {:.1}x faster, teardown {:.1}x faster",
        docker.setup.as_secs_f64() / cnm.setup.as_secs_f64(),
        docker.teardown.as_secs_f64() / cnm.teardown.as_secs_f64()
    );
}
