//! Bridge benchmarks (a bench binary, run as root):
//! `cargo bench -p cnm-tests --bench bridge`.
//!
//! 1. Publishing P = 1, 100, 1000 and 10 000 ports on one container through
//!    the bridge driver, then unpublishing them: total and per-port time,
//!    the firewall's rule count, and the processes left running.
//! 2. Network create and delete through the controller: median and p95.
//!
//! Both on a scratch host and on one whose iptables `FORWARD` chain is a
//! Docker host's (policy DROP, dockerd's chains): the host users have.

use cnm::driverapi::*;
use cnm::{NetworkConfig, SandboxConfig};
use cnm_driver_bridge::BridgeDriver;
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    (ms(v[v.len() / 2]), ms(v[((v.len() * 95).div_ceil(100)).saturating_sub(1)]))
}

/// Rules in cnm's table (they must not grow with ports or networks).
async fn rule_count(h: &cnm_tests::TestHost) -> usize {
    let json = cnm_tests::nft(&h.ns, &["-j", "list", "table", "inet", "cnm"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("nft json");
    v["nftables"].as_array().map(|a| a.iter().filter(|o| o.get("rule").is_some()).count()).unwrap_or(0)
}

/// Child processes of this process (there must be none per port).
fn child_processes() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
                .filter(|stat| stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)) == Some(me.as_str()))
                .count()
        })
        .unwrap_or(0)
}

fn raise_fd_limit() {
    let mut lim = libc_rlimit();
    lim.0 = lim.1;
    let r = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, lim.0, lim.1);
    if let Err(e) = r {
        eprintln!("cannot raise the open-file limit: {e}");
    }
}

fn libc_rlimit() -> (u64, u64) {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024))
}

async fn publish_bench(h: &cnm_tests::TestHost) {
    println!("publish P ports on one container (bridge driver, nftables)");
    println!(
        "{:>6}  {:>11}  {:>9}  {:>11}  {:>9}  {:>6}  {:>9}",
        "P", "publish ms", "µs/port", "unpub. ms", "µs/port", "rules", "processes"
    );
    let driver = BridgeDriver::new(h.nl.clone());
    let nid = "b".repeat(64);
    driver
        .create_network(CreateNetworkRequest {
            network_id: nid.clone(),
            options: NetworkOptions::default(),
            ipv4_data: vec![IpamData {
                address_space: "LocalDefault".into(),
                aux_addresses: Default::default(),
                gateway: Some("10.90.0.1/16".parse().unwrap()),
                pool: "10.90.0.0/16".parse().unwrap(),
            }],
            ipv6_data: vec![],
        })
        .await
        .unwrap();
    // Under run/netns: the TestHost removes it even if the benchmark panics.
    let sandbox = h.dir.path().join("run/netns/bench-sandbox");
    let _ns = cnm::osl::Namespace::create(&sandbox).await.unwrap();
    // The first round (one port) warms up the allocator and the netlink socket; it is not printed.
    for (i, p) in [1usize, 1, 100, 1000, 10_000].into_iter().enumerate() {
        let eid = format!("{:064x}", i + 1);
        driver
            .create_endpoint(CreateEndpointRequest {
                network_id: nid.clone(),
                endpoint_id: eid.clone(),
                interface: EndpointInterface {
                    address: Some(format!("10.90.1.{}/16", i + 2).parse().unwrap()),
                    ..Default::default()
                },
                options: Default::default(),
            })
            .await
            .unwrap();
        let join = JoinRequest {
            network_id: nid.clone(),
            endpoint_id: eid.clone(),
            sandbox_key: sandbox.display().to_string(),
            options: Default::default(),
        };
        driver.join(join).await.unwrap();
        let bindings: Vec<PortBinding> = (0..p)
            .map(|k| PortBinding {
                proto: Protocol::Tcp,
                ip: None,
                port: 80,
                host_ip: None,
                host_port: 20000 + k as u16,
                host_port_end: 0,
            })
            .collect();
        let req = ProgramExternalConnectivityRequest {
            network_id: nid.clone(),
            endpoint_id: eid.clone(),
            options: SandboxOptions { exposed_ports: vec![], port_map: bindings, host_ports_held: false },
        };
        let t = Instant::now();
        driver.program_external_connectivity(req).await.unwrap();
        let publish = t.elapsed();
        let rules = rule_count(h).await;
        let procs = child_processes();
        let t = Instant::now();
        driver
            .revoke_external_connectivity(RevokeExternalConnectivityRequest {
                network_id: nid.clone(),
                endpoint_id: eid.clone(),
            })
            .await
            .unwrap();
        let unpublish = t.elapsed();
        driver.leave(LeaveRequest { network_id: nid.clone(), endpoint_id: eid.clone() }).await.unwrap();
        if i == 0 {
            continue;
        }
        println!(
            "{p:>6}  {:>11.2}  {:>9.1}  {:>11.2}  {:>9.1}  {rules:>6}  {procs:>9}",
            ms(publish),
            ms(publish) * 1e3 / p as f64,
            ms(unpublish),
            ms(unpublish) * 1e3 / p as f64
        );
    }
    driver.delete_network(DeleteNetworkRequest { network_id: nid }).await.unwrap();
    cnm::osl::Namespace::remove(&sandbox).unwrap();
}

