//! Rootless operation: the process moves into a user namespace of its own,
//! with its own network and mount namespaces, in which it holds every
//! capability. Bridges, veth pairs, addresses, routes, sysctls of its
//! network namespaces and nf_tables tables all work there, as they do for
//! root in a scratch host namespace; the real host's network is out of
//! reach (that takes a helper such as slirp4netns or pasta).
//!
//! The kernel lets only a single-threaded process change its user
//! namespace, so [`enter`] must run at the start of `main`, before an async
//! runtime (or any other thread) starts; a later call fails with an error
//! that says so. Every thread and child process started afterwards is
//! inside the namespaces.

use crate::{Error, Result};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use std::sync::OnceLock;

/// The user namespace this process entered, and who it is outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserNamespace {
    /// The user id outside the namespace (mapped to 0 inside).
    pub outer_uid: u32,
    /// The group id outside the namespace (mapped to 0 inside).
    pub outer_gid: u32,
}

static ENTERED: OnceLock<UserNamespace> = OnceLock::new();

/// The user namespace [`enter`] moved this process into, if it did.
pub fn entered() -> Option<UserNamespace> {
    ENTERED.get().copied()
}

/// Whether the process is root in its user namespace: real root, or inside
/// the namespace of [`enter`].
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Moves the calling process into a new user namespace (the caller's user
/// and group mapped to root), with a new network namespace (loopback up)
/// and a private mount namespace. Idempotent: a second call returns the
/// first one's result.
///
/// Fails when the process already has other threads, or when the kernel
/// refuses unprivileged user namespaces.
pub fn enter() -> Result<UserNamespace> {
    if let Some(done) = entered() {
        return Ok(done);
    }
    let threads = thread_count()?;
    if threads > 1 {
        return Err(Error::Unsupported(format!(
            "entering a user namespace needs a single-threaded process, and this one has {threads} threads: \
             call cnm's rootless entry at the start of main, before the async runtime starts"
        )));
    }
    let outer_uid = nix::unistd::getuid().as_raw();
    let outer_gid = nix::unistd::getgid().as_raw();
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).map_err(
        |e| match e {
            nix::errno::Errno::EPERM | nix::errno::Errno::ENOSPC | nix::errno::Errno::EUSERS => {
                Error::Unsupported(format!(
                    "this host does not allow unprivileged user namespaces ({e}): see the sysctls \
                     user.max_user_namespaces and kernel.unprivileged_userns_clone, or run as root"
                ))
            }
            other => Error::io("unshare user, network and mount namespaces", "/proc/self/ns", other.into()),
        },
    )?;
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("0 {outer_uid} 1"))?;
    write_proc("/proc/self/gid_map", &format!("0 {outer_gid} 1"))?;
    // Mounts made from now on (namespace files) stay in this mount namespace.
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| Error::io("make mounts private", "/", e.into()))?;
    loopback_up()?;
    let done = UserNamespace { outer_uid, outer_gid };
    Ok(*ENTERED.get_or_init(|| done))
}

fn write_proc(path: &'static str, content: &str) -> Result<()> {
    std::fs::write(path, content).map_err(|e| Error::io("write", path, e))
}

fn thread_count() -> Result<usize> {
    let path = "/proc/self/status";
    let status = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    Ok(status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(1))
}

/// Brings up `lo` of the calling thread's namespace with one ioctl (no
/// netlink connection, which would need a runtime).
fn loopback_up() -> Result<()> {
    let err = |op: &'static str| move |e: std::io::Error| Error::io(op, "lo", e);
    // SAFETY: plain socket(2) call; the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("open a socket to configure")(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: valid descriptor and ifreq; SIOCGIFFLAGS fills ifru_flags.
    if unsafe { libc::ioctl(raw, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(err("read the flags of")(std::io::Error::last_os_error()));
    }
    // SAFETY: the union member SIOCGIFFLAGS just set.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: valid descriptor and ifreq.
    if unsafe { libc::ioctl(raw, libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(err("bring up")(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_multithreaded_process() {
        // A second thread, whatever the harness does with this one.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        let result = enter();
        drop(tx);
        let _ = other.join();
        let err = result.expect_err("a multithreaded process cannot change user namespace");
        assert!(err.to_string().contains("single-threaded"), "{err}");
    }
}
