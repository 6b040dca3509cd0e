//! nfnetlink plumbing shared by the firewall's element and ruleset code: a
//! message writer, atomic nf_tables batches (`NFNL_MSG_BATCH_BEGIN` …
//! `NFNL_MSG_BATCH_END`), attribute readers, and a socket that sends a batch
//! and collects the kernel's acks, or runs a request or dump.
//!
//! Sockets are pooled ([`Pool`]): an operation takes an idle socket (or opens
//! one inside the host namespace), uses it on a blocking thread and gives it
//! back, so no lock is held across netlink I/O and concurrent operations
//! never read each other's answers.

use crate::{Error, Namespace, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// The connection tracking subsystem (ctnetlink).
pub(crate) const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// nf_tables' notification group (`NFNLGRP_NFTABLES`).
pub(crate) const NFNLGRP_NFTABLES: u32 = 7;
/// The message type of a deleted table.
pub(crate) const NFT_MSG_DELTABLE_TYPE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | 2;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
/// The nf_tables family of every object of the firewall.
pub(crate) const NFPROTO_INET: u8 = 1;
const NFPROTO_UNSPEC: u8 = 0;
/// An element of a nested list (`NFTA_LIST_ELEM`).
pub(crate) const NFTA_LIST_ELEM: u16 = 1;
/// A plain value inside an `nft_data` nest (`NFTA_DATA_VALUE`).
pub(crate) const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLM_F_ROOT | NLM_F_MATCH`.
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// Create the object if missing; without `NLM_F_EXCL` an existing one is fine.
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// Rules: append at the end of the chain (without it, rules go first).
pub(crate) const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nfgenmsg`, the header after it in every nfnetlink message.
const NFGENMSG_LEN: usize = 4;
/// Receive buffer: dump answers are at most 32 KiB per datagram.
const RECV_BUF: usize = 64 * 1024;
/// Idle sockets kept per firewall.
const MAX_IDLE: usize = 4;

/// Builds netlink messages and attributes (native-endian headers, 4-byte aligned).
#[derive(Debug, Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    fn align(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    /// Starts a netlink message with its nfgenmsg header; returns its offset
    /// (the length is patched by `end_msg`).
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
        let len = u32::try_from(self.0.len() - at).unwrap_or(u32::MAX);
        self.0[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// An attribute with a raw payload (`ty` may carry `NLA_F_NESTED` for a pre-encoded nest).
    pub fn attr(&mut self, ty: u16, payload: &[u8]) {
        // Payloads are small (names, values, one rule's expressions); saturate rather than wrap.
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.align();
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.attr(ty, &b);
    }

    /// A 32-bit attribute in network byte order (as every nf_tables number).
    pub fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// A pre-encoded nest (its attributes as bytes).
    pub fn attr_nested(&mut self, ty: u16, inner: &[u8]) {
        self.attr(ty | NLA_F_NESTED, inner);
    }

    /// Starts a nested attribute; returns its offset for `end_nest`.
    pub fn begin_nest(&mut self, ty: u16) -> usize {
        let at = self.0.len();
        self.0.extend_from_slice(&0u16.to_ne_bytes());
        self.0.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    /// Ends a nested attribute started at `at`.
    pub fn end_nest(&mut self, at: usize) {
        // Callers keep every nest below 64 KiB; saturate rather than wrap if not.
        let len = u16::try_from(self.0.len() - at).unwrap_or(u16::MAX);
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// A nested attribute written by `f`.
    pub fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Writer)) {
        let at = self.begin_nest(ty);
        f(self);
        self.end_nest(at);
    }

    /// An `nft_data` value: `ty { NFTA_DATA_VALUE = value }`.
    pub fn data(&mut self, ty: u16, value: &[u8]) {
        self.nest(ty, |w| w.attr(NFTA_DATA_VALUE, value));
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// One atomic nf_tables transaction: BEGIN, the messages, END.
///
/// Every message asks for an ack, so each one is confirmed or answered with
/// its own error. Sequence numbers are assigned when the batch is sent.
#[derive(Debug)]
pub(crate) struct Batch {
    w: Writer,
    /// Offset of each message's header, BEGIN first.
    starts: Vec<usize>,
    /// What each message does, for errors, BEGIN first.
    whats: Vec<String>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        let mut w = Writer::default();
        let at = w.begin_msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES);
        w.end_msg(at);
        Batch { w, starts: vec![at], whats: vec!["nf_tables batch".into()] }
    }

    /// Adds an nf_tables message (`NFT_MSG_*`) of the inet family; `what`
    /// names it in errors (`add set inet cnm masq`).
    pub fn push(&mut self, msg: u16, flags: u16, what: impl Into<String>, body: impl FnOnce(&mut Writer)) {
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        let at = self.w.begin_msg(ty, NLM_F_REQUEST | NLM_F_ACK | flags, 0, NFPROTO_INET, 0);
        body(&mut self.w);
        self.w.end_msg(at);
        self.starts.push(at);
        self.whats.push(what.into());
    }

    /// The number of messages between BEGIN and END.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Whether the batch has no message (nothing to send).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The wire bytes: BEGIN has sequence number `first_seq`, the messages
    /// the following ones, then END.
    pub fn encode(&self, first_seq: u32) -> Vec<u8> {
        let mut w = Writer(self.w.0.clone());
        for (i, &at) in self.starts.iter().enumerate() {
            let seq = first_seq.wrapping_add(i as u32);
            w.0[at + 8..at + 12].copy_from_slice(&seq.to_ne_bytes());
        }
        let end_seq = first_seq.wrapping_add(self.starts.len() as u32);
        let at = w.begin_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end_seq, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES);
        w.end_msg(at);
        w.0
    }

    /// What message `index` (0: BEGIN) does.
    fn what(&self, index: usize) -> &str {
        self.whats.get(index).map_or("nf_tables batch", String::as_str)
    }
}

