//! An attacker's tools: hand-made Ethernet frames sent from inside a
//! namespace (a LAN neighbour, a container with `CAP_NET_RAW`) and a
//! sniffer that says whether a frame matching a test arrived. The frames
//! are what the kernel's own stack would never send: a TCP SYN to
//! 127.0.0.1 through a real interface, an IPv6 router advertisement.

use cnm::osl::Namespace;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const ETH_P_ALL: u16 = 0x0003;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The one's-complement sum of `data` (16-bit words, big-endian), folded.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 { u16::from_be_bytes([chunk[0], chunk[1]]) } else { u16::from(chunk[0]) << 8 };
        acc += u32::from(word);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet frame carrying an IPv4 TCP SYN (checksums right), as a
/// real stack would send it, but with any addresses the attacker likes.
pub fn tcp_syn(dst_mac: [u8; 6], src_mac: [u8; 6], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&src.1.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes()); // sequence
    tcp[12] = 5 << 4; // data offset
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes()); // window
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.0.octets());
    pseudo.extend_from_slice(&dst.0.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    let c = fold(sum16(sum16(0, &pseudo), &tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(20u16 + 20).to_be_bytes());
    ip[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = fold(sum16(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ethernet(dst_mac, src_mac, ETHERTYPE_IPV4, &ip)
}

/// An IPv4 TCP segment of an Ethernet frame, as the probes read it.
struct Segment {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    /// The TCP flags byte.
    flags: u8,
}

/// Reads the addresses, ports and flags of an IPv4 TCP frame.
fn segment(frame: &[u8]) -> Option<Segment> {
    if frame.len() < 14 + 20 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 || frame[14 + 9] != 6 {
        return None;
    }
    let t = 14 + usize::from(frame[14] & 0x0f) * 4;
    let tcp = frame.get(t..t + 14)?;
    let addr = |at: usize| Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
    Some(Segment {
        src: (addr(14 + 12), u16::from_be_bytes([tcp[0], tcp[1]])),
        dst: (addr(14 + 16), u16::from_be_bytes([tcp[2], tcp[3]])),
        flags: tcp[13],
    })
}

/// Whether `frame` is an IPv4 TCP segment from `src` with SYN and ACK set
/// (the answer to a SYN: something listened and answered).
pub fn is_syn_ack_from(frame: &[u8], src: (Ipv4Addr, u16)) -> bool {
    segment(frame).is_some_and(|s| s.src == src && s.flags & 0x12 == 0x12)
}

/// Whether `frame` is an IPv4 TCP SYN (without ACK) to `dst`.
pub fn is_syn_to(frame: &[u8], dst: (Ipv4Addr, u16)) -> bool {
    segment(frame).is_some_and(|s| s.dst == dst && s.flags & 0x12 == 0x02)
}

/// An IPv6 router advertisement from link-local `src` (and `src_mac`) to
/// all nodes: default router for 1800 s, with prefix `prefix`/64 for
/// autoconfiguration — what a rogue router on the segment sends.
pub fn router_advertisement(src_mac: [u8; 6], src: Ipv6Addr, prefix: Ipv6Addr) -> Vec<u8> {
    let dst: Ipv6Addr = "ff02::1".parse().expect("literal");
    let mut icmp = vec![134u8, 0, 0, 0, 64, 0];
    icmp.extend_from_slice(&1800u16.to_be_bytes()); // router lifetime
    icmp.extend_from_slice(&[0; 8]); // reachable time, retrans timer
    // Source link-layer address option.
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&src_mac);
    // Prefix information: on-link and autonomous.
    icmp.extend_from_slice(&[3, 4, 64, 0xc0]);
    icmp.extend_from_slice(&86400u32.to_be_bytes());
    icmp.extend_from_slice(&14400u32.to_be_bytes());
    icmp.extend_from_slice(&[0; 4]);
    icmp.extend_from_slice(&prefix.octets());
    let len = icmp.len() as u32;
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let c = fold(sum16(sum16(0, &pseudo), &icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[58, 255]); // ICMPv6, hop limit 255 (as RFC 4861 requires)
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&icmp);
    ethernet([0x33, 0x33, 0, 0, 0, 1], src_mac, ETHERTYPE_IPV6, &ip)
}

/// An `AF_PACKET` socket on interface `ifname` of the calling thread's namespace.
fn packet_socket(ifname: &str) -> std::io::Result<(OwnedFd, libc::sockaddr_ll)> {
    let index = nix::net::if_::if_nametoindex(ifname).map_err(std::io::Error::from)?;
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd =
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(ETH_P_ALL.to_be())) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = index as i32;
    // SAFETY: valid descriptor and a sockaddr_ll of its size.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((sock, sll))
}

/// Sends `frame` as it is on interface `ifname` of namespace `ns`.
pub async fn send_frame(ns: &Namespace, ifname: &str, frame: Vec<u8>) {
    let ifname = ifname.to_string();
    ns.run(move || -> std::io::Result<()> {
        let (sock, sll) = packet_socket(&ifname)?;
        // SAFETY: valid descriptor, buffer and sockaddr_ll.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
    })
    .await
    .expect("enter namespace")
    .unwrap_or_else(|e| panic!("send a frame on {}: {e}", "the interface"));
}

/// A capture of every frame an interface sees, from the moment it starts.
pub struct Sniffer {
    sock: OwnedFd,
}

impl Sniffer {
    /// Starts capturing on interface `ifname` of namespace `ns`.
    pub async fn start(ns: &Namespace, ifname: &str) -> Sniffer {
        let name = ifname.to_string();
        let (sock, _) = ns
            .run(move || packet_socket(&name))
            .await
            .expect("enter namespace")
            .unwrap_or_else(|e| panic!("capture on {ifname}: {e}"));
        Sniffer { sock }
    }

    /// Whether a frame for which `matches` holds arrives within `timeout`.
    pub async fn saw(self, timeout: Duration, matches: impl Fn(&[u8]) -> bool + Send + 'static) -> bool {
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + timeout;
            let mut buf = vec![0u8; 65536];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                let mut pfd = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd.
                let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
                if ready <= 0 {
                    continue;
                }
                // SAFETY: valid descriptor and buffer.
                let n = unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 && matches(&buf[..n as usize]) {
                    return true;
                }
            }
        })
        .await
        .expect("sniffer thread")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syn_has_valid_checksums() {
        let f = tcp_syn([2; 6], [4; 6], ("10.0.0.1".parse().unwrap(), 40000), ("10.0.0.2".parse().unwrap(), 80));
        assert_eq!(fold(sum16(0, &f[14..34])), 0, "IPv4 header checksum");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&f[26..34]);
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        assert_eq!(fold(sum16(sum16(0, &pseudo), &f[34..])), 0, "TCP checksum");
        assert!(is_syn_to(&f, ("10.0.0.2".parse().unwrap(), 80)));
        assert!(!is_syn_ack_from(&f, ("10.0.0.1".parse().unwrap(), 40000)));
    }
}
