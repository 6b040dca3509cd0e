//! Multi-host, for real: simulated hosts are scratch namespaces joined by
//! an underlay bridge (192.168.231.0/24), each running its own `cnmd`
//! (inside that namespace) with `--cluster-store` pointing at one etcd the
//! test starts on the underlay (192.168.231.100). Overlay networks are
//! created on one host and used from all; sandboxes on different hosts
//! reach each other by ping over VXLAN.
//!
//! Needs real root, `etcd` (Debian's etcd-server) and `nsenter`.

mod common;

use cnm::osl::{Namespace, Netlink, VethSpec};
use cnmd::client::Client;
use common::Daemon;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// etcd's address on the underlay.
const ETCD: &str = "192.168.231.100";

/// The underlay: a namespace with a bridge every host is plugged into, and etcd on it.
struct Underlay {
    dir: tempfile::TempDir,
    ns: Namespace,
    nl: Netlink,
    bridge: u32,
    etcd: Option<Child>,
}

impl Underlay {
    async fn new() -> Underlay {
        let dir = tempfile::Builder::new().prefix("cnm-underlay-").tempdir().unwrap();
        let (ns, nl) = Netlink::create_namespace(dir.path().join("underlay.netns"), cnm::osl::DEFAULT_DEADLINE)
            .await
            .expect("underlay namespace");
        nl.link_set_up(1).await.unwrap();
        let bridge = nl.link_add_bridge("ul0", None, None, None).await.unwrap().index;
        nl.link_set_up(bridge).await.unwrap();
        nl.addr_add(bridge, format!("{ETCD}/24").parse().unwrap()).await.unwrap();
        Underlay { dir, ns, nl, bridge, etcd: None }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("underlay.netns")
    }

    /// Plugs host `i` in: its `eth0` gets 192.168.231.i/24.
    async fn plug(&self, host: &cnm_tests::TestHost, i: u8) {
        let name = format!("h{i}");
        let spec = VethSpec {
            name: &name,
            peer_name: "eth0",
            peer_namespace: Some(&host.ns),
            controller: Some(self.bridge),
            up: true,
            ..Default::default()
        };
        self.nl.link_add_veth(&spec).await.unwrap();
        let eth0 = host.nl.link_get("eth0").await.unwrap().unwrap();
        host.nl.link_set_up(eth0.index).await.unwrap();
        host.nl.addr_add(eth0.index, format!("192.168.231.{i}/24").parse().unwrap()).await.unwrap();
    }

