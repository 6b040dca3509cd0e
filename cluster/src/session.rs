//! One daemon's session with the cluster store: keys, leases, watches.

use crate::etcd::proto::{CompareResult, EventType, TxnRequest, WatchCreateRequest};
use crate::etcd::{Credentials, Etcd, EtcdError, Tls, compare_created, op_put, prefix_end};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// An error of the cluster store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// etcd did not answer, or refused a request.
    #[error("cluster store ({endpoints}): {op}")]
    Etcd {
        /// The store's endpoints.
        endpoints: String,
        /// What was being done.
        op: String,
        /// etcd's error.
        #[source]
        source: EtcdError,
    },
    /// A request could not complete before its deadline.
    #[error("cluster store ({endpoints}): {op}: no answer within {millis} ms")]
    Timeout {
        /// The store's endpoints.
        endpoints: String,
        /// What was being done.
        op: String,
        /// The deadline.
        millis: u128,
    },
    /// The address of the store is not `etcd://HOST:PORT[,HOST:PORT…]`.
    #[error("invalid cluster store {0:?}: expected etcd://HOST:PORT[,HOST:PORT…]")]
    InvalidAddress(String),
    /// A cluster store option (`--cluster-store-opt`) is unknown or has a bad value.
    #[error("cluster store option {key}: {message}")]
    InvalidOption {
        /// The option's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A file named by a cluster store option cannot be read.
    #[error("cluster store option {key}: cannot read {}", .path.display())]
    ReadFile {
        /// The option's key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to reach the cluster store and who this host is.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// etcd endpoints, `host:port`.
    pub endpoints: Vec<String>,
    /// The prefix of every key (one cluster per prefix).
    pub prefix: String,
    /// This host's address on the underlay (other hosts send VXLAN traffic there).
    pub advertise: Ipv4Addr,
    /// How long this host's keys outlive it after its last lease renewal.
    pub lease_ttl: Duration,
    /// The deadline of one request.
    pub timeout: Duration,
    /// TLS towards etcd (`kv.cacertfile`, `kv.certfile`, `kv.keyfile`); `None`: plain.
    pub tls: Option<TlsFiles>,
    /// The etcd user to authenticate as (`kv.username`, `kv.passwordfile`).
    pub credentials: Option<Credentials>,
}

/// The files of TLS towards etcd, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA etcd's certificate is checked against (`kv.cacertfile`).
    pub ca: PathBuf,
    /// This host's certificate and key (`kv.certfile`, `kv.keyfile`), for
    /// etcd's `--client-cert-auth`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// The cluster store options this crate knows (dockerd's names where it had them).
pub const STORE_OPTIONS: [&str; 5] = ["kv.cacertfile", "kv.certfile", "kv.keyfile", "kv.username", "kv.passwordfile"];

impl TlsFiles {
    /// Reads the files.
    fn read(&self) -> Result<Tls> {
        let read = |key: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|source| Error::ReadFile { key, path: path.clone(), source })
        };
        let ca = read("kv.cacertfile", &self.ca)?;
        let identity = match &self.identity {
            Some((cert, key)) => Some((read("kv.certfile", cert)?, read("kv.keyfile", key)?)),
            None => None,
        };
        Ok(Tls { ca, identity })
    }
}

impl ClusterConfig {
    /// Parses `etcd://HOST:PORT[,HOST:PORT…]`, with the default prefix (`/cnm`), a 5 s lease and a 5 s deadline.
    pub fn parse(store: &str, advertise: Ipv4Addr) -> Result<Self> {
        let rest = store.strip_prefix("etcd://").ok_or_else(|| Error::InvalidAddress(store.into()))?;
        let endpoints: Vec<String> = rest.trim_end_matches('/').split(',').map(|s| s.trim().to_string()).collect();
        if endpoints.iter().any(|e| e.is_empty() || !e.contains(':')) {
            return Err(Error::InvalidAddress(store.into()));
        }
        Ok(ClusterConfig {
            endpoints,
            prefix: "/cnm".into(),
            advertise,
            lease_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            tls: None,
            credentials: None,
        })
    }