async fn network_bench(h: &cnm_tests::TestHost) {
    let ctrl = h.controller().await;
    // Warm up: the firewall table and first pool choice.
    let warm = ctrl.new_network("bridge", "warm", NetworkConfig::default()).await.unwrap();
    // Phase 1: 50 creates; phase 2: 50 deletes (each call timed).
    let (mut create, mut delete) = (Vec::new(), Vec::new());
    let mut nets = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        let cfg = NetworkConfig::default().with_subnet(format!("10.100.{i}.0/24").parse().unwrap());
        nets.push(ctrl.new_network("bridge", &format!("n{i}"), cfg).await.unwrap());
        create.push(t.elapsed());
    }
    for net in nets {
        let t = Instant::now();
        net.delete().await.unwrap();
        delete.push(t.elapsed());
    }
    let warm_br = format!("br-{}", &warm.id()[..12]);
    let t = Instant::now();
    let left = h.settled_links(&[&warm_br, "lo"]).await.len();
    let settle = t.elapsed();
    let (cm, cp) = stats(create);
    let (dm, dp) = stats(delete);
    println!("network create: median {cm:.2} ms, p95 {cp:.2} ms (50 in a row)");
    println!(
        "network delete in a burst: median {dm:.2} ms, p95 {dp:.2} ms (50 in a row: each waits for the previous bridge's unregister)"
    );
    println!(
        "  the kernel finished unregistering the 50 bridges {:.0} ms after the last delete ({left} links left)",
        ms(settle)
    );
    // Isolated deletes: each after the previous unregister has finished (not timed).
    let mut isolated = Vec::new();
    for i in 0..20 {
        let cfg = NetworkConfig::default().with_subnet(format!("10.101.{i}.0/24").parse().unwrap());
        let net = ctrl.new_network("bridge", &format!("d{i}"), cfg).await.unwrap();
        let t = Instant::now();
        net.delete().await.unwrap();
        isolated.push(t.elapsed());
        h.settled_links(&[&warm_br, "lo"]).await;
    }
    let (im, ip) = stats(isolated);
    println!(
        "network delete, isolated: median {im:.2} ms, p95 {ip:.2} ms (20; the bridge's unregister finishes in the background)"
    );
    // Back to back: each create waits for the previous bridge's unregister.
    let mut cycle = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let net = ctrl.new_network("bridge", &format!("c{i}"), NetworkConfig::default()).await.unwrap();
        net.delete().await.unwrap();
        cycle.push(t.elapsed());
    }
    let (ym, yp) = stats(cycle);
    println!(
        "create + delete back to back: median {ym:.2} ms, p95 {yp:.2} ms (20 cycles; bounded by the kernel's unregister)"
    );
    warm.delete().await.unwrap();
    let _ = SandboxConfig::default();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    raise_fd_limit();
    for foreign in [false, true] {
        let Some(h) = cnm_tests::bench_host("bridge benchmark", foreign).await else { return };
        publish_bench(&h).await;
        network_bench(&h).await;
    }
}
