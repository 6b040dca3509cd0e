//! WireGuard devices over generic netlink (the kernel's `wireguard`
//! family, what `wg set` and `wg show` speak): a device's private key,
//! listen port, firewall mark and peers are set with [`set`], and read back
//! with [`get`] (the kernel derives the public key from the private one).
//! The device itself is a link ([`Netlink::link_add_wireguard`]).
//!
//! Requests go from a short-lived thread inside the device's namespace
//! over a blocking `NETLINK_GENERIC` socket: a device is configured rarely
//! (at start, when a peer comes or goes, when keys rotate).

use crate::{Error, Namespace, Netlink, Result};
use ipnet::IpNet;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto, socket,
};
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, SystemTime};

/// A Curve25519 key as WireGuard uses it (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// A new private key: 32 random bytes from the kernel, clamped as
    /// Curve25519 wants.
    pub fn generate_private() -> Result<Key> {
        let mut k = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut k))
            .map_err(|e| Error::io("read", "/dev/urandom", e))?;
        k[0] &= 248;
        k[31] = (k[31] & 127) | 64;
        Ok(Key(k))
    }

    /// The key in base64, as `wg` prints it (and as the cluster store keeps public keys).
    pub fn to_base64(&self) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(44);
        for chunk in self.0.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// A key from its base64 form (44 characters).
    pub fn from_base64(s: &str) -> Result<Key> {
        // The text is never in the error: it may be a private key.
        let bad = || Error::Invalid(format!("not a WireGuard key (44 characters of base64; got {})", s.len()));
        let s = s.as_bytes();
        if s.len() != 44 || s[43] != b'=' {
            return Err(bad());
        }
        let value = |c: u8| match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        };
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut out = Vec::with_capacity(33);
        for &c in &s[..43] {
            bits = (bits << 6) | u32::from(value(c).ok_or_else(bad)?);
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        // 43 characters carry 258 bits: the last two must be zero.
        if out.len() != 32 || bits != 0 {
            return Err(bad());
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(&out);
        Ok(Key(k))
    }
}

/// Never prints a key's bytes (a private key must not reach a log).
impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

/// A peer as it is set: its public key, where it is, and the inner
/// addresses it may send from (and is sent to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's public key.
    pub public_key: Key,
    /// The peer's address and port (`None`: learnt from its packets).
    pub endpoint: Option<SocketAddr>,
    /// The inner addresses of the peer; they replace the peer's former ones.
    pub allowed_ips: Vec<IpNet>,
    /// A keepalive every so many seconds (0: none; `None`: left as it is).
    pub persistent_keepalive: Option<u16>,
}

/// A change to a device ([`set`]).
#[derive(Debug, Clone, Default)]
pub struct DeviceConfig {
    /// The device's private key.
    pub private_key: Option<Key>,
    /// The UDP port it listens on.
    pub listen_port: Option<u16>,
    /// The firewall mark of its own (encrypted) packets.
    pub fwmark: Option<u32>,
    /// The peers given here are the device's only ones (others are removed).
    pub replace_peers: bool,
    /// Peers to add or update.
    pub peers: Vec<PeerConfig>,
    /// Peers to remove, by public key.
    pub remove_peers: Vec<Key>,
}

/// A peer as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its public key.
    pub public_key: Key,
    /// Its current address and port.
    pub endpoint: Option<SocketAddr>,
    /// Its inner addresses.
    pub allowed_ips: Vec<IpNet>,
    /// The last completed handshake (`None`: never).
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}

/// A device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// The public key of its private key (`None`: no key set).
    pub public_key: Option<Key>,
    /// The UDP port it listens on.
    pub listen_port: u16,
    /// The firewall mark of its packets.
    pub fwmark: u32,
    /// Its peers.
    pub peers: Vec<PeerInfo>,
}