    /// Applies the cluster store options (`--cluster-store-opt KEY=VALUE`):
    /// `kv.cacertfile` (TLS, checking etcd's certificate against this CA),
    /// `kv.certfile` and `kv.keyfile` (this host's certificate, both or
    /// neither, with a CA), `kv.username` and `kv.passwordfile` (an etcd
    /// user, the password read from the file, so that it shows in no
    /// process list). An unknown key is refused.
    pub fn with_options(mut self, options: &BTreeMap<String, String>) -> Result<Self> {
        let invalid = |key: &str, message: &str| Error::InvalidOption { key: key.into(), message: message.into() };
        if let Some(key) = options.keys().find(|k| !STORE_OPTIONS.contains(&k.as_str())) {
            return Err(invalid(key, &format!("unknown (known: {})", STORE_OPTIONS.join(", "))));
        }
        if let Some((key, _)) = options.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(invalid(key, "empty value"));
        }
        let get = |k: &str| options.get(k).map(|v| v.trim());
        let identity = match (get("kv.certfile"), get("kv.keyfile")) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("kv.certfile", "needs kv.keyfile")),
            (None, Some(_)) => return Err(invalid("kv.keyfile", "needs kv.certfile")),
        };
        self.tls = match (get("kv.cacertfile"), identity) {
            (Some(ca), identity) => Some(TlsFiles { ca: ca.into(), identity }),
            (None, None) => None,
            (None, Some(_)) => return Err(invalid("kv.certfile", "needs kv.cacertfile (TLS)")),
        };
        self.credentials = match (get("kv.username"), get("kv.passwordfile")) {
            (Some(user), Some(file)) => {
                let path = PathBuf::from(file);
                let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadFile {
                    key: "kv.passwordfile",
                    path: path.clone(),
                    source,
                })?;
                let password = text.trim_end_matches(['\r', '\n']).to_string();
                if password.is_empty() {
                    return Err(invalid("kv.passwordfile", "the file holds no password"));
                }
                Some(Credentials { user: user.into(), password })
            }
            (None, None) => None,
            (Some(_), None) => return Err(invalid("kv.username", "needs kv.passwordfile")),
            (None, Some(_)) => return Err(invalid("kv.passwordfile", "needs kv.username")),
        };
        if self.credentials.is_some() && self.tls.is_none() {
            return Err(invalid("kv.username", "needs kv.cacertfile: a password is not sent to etcd in plaintext"));
        }
        Ok(self)
    }
}

/// A change under a watched prefix (keys relative to the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Everything under the prefix, after a (re)connection: forget what you had.
    Resync(Vec<(String, Vec<u8>)>),
    /// A key was created or changed.
    Put(String, Vec<u8>),
    /// A key was deleted (or its lease expired).
    Delete(String),
    /// This host has a new lease (the first, or one granted again after
    /// the old one expired, during a partition longer than its TTL, say):
    /// every key it had put on the old one is gone, and whoever owns keys
    /// of this prefix puts them again.
    LeaseGranted,
}

/// One daemon's session with the cluster store (cheap to clone).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    client: Etcd,
    /// This host's lease (0 until granted, and while a lost one is granted again).
    lease: tokio::sync::watch::Sender<i64>,
    /// Whether the last request reached etcd.
    reachable: AtomicBool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("config", &self.inner.config).finish()
    }
}

