//! Simulated hosts for multi-host tests and benchmarks: scratch namespaces
//! joined by an underlay bridge (192.168.231.0/24), each running its own
//! `cnmd` inside its namespace with `--cluster-store` pointing at one etcd
//! started on the underlay (192.168.231.100). etcd serves TLS only and
//! takes only clients with a certificate of the test's CA (made with
//! `openssl`), as an operator should run it; the daemons get theirs with
//! `--cluster-store-opt kv.cacertfile=… kv.certfile=… kv.keyfile=…`.

use super::Daemon;
use cnm::osl::{Namespace, Netlink, VethSpec};
use cnmd::client::Client;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// etcd's address on the underlay.
pub const ETCD: &str = "192.168.231.100";

/// The underlay: a namespace with a bridge every host is plugged into, and etcd on it.
pub struct Underlay {
    dir: tempfile::TempDir,
    /// The underlay namespace.
    pub ns: Namespace,
    nl: Netlink,
    bridge: u32,
    etcd: Option<Child>,
}

impl Underlay {
    pub async fn new() -> Underlay {
        let dir = tempfile::Builder::new().prefix("cnm-underlay-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        super::make_certs(&dir.path().join("certs"), &format!("IP:{ETCD}"));
        let (ns, nl) = Netlink::create_namespace(dir.path().join("underlay.netns"), cnm::osl::DEFAULT_DEADLINE)
            .await
            .expect("underlay namespace");
        nl.link_set_up(1).await.unwrap();
        let bridge = nl.link_add_bridge("ul0", None, None, None).await.unwrap().index;
        nl.link_set_up(bridge).await.unwrap();
        nl.addr_add(bridge, format!("{ETCD}/24").parse().unwrap()).await.unwrap();
        Underlay { dir, ns, nl, bridge, etcd: None }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("underlay.netns")
    }

    /// A file of the test's certificates (`ca.pem`, `client.pem`, `client.key`, `stranger.pem`, …).
    pub fn cert(&self, name: &str) -> String {
        self.dir.path().join("certs").join(name).display().to_string()
    }

    /// cnmd's arguments for a client certificate of the test's CA.
    pub fn store_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (k, f) in [("kv.cacertfile", "ca.pem"), ("kv.certfile", "client.pem"), ("kv.keyfile", "client.key")] {
            v.push("--cluster-store-opt".to_string());
            v.push(format!("{k}={}", self.cert(f)));
        }
        v
    }

    /// A client configuration of the store: TLS with the test's CA and
    /// the given certificate and key (`None`: no client certificate).
    pub fn store_config(&self, identity: Option<(&str, &str)>) -> cnm_cluster::ClusterConfig {
        let mut opts = std::collections::BTreeMap::new();
        opts.insert("kv.cacertfile".to_string(), self.cert("ca.pem"));
        if let Some((cert, key)) = identity {
            opts.insert("kv.certfile".to_string(), self.cert(cert));
            opts.insert("kv.keyfile".to_string(), self.cert(key));
        }
        let store = format!("etcd://{ETCD}:2379");
        cnm_cluster::ClusterConfig::parse(&store, ETCD.parse().unwrap()).unwrap().with_options(&opts).unwrap()
    }