impl Netlink {
    /// Creates a WireGuard link named `name`, down (`ip link add NAME type wireguard`).
    pub async fn link_add_wireguard(&self, name: &str) -> Result<()> {
        crate::link::check_name(name)?;
        let req = self.handle.link().add(rtnetlink::LinkWireguard::new(name).build()).execute();
        self.call(|| format!("ip link add {name} type wireguard"), req).await
    }
}

/// Applies `config` to WireGuard device `ifname` in namespace `ns`
/// (`wg set`). Peers are sent a few at a time, so that no request outgrows
/// a netlink message.
pub async fn set(ns: &Namespace, ifname: &str, config: DeviceConfig) -> Result<()> {
    let ifname = ifname.to_string();
    ns.run(move || set_blocking(&ifname, &config)).await?
}

/// Reads WireGuard device `ifname` in namespace `ns` (`wg show`).
pub async fn get(ns: &Namespace, ifname: &str) -> Result<DeviceInfo> {
    let ifname = ifname.to_string();
    ns.run(move || get_blocking(&ifname)).await?
}

// Generic netlink and the wireguard family (linux/genetlink.h, linux/wireguard.h).
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const WG_CMD_GET_DEVICE: u8 = 0;
const WG_CMD_SET_DEVICE: u8 = 1;
const WG_GENL_VERSION: u8 = 1;
const WGDEVICE_A_IFNAME: u16 = 2;
const WGDEVICE_A_PRIVATE_KEY: u16 = 3;
const WGDEVICE_A_PUBLIC_KEY: u16 = 4;
const WGDEVICE_A_FLAGS: u16 = 5;
const WGDEVICE_A_LISTEN_PORT: u16 = 6;
const WGDEVICE_A_FWMARK: u16 = 7;
const WGDEVICE_A_PEERS: u16 = 8;
const WGDEVICE_F_REPLACE_PEERS: u32 = 1;
const WGPEER_A_PUBLIC_KEY: u16 = 1;
const WGPEER_A_FLAGS: u16 = 3;
const WGPEER_A_ENDPOINT: u16 = 4;
const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL: u16 = 5;
const WGPEER_A_LAST_HANDSHAKE_TIME: u16 = 6;
const WGPEER_A_RX_BYTES: u16 = 7;
const WGPEER_A_TX_BYTES: u16 = 8;
const WGPEER_A_ALLOWEDIPS: u16 = 9;
const WGPEER_F_REMOVE_ME: u32 = 1;
const WGPEER_F_REPLACE_ALLOWEDIPS: u32 = 2;
const WGALLOWEDIP_A_FAMILY: u16 = 1;
const WGALLOWEDIP_A_IPADDR: u16 = 2;
const WGALLOWEDIP_A_CIDR_MASK: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// A dump's answer: the objects changed while it ran (`NLM_F_DUMP_INTR`).
const NLM_F_DUMP_INTR: u16 = 0x10;
/// The most bytes of peers in one request (a nest's length has 16 bits):
/// a longer peer list goes in several requests.
const PEER_BYTES_PER_REQUEST: usize = 32 * 1024;
/// The most allowed IPs in one peer entry (36 bytes each, so that an
/// entry stays well below [`PEER_BYTES_PER_REQUEST`]).
const ALLOWED_IPS_PER_ENTRY: usize = 500;

/// A generic netlink socket of the calling thread's namespace.
struct Genl {
    fd: OwnedFd,
    seq: u32,
}

/// Netlink attributes being written.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }
    fn nested(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.put(kind | NLA_F_NESTED, &inner.0)
    }
}

/// The attributes of a message or nest, as (type, value).
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let value = &buf[4..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        Some((kind, value))
    })
}

fn sys(op: &'static str, e: nix::Error) -> Error {
    Error::io(op, "generic netlink", std::io::Error::from(e))
}

