//! Host ports held while they are published: a bound (not listening) socket
//! per port, so no other program can take the port (and, rootless with a
//! way out, the same port forwarded from the real host's: see
//! [`crate::userns::WayOut`]). Dropping the reservation releases the port.

use crate::firewall::Protocol;
use crate::{Error, Namespace, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, OwnedFd};

/// A reserved host port.
#[derive(Debug)]
pub struct PortReservation {
    /// The bound socket; `None` when the kernel has no socket type for the
    /// protocol (SCTP without its module): the port is then not reserved.
    _socket: Option<OwnedFd>,
    /// The same port forwarded from the real host's, when this process is
    /// rootless with a way out ([`crate::userns::forward`]).
    _forward: Option<crate::userns::Forward>,
}

impl PortReservation {
    /// A port another program holds open for it (a container runtime that
    /// reserves its published ports itself, as podman does): nothing is
    /// bound here.
    pub fn held_elsewhere() -> Self {
        PortReservation { _socket: None, _forward: None }
    }
}

/// What to reserve: a protocol, a host address (unspecified: every address) and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    /// The protocol.
    pub proto: Protocol,
    /// The address; `0.0.0.0` or `::` for every address of the family.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
}

fn sockaddr(ip: IpAddr, port: u16) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sa = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = port.to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sa = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = port.to_be();
            sa.sin6_addr.s6_addr = v6.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Binds one socket in the calling thread's namespace.
fn bind_one(req: PortRequest) -> std::io::Result<Option<OwnedFd>> {
    let domain = if req.ip.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
    let (ty, proto) = match req.proto {
        Protocol::Tcp => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        Protocol::Udp => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        Protocol::Sctp => (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
    };
    // SAFETY: plain socket(2) call; the descriptor is owned right away.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if req.proto == Protocol::Sctp
            && matches!(e.raw_os_error(), Some(libc::EPROTONOSUPPORT | libc::ESOCKTNOSUPPORT | libc::EAFNOSUPPORT))
        {
            return Ok(None);
        }
        return Err(e);
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    if req.ip.is_ipv6() {
        // `::` reserves the IPv6 port only; IPv4 gets its own reservation.
        let one: libc::c_int = 1;
        // SAFETY: valid descriptor, option pointer and length.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    let (ss, len) = sockaddr(req.ip, req.port);
    // SAFETY: valid descriptor and a sockaddr of the given length.
    let rc = unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Some(sock))
}

/// Reserves `req` in the calling thread's namespace and, rootless with a
/// way out, forwards it from the real host's: TCP and UDP ports published
/// on every IPv4 address (the forward takes the port on the host's every
/// address; ports published on one address stay in the rootless namespace).
fn reserve(req: PortRequest) -> std::io::Result<PortReservation> {
    let socket = bind_one(req)?;
    let proto = match req.proto {
        Protocol::Tcp => Some("tcp"),
        Protocol::Udp => Some("udp"),
        Protocol::Sctp => None,
    };
    let forward = match (proto, req.ip) {
        (Some(proto), IpAddr::V4(v4)) if v4.is_unspecified() => {
            crate::userns::forward(proto, req.ip, req.port).transpose()?
        }
        _ => None,
    };
    Ok(PortReservation { _socket: socket, _forward: forward })
}

/// Runs `f` with a port binder for namespace `ns`, on one thread inside it:
/// `f` may try ports one after another (choosing from a range) without a
/// thread per attempt.
pub async fn with_port_binder<T, F>(ns: &Namespace, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Fn(PortRequest) -> std::io::Result<PortReservation>) -> T + Send + 'static,
{
    ns.run(move || f(&reserve)).await
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`) of namespace `ns`.
pub async fn ephemeral_port_range(ns: &Namespace) -> Result<(u16, u16)> {
    let s = ns.sysctl_get("net/ipv4/ip_local_port_range").await?;
    let mut it = s.split_whitespace().filter_map(|w| w.parse::<u16>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) if a <= b => Ok((a, b)),
        _ => Err(Error::Invalid(format!("unexpected ip_local_port_range {s:?}"))),
    }
}

/// The unspecified address of `ip`'s family.
pub fn unspecified_like(ip: IpAddr) -> IpAddr {
    if ip.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() }
}

/// Grows this process's file-descriptor table to `capacity` entries once.
///
/// In a multi-threaded process every growth of the table waits for an RCU
/// grace period (about 10 ms here); reserving thousands of ports would hit
/// several of them one after another. Growing once, up front, keeps the
/// per-port cost flat. Bounded by the open-file limit.
pub fn grow_fd_table(capacity: u32) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let top = u64::from(capacity).min(lim.rlim_cur).saturating_sub(1);
    if top < 64 {
        return;
    }
    // SAFETY: dup2 onto a free high descriptor number, closed right away;
    // the table keeps its new size.
    unsafe {
        let fd = libc::dup2(0, top as libc::c_int);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}