    /// Plugs host `i` in: its `eth0` gets 192.168.231.i/24.
    pub async fn plug(&self, host: &cnm_tests::TestHost, i: u8) {
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

    /// Cuts host `i` off the underlay (from etcd and every other host),
    /// or plugs it back: its port of the underlay bridge goes down or up.
    pub async fn cut(&self, i: u8, cut: bool) {
        let port = self.nl.link_get(&format!("h{i}")).await.unwrap().expect("the host's underlay port");
        if cut {
            self.nl.link_set_down(port.index).await.unwrap();
        } else {
            self.nl.link_set_up(port.index).await.unwrap();
        }
    }

    /// Turns GRO on for host `i`'s underlay link, both ends (as a real NIC
    /// has it), when `ethtool` is installed; for throughput figures.
    pub fn gro(&self, host: &cnm_tests::TestHost, i: u8) -> bool {
        let on = |ns: PathBuf, dev: &str| {
            Command::new("nsenter")
                .arg(format!("--net={}", ns.display()))
                .args(["ethtool", "-K", dev, "gro", "on"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        on(host.ns_path(), "eth0") && on(self.path(), &format!("h{i}"))
    }

    /// Starts etcd on the underlay and waits (at most 20 s) until it answers.
    pub async fn start_etcd(&mut self) {
        assert!(self.etcd.is_none());
        let data = self.dir.path().join("etcd");
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .arg("etcd")
            .args(["--name", "cnm-test", "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &format!("https://{ETCD}:2379")])
            .args(["--advertise-client-urls", &format!("https://{ETCD}:2379")])
            .args(["--cert-file", &self.cert("server.pem"), "--key-file", &self.cert("server.key")])
            .args(["--client-cert-auth", "--trusted-ca-file", &self.cert("ca.pem")])
            // Metrics (for the bench) in plain HTTP on a port of their own.
            .args(["--listen-metrics-urls", &format!("http://{ETCD}:2381")])
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

    pub fn stop_etcd(&mut self) {
        if let Some(mut c) = self.etcd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `f` with a client of the cluster store of its own (with a
    /// certificate of the test's CA), on a thread inside the underlay
    /// (where etcd listens), as anyone holding etcd credentials could.
    pub async fn as_store_client<F, Fut, R>(&self, f: F) -> R
    where
        F: FnOnce(cnm_cluster::Cluster) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R>,
        R: Send + 'static,
    {
        self.with_store_config(self.store_config(Some(("client.pem", "client.key"))), f).await
    }

    /// [`Underlay::as_store_client`] with the given client configuration.
    pub async fn with_store_config<F, Fut, R>(&self, config: cnm_cluster::ClusterConfig, f: F) -> R
    where
        F: FnOnce(cnm_cluster::Cluster) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R>,
        R: Send + 'static,
    {
        self.ns
            .run(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(
                    async move { f(cnm_cluster::Cluster::connect(config).await.expect("a client of etcd")).await },
                )
            })
            .await
            .unwrap()
    }

    /// etcd's metrics page (plain HTTP on its metrics port, 2381).
    pub async fn etcd_metrics(&self) -> String {
        self.ns
            .run(|| {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(format!("{ETCD}:2381")).expect("etcd metrics");
                s.write_all(b"GET /metrics HTTP/1.0\r\nHost: etcd\r\n\r\n").unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            })
            .await
            .unwrap()
    }

    /// How many of network `nid`'s peer records in the store are host `host`'s.
    pub async fn peers_of(&self, nid: &str, host: &str) -> usize {
        let (prefix, host) = (format!("overlay/peers/{nid}/"), format!("\"{host}\""));
        self.as_store_client(move |etcd| async move {
            let (kvs, _) = etcd.list(&prefix).await.unwrap();
            kvs.iter().filter(|(_, v)| String::from_utf8_lossy(v).contains(&host)).count()
        })
        .await
    }

    pub fn etcd_log(&self) -> String {
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
pub async fn cluster(test: &str, n: u8) -> Option<(Underlay, Vec<Daemon>)> {
    if !cnm_tests::real_root(test)
        || !cnm_tests::tools(test, &["etcd"], "etcd-server")
        || !cnm_tests::tools(test, &["nsenter"], "util-linux")
        || !cnm_tests::tools(test, &["openssl"], "openssl")
    {
        return None;
    }
    let mut underlay = Underlay::new().await;
    let mut hosts = Vec::new();
    for i in 1..=n {
        let advertise = format!("192.168.231.{i}");
        let mut args =
            vec!["--cluster-store".to_string(), format!("etcd://{ETCD}:2379"), "--advertise-addr".into(), advertise];
        args.extend(underlay.store_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
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

/// The sum of the values of etcd's `metrics` lines that start with
/// `prefix` and pass `keep`.
pub fn metric_sum(metrics: &str, prefix: &str, keep: impl Fn(&str) -> bool) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && keep(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Whether `net` is listed by the daemon behind `c`.
pub async fn listed(c: &Client, net: &str) -> bool {
    c.get::<Value>(&format!("/networks/{net}")).await.is_ok()
}

/// A sandbox `name` on `client`'s host, connected to `net`: its address and namespace.
pub async fn sandbox_on(c: &Client, name: &str, net: &str) -> (IpAddr, Namespace) {
    let _: Value = c.post("/sandboxes", &json!({ "Name": name })).await.unwrap();
    c.post_unit(&format!("/networks/{net}/connect"), &json!({ "Container": name }))
        .await
        .unwrap_or_else(|e| panic!("connect {name} to {net}: {e}"));
    let sb: Value = c.get(&format!("/sandboxes/{name}")).await.unwrap();
    let ip = sb["Networks"][net]["IPAddress"].as_str().unwrap().parse().unwrap();
    (ip, Namespace::open(sb["Key"].as_str().unwrap()).unwrap())
}

/// Whether `ip` answers a ping from `ns` within half a second.
pub async fn pings(ns: &Namespace, ip: IpAddr) -> bool {
    cnm::osl::probe::ping(ns, ip, Duration::from_millis(500)).await.is_ok()
}
