//! Rootless operation: the process moves into a user namespace of its own,
//! with its own network and mount namespaces, in which it holds every
//! capability. Bridges, veth pairs, addresses, routes, sysctls of its
//! network namespaces and nf_tables tables all work there, as they do for
//! root in a scratch host namespace. The real host's network is out of
//! reach, unless a way out is asked for ([`enter_with`] and
//! [`WayOut::Slirp4netns`]): slirp4netns (Debian's package of the same
//! name), run outside the namespaces, gives the namespace a tap device with
//! a default route and carries its traffic through the host's sockets, as
//! rootless Docker and podman do. Connections to the gateway's address
//! (10.0.2.2) reach the host's loopback, and ports published on every
//! address are forwarded from the host's ([`forward`]).
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
static FORWARDER: OnceLock<slirp::Forwarder> = OnceLock::new();

pub use slirp::{Forward, TAP_ADDRESS};

/// How a rootless process's namespace reaches the host's network.
///
/// pasta (Debian's `passt`) would do the same with less overhead, but
/// Debian 12's (2023-03) crashed in its TCP path under this project's tests
/// (a segfault, connections lost); slirp4netns is the way out until a
/// newer pasta is packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WayOut {
    /// None: the namespace has loopback only.
    #[default]
    None,
    /// slirp4netns: outbound connectivity through the host's sockets (the
    /// namespace's tap is 10.0.2.100/24 with a default route via
    /// 10.0.2.2, which also leads to the host's loopback), and host ports
    /// forwarded on request ([`forward`]).
    Slirp4netns,
}

/// The way out [`enter_with`] set up, if any.
pub fn way_out() -> WayOut {
    if FORWARDER.get().is_some() { WayOut::Slirp4netns } else { WayOut::None }
}

/// Forwards host port `port` on `host_ip` (`proto` "tcp" or "udp") to the
/// same port of the namespace's tap address, through the way out; `None`
/// without one. Dropping the [`Forward`] removes it.
pub fn forward(proto: &str, host_ip: std::net::IpAddr, port: u16) -> Option<std::io::Result<Forward>> {
    FORWARDER.get().map(|f| f.forward(proto, host_ip, port))
}

/// The way out this machine offers a rootless process: slirp4netns when it
/// is on `PATH` and `/dev/net/tun` opens for this user (Debian's udev makes
/// it 0666; a machine without udev may leave it root's alone); otherwise
/// why not.
pub fn available_way_out() -> std::result::Result<WayOut, String> {
    if !on_path("slirp4netns") {
        return Err("slirp4netns is not installed (Debian package slirp4netns)".into());
    }
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        Ok(_) => Ok(WayOut::Slirp4netns),
        Err(e) => Err(format!("/dev/net/tun cannot be opened by this user ({e})")),
    }
}

/// Whether `program` is an executable file on `PATH`.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .any(|d| std::fs::metadata(d.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

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
    enter_with(WayOut::None)
}

/// [`enter`], with `way_out` to the host's network. For
/// [`WayOut::Slirp4netns`], a child process forked before the namespaces
/// are made (so it stays outside them) runs `slirp4netns` on this process
/// once they are, and this returns when slirp4netns has configured the
/// namespace (within 10 s). slirp4netns ends with this process. Fails, and
/// leaves no child behind, when slirp4netns is not on `PATH` or does not
/// start (it needs `/dev/net/tun` usable by this user).
pub fn enter_with(way_out: WayOut) -> Result<UserNamespace> {
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
    let helper = match way_out {
        WayOut::None => None,
        WayOut::Slirp4netns => Some(slirp::Helper::fork()?),
    };
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
    if let Some(helper) = helper {
        let _ = FORWARDER.set(helper.start()?);
    }
    let done = UserNamespace { outer_uid, outer_gid };
    Ok(*ENTERED.get_or_init(|| done))
}

mod slirp;

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
