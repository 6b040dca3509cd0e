//! The daemon's resident memory: `cnmd` (this build) in a scratch host,
//! at start and with 100 bridge networks made through the API, on a
//! scratch host and on one with a Docker host's iptables `FORWARD` chain
//! (policy DROP, dockerd's chains). Target: at most 20 MB with 100
//! networks on a Docker host. Needs root (skips otherwise).
//!
//! Run: `cargo bench -p cnmd --bench memory`.

#[path = "../tests/common/mod.rs"]
mod common;

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    for foreign in [false, true] {
        let Some(mut d) = common::Daemon::unstarted_in_host("bench memory", &[]).await else { return };
        if foreign {
            cnm_tests::docker_like_forward_chain(&d.host.ns).await;
        }
        d.spawn();
        let pid = d.pid().expect("cnmd runs");
        let client = d.client();
        // The first request waits for the daemon's start to finish.
        let _: serde_json::Value = client.get("/networks").await.expect("list");
        let at_start = rss_kib(pid);
        for i in 0..100 {
            let _: serde_json::Value = client
                .post(
                    "/networks/create",
                    &serde_json::json!({
                        "Name": format!("m{i}"),
                        // More networks than Docker's default pools hold.
                        "IPAM": { "Config": [{ "Subnet": format!("10.120.{i}.0/24") }] },
                    }),
                )
                .await
                .expect("create");
        }
        let with_100 = rss_kib(pid);
        let host = if foreign { "beside a Docker host's FORWARD chain" } else { "scratch host" };
        println!(
            "cnmd resident memory, {host}: {:.1} MB at start, {:.1} MB with 100 networks (target <= 20 MB)",
            at_start as f64 / 1024.0,
            with_100 as f64 / 1024.0
        );
        for i in 0..100 {
            client.delete(&format!("/networks/m{i}")).await.expect("delete");
        }
        assert!(d.sigterm(), "cnmd stops cleanly");
    }
}
