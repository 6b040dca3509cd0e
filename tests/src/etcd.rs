//! A real etcd for tests of the cluster through the library: on free
//! loopback ports, serving TLS only to clients with a certificate of the
//! test's CA (as an operator should run it), with its data and
//! certificates in a scratch directory. Clients in the test process reach
//! it from any thread (the loopback of the test's own namespace).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A running etcd, killed on drop.
pub struct Etcd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Etcd {
    /// Starts etcd and waits (at most 20 s) until it accepts connections.
    /// Needs `etcd` (Debian's etcd-server) and `openssl`.
    pub async fn start() -> Etcd {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (client, peer) = (free(), free());
        let dir = tempfile::Builder::new().prefix("cnm-test-etcd-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        crate::tls::make_certs(&dir.path().join("certs"), "IP:127.0.0.1");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let endpoint = format!("127.0.0.1:{client}");
        let cert = |f: &str| dir.path().join("certs").join(f);
        let child = std::process::Command::new("etcd")
            .args(["--name", "cnm-test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &format!("https://{endpoint}")])
            .args(["--advertise-client-urls", &format!("https://{endpoint}")])
            .arg("--cert-file")
            .arg(cert("server.pem"))
            .arg("--key-file")
            .arg(cert("server.key"))
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(cert("ca.pem"))
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("cnm-test=http://127.0.0.1:{peer}")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let etcd = Etcd { child, dir, endpoint };
        let end = Instant::now() + Duration::from_secs(20);
        let addr: std::net::SocketAddr = etcd.endpoint.parse().unwrap();
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < end, "etcd did not start: {}", etcd.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        etcd
    }

    /// A file of the test's certificates (`ca.pem`, `client.pem`, `client.key`, …).
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.path().join("certs").join(name)
    }

    /// A member's configuration: this etcd over TLS with the test's client
    /// certificate, keys under `prefix`, `advertise` as its underlay address.
    pub fn member(&self, prefix: &str, advertise: Ipv4Addr) -> cnm_cluster::ClusterConfig {
        let mut opts = std::collections::BTreeMap::new();
        for (k, f) in [("kv.cacertfile", "ca.pem"), ("kv.certfile", "client.pem"), ("kv.keyfile", "client.key")] {
            opts.insert(k.to_string(), self.cert(f).display().to_string());
        }
        let mut config = cnm_cluster::ClusterConfig::parse(&format!("etcd://{}", self.endpoint), advertise)
            .unwrap()
            .with_options(&opts)
            .unwrap();
        config.prefix = prefix.into();
        config
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