impl Genl {
    fn open() -> Result<Genl> {
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkGeneric)
            .map_err(|e| sys("socket", e))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| sys("bind", e))?;
        let timeout = nix::sys::time::TimeVal::new(5, 0);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| sys("set the receive timeout", e))?;
        Ok(Genl { fd, seq: 0 })
    }

    /// Sends one request and collects the payloads (after the generic
    /// header) of its answers: an acknowledged request, or a dump.
    fn request(
        &mut self,
        op: &str,
        family: u16,
        cmd: u8,
        version: u8,
        flags: u16,
        body: &Attrs,
    ) -> Result<Vec<Vec<u8>>> {
        self.seq += 1;
        let len = 16 + 4 + body.0.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&family.to_ne_bytes());
        msg.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&[cmd, version, 0, 0]);
        msg.extend_from_slice(&body.0);
        sendto(self.fd.as_raw_fd(), &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|e| sys("send", e))?;
        let mut answers = Vec::new();
        let mut interrupted = false;
        let mut buf = vec![0u8; 65536];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| sys("receive", e))?;
            let mut rest = &buf[..n];
            while rest.len() >= 16 {
                let mlen = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let msg_flags = u16::from_ne_bytes([rest[6], rest[7]]);
                let seq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
                if mlen < 16 || mlen > rest.len() {
                    return Err(Error::Internal(format!("{op}: a truncated generic netlink answer")));
                }
                if msg_flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let payload = &rest[16..mlen];
                rest = &rest[mlen.next_multiple_of(4).min(rest.len())..];
                if seq != self.seq {
                    continue;
                }
                match kind {
                    // An acknowledgement, or a dump's end: both carry an errno (0: none).
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = payload.get(..4).map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                        if code == 0 && interrupted {
                            let message = "the dump was interrupted by a change".to_string();
                            return Err(Error::Netlink { op: op.to_string(), errno: Some(libc::EINTR), message });
                        }
                        if code == 0 {
                            return Ok(answers);
                        }
                        let source = std::io::Error::from_raw_os_error(-code);
                        return Err(Error::Netlink {
                            op: op.to_string(),
                            errno: Some(-code),
                            message: source.to_string(),
                        });
                    }
                    _ => answers.push(payload.get(4..).unwrap_or_default().to_vec()),
                }
            }
        }
    }

    /// The id of generic netlink family `name` (`None`: the kernel has no such family).
    fn family(&mut self, name: &str) -> Result<Option<u16>> {
        let mut body = Attrs::default();
        let mut cname = name.as_bytes().to_vec();
        cname.push(0);
        body.put(CTRL_ATTR_FAMILY_NAME, &cname);
        let answers = match self.request(
            &format!("resolve generic netlink family {name}"),
            GENL_ID_CTRL,
            CTRL_CMD_GETFAMILY,
            1,
            0,
            &body,
        ) {
            Ok(a) => a,
            Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let id = answers.iter().flat_map(|a| attrs(a)).find(|(k, _)| *k == CTRL_ATTR_FAMILY_ID);
        Ok(id.and_then(|(_, v)| v.get(..2)).map(|v| u16::from_ne_bytes([v[0], v[1]])))
    }

    fn wireguard() -> Result<(Genl, u16)> {
        let mut genl = Genl::open()?;
        let id = genl.family("wireguard")?.ok_or_else(|| {
            Error::Unsupported(
                "generic netlink family wireguard: this kernel has no WireGuard (module wireguard)".into(),
            )
        })?;
        Ok((genl, id))
    }
}

fn ifname_attr(body: &mut Attrs, ifname: &str) {
    let mut name = ifname.as_bytes().to_vec();
    name.push(0);
    body.put(WGDEVICE_A_IFNAME, &name);
}

fn endpoint_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    match addr {
        SocketAddr::V4(a) => {
            b.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b.extend_from_slice(&a.port().to_be_bytes());
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&[0; 8]);
        }
        SocketAddr::V6(a) => {
            b.extend_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b.extend_from_slice(&a.port().to_be_bytes());
            b.extend_from_slice(&a.flowinfo().to_ne_bytes());
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&a.scope_id().to_ne_bytes());
        }
    }
    b
}