impl Cluster {
    /// Opens a session: connects lazily (a store that is down now is
    /// retried on use), grants this host's lease when it can and keeps it
    /// renewed in the background.
    pub async fn connect(config: ClusterConfig) -> Result<Cluster> {
        let tls = config.tls.as_ref().map(TlsFiles::read).transpose()?;
        let client =
            Etcd::with_security(&config.endpoints, config.timeout, tls.as_ref(), config.credentials.clone()).map_err(
                |source| Error::Etcd { endpoints: config.endpoints.join(","), op: "connect".into(), source },
            )?;
        if let Some(c) = &config.credentials {
            // Wrong credentials are a configuration error, told at start;
            // a store that cannot be reached now is tried again on use.
            match tokio::time::timeout(config.timeout, client.authenticate()).await {
                Ok(Err(source @ EtcdError::Authentication { .. })) => {
                    return Err(Error::Etcd {
                        endpoints: config.endpoints.join(","),
                        op: format!("authenticate as {:?}", c.user),
                        source,
                    });
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %cnm_ipamapi::chain(&e), "cannot authenticate to the cluster store now: tried again on use")
                }
                Err(_) => {
                    tracing::warn!("the cluster store did not answer the authentication in time: tried again on use")
                }
                Ok(Ok(())) => {}
            }
        }
        let cluster = Cluster {
            inner: Arc::new(Inner {
                config,
                client,
                lease: tokio::sync::watch::channel(0).0,
                reachable: AtomicBool::new(false),
            }),
        };
        let keeper = cluster.clone();
        tokio::spawn(async move { keeper.keep_lease().await });
        Ok(cluster)
    }

    /// The session's configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// This host's underlay address.
    pub fn advertise(&self) -> Ipv4Addr {
        self.inner.config.advertise
    }

    /// Whether the last request reached the store.
    pub fn reachable(&self) -> bool {
        self.inner.reachable.load(Ordering::Relaxed)
    }

    fn key(&self, key: &str) -> String {
        format!("{}/{key}", self.inner.config.prefix)
    }

    async fn run<T, F>(&self, op: impl Fn() -> String, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<T, EtcdError>>,
    {
        let endpoints = || self.inner.config.endpoints.join(",");
        let out = match tokio::time::timeout(self.inner.config.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(Error::Etcd { endpoints: endpoints(), op: op(), source }),
            Err(_) => {
                Err(Error::Timeout { endpoints: endpoints(), op: op(), millis: self.inner.config.timeout.as_millis() })
            }
        };
        self.inner.reachable.store(out.is_ok(), Ordering::Relaxed);
        out
    }

    /// Grants the lease, then renews it at a third of its TTL; a lost lease
    /// (etcd down longer than the TTL) is granted again and this host's keys
    /// are re-published by their owners through [`Cluster::lease`].
    async fn keep_lease(&self) {
        let ttl = self.inner.config.lease_ttl.as_secs().max(2) as i64;
        loop {
            let c = &self.inner.client;
            let granted = self.run(|| "grant lease".into(), c.lease_grant(ttl)).await;
            let granted = match granted {
                Ok(g) if g.id != 0 => g.id,
                Ok(g) => {
                    tracing::warn!(error = g.error, "cluster store granted no lease");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.inner.lease.send_replace(granted);
            let Ok((keeper, mut answers)) = self.run(|| "keep lease".into(), c.lease_keep_alive(granted)).await else {
                self.lease_lost();
                continue;
            };
            loop {
                match tokio::time::timeout(self.inner.config.timeout, answers.message()).await {
                    Ok(Ok(Some(a))) if a.ttl > 0 => self.inner.reachable.store(true, Ordering::Relaxed),
                    _ => break,
                }
                tokio::time::sleep(Duration::from_secs((ttl as u64 / 3).max(1))).await;
                let renewal = crate::etcd::proto::LeaseKeepAliveRequest { id: granted };
                if keeper.send(renewal).await.is_err() {
                    break;
                }
            }
            self.lease_lost();
        }
    }

    fn lease_lost(&self) {
        self.inner.reachable.store(false, Ordering::Relaxed);
        // Keys must not be put on a lease that may have expired: callers wait for the new one.
        self.inner.lease.send_replace(0);
        tracing::warn!("cluster store lease lost; granting a new one");
    }

    /// This host's lease id, waiting (bounded by the deadline) until one is granted.
    pub async fn lease(&self) -> Result<i64> {
        let mut rx = self.inner.lease.subscribe();
        match tokio::time::timeout(self.inner.config.timeout, rx.wait_for(|id| *id != 0)).await {
            Ok(Ok(id)) => Ok(*id),
            _ => Err(Error::Timeout {
                endpoints: self.inner.config.endpoints.join(","),
                op: "grant lease".into(),
                millis: self.inner.config.timeout.as_millis(),
            }),
        }
    }

    /// Creates `key` with `value` only if it does not exist; returns whether it was created.
    pub async fn create(&self, key: &str, value: &[u8]) -> Result<bool> {
        self.create_with(key, value, 0).await
    }

    /// Creates `key` only if it does not exist and `parent` does (one
    /// transaction); returns whether it was created.
    pub async fn create_under(&self, key: &str, value: &[u8], parent: &str) -> Result<bool> {
        let (k, p) = (self.key(key), self.key(parent));
        let txn = TxnRequest {
            compare: vec![
                compare_created(k.clone().into_bytes(), CompareResult::Equal, 0),
                compare_created(p.into_bytes(), CompareResult::Greater, 0),
            ],
            success: vec![op_put(k.clone().into_bytes(), value.to_vec(), 0)],
            failure: vec![],
        };
        Ok(self.run(|| format!("create {k}"), self.inner.client.txn(txn)).await?.succeeded)
    }

    /// Sets `key` on this host's lease only if `parent` exists (one
    /// transaction); returns whether it was set. A key claiming a share of
    /// something (an endpoint of a network) is written this way, so that it
    /// never outlives what it claims a share of.
    pub async fn put_under_leased(&self, key: &str, value: &[u8], parent: &str) -> Result<bool> {
        let lease = self.lease().await?;
        let (k, p) = (self.key(key), self.key(parent));
        let txn = TxnRequest {
            compare: vec![compare_created(p.into_bytes(), CompareResult::Greater, 0)],
            success: vec![op_put(k.clone().into_bytes(), value.to_vec(), lease)],
            failure: vec![],
        };
        Ok(self.run(|| format!("put {k}"), self.inner.client.txn(txn)).await?.succeeded)
    }

    /// Deletes `key` only if no key exists under `prefix` (one
    /// transaction); returns whether it was deleted (or already absent).
    pub async fn delete_if_none_under(&self, key: &str, prefix: &str) -> Result<bool> {
        let (k, p) = (self.key(key), self.key(prefix));
        let none_under = crate::etcd::proto::Compare {
            range_end: prefix_end(p.as_bytes()),
            ..compare_created(p.into_bytes(), CompareResult::Equal, 0)
        };
        let delete = crate::etcd::proto::RequestOp {
            request: Some(crate::etcd::proto::Request::DeleteRange(crate::etcd::proto::DeleteRangeRequest {
                key: k.clone().into_bytes(),
                range_end: vec![],
            })),
        };
        let txn = TxnRequest { compare: vec![none_under], success: vec![delete], failure: vec![] };
        Ok(self.run(|| format!("delete {k}"), self.inner.client.txn(txn)).await?.succeeded)
    }

    /// [`Cluster::create`], answering the store's revision that created the
    /// key (`None`: it existed).
    pub async fn create_revision(&self, key: &str, value: &[u8]) -> Result<Option<i64>> {
        let k = self.key(key);
        let txn = TxnRequest {
            compare: vec![compare_created(k.clone().into_bytes(), CompareResult::Equal, 0)],
            success: vec![op_put(k.clone().into_bytes(), value.to_vec(), 0)],
            failure: vec![],
        };
        let resp = self.run(|| format!("create {k}"), self.inner.client.txn(txn)).await?;
        Ok(resp.succeeded.then(|| resp.header.map_or(0, |h| h.revision)))
    }

    /// Deletes `keys` (each a key, or with `true` every key under it as a
    /// prefix) only if `guard` is the key created at `revision` (one
    /// transaction): what a key's creator owned is never taken from a later
    /// creator of the same key. Returns whether they were deleted.
    pub async fn delete_if_created_at(&self, guard: &str, revision: i64, keys: &[(&str, bool)]) -> Result<bool> {
        let g = self.key(guard);
        let success =
            keys.iter()
                .map(|(key, prefix)| {
                    let k = self.key(key).into_bytes();
                    let range_end = if *prefix { prefix_end(&k) } else { vec![] };
                    crate::etcd::proto::RequestOp {
                        request: Some(crate::etcd::proto::Request::DeleteRange(
                            crate::etcd::proto::DeleteRangeRequest { key: k, range_end },
                        )),
                    }
                })
                .collect();
        let txn = TxnRequest {
            compare: vec![compare_created(g.clone().into_bytes(), CompareResult::Equal, revision)],
            success,
            failure: vec![],
        };
        Ok(self.run(|| format!("delete under {g}"), self.inner.client.txn(txn)).await?.succeeded)
    }

    /// [`Cluster::create`] with the key attached to this host's lease.
    pub async fn create_leased(&self, key: &str, value: &[u8]) -> Result<bool> {
        let lease = self.lease().await?;
        self.create_with(key, value, lease).await
    }

    /// Creates `key` on `lease` (0: none) if it does not exist.
    async fn create_with(&self, key: &str, value: &[u8], lease: i64) -> Result<bool> {
        let k = self.key(key);
        let txn = TxnRequest {
            compare: vec![compare_created(k.clone().into_bytes(), CompareResult::Equal, 0)],
            success: vec![op_put(k.clone().into_bytes(), value.to_vec(), lease)],
            failure: vec![],
        };
        Ok(self.run(|| format!("create {k}"), self.inner.client.txn(txn)).await?.succeeded)
    }

    /// Sets `key` (on no lease).
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let k = self.key(key);
        let put = self.inner.client.put(k.clone().into_bytes(), value.to_vec(), 0);
        self.run(|| format!("put {k}"), put).await.map(|_| ())
    }

    /// Sets `key` (attached to this host's lease).
    pub async fn put_leased(&self, key: &str, value: &[u8]) -> Result<()> {
        let lease = self.lease().await?;
        let k = self.key(key);
        let put = self.inner.client.put(k.clone().into_bytes(), value.to_vec(), lease);
        self.run(|| format!("put {k}"), put).await.map(|_| ())
    }

    /// Deletes `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<()> {
        let k = self.key(key);
        let delete = self.inner.client.delete(k.clone().into_bytes(), vec![]);
        self.run(|| format!("delete {k}"), delete).await.map(|_| ())
    }

    /// Deletes every key under `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let k = self.key(prefix);
        let delete = self.inner.client.delete(k.clone().into_bytes(), prefix_end(k.as_bytes()));
        self.run(|| format!("delete {k}*"), delete).await.map(|_| ())
    }

    /// The value of `key`, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = self.key(key);
        let resp = self.run(|| format!("get {k}"), self.inner.client.range(k.clone().into_bytes(), vec![])).await?;
        Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Every key under `prefix` (relative to the cluster's prefix) and the store's revision.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<(String, Vec<u8>)>, i64)> {
        let k = self.key(prefix);
        let range = self.inner.client.range(k.clone().into_bytes(), prefix_end(k.as_bytes()));
        let resp = self.run(|| format!("list {k}*"), range).await?;
        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
        let base = self.inner.config.prefix.len() + 1;
        let kvs = resp
            .kvs
            .into_iter()
            .filter_map(|kv| Some((std::str::from_utf8(&kv.key).ok()?.get(base..)?.to_string(), kv.value)))
            .collect();
        Ok((kvs, rev))
    }

    /// Follows `prefix`: first a [`Event::Resync`] with everything under it,
    /// then each change; after losing the store, a new `Resync` once it is
    /// back (or the changes since the last revision seen, when etcd still has them).
    pub fn watch(&self, prefix: &str) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(1024);
        let (cluster, prefix) = (self.clone(), prefix.to_string());
        let mut leases = self.inner.lease.subscribe();
        let granted = tx.clone();
        tokio::spawn(async move {
            while leases.changed().await.is_ok() {
                if *leases.borrow_and_update() != 0 && granted.send(Event::LeaseGranted).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move { cluster.follow(prefix, tx).await });
        rx
    }

    async fn follow(&self, prefix: String, tx: mpsc::Sender<Event>) {
        let base = self.inner.config.prefix.len() + 1;
        let mut resume: Option<i64> = None;
        loop {
            let start = match resume {
                Some(rev) => rev,
                None => match self.list(&prefix).await {
                    Ok((kvs, rev)) => {
                        if tx.send(Event::Resync(kvs)).await.is_err() {
                            return;
                        }
                        rev + 1
                    }
                    Err(e) => {
                        tracing::debug!(error = %cnm_ipamapi::Chain(&e), "cluster store unreachable; listing again soon");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                },
            };
            let key = self.key(&prefix).into_bytes();
            let create = WatchCreateRequest { range_end: prefix_end(&key), key, start_revision: start };
            let (_sender, mut answers) =
                match self.run(|| format!("watch {prefix}"), self.inner.client.watch(create)).await {
                    Ok(s) => s,
                    Err(_) => {
                        resume = None;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
            let mut last = start - 1;
            loop {
                match answers.message().await {
                    Ok(Some(resp)) => {
                        if resp.canceled {
                            // Compacted past our revision: list everything again.
                            resume = None;
                            break;
                        }
                        for ev in resp.events {
                            let Some(kv) = ev.kv else { continue };
                            last = last.max(kv.mod_revision);
                            let Some(key) = std::str::from_utf8(&kv.key).ok().and_then(|k| k.get(base..)) else {
                                continue;
                            };
                            let key = key.to_string();
                            let event = match EventType::try_from(ev.r#type) {
                                Ok(EventType::Put) => Event::Put(key, kv.value),
                                Ok(EventType::Delete) => Event::Delete(key),
                                Err(_) => continue,
                            };
                            if tx.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) | Err(_) => {
                        self.inner.reachable.store(false, Ordering::Relaxed);
                        tracing::warn!(prefix, "cluster store watch lost; resuming");
                        // Resume from the last revision seen; a compacted one is re-listed.
                        resume = Some(last + 1);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn base() -> ClusterConfig {
        ClusterConfig::parse("etcd://10.0.0.1:2379", Ipv4Addr::new(10, 0, 0, 2)).unwrap()
    }

    #[test]
    fn store_options_are_read_as_dockerd_named_them() {
        let c = base().with_options(&opts(&[("kv.cacertfile", "/ca.pem")])).unwrap();
        assert_eq!(c.tls, Some(TlsFiles { ca: "/ca.pem".into(), identity: None }));
        let c = base()
            .with_options(&opts(&[("kv.cacertfile", "/ca"), ("kv.certfile", "/c"), ("kv.keyfile", "/k")]))
            .unwrap();
        assert_eq!(c.tls.unwrap().identity, Some(("/c".into(), "/k".into())));
        assert!(base().with_options(&opts(&[])).unwrap().tls.is_none());

        let dir = std::env::temp_dir().join(format!("cnm-cluster-opts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let c = base()
            .with_options(&opts(&[
                ("kv.cacertfile", "/ca"),
                ("kv.username", "cnm"),
                ("kv.passwordfile", file.to_str().unwrap()),
            ]))
            .unwrap();
        let creds = c.credentials.unwrap();
        assert_eq!((creds.user.as_str(), creds.password.as_str()), ("cnm", "s3cret"));
        assert!(!format!("{creds:?}").contains("s3cret"), "the password is never printed");
        let plain = base().with_options(&opts(&[("kv.username", "cnm"), ("kv.passwordfile", file.to_str().unwrap())]));
        assert!(plain.unwrap_err().to_string().contains("not sent to etcd in plaintext"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_store_options_are_refused_by_name() {
        for (kv, named) in [
            (vec![("kv.path", "/x")], "kv.path"),
            (vec![("kv.certfile", "/c")], "kv.certfile"),
            (vec![("kv.keyfile", "/k")], "kv.keyfile"),
            (vec![("kv.certfile", "/c"), ("kv.keyfile", "/k")], "kv.certfile"),
            (vec![("kv.username", "cnm")], "kv.username"),
            (vec![("kv.passwordfile", "/p")], "kv.passwordfile"),
            (
                vec![("kv.cacertfile", "/ca"), ("kv.username", "cnm"), ("kv.passwordfile", "/nonexistent/cnm")],
                "kv.passwordfile",
            ),
            (vec![("kv.cacertfile", "")], "kv.cacertfile"),
        ] {
            let e = base().with_options(&opts(&kv)).unwrap_err();
            assert!(e.to_string().contains(named), "{kv:?}: {e}");
        }
    }
}