    /// Starts etcd on the underlay and waits (at most 20 s) until it answers.
    async fn start_etcd(&mut self) {
        assert!(self.etcd.is_none());
        let data = self.dir.path().join("etcd");
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .arg("etcd")
            .args(["--name", "cnm-test", "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &format!("http://{ETCD}:2379")])
            .args(["--advertise-client-urls", &format!("http://{ETCD}:2379")])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-cluster", "cnm-test=http://127.0.0.1:2380"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.etcd = Some(child);
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let up = self
                .ns
                .run(|| {
                    let addr: std::net::SocketAddr = format!("{ETCD}:2379").parse().unwrap();
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                })
                .await
                .unwrap();
            if up {
                return;
            }
            assert!(Instant::now() < end, "etcd did not start: {}", self.etcd_log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop_etcd(&mut self) {
        if let Some(mut c) = self.etcd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn etcd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        self.stop_etcd();
        let _ = Namespace::remove(self.path());
    }
}

/// `n` hosts on an underlay with etcd, each running cnmd; `None` when skipped.
async fn cluster(test: &str, n: u8) -> Option<(Underlay, Vec<Daemon>)> {
    if !cnm_tests::real_root(test)
        || !cnm_tests::tools(test, &["etcd"], "etcd-server")
        || !cnm_tests::tools(test, &["nsenter"], "util-linux")
    {
        return None;
    }
    let mut underlay = Underlay::new().await;
    let mut hosts = Vec::new();
    for i in 1..=n {
        let advertise = format!("192.168.231.{i}");
        let args = ["--cluster-store", &format!("etcd://{ETCD}:2379"), "--advertise-addr", &advertise];
        let d = Daemon::unstarted_in_host(&format!("{test}_{i}"), &args).await?;
        underlay.plug(&d.host, i).await;
        hosts.push(d);
    }
    underlay.start_etcd().await;
    for d in &mut hosts {
        d.spawn();
        let _: Value = d.client().get("/networks").await.expect("cnmd serves");
    }
    Some((underlay, hosts))
}

/// Waits (at most `secs`) until `f` holds.
async fn eventually<F, Fut>(what: &str, secs: u64, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < end, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn listed(c: &Client, net: &str) -> bool {
    c.get::<Value>(&format!("/networks/{net}")).await.is_ok()
}

/// A sandbox `name` on `client`'s host, connected to `net`: its address and namespace.
async fn sandbox_on(c: &Client, name: &str, net: &str) -> (IpAddr, Namespace) {
    let _: Value = c.post("/sandboxes", &json!({ "Name": name })).await.unwrap();
    c.post_unit(&format!("/networks/{net}/connect"), &json!({ "Container": name }))
        .await
        .unwrap_or_else(|e| panic!("connect {name} to {net}: {e}"));
    let sb: Value = c.get(&format!("/sandboxes/{name}")).await.unwrap();
    let ip = sb["Networks"][net]["IPAddress"].as_str().unwrap().parse().unwrap();
    (ip, Namespace::open(sb["Key"].as_str().unwrap()).unwrap())
}

async fn pings(ns: &Namespace, ip: IpAddr) -> bool {
    cnm::osl::probe::ping(ns, ip, Duration::from_millis(500)).await.is_ok()
}

/// An overlay network created on host 1 is listed on hosts 2 and 3 (as
/// global); sandboxes on the three hosts ping each other over VXLAN; the
/// network cannot be removed while any host has endpoints on it; removed
/// on host 2, it is gone everywhere, and its VNI and pool are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_network_spans_three_hosts() {
    let Some((_underlay, hosts)) = cluster("overlay_network_spans_three_hosts", 3).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.60.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.expect("create an overlay network on host 1");
    for h in &c[1..] {
        eventually("the network is listed on the other hosts", 5, || listed(h, "ov")).await;
    }
    let inspect: Value = c[1].get("/networks/ov").await.unwrap();
    assert_eq!(inspect["Scope"], "global", "{inspect}");
    assert_eq!(inspect["Driver"], "overlay");

    let mut sandboxes = Vec::new();
    for (i, h) in c.iter().enumerate() {
        sandboxes.push(sandbox_on(h, &format!("s{}", i + 1), "ov").await);
    }
    let ips: Vec<IpAddr> = sandboxes.iter().map(|(ip, _)| *ip).collect();
    assert_eq!(ips.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "three addresses: {ips:?}");
    for (i, (_, ns)) in sandboxes.iter().enumerate() {
        for (j, ip) in ips.iter().enumerate() {
            if i != j {
                let (ns, ip) = (ns, *ip);
                eventually(&format!("s{} reaches s{} at {ip}", i + 1, j + 1), 5, || pings(ns, ip)).await;
            }
        }
    }

    let refused = c[2].delete("/networks/ov").await.unwrap_err();
    assert!(refused.to_string().contains("active endpoints"), "{refused}");
    for (i, h) in c.iter().enumerate() {
        h.delete(&format!("/sandboxes/s{}", i + 1)).await.unwrap();
    }
    c[1].delete("/networks/ov").await.expect("remove the network on host 2");
    for h in [&c[0], &c[2]] {
        eventually("the network is gone on every host", 5, || async { !listed(h, "ov").await }).await;
    }
    // Its pool is free again, cluster-wide.
    let _: Value = c[2].post("/networks/create", &body).await.expect("the pool is free again");
    c[2].delete("/networks/ov").await.unwrap();

    let enc = json!({ "Name": "secret", "Driver": "overlay", "Options": { "encrypted": "" } });
    let e = c[0].post::<_, Value>("/networks/create", &enc).await.unwrap_err();
    assert!(e.to_string().contains("IPsec ESP") && e.to_string().contains("WireGuard"), "{e}");
}

/// Two hosts attaching at the same moment never get the same address: 50
/// rounds of a connect on host 1 and one on host 2 at once, 100 distinct addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attaches_on_two_hosts_never_share_an_address() {
    let test = "concurrent_attaches_on_two_hosts_never_share_an_address";
    let Some((_underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.61.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("the network is listed on host 2", 5, || listed(&c[1], "ov")).await;
    let mut all = std::collections::BTreeSet::new();
    for round in 0..50 {
        let (na, nb) = (format!("a{round}"), format!("b{round}"));
        let (a, b) = tokio::join!(sandbox_on(&c[0], &na, "ov"), sandbox_on(&c[1], &nb, "ov"));
        assert_ne!(a.0, b.0, "round {round}: both hosts got {}", a.0);
        assert!(all.insert(a.0) && all.insert(b.0), "round {round}: an address handed out twice");
    }
    assert_eq!(all.len(), 100);
}

/// A host whose daemon dies: after its lease expires the other hosts drop
/// its endpoints (its sandbox stops answering over the overlay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hosts_endpoints_go_when_its_lease_expires() {
    let test = "a_dead_hosts_endpoints_go_when_its_lease_expires";
    let Some((_underlay, mut hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.62.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov")).await;
    let (_, ns1) = sandbox_on(&c[0], "s1", "ov").await;
    let (ip2, _ns2) = sandbox_on(&c[1], "s2", "ov").await;
    eventually("s1 reaches s2", 5, || pings(&ns1, ip2)).await;
    hosts[1].sigkill();
    // The datapath outlives the daemon until host 2's lease (5 s) expires.
    eventually("host 2's endpoint is dropped after its lease", 20, || async { !pings(&ns1, ip2).await }).await;
}

/// A daemon restarted (killed, started again) publishes its joined
/// endpoints on its new lease: well after the old lease expired, the other
/// host still reaches its sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_keeps_its_endpoints_reachable() {
    let test = "a_restarted_daemon_keeps_its_endpoints_reachable";
    let Some((_underlay, mut hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.63.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov")).await;
    let (_, ns1) = sandbox_on(&c[0], "s1", "ov").await;
    let (ip2, _ns2) = sandbox_on(&c[1], "s2", "ov").await;
    eventually("s1 reaches s2", 5, || pings(&ns1, ip2)).await;
    hosts[1].sigkill();
    hosts[1].spawn();
    let _: Value = c[1].get("/networks").await.unwrap();
    // Past the old lease's 5 s: the endpoint was published again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(pings(&ns1, ip2).await, "s2 is still reachable from host 1 after host 2's daemon restarted");
}

/// etcd stopped under running sandboxes: traffic goes on, global changes
/// are refused with an error naming the store; etcd back: a network created
/// then on host 1 reaches host 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_etcd_keeps_traffic_and_refuses_global_changes() {
    let test = "losing_etcd_keeps_traffic_and_refuses_global_changes";
    let Some((mut underlay, hosts)) = cluster(test, 2).await else { return };
    let c: Vec<Client> = hosts.iter().map(|d| d.client()).collect();
    let body = json!({ "Name": "ov", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.64.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &body).await.unwrap();
    eventually("listed on host 2", 5, || listed(&c[1], "ov")).await;
    let (_, ns1) = sandbox_on(&c[0], "s1", "ov").await;
    let (ip2, _ns2) = sandbox_on(&c[1], "s2", "ov").await;
    eventually("s1 reaches s2", 5, || pings(&ns1, ip2)).await;

    underlay.stop_etcd();
    assert!(pings(&ns1, ip2).await, "traffic goes on without etcd");
    let body2 = json!({ "Name": "ov2", "Driver": "overlay", "IPAM": { "Config": [{ "Subnet": "10.231.65.0/24" }] } });
    let e = c[0].post::<_, Value>("/networks/create", &body2).await.unwrap_err();
    assert!(e.to_string().contains("cluster store"), "a clear error: {e}");
    // A local network still works.
    let local = json!({ "Name": "br", "IPAM": { "Config": [{ "Subnet": "10.231.66.0/24" }] } });
    let _: Value = c[0].post("/networks/create", &local).await.expect("local changes go on");

    underlay.start_etcd().await;
    eventually("global changes are accepted again", 20, || async {
        c[0].post::<_, Value>("/networks/create", &body2).await.is_ok()
    })
    .await;
    eventually("the new network reaches host 2", 10, || listed(&c[1], "ov2")).await;
    assert!(pings(&ns1, ip2).await, "traffic still goes");
}
