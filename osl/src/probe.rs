//! Connectivity probes run inside a namespace: ICMP echo (ping) and TCP
//! connect. Tests, examples and diagnostics use them to prove connectivity
//! with real packets.

use crate::{Error, Namespace, Result};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Sends ICMP echo requests from inside `ns` to `dst` until one is answered
/// or `timeout` passes; returns the round-trip time of the answered one.
pub async fn ping(ns: &Namespace, dst: IpAddr, timeout: Duration) -> Result<Duration> {
    ns.run(move || ping_blocking(dst, timeout)).await?
}

/// Opens a TCP connection from inside `ns` to `addr`, sends `payload` and
/// reads until the peer closes; returns what it read.
pub async fn tcp_exchange(ns: &Namespace, addr: SocketAddr, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
    ns.run(move || -> Result<Vec<u8>> {
        use std::io::{Read, Write};
        let io = |op: &'static str| move |e| Error::io(op, addr.to_string(), e);
        let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io("tcp connect"))?;
        s.set_read_timeout(Some(timeout)).map_err(io("tcp set timeout"))?;
        s.write_all(&payload).map_err(io("tcp write"))?;
        s.shutdown(std::net::Shutdown::Write).map_err(io("tcp shutdown"))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).map_err(io("tcp read"))?;
        Ok(out)
    })
    .await?
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 { u16::from_be_bytes([chunk[0], chunk[1]]) } else { u16::from(chunk[0]) << 8 };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ping_blocking(dst: IpAddr, timeout: Duration) -> Result<Duration> {
    let err = |op: &'static str| move |e: std::io::Error| Error::io(op, dst.to_string(), e);
    let (domain, proto, request_type, reply_type) = match dst {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8, 129u8),
    };
    // SAFETY: plain socket(2) call; the descriptor is owned right away.
    let fd = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(err("open raw ICMP socket")(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
    // SAFETY: valid descriptor, pointer and length of a timeval.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    let addr: socket2_addr::Addr = socket2_addr::Addr::new(dst);
    // Distinct per probe, so concurrent pings in one namespace do not take each other's replies.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let ident: u16 = (std::process::id() as u16) ^ NEXT.fetch_add(0x0101, std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let mut seq: u16 = 0;
    let mut buf = [0u8; 1500];
    while start.elapsed() < timeout {
        seq = seq.wrapping_add(1);
        let mut pkt = [0u8; 24];
        pkt[0] = request_type;
        pkt[4..6].copy_from_slice(&ident.to_be_bytes());
        pkt[6..8].copy_from_slice(&seq.to_be_bytes());
        pkt[8..24].copy_from_slice(b"cnm-probe-ping!!");
        if dst.is_ipv4() {
            let c = checksum(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
        }
        let sent_at = Instant::now();
        // SAFETY: valid descriptor, buffer and socket address of the right length.
        let n = unsafe { libc::sendto(sock.as_raw_fd(), pkt.as_ptr().cast(), pkt.len(), 0, addr.as_ptr(), addr.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // No route or unreachable network: retry until the timeout, as ping does.
            if !matches!(e.raw_os_error(), Some(libc::ENETUNREACH | libc::EHOSTUNREACH)) {
                return Err(err("send ICMP echo")(e));
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        // Wait up to 200 ms for this echo's reply, then send the next one.
        while sent_at.elapsed() < Duration::from_millis(200) {
            // SAFETY: valid descriptor and buffer.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                break;
            }
            let data = &buf[..n as usize];
            let icmp = if dst.is_ipv4() {
                let ihl = usize::from(data.first().copied().unwrap_or(0) & 0x0f) * 4;
                let from_ok = data.len() >= 20
                    && data[12..16]
                        == match dst {
                            IpAddr::V4(v) => v.octets(),
                            IpAddr::V6(_) => [0; 4],
                        };
                if !from_ok || data.len() < ihl + 8 {
                    continue;
                }
                &data[ihl..]
            } else {
                data
            };
            if icmp.len() >= 8
                && icmp[0] == reply_type
                && icmp[4..6] == ident.to_be_bytes()
                && icmp[6..8] == seq.to_be_bytes()
            {
                return Ok(sent_at.elapsed());
            }
        }
    }
    Err(Error::io(
        "ping",
        dst.to_string(),
        std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no echo reply within {} ms", timeout.as_millis())),
    ))
}

/// A socket address in the C layout, for sendto(2).
mod socket2_addr {
    use std::net::IpAddr;

    pub(super) enum Addr {
        V4(libc::sockaddr_in),
        V6(libc::sockaddr_in6),
    }

    impl Addr {
        pub(super) fn new(ip: IpAddr) -> Self {
            match ip {
                IpAddr::V4(v4) => {
                    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
                    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                    sa.sin_family = libc::AF_INET as libc::sa_family_t;
                    sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
                    Addr::V4(sa)
                }
                IpAddr::V6(v6) => {
                    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
                    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    sa.sin6_addr.s6_addr = v6.octets();
                    Addr::V6(sa)
                }
            }
        }

        pub(super) fn as_ptr(&self) -> *const libc::sockaddr {
            match self {
                Addr::V4(sa) => (sa as *const libc::sockaddr_in).cast(),
                Addr::V6(sa) => (sa as *const libc::sockaddr_in6).cast(),
            }
        }

        pub(super) fn len(&self) -> libc::socklen_t {
            (match self {
                Addr::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
                Addr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
            }) as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn checksum_of_echo_request_validates() {
        let mut pkt = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'a', b'b', b'c'];
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&pkt), 0);
    }
}