/// A netlink message read back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Msg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// Everything after the netlink header.
    pub payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// The attributes of an nfnetlink message (after its nfgenmsg header).
    pub fn attrs(&self) -> Attrs<'a> {
        attrs(self.payload.get(NFGENMSG_LEN..).unwrap_or_default())
    }
}

/// The netlink messages of a buffer; stops at the first malformed header.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let hdr = buf.get(off..off.checked_add(NLMSG_HDRLEN)?)?;
        let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        let msg = buf.get(off..off.checked_add(len)?)?;
        if len < NLMSG_HDRLEN {
            return None;
        }
        off = off.checked_add(len.checked_add(3)? & !3)?;
        Some(Msg {
            ty: u16::from_ne_bytes([hdr[4], hdr[5]]),
            flags: u16::from_ne_bytes([hdr[6], hdr[7]]),
            seq: u32::from_ne_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]),
            payload: &msg[NLMSG_HDRLEN..],
        })
    })
}

/// Netlink attributes: `(type without flags, payload)`; stops at the first malformed one.
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a>(&'a [u8]);

/// Reads the attributes of `buf`.
pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs(buf)
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let hdr = self.0.get(..4)?;
        let len = u16::from_ne_bytes([hdr[0], hdr[1]]) as usize;
        let ty = u16::from_ne_bytes([hdr[2], hdr[3]]) & NLA_TYPE_MASK;
        let payload = self.0.get(4..len)?;
        self.0 = self.0.get((len + 3) & !3..).unwrap_or_default();
        Some((ty, payload))
    }
}

/// A string attribute's text (without its NUL).
pub(crate) fn attr_str(payload: &[u8]) -> &str {
    let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
    std::str::from_utf8(&payload[..end]).unwrap_or_default()
}

/// A netfilter netlink socket opened in the host namespace.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
    /// The last sequence number used.
    seq: u32,
    deadline: Duration,
    buf: Vec<u8>,
}

fn os_err(op: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::io(op, "netlink netfilter", e)
}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: valid descriptor, option pointer and length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

