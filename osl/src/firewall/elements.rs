//! nf_tables set and map elements over netlink (`NETLINK_NETFILTER`), the
//! hot path of the firewall: adding a network or publishing ports is one
//! batch of element messages, with no process to start and no ruleset to
//! parse. The table itself is created by the `nft` command once.

use crate::{Error, Namespace, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
/// Elements per message (a nested attribute's length is 16 bits: an IPv6
/// map element takes about 80 bytes); a batch holds as many messages as needed.
const CHUNK: usize = 512;

/// One set or map element: its key (and range end), and its value for maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub key: Vec<u8>,
    pub key_end: Option<Vec<u8>>,
    pub data: Option<Vec<u8>>,
}

/// Elements to add to, or delete from, one set of the table.
#[derive(Debug, Clone)]
pub(crate) struct ElementOp {
    pub set: &'static str,
    pub elements: Vec<Element>,
    pub delete: bool,
}

/// Key encodings: each field of a concatenation takes a multiple of 4 bytes.
pub(crate) mod key {
    use std::net::IpAddr;

    /// An interface name (IFNAMSIZ bytes, zero padded).
    pub fn ifname(name: &str) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        let b = name.as_bytes();
        v[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
        v
    }

    /// An IP protocol number, padded.
    pub fn proto(p: u8) -> Vec<u8> {
        vec![p, 0, 0, 0]
    }

    /// A port in network order, padded.
    pub fn port(p: u16) -> Vec<u8> {
        let b = p.to_be_bytes();
        vec![b[0], b[1], 0, 0]
    }

    /// An address in network order.
    pub fn addr(ip: IpAddr) -> Vec<u8> {
        match ip {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        }
    }