fn parse_endpoint(b: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    if family == libc::AF_INET {
        let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    } else if family == libc::AF_INET6 {
        let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
        let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
        Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, scope)))
    } else {
        None
    }
}

/// A peer's entries: the first replaces its allowed IPs and sets the rest;
/// allowed IPs beyond [`ALLOWED_IPS_PER_ENTRY`] follow in entries of their
/// own that add to them (as `wg` splits a long list), so that no nest
/// outgrows its 16-bit length.
fn peer_entries(peer: &PeerConfig) -> Vec<Attrs> {
    let mut chunks: Vec<&[IpNet]> = peer.allowed_ips.chunks(ALLOWED_IPS_PER_ENTRY).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, ips)| {
            let mut p = Attrs::default();
            p.put(WGPEER_A_PUBLIC_KEY, &peer.public_key.0);
            if i == 0 {
                p.put(WGPEER_A_FLAGS, &WGPEER_F_REPLACE_ALLOWEDIPS.to_ne_bytes());
                if let Some(ep) = peer.endpoint {
                    p.put(WGPEER_A_ENDPOINT, &endpoint_bytes(ep));
                }
                if let Some(k) = peer.persistent_keepalive {
                    p.put(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, &k.to_ne_bytes());
                }
            }
            p.nested(WGPEER_A_ALLOWEDIPS, allowed_ips(ips));
            p
        })
        .collect()
}

/// Allowed IPs as a nest (at most [`ALLOWED_IPS_PER_ENTRY`]: 36 bytes each).
fn allowed_ips(nets: &[IpNet]) -> Attrs {
    let mut ips = Attrs::default();
    for (i, net) in nets.iter().enumerate() {
        let mut a = Attrs::default();
        match net.addr() {
            IpAddr::V4(v4) => {
                a.put(WGALLOWEDIP_A_FAMILY, &(libc::AF_INET as u16).to_ne_bytes());
                a.put(WGALLOWEDIP_A_IPADDR, &v4.octets());
            }
            IpAddr::V6(v6) => {
                a.put(WGALLOWEDIP_A_FAMILY, &(libc::AF_INET6 as u16).to_ne_bytes());
                a.put(WGALLOWEDIP_A_IPADDR, &v6.octets());
            }
        }
        a.put(WGALLOWEDIP_A_CIDR_MASK, &[net.prefix_len()]);
        ips.nested(i as u16, a);
    }
    ips
}

fn set_blocking(ifname: &str, config: &DeviceConfig) -> Result<()> {
    let (mut genl, family) = Genl::wireguard()?;
    let mut peers: Vec<Attrs> = config.peers.iter().flat_map(peer_entries).collect();
    for key in &config.remove_peers {
        let mut p = Attrs::default();
        p.put(WGPEER_A_PUBLIC_KEY, &key.0);
        p.put(WGPEER_A_FLAGS, &WGPEER_F_REMOVE_ME.to_ne_bytes());
        peers.push(p);
    }
    let mut batches: Vec<(Vec<&Attrs>, usize)> = Vec::new();
    for p in &peers {
        // At most ~18 KiB (ALLOWED_IPS_PER_ENTRY): one always fits a batch.
        let size = p.0.len() + 4;
        match batches.last_mut() {
            Some((batch, used)) if *used + size <= PEER_BYTES_PER_REQUEST => {
                batch.push(p);
                *used += size;
            }
            _ => batches.push((vec![p], size)),
        }
    }
    let mut first = true;
    let mut batches = batches.into_iter().map(|(b, _)| b).peekable();
    loop {
        let mut body = Attrs::default();
        ifname_attr(&mut body, ifname);
        if first {
            if let Some(k) = config.private_key {
                body.put(WGDEVICE_A_PRIVATE_KEY, &k.0);
            }
            if let Some(port) = config.listen_port {
                body.put(WGDEVICE_A_LISTEN_PORT, &port.to_ne_bytes());
            }
            if let Some(mark) = config.fwmark {
                body.put(WGDEVICE_A_FWMARK, &mark.to_ne_bytes());
            }
            if config.replace_peers {
                body.put(WGDEVICE_A_FLAGS, &WGDEVICE_F_REPLACE_PEERS.to_ne_bytes());
            }
        }
        let batch = batches.next();
        if let Some(batch) = batch {
            let mut list = Attrs::default();
            for (i, p) in batch.iter().enumerate() {
                list.nested(i as u16, Attrs(p.0.clone()));
            }
            body.nested(WGDEVICE_A_PEERS, list);
        }
        genl.request(&format!("wg set {ifname}"), family, WG_CMD_SET_DEVICE, WG_GENL_VERSION, 0, &body)?;
        first = false;
        if batches.peek().is_none() {
            return Ok(());
        }
    }
}

