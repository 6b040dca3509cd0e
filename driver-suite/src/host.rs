//! The scratch host a suite runs in: a network namespace of its own with
//! sandbox namespaces beside it, and a client namespace outside it from
//! which published ports are tried; all removed when dropped.

use cnm_osl::{Namespace, Netlink, VethSpec, chain};
use ipnet::IpNet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::OnceCell;

/// The scratch host's address toward its client namespace.
pub const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 239, 255, 1);
/// The client namespace's address.
pub const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 239, 255, 2);

/// A scratch "host": a network namespace of its own (and a directory for
/// sandbox namespaces), removed when dropped. Needs root, or a user
/// namespace of the process's own ([`crate::rootless_tests!`]).
pub struct ScratchHost {
    dir: tempfile::TempDir,
    ns: Namespace,
    nl: Netlink,
    sandboxes: AtomicU32,
    client: OnceCell<Namespace>,
}

/// A sandbox namespace of a scratch host.
#[derive(Clone)]
pub struct Sandbox {
    /// The namespace's path: the join's sandbox key.
    pub key: PathBuf,
    /// Netlink in the sandbox.
    pub netlink: Netlink,
}

impl Sandbox {
    /// The sandbox's namespace.
    pub fn namespace(&self) -> &Namespace {
        self.netlink.namespace()
    }
}

impl ScratchHost {
    /// Creates the scratch host, its loopback up.
    pub async fn new() -> Result<ScratchHost, String> {
        let dir = tempfile::Builder::new().prefix("cnm-suite-").tempdir().map_err(|e| e.to_string())?;
        let (ns, nl) = Netlink::create_namespace(dir.path().join("host.netns"), cnm_osl::DEFAULT_DEADLINE)
            .await
            .map_err(|e| match crate::rootless_error() {
                Some(why) => {
                    format!("create a scratch host namespace: {} (not root, and no user namespace: {why})", chain(&e))
                }
                None => format!("create a scratch host namespace: {}", chain(&e)),
            })?;
        nl.link_set_up(1).await.map_err(|e| chain(&e))?;
        Ok(ScratchHost { dir, ns, nl, sandboxes: AtomicU32::new(0), client: OnceCell::new() })
    }

    /// Netlink in the scratch host: what a driver working on the host takes.
    pub fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// The scratch host's namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The path of the scratch host's namespace (for a plugin or library
    /// that opens it: `Context::host_namespace`).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("host.netns")
    }

    /// A directory of the scratch host's own (removed with it), for the
    /// state a driver keeps in files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A new sandbox namespace, loopback up.
    pub async fn sandbox(&self) -> Result<Sandbox, String> {
        let n = self.sandboxes.fetch_add(1, Ordering::Relaxed);
        let key = self.dir.path().join(format!("sandbox{n}"));
        let (_, netlink) = Netlink::create_namespace(&key, cnm_osl::DEFAULT_DEADLINE)
            .await
            .map_err(|e| format!("create a sandbox namespace: {}", chain(&e)))?;
        netlink.link_set_up(1).await.map_err(|e| chain(&e))?;
        Ok(Sandbox { key, netlink })
    }

    /// The host itself as a sandbox (for a driver whose endpoints are the
    /// host's own stack).
    pub fn as_sandbox(&self) -> Sandbox {
        Sandbox { key: self.path(), netlink: self.nl.clone() }
    }

    /// A client outside the host: a namespace linked to the host by a veth
    /// pair, [`CLIENT_ADDRESS`] on its side and [`HOST_ADDRESS`] on the
    /// host's (/30). Made on first use.
    pub async fn client(&self) -> Result<&Namespace, String> {
        self.client
            .get_or_try_init(|| async {
                let path = self.dir.path().join("client.netns");
                let (ns, cnl) = Netlink::create_namespace(&path, cnm_osl::DEFAULT_DEADLINE)
                    .await
                    .map_err(|e| format!("create the client namespace: {}", chain(&e)))?;
                let e = |what: &'static str| move |err: cnm_osl::Error| format!("{what}: {}", chain(&err));
                let spec = VethSpec {
                    name: "suite-out",
                    peer_name: "suite-in",
                    peer_namespace: Some(&ns),
                    up: true,
                    ..Default::default()
                };
                let host_end = self.nl.link_create_veth(&spec).await.map_err(e("create the client's veth"))?;
                let net = |a: Ipv4Addr| IpNet::new(a.into(), 30).map_err(|err| err.to_string());
                self.nl.addr_add(host_end.index, net(HOST_ADDRESS)?).await.map_err(e("address the host end"))?;
                cnl.link_set_up(1).await.map_err(e("bring the client's loopback up"))?;
                let inner = cnl.link_get("suite-in").await.map_err(e("find the client end"))?;
                let inner = inner.ok_or("the client end of the veth is missing")?;
                cnl.addr_add(inner.index, net(CLIENT_ADDRESS)?).await.map_err(e("address the client end"))?;
                cnl.link_set_up(inner.index).await.map_err(e("bring the client end up"))?;
                Ok(ns)
            })
            .await
    }
}

impl Drop for ScratchHost {
    fn drop(&mut self) {
        for n in 0..self.sandboxes.load(Ordering::Relaxed) {
            let _ = Namespace::remove(self.dir.path().join(format!("sandbox{n}")));
        }
        if self.client.initialized() {
            let _ = Namespace::remove(self.dir.path().join("client.netns"));
        }
        let _ = Namespace::remove(self.dir.path().join("host.netns"));
    }
}