    /// Fields concatenated.
    pub fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn align(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    /// Starts a netlink message; returns its offset (the length is patched by `end_msg`).
    fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let at = self.0.len();
        self.0.extend_from_slice(&0u32.to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(&flags.to_ne_bytes());
        self.0.extend_from_slice(&seq.to_ne_bytes());
        self.0.extend_from_slice(&0u32.to_ne_bytes());
        self.0.extend_from_slice(&[family, 0]);
        self.0.extend_from_slice(&res_id.to_be_bytes());
        at
    }

    fn end_msg(&mut self, at: usize) {
        self.align();
        let len = (self.0.len() - at) as u32;
        self.0[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, ty: u16, payload: &[u8]) {
        let len = (4 + payload.len()) as u16;
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.align();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.attr(ty, &b);
    }

    fn begin_nest(&mut self, ty: u16) -> usize {
        let at = self.0.len();
        self.0.extend_from_slice(&0u16.to_ne_bytes());
        self.0.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end_nest(&mut self, at: usize) {
        // CHUNK keeps every nest below 64 KiB; saturate rather than wrap if not.
        let len = u16::try_from(self.0.len() - at).unwrap_or(u16::MAX);
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn data(&mut self, ty: u16, value: &[u8]) {
        let n = self.begin_nest(ty);
        self.attr(NFTA_DATA_VALUE, value);
        self.end_nest(n);
    }
}

/// Encodes one batch; returns the bytes and the sequence numbers that expect an ack.
pub(crate) fn encode_batch(table: &str, ops: &[ElementOp], first_seq: u32) -> (Vec<u8>, Vec<u32>) {
    let mut w = Writer(Vec::new());
    let mut seq = first_seq;
    let at = w.begin_msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES);
    w.end_msg(at);
    let mut acked = Vec::new();
    for op in ops {
        for chunk in op.elements.chunks(CHUNK) {
            seq += 1;
            let (ty, flags) = if op.delete {
                (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
            } else {
                (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
            };
            let at = w.begin_msg((NFNL_SUBSYS_NFTABLES << 8) | ty, flags, seq, NFPROTO_INET, 0);
            w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
            w.attr_str(NFTA_SET_ELEM_LIST_SET, op.set);
            let list = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            for e in chunk {
                let item = w.begin_nest(NFTA_LIST_ELEM);
                w.data(NFTA_SET_ELEM_KEY, &e.key);
                if let Some(end) = &e.key_end {
                    w.data(NFTA_SET_ELEM_KEY_END, end);
                }
                if let Some(d) = &e.data
                    && !op.delete
                {
                    w.data(NFTA_SET_ELEM_DATA, d);
                }
                w.end_nest(item);
            }
            w.end_nest(list);
            w.end_msg(at);
            acked.push(seq);
        }
    }
    seq += 1;
    let at = w.begin_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES);
    w.end_msg(at);
    (w.0, acked)
}

/// A netfilter netlink socket opened in the host namespace.
#[derive(Debug)]
pub(crate) struct ElementSocket {
    fd: Mutex<(OwnedFd, u32)>,
    table: String,
}

fn os_err(op: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::io(op, "netlink netfilter", e)
}

impl ElementSocket {
    /// Opens the socket inside `ns`.
    pub async fn open(ns: &Namespace, table: &str, deadline: Duration) -> Result<Self> {
        let fd = ns
            .run(move || -> std::io::Result<OwnedFd> {
                // SAFETY: plain socket(2) call; the descriptor is owned right away.
                let fd =
                    unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: `fd` is a fresh descriptor nothing else owns.
                let sock = unsafe { OwnedFd::from_raw_fd(fd) };
                let tv = libc::timeval {
                    tv_sec: deadline.as_secs() as libc::time_t,
                    tv_usec: deadline.subsec_micros() as libc::suseconds_t,
                };
                let one: libc::c_int = 1;
                let rcvbuf: libc::c_int = 4 << 20;
                let int = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: valid descriptor, option pointers and lengths.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVTIMEO,
                        (&tv as *const libc::timeval).cast(),
                        std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                    );
                    // Error answers without a copy of the (possibly huge) request,
                    // with the kernel's explanation.
                    libc::setsockopt(
                        fd,
                        libc::SOL_NETLINK,
                        libc::NETLINK_CAP_ACK,
                        (&one as *const libc::c_int).cast(),
                        int,
                    );
                    libc::setsockopt(
                        fd,
                        libc::SOL_NETLINK,
                        libc::NETLINK_EXT_ACK,
                        (&one as *const libc::c_int).cast(),
                        int,
                    );
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUFFORCE,
                        (&rcvbuf as *const libc::c_int).cast(),
                        int,
                    );
                }
                Ok(sock)
            })
            .await?
            .map_err(os_err("open netlink netfilter socket"))?;
        Ok(ElementSocket { fd: Mutex::new((fd, 0)), table: table.to_string() })
    }

    /// Applies the operations as one atomic batch (blocking; call off the async threads).
    pub fn apply(&self, ops: &[ElementOp]) -> Result<()> {
        if ops.iter().all(|o| o.elements.is_empty()) {
            return Ok(());
        }
        let mut guard = self.fd.lock().map_err(|_| Error::Invalid("netfilter socket poisoned".into()))?;
        let first = guard.1.wrapping_add(1);
        let (bytes, acked) = encode_batch(&self.table, ops, first);
        guard.1 = first.wrapping_add(acked.len() as u32 + 1);
        let fd = guard.0.as_raw_fd();
        // Large batches: make room in the send buffer (as nft does).
        let want = (bytes.len() * 2).max(1 << 20) as libc::c_int;
        // SAFETY: valid descriptor, option pointer and length.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        // SAFETY: valid descriptor and buffer.
        let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(os_err("send netfilter batch")(std::io::Error::last_os_error()));
        }
        let mut pending: std::collections::HashSet<u32> = acked.into_iter().collect();
        let mut buf = vec![0u8; 64 * 1024];
        while !pending.is_empty() {
            // SAFETY: valid descriptor and buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if matches!(e.raw_os_error(), Some(libc::EAGAIN)) {
                    return Err(Error::Timeout { op: "nf_tables element batch".into(), millis: 0 });
                }
                return Err(os_err("receive netfilter answer")(e));
            }
            let mut off = 0usize;
            let data = &buf[..n as usize];
            while off + 16 <= data.len() {
                let len = u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
                let ty = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
                let seq = u32::from_ne_bytes([data[off + 8], data[off + 9], data[off + 10], data[off + 11]]);
                if len < 16 || off + len > data.len() {
                    break;
                }
                if ty == NLMSG_ERROR && len >= 20 {
                    let code = i32::from_ne_bytes([data[off + 16], data[off + 17], data[off + 18], data[off + 19]]);
                    if pending.remove(&seq) && code != 0 {
                        let err = std::io::Error::from_raw_os_error(-code);
                        let set = ops.iter().map(|o| o.set).collect::<Vec<_>>().join(", ");
                        return Err(Error::Netlink {
                            op: format!("nf_tables element batch on {set}"),
                            errno: Some(-code),
                            message: err.to_string(),
                        });
                    }
                }
                off += (len + 3) & !3;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_padded_to_registers() {
        assert_eq!(key::concat(&[key::proto(6), key::port(8080)]), vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(key::ifname("br-1").len(), 16);
        assert_eq!(&key::ifname("br-1")[..5], b"br-1\0");
    }

    #[test]
    fn batch_has_begin_elements_end_and_aligned_lengths() {
        let op = ElementOp {
            set: "bridges",
            elements: vec![Element { key: key::ifname("br-1"), key_end: None, data: None }],
            delete: false,
        };
        let (bytes, acked) = encode_batch("cnm", &[op], 100);
        assert_eq!(acked, vec![101]);
        // Walk the messages: BEGIN, NEWSETELEM, END.
        let mut off = 0;
        let mut types = Vec::new();
        while off < bytes.len() {
            let len = u32::from_ne_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            types.push(u16::from_ne_bytes(bytes[off + 4..off + 6].try_into().unwrap()));
            off += len;
        }
        assert_eq!(types, vec![16, (10 << 8) | 12, 17]);
    }
}
