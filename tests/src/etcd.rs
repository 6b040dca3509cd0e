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
        Self::start_with(&[]).await
    }

    /// [`Etcd::start`] with etcd's flags `extra` besides.
    pub async fn start_with(extra: &[&str]) -> Etcd {
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
            .args(extra)
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
        member(&self.endpoint, &self.dir.path().join("certs"), prefix, advertise)
    }

    /// The certificates' directory (for [`member`] in another process).
    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// A plain client of this etcd (no session, no lease of its own).
    pub fn client(&self) -> cnm_cluster::etcd::Etcd {
        let read = |f: &str| std::fs::read(self.cert(f)).expect("a test certificate");
        let tls =
            cnm_cluster::etcd::Tls { ca: read("ca.pem"), identity: Some((read("client.pem"), read("client.key"))) };
        cnm_cluster::etcd::Etcd::with_security(
            std::slice::from_ref(&self.endpoint),
            Duration::from_secs(5),
            Some(&tls),
            None,
        )
        .expect("an etcd client")
    }

    /// Every key under `prefix` (the whole key, its value and its lease: 0 for none).
    pub async fn keys(&self, prefix: &str) -> Vec<(String, Vec<u8>, i64)> {
        let end = cnm_cluster::etcd::prefix_end(prefix.as_bytes());
        let resp = self.client().range(prefix.as_bytes().to_vec(), end).await.expect("list etcd's keys");
        resp.kvs.into_iter().map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value, kv.lease)).collect()
    }

    /// Ends `lease` now, deleting its keys, as etcd does when its TTL passes
    /// without a renewal (a host that died).
    pub async fn expire(&self, lease: i64) {
        self.client().lease_revoke(lease).await.expect("revoke a lease");
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

/// A member's configuration for the etcd at `endpoint` whose test
/// certificates are in `certs` (see [`Etcd::member`]).
pub fn member(
    endpoint: &str,
    certs: &std::path::Path,
    prefix: &str,
    advertise: Ipv4Addr,
) -> cnm_cluster::ClusterConfig {
    let mut opts = std::collections::BTreeMap::new();
    for (k, f) in [("kv.cacertfile", "ca.pem"), ("kv.certfile", "client.pem"), ("kv.keyfile", "client.key")] {
        opts.insert(k.to_string(), certs.join(f).display().to_string());
    }
    let mut config = cnm_cluster::ClusterConfig::parse(&format!("etcd://{endpoint}"), advertise)
        .expect("an etcd address")
        .with_options(&opts)
        .expect("the test's store options");
    config.prefix = prefix.into();
    config
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// As an administrator (`admin`, a client holding the test CA's client
/// certificate): the `root` user (etcd needs it to enable auth), a user
/// `user` with `password` and a role that reads and writes the keys under
/// `prefix` only, and auth enabled.
pub async fn enable_auth(admin: &cnm_cluster::etcd::Etcd, prefix: &str, user: &str, password: &str) {
    use admin::*;
    let add = |name: &str, password: &str| UserAdd { name: name.into(), password: password.into() };
    let grant = |user: &str, role: &str| UserGrantRole { user: user.into(), role: role.into() };
    let _: Empty = admin.call("/etcdserverpb.Auth/UserAdd", add("root", "root-secret")).await.unwrap();
    let _: Empty = admin.call("/etcdserverpb.Auth/UserGrantRole", grant("root", "root")).await.unwrap();
    let _: Empty = admin.call("/etcdserverpb.Auth/RoleAdd", RoleAdd { name: user.into() }).await.unwrap();
    let perm = Permission {
        perm_type: 2,
        key: prefix.as_bytes().to_vec(),
        range_end: cnm_cluster::etcd::prefix_end(prefix.as_bytes()),
    };
    let grant_perm = RoleGrantPermission { name: user.into(), perm: Some(perm) };
    let _: Empty = admin.call("/etcdserverpb.Auth/RoleGrantPermission", grant_perm).await.unwrap();
    let _: Empty = admin.call("/etcdserverpb.Auth/UserAdd", add(user, password)).await.unwrap();
    let _: Empty = admin.call("/etcdserverpb.Auth/UserGrantRole", grant(user, user)).await.unwrap();
    let _: Empty = admin.call("/etcdserverpb.Auth/AuthEnable", Empty {}).await.unwrap();
}

/// etcd's administration messages the test sends (users, roles, auth), as
/// in etcd's `rpc.proto` and `auth.proto`.
mod admin {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UserAdd {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub password: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UserGrantRole {
        #[prost(string, tag = "1")]
        pub user: String,
        #[prost(string, tag = "2")]
        pub role: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RoleAdd {
        #[prost(string, tag = "1")]
        pub name: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Permission {
        /// 2: READWRITE.
        #[prost(int32, tag = "1")]
        pub perm_type: i32,
        #[prost(bytes = "vec", tag = "2")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub range_end: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RoleGrantPermission {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub perm: Option<Permission>,
    }
    /// Any answer (its fields are skipped).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}
}