impl Socket {
    /// Opens a socket in the calling thread's namespace.
    fn open_here(deadline: Duration) -> std::io::Result<Socket> {
        // SAFETY: plain socket(2) call; the descriptor is owned right away.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A zero timeout would mean "wait forever": keep at least a millisecond.
        let deadline = deadline.max(Duration::from_millis(1));
        let tv = libc::timeval {
            tv_sec: deadline.as_secs() as libc::time_t,
            tv_usec: deadline.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: valid descriptor, option pointer and length.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Best effort: error answers without a copy of the (possibly huge)
        // request, with the kernel's explanation, and room for many acks.
        let _ = setsockopt_int(raw, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        let _ = setsockopt_int(raw, libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1);
        let _ = setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20);
        Ok(Socket { fd, seq: 0, deadline, buf: vec![0u8; RECV_BUF] })
    }

    /// Opens a socket inside `ns` (on a short-lived thread that entered it).
    pub async fn open(ns: &Namespace, deadline: Duration) -> Result<Self> {
        ns.run(move || Socket::open_here(deadline)).await?.map_err(os_err("open netlink netfilter socket"))
    }

    /// Joins a multicast group of notifications (`NFNLGRP_*`).
    pub fn subscribe(&self, group: u32) -> Result<()> {
        // Multicast is only delivered to a bound socket (an address of its own).
        // SAFETY: a zeroed sockaddr_nl is valid; the family is set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: valid descriptor, address pointer and length.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(os_err("bind a netfilter socket")(std::io::Error::last_os_error()));
        }
        let group = libc::c_int::try_from(group).unwrap_or(libc::c_int::MAX);
        setsockopt_int(self.fd.as_raw_fd(), libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, group)
            .map_err(os_err("join a netfilter notification group"))
    }

    /// Waits (at most the socket's deadline: a `Timeout` error) for one
    /// datagram of notifications; their (type, family, attributes).
    pub fn notifications(&mut self) -> Result<Vec<(u16, u8, Vec<u8>)>> {
        let len = self.recv("notifications")?;
        Ok(messages(&self.buf[..len])
            .map(|m| (m.ty, m.payload.first().copied().unwrap_or(0), m.attrs().0.to_vec()))
            .collect())
    }

