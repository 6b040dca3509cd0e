//! Runtimes through CNI, cnm's way and the standard plugins' (podman 4.3,
//! its CNI backend, running in a scratch host beside a Docker host's
//! iptables FORWARD chain):
//!
//! - `cnm-cni` against cnmd (a cnm bridge network);
//! - the chain podman itself writes for a CNI network: `bridge` (with
//!   `host-local`), `portmap`, `firewall`, `tuning` (Debian's
//!   containernetworking-plugins 1.1.1).
//!
//! Reported for each: `podman run -d` (attach) and `podman rm -f`
//! (detach), median and p90 over N containers; the firewall rules the
//! host has with N containers running, beyond those before; one container
//! with PORTS published (`-p A-B:A-B`), setup and teardown; and `cnm-cni`
//! ADD and DEL alone (the plugin's own latency, podman's left out).
//! Needs real root, podman, iptables, busybox-static. Run:
//! `cargo bench -p cnmd --bench cni [-- N [PORTS]]` (default 20, 1000).

#[path = "../tests/common/mod.rs"]
mod common;

use common::Daemon;
use common::podman::{IMAGE, Podman};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn median_p90(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[(v.len() * 9 / 10).min(v.len() - 1)]))
}

/// Lines of `iptables-save` and rules of `nft list ruleset` in the host.
async fn rules(ns: &cnm::osl::Namespace) -> usize {
    let ipt = cnm_tests::output_in(ns, "iptables-save", &[]).await;
    let nft = cnm_tests::nft(ns, &["list", "ruleset"]).await;
    let ipt_rules = ipt.lines().filter(|l| l.starts_with("-A ")).count();
    // nft rules are the lines inside chains that are not declarations.
    let nft_rules = nft
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("table") && !l.starts_with("chain") && !l.starts_with("type"))
        .filter(|l| {
            !l.starts_with('}') && !l.starts_with("set ") && !l.starts_with("map ") && !l.starts_with("elements")
        })
        .filter(|l| {
            !l.starts_with("flags") && !l.starts_with("policy") && !l.contains(": ") && !l.starts_with("comment")
        })
        .count();
    ipt_rules + nft_rules
}

struct Figures {
    attach: (f64, f64),
    detach: (f64, f64),
    rules: usize,
    ports_setup: f64,
    ports_teardown: f64,
}

async fn measure(p: &Podman, network: &str, n: usize, ports: u16, ns: &cnm::osl::Namespace) -> Figures {
    let before = rules(ns).await;
    let (mut attach, mut detach) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        p.run(&["run", "-d", "--name", &format!("b{i}"), "--network", network, IMAGE, "/bin/sleep", "3600"]).unwrap();
        attach.push(t.elapsed());
    }
    let during = rules(ns).await;
    for i in 0..n {
        let t = Instant::now();
        p.run(&["rm", "-f", "-t", "0", &format!("b{i}")]).unwrap();
        detach.push(t.elapsed());
    }
    let range = format!("30000-{}:30000-{}", 30000 + ports - 1, 30000 + ports - 1);
    let t = Instant::now();
    p.run(&["run", "-d", "--name", "many", "--network", network, "-p", &range, IMAGE, "/bin/sleep", "3600"]).unwrap();
    let ports_setup = t.elapsed().as_secs_f64();
    let t = Instant::now();
    p.run(&["rm", "-f", "-t", "0", "many"]).unwrap();
    Figures {
        attach: median_p90(attach),
        detach: median_p90(detach),
        rules: during.saturating_sub(before),
        ports_setup,
        ports_teardown: t.elapsed().as_secs_f64(),
    }
}

fn print(what: &str, n: usize, ports: u16, f: &Figures) {
    println!(
        "{what:<40} attach {:>7.1} / {:>7.1} ms, detach {:>7.1} / {:>7.1} ms (median / p90, {n}), +{} rules with {n} running, {ports} ports {:.2} s / {:.2} s",
        f.attach.0, f.attach.1, f.detach.0, f.detach.1, f.rules, f.ports_setup, f.ports_teardown
    );
}

