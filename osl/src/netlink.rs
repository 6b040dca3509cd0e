//! A netlink (rtnetlink) handle bound to one namespace, with a deadline on every request.

use crate::{Error, Namespace, Result};
use rtnetlink::sys::{AsyncSocket, TokioSocket, protocols::NETLINK_ROUTE};
use std::future::Future;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

/// Opens a netlink route socket in the calling thread's namespace.
pub(crate) fn open_socket() -> Result<OwnedFd> {
    let socket = rtnetlink::sys::Socket::new(NETLINK_ROUTE).map_err(|e| Error::io("open netlink socket", "", e))?;
    // SAFETY: `into_raw_fd` hands over ownership of a valid, open descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) })
}

/// The deadline of a netlink request unless configured otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// A netlink route socket opened inside one namespace; cheap to clone.
///
/// The connection is driven by a task spawned on the current tokio runtime;
/// it ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Netlink {
    pub(crate) handle: rtnetlink::Handle,
    deadline: Duration,
    namespace: Namespace,
    /// The kernel runs one dump at a time per socket and answers EBUSY to a
    /// second one: dumps on this socket (shared by every clone) take turns.
    dumps: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Netlink {
    /// Opens a netlink socket inside `ns` (on a short-lived thread that entered it).
    pub async fn connect(ns: &Namespace, deadline: Duration) -> Result<Self> {
        let fd = ns.run(open_socket).await??;
        Self::from_fd(fd, ns.clone(), deadline)
    }

    /// Creates a namespace mounted at `path` and opens a netlink socket in it,
    /// both from the one short-lived thread that unshared (one thread, not two).
    pub async fn create_namespace(path: impl Into<PathBuf>, deadline: Duration) -> Result<(Namespace, Self)> {
        let path = path.into();
        let target = path.clone();
        let fd = crate::namespace::in_thread(move || {
            crate::namespace::create_blocking(&target)?;
            open_socket()
        })
        .await??;
        let ns = Namespace::open(&path)?;
        let nl = Self::from_fd(fd, ns.clone(), deadline)?;
        Ok((ns, nl))
    }

    /// A netlink handle in a new, unnamed namespace of its own (for probes):
    /// nothing mounts it, so the namespace and everything made in it are
    /// gone once the handle and its clones are dropped.
    pub async fn scratch(deadline: Duration) -> Result<Self> {
        let (ns, fd) = crate::namespace::in_thread(|| -> Result<(Namespace, OwnedFd)> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io("unshare network namespace", "/proc/thread-self/ns/net", e.into()))?;
            Ok((Namespace::current()?, open_socket()?))
        })
        .await??;
        Self::from_fd(fd, ns, deadline)
    }

    fn from_fd(fd: OwnedFd, namespace: Namespace, deadline: Duration) -> Result<Self> {
        // SAFETY: `fd` is an open netlink socket that we own; TokioSocket takes it over.
        let mut socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        socket.socket_mut().set_ext_ack(true).map_err(|e| Error::io("configure netlink socket", "", e))?;
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(connection);
        Ok(Netlink { handle, deadline, namespace, dumps: Default::default() })
    }

    /// The namespace this handle works in.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The deadline of each request.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs one request under the deadline; `op` names it in errors.
    pub(crate) async fn call<T>(
        &self,
        op: impl FnOnce() -> String,
        fut: impl Future<Output = std::result::Result<T, rtnetlink::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.deadline, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::netlink(op(), e)),
            Err(_) => Err(Error::Timeout { op: op(), millis: self.deadline.as_millis() }),
        }
    }

    /// Collects the answer of a request for one object (not a dump: no turn to wait for).
    pub(crate) async fn get_one<T>(
        &self,
        op: impl FnOnce() -> String,
        stream: impl futures::Stream<Item = std::result::Result<T, rtnetlink::Error>>,
    ) -> Result<Vec<T>> {
        use futures::TryStreamExt;
        self.call(op, stream.try_collect::<Vec<T>>()).await
    }

    /// Sends a dump request (`start` makes it) and collects the answer
    /// under the deadline, one dump at a time on this socket.
    pub(crate) async fn dump<T, S>(&self, op: impl FnOnce() -> String, start: impl FnOnce() -> S) -> Result<Vec<T>>
    where
        S: futures::Stream<Item = std::result::Result<T, rtnetlink::Error>>,
    {
        use futures::TryStreamExt;
        let _turn = self.dumps.lock().await;
        self.call(op, start().try_collect::<Vec<T>>()).await
    }
}