    /// Reserves `n` sequence numbers; returns the first.
    fn reserve(&mut self, n: u32) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n);
        first
    }

    fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        // SAFETY: valid descriptor and buffer.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(os_err("send to netlink netfilter")(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Receives one datagram into `self.buf`; returns its length.
    fn recv(&mut self, what: &str) -> Result<usize> {
        loop {
            // SAFETY: valid descriptor and buffer.
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), libc::MSG_TRUNC)
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => {
                        return Err(Error::Timeout {
                            op: format!("nf_tables: {what}"),
                            millis: self.deadline.as_millis(),
                        });
                    }
                    _ => return Err(os_err("receive netfilter answer")(e)),
                }
            }
            let n = n as usize;
            if n > self.buf.len() {
                return Err(Error::Netlink {
                    op: format!("nf_tables: {what}"),
                    errno: Some(libc::EMSGSIZE),
                    message: format!("an answer of {n} bytes was truncated to {}", self.buf.len()),
                });
            }
            return Ok(n);
        }
    }

    /// Sends `batch` as one atomic transaction and waits for every message's
    /// ack (blocking; call off the async threads). The first error, of a
    /// message or of the whole batch, fails it: the kernel then applied nothing.
    pub fn send(&mut self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len();
        let first = self.reserve(n as u32 + 2);
        let bytes = batch.encode(first);
        // Large batches: make room in the send buffer (as nft does); best effort.
        let want = libc::c_int::try_from((bytes.len() * 2).max(1 << 20)).unwrap_or(libc::c_int::MAX);
        let _ = setsockopt_int(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, want);
        self.send_bytes(&bytes)?;
        let mut acked = vec![false; n];
        let mut left = n;
        while left > 0 {
            let len = self.recv(batch.what(1))?;
            for m in messages(&self.buf[..len]) {
                // BEGIN (0), the messages (1..=n) and END (n + 1); anything
                // else is a late answer to an earlier request.
                let index = m.seq.wrapping_sub(first) as usize;
                if m.ty != NLMSG_ERROR || index > n + 1 {
                    continue;
                }
                let (code, ext) = parse_error(&m);
                if code != 0 {
                    return Err(kernel_error(format!("nf_tables: {}", batch.what(index)), code, ext));
                }
                if let Some(done) = index.checked_sub(1).and_then(|i| acked.get_mut(i))
                    && !*done
                {
                    *done = true;
                    left -= 1;
                }
            }
        }
        Ok(())
    }

    /// Sends one request (`NFT_MSG_*` with `flags`, for instance [`NLM_F_DUMP`])
    /// and returns the attributes of every answer until the final ack or DONE.
    pub fn request(
        &mut self,
        msg: u16,
        flags: u16,
        family: u8,
        what: &str,
        body: impl FnOnce(&mut Writer),
    ) -> Result<Vec<Vec<u8>>> {
        self.request_in(NFNL_SUBSYS_NFTABLES, msg, flags, family, what, body)
    }

    /// [`Socket::request`] to another netfilter subsystem (`NFNL_SUBSYS_*`).
    pub fn request_in(
        &mut self,
        subsys: u16,
        msg: u16,
        flags: u16,
        family: u8,
        what: &str,
        body: impl FnOnce(&mut Writer),
    ) -> Result<Vec<Vec<u8>>> {
        let seq = self.reserve(1);
        let mut w = Writer::default();
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        // A dump ends with DONE; any other request with its ack.
        let ack = if dump { 0 } else { NLM_F_ACK };
        let at = w.begin_msg((subsys << 8) | msg, NLM_F_REQUEST | ack | flags, seq, family, 0);
        body(&mut w);
        w.end_msg(at);
        self.send_bytes(&w.0)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let len = self.recv(what)?;
            for m in messages(&self.buf[..len]) {
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                let code = match m.ty {
                    NLMSG_DONE => m.payload.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
                    NLMSG_ERROR => parse_error(&m).0,
                    _ => {
                        out.push(m.attrs().0.to_vec());
                        continue;
                    }
                };
                if code != 0 {
                    let ext = if m.ty == NLMSG_ERROR { parse_error(&m).1 } else { None };
                    return Err(kernel_error(format!("nf_tables: {what}"), code, ext));
                }
                if interrupted {
                    // The ruleset changed during the dump: the answer may be inconsistent.
                    return Err(kernel_error(format!("nf_tables: {what}"), -libc::EINTR, None));
                }
                return Ok(out);
            }
        }
    }
}

/// The error code (negative errno, 0 for an ack) and extended-ack message of an NLMSG_ERROR.
fn parse_error(m: &Msg<'_>) -> (i32, Option<String>) {
    let Some(code) = m.payload.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])) else {
        return (-libc::EBADMSG, None);
    };
    if m.flags & NLM_F_ACK_TLVS == 0 {
        return (code, None);
    }
    // After the code: the request's header, and its payload unless capped.
    let orig_len = m.payload.get(4..8).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let echoed = if m.flags & NLM_F_CAPPED != 0 { NLMSG_HDRLEN } else { (orig_len + 3) & !3 };
    let tlvs = m.payload.get(4 + echoed..).unwrap_or_default();
    let msg = attrs(tlvs).find(|(ty, _)| *ty == NLMSGERR_ATTR_MSG).map(|(_, v)| attr_str(v).to_string());
    (code, msg.filter(|s| !s.is_empty()))
}

fn kernel_error(op: String, code: i32, ext: Option<String>) -> Error {
    let errno = code.checked_neg().unwrap_or(code);
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let message = match ext {
        Some(ext) => format!("{text} ({ext})"),
        None => text,
    };
    Error::Netlink { op, errno: Some(errno), message }
}

/// Netfilter sockets of one namespace, opened on demand and reused.
#[derive(Debug)]
pub(crate) struct Pool {
    ns: Namespace,
    deadline: Duration,
    idle: Mutex<Vec<Socket>>,
}

impl Pool {
    /// A pool for namespace `ns`; no socket is opened yet.
    pub fn new(ns: Namespace, deadline: Duration) -> Self {
        Pool { ns, deadline, idle: Mutex::new(Vec::new()) }
    }