fn get_blocking(ifname: &str) -> Result<DeviceInfo> {
    let (mut genl, family) = Genl::wireguard()?;
    let mut body = Attrs::default();
    ifname_attr(&mut body, ifname);
    let op = format!("wg show {ifname}");
    // A dump the peers changed under is asked for again (a few times).
    let mut tries = 0;
    let answers = loop {
        tries += 1;
        match genl.request(&op, family, WG_CMD_GET_DEVICE, WG_GENL_VERSION, libc::NLM_F_DUMP as u16, &body) {
            Err(Error::Netlink { errno: Some(libc::EINTR), .. }) if tries < 5 => continue,
            other => break other?,
        }
    };
    let mut info = DeviceInfo::default();
    // A device with many peers comes in several answers: the first has
    // the device's attributes; a peer whose allowed IPs do not fit one
    // answer goes on in the next, with its public key and more of them.
    for answer in &answers {
        for (kind, value) in attrs(answer) {
            match kind {
                WGDEVICE_A_PUBLIC_KEY => info.public_key = key_of(value),
                WGDEVICE_A_LISTEN_PORT if value.len() >= 2 => {
                    info.listen_port = u16::from_ne_bytes([value[0], value[1]]);
                }
                WGDEVICE_A_FWMARK if value.len() >= 4 => {
                    info.fwmark = u32::from_ne_bytes(value[..4].try_into().expect("4 bytes"));
                }
                WGDEVICE_A_PEERS => {
                    for peer in attrs(value).filter_map(|(_, p)| parse_peer(p)) {
                        match info.peers.last_mut() {
                            Some(last) if last.public_key == peer.public_key => {
                                last.allowed_ips.extend(peer.allowed_ips);
                            }
                            _ => info.peers.push(peer),
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(info)
}

fn key_of(value: &[u8]) -> Option<Key> {
    let k: [u8; 32] = value.try_into().ok()?;
    (k != [0; 32]).then_some(Key(k))
}

fn u64_of(value: &[u8]) -> u64 {
    value.get(..8).map_or(0, |b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
}

fn parse_peer(p: &[u8]) -> Option<PeerInfo> {
    let mut public_key = None;
    let mut info = PeerInfo {
        public_key: Key([0; 32]),
        endpoint: None,
        allowed_ips: Vec::new(),
        last_handshake: None,
        rx_bytes: 0,
        tx_bytes: 0,
    };
    for (kind, value) in attrs(p) {
        match kind {
            WGPEER_A_PUBLIC_KEY => public_key = key_of(value),
            WGPEER_A_ENDPOINT => info.endpoint = parse_endpoint(value),
            WGPEER_A_LAST_HANDSHAKE_TIME if value.len() >= 16 => {
                let secs = i64::from_ne_bytes(value[..8].try_into().expect("8 bytes"));
                let nanos = i64::from_ne_bytes(value[8..16].try_into().expect("8 bytes"));
                if secs > 0 || nanos > 0 {
                    info.last_handshake = Some(
                        SystemTime::UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32),
                    );
                }
            }
            WGPEER_A_RX_BYTES => info.rx_bytes = u64_of(value),
            WGPEER_A_TX_BYTES => info.tx_bytes = u64_of(value),
            WGPEER_A_ALLOWEDIPS => {
                for (_, a) in attrs(value) {
                    let mut ip = None;
                    let mut mask = None;
                    for (k, v) in attrs(a) {
                        match k {
                            WGALLOWEDIP_A_IPADDR => {
                                ip = match v.len() {
                                    4 => <[u8; 4]>::try_from(v).ok().map(|b| IpAddr::from(Ipv4Addr::from(b))),
                                    16 => <[u8; 16]>::try_from(v).ok().map(|b| IpAddr::from(Ipv6Addr::from(b))),
                                    _ => None,
                                };
                            }
                            WGALLOWEDIP_A_CIDR_MASK => mask = v.first().copied(),
                            _ => {}
                        }
                    }
                    if let (Some(ip), Some(mask)) = (ip, mask)
                        && let Ok(net) = IpNet::new(ip, mask)
                    {
                        info.allowed_ips.push(net);
                    }
                }
            }
            _ => {}
        }
    }
    info.public_key = public_key?;
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_wg_prints_them() {
        // A key as `wg genkey` prints it, and one of zeros.
        let k = Key::from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=").unwrap();
        assert_eq!(k.to_base64(), "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=");
        assert_eq!(Key([0; 32]).to_base64(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        let g = Key::generate_private().unwrap();
        assert_eq!(Key::from_base64(&g.to_base64()).unwrap(), g);
        assert_eq!((g.0[0] & 7, g.0[31] & 192), (0, 64), "clamped");
        for bad in [
            "",
            "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk",
            "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBm!=",
            "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmn=",
        ] {
            assert!(Key::from_base64(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{g:?}"), "Key(…)", "a key is never printed");
    }

    #[test]
    fn attributes_nest_and_read_back() {
        let peer = PeerConfig {
            public_key: Key([7; 32]),
            endpoint: Some("192.0.2.1:51820".parse().unwrap()),
            allowed_ips: vec!["10.0.0.2/32".parse().unwrap(), "fd00::/64".parse().unwrap()],
            persistent_keepalive: None,
        };
        let entries = peer_entries(&peer);
        assert_eq!(entries.len(), 1);
        let a = &entries[0];
        let info = parse_peer(&a.0).unwrap();
        assert_eq!(info.public_key, peer.public_key);
        assert_eq!(info.endpoint, peer.endpoint);
        assert_eq!(info.allowed_ips, peer.allowed_ips);
        // A long list of allowed IPs is split: every entry's nest fits its
        // 16-bit length, the first replaces, the others add, all in order.
        let many: Vec<IpNet> = (0..2000u32)
            .map(|i| IpNet::new(IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i))), 128).unwrap())
            .collect();
        let long = PeerConfig { allowed_ips: many.clone(), ..peer.clone() };
        let entries = peer_entries(&long);
        assert_eq!(entries.len(), 4);
        let mut back = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            assert!(e.0.len() + 4 < PEER_BYTES_PER_REQUEST, "entry {i}: {} bytes", e.0.len());
            let flags = attrs(&e.0).find(|(k, _)| *k == WGPEER_A_FLAGS).map(|(_, v)| v.to_vec());
            assert_eq!(flags.is_some(), i == 0, "only the first replaces");
            back.extend(parse_peer(&e.0).unwrap().allowed_ips);
        }
        assert_eq!(back, many);
        let v6: SocketAddr = "[2001:db8::1]:4789".parse().unwrap();
        assert_eq!(parse_endpoint(&endpoint_bytes(v6)), Some(v6));
        // Truncated input reads as nothing rather than panicking.
        assert!(attrs(&[8, 0, 1]).next().is_none());
        assert!(parse_peer(&a.0[..10]).is_none());
    }
}