/// Runs `cnm-cni` once; how long it took.
fn plugin_call(command: &str, container: &str, netns: &std::path::Path, conf: &Value) -> Duration {
    use std::io::Write;
    let t = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cnm-cni"))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "cnm-cni {command}");
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1).filter_map(|a| a.parse::<usize>().ok());
    let n = args.next().unwrap_or(20).clamp(1, 500);
    let ports = args.next().unwrap_or(1000).clamp(1, 10_000) as u16;
    let bench = "cni bench";
    if !cnm_tests::real_root(bench)
        || !cnm_tests::tools(bench, &["podman", "iptables-save"], "podman, iptables")
        || !cnm_tests::tools(bench, &["busybox"], "busybox-static")
    {
        return;
    }
    let Some(d) = Daemon::start(bench).await else { return };
    cnm_tests::docker_like_forward_chain(&d.host.ns).await;
    println!("--- beside a Docker host's iptables FORWARD chain (policy DROP, dockerd's chains)");
    let ns_path = d.host.ns_path();

    // cnm-cni alone: ADD and DEL of throwaway namespaces.
    let _: Value = d
        .client()
        .post("/networks/create", &json!({ "Name": "alone", "IPAM": { "Config": [{ "Subnet": "10.231.246.0/24" }] } }))
        .await
        .unwrap();
    let conf =
        json!({ "cniVersion": "1.1.0", "name": "alone", "type": "cnm-cni", "socket": d.sock.display().to_string() });
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let path = d.host.dir.path().join(format!("alone{i}.netns"));
        let (ns, nl) = cnm::osl::Netlink::create_namespace(&path, cnm::osl::DEFAULT_DEADLINE).await.unwrap();
        nl.link_set_up(1).await.unwrap();
        adds.push(plugin_call("ADD", &format!("a{i}"), &path, &conf));
        dels.push(plugin_call("DEL", &format!("a{i}"), &path, &conf));
        drop(ns);
        cnm::osl::Namespace::remove(&path).unwrap();
    }
    let (add, del) = (median_p90(adds), median_p90(dels));
    println!(
        "{:<40} ADD {:>7.1} / {:>7.1} ms, DEL {:>7.1} / {:>7.1} ms (median / p90, {n})",
        "cnm-cni alone", add.0, add.1, del.0, del.1
    );

    let cnm_conf = json!({
        "cniVersion": "1.0.0", "name": "cnmnet",
        "plugins": [{ "type": "cnm-cni", "network": "cnmnet", "driver": "bridge", "subnet": "10.231.244.0/24",
                      "socket": d.sock.display().to_string(), "capabilities": { "portMappings": true } }],
    });
    let p = Podman::new(&d.host.dir.path().join("podman-cnm"), &cnm_conf, &ns_path);
    let cnm = measure(&p, "cnmnet", n, ports, &d.host.ns).await;
    print("podman + cnm-cni (cnmd)", n, ports, &cnm);
    drop(p);

    let standard = json!({
        "cniVersion": "1.0.0", "name": "stdnet",
        "plugins": [
            { "type": "bridge", "bridge": "cni-bench0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
              "ipam": { "type": "host-local", "routes": [{ "dst": "0.0.0.0/0" }], "ranges": [[{ "subnet": "10.231.245.0/24" }]],
                        "dataDir": d.host.dir.path().join("host-local").display().to_string() } },
            { "type": "portmap", "capabilities": { "portMappings": true } },
            { "type": "firewall" },
            { "type": "tuning" },
        ],
    });
    let p = Podman::new(&d.host.dir.path().join("podman-std"), &standard, &ns_path);
    let std = measure(&p, "stdnet", n, ports, &d.host.ns).await;
    print("podman + bridge, portmap, firewall, tuning", n, ports, &std);
    drop(p);
}