    /// Runs `f` with a socket of its own on a blocking thread.
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Socket) -> Result<R> + Send + 'static,
    {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut sock = match idle {
            Some(s) => s,
            None => Socket::open(&self.ns, self.deadline).await?,
        };
        let (sock, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut sock);
            (sock, r)
        })
        .await
        .map_err(|_| Error::Internal("the nf_tables task panicked".into()))?;
        // A socket that timed out or failed may hold a half-read answer: drop it.
        if matches!(result, Ok(_) | Err(Error::Netlink { .. })) {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(sock);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_framed_with_begin_and_end_and_numbered_when_encoded() {
        let mut b = Batch::new();
        assert!(b.is_empty());
        b.push(0, NLM_F_CREATE, "add table inet t", |w| w.attr_str(1, "t"));
        b.push(0, NLM_F_CREATE, "add table inet u", |w| w.attr_str(1, "u"));
        assert_eq!(b.len(), 2);
        let bytes = b.encode(u32::MAX);
        let msgs: Vec<Msg<'_>> = messages(&bytes).collect();
        let types: Vec<u16> = msgs.iter().map(|m| m.ty).collect();
        assert_eq!(types, vec![NFNL_MSG_BATCH_BEGIN, 10 << 8, 10 << 8, NFNL_MSG_BATCH_END]);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![u32::MAX, 0, 1, 2], "numbers wrap");
        assert!(msgs[1..3].iter().all(|m| m.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE));
        assert_eq!(msgs[0].attrs().count(), 0);
        // Every message length is a multiple of 4 and they cover the buffer.
        let total: usize = msgs.iter().map(|m| m.payload.len() + NLMSG_HDRLEN).sum();
        assert_eq!(total, bytes.len());
        assert!(msgs.iter().all(|m| (m.payload.len() + NLMSG_HDRLEN).is_multiple_of(4)));
        assert_eq!(b.what(2), "add table inet u");
        assert_eq!(b.what(9), "nf_tables batch");
    }

    #[test]
    fn readers_stop_at_malformed_input() {
        assert_eq!(messages(&[0u8; 10]).count(), 0);
        // A header claiming 8 bytes (shorter than itself), then garbage.
        let mut bad = vec![0u8; 20];
        bad[0] = 8;
        assert_eq!(messages(&bad).count(), 0);
        assert_eq!(attrs(&[200, 0, 1, 0, 1, 2]).count(), 0, "attribute longer than the buffer");
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0, "attribute shorter than its header");
        let mut w = Writer::default();
        w.attr_str(3, "cnm");
        w.nest(4, |w| w.attr_u32(1, 9));
        let got: Vec<(u16, Vec<u8>)> = attrs(&w.into_bytes()).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(got[0], (3, b"cnm\0".to_vec()));
        assert_eq!(got[1].0, 4, "the nested flag is masked");
        assert_eq!(attr_str(&got[0].1), "cnm");
    }

    #[test]
    fn error_answers_carry_the_extended_ack_message() {
        // NLMSG_ERROR, capped, with TLVs: code, request header, NLMSGERR_ATTR_MSG.
        let mut p = (-libc::ENOENT).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0u8; 16]);
        let mut w = Writer::default();
        w.attr_str(NLMSGERR_ATTR_MSG, "no such table");
        p.extend_from_slice(&w.into_bytes());
        let m = Msg { ty: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS, seq: 1, payload: &p };
        assert_eq!(parse_error(&m), (-libc::ENOENT, Some("no such table".into())));
        let e = kernel_error("nf_tables: delete table inet cnm".into(), -libc::ENOENT, Some("no such table".into()));
        assert!(e.is_not_found());
        assert!(e.to_string().starts_with("nf_tables: delete table inet cnm: "), "{e}");
        let short = Msg { ty: NLMSG_ERROR, flags: 0, seq: 1, payload: &[1, 2] };
        assert_eq!(parse_error(&short).0, -libc::EBADMSG);
    }
}
