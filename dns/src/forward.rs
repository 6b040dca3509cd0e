//! Forwarding to a sandbox's upstream servers: each in turn (at most three),
//! the next one on a timeout, a network error, SERVFAIL or REFUSED; an
//! NXDOMAIN or any other answer is final. A query that came over TCP goes
//! upstream over TCP; a truncated UDP answer is passed through, so the asker
//! retries over TCP. Sockets are opened in the namespace the upstream is
//! reached from: the host's for a loopback address (such as 127.0.0.53),
//! the sandbox's otherwise.

use crate::{Error, Result};
use cnm_osl::Namespace;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// At most this many upstream servers are used, as in a `resolv.conf`.
pub const MAX_UPSTREAMS: usize = 3;

/// One upstream server and the namespace it is reached from.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The server (port 53).
    pub addr: SocketAddr,
    /// The namespace its sockets are opened in.
    pub ns: Namespace,
}

impl Upstream {
    /// `ip`, reached from `host` when it is a loopback address, from `sandbox` otherwise.
    pub fn new(ip: IpAddr, sandbox: &Namespace, host: &Namespace) -> Self {
        let ns = if ip.is_loopback() { host.clone() } else { sandbox.clone() };
        Upstream { addr: SocketAddr::new(ip, 53), ns }
    }
}

/// The RCODE of a DNS message.
pub(crate) fn rcode(msg: &[u8]) -> u8 {
    msg.get(3).map_or(2, |b| b & 0x0f)
}

/// Sends `query` to the upstreams in turn; the first final answer, else the
/// last SERVFAIL/REFUSED seen, else `None`.
pub(crate) async fn forward(upstreams: &[Upstream], query: &[u8], tcp: bool, timeout: Duration) -> Option<Vec<u8>> {
    let mut last = None;
    for up in upstreams.iter().take(MAX_UPSTREAMS) {
        let result = if tcp { tcp_exchange(up, query, timeout).await } else { udp_exchange(up, query, timeout).await };
        match result {
            Ok(resp) if matches!(rcode(&resp), 2 | 5) => {
                tracing::debug!(upstream = %up.addr, rcode = rcode(&resp), "upstream failed; trying the next");
                last = Some(resp);
            }
            Ok(resp) => return Some(resp),
            Err(e) => tracing::debug!(upstream = %up.addr, error = %e, "upstream did not answer; trying the next"),
        }
    }
    last
}

async fn udp_exchange(up: &Upstream, query: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    let addr = up.addr;
    let std_sock = up
        .ns
        .run(move || -> std::io::Result<std::net::UdpSocket> {
            let any: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
            let s = std::net::UdpSocket::bind(any)?;
            s.connect(addr)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .await?
        .map_err(|e| Error::io("open upstream socket", e))?;
    let sock = tokio::net::UdpSocket::from_std(std_sock).map_err(|e| Error::io("register upstream socket", e))?;
    let work = async {
        sock.send(query).await.map_err(|e| Error::io("send to upstream", e))?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| Error::io("receive from upstream", e))?;
            // Only the answer to this query (same id) counts.
            if n >= 12 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Ok(buf);
            }
        }
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| Error::Timeout(addr))?
}

async fn tcp_exchange(up: &Upstream, query: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    let addr = up.addr;
    let std_stream = up
        .ns
        .run(move || -> std::io::Result<std::net::TcpStream> {
            let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .await?
        .map_err(|e| Error::io("connect to upstream", e))?;
    let mut stream =
        tokio::net::TcpStream::from_std(std_stream).map_err(|e| Error::io("register upstream socket", e))?;
    let work = async {
        write_framed(&mut stream, query).await?;
        read_framed(&mut stream)
            .await?
            .ok_or_else(|| Error::io("read from upstream", std::io::ErrorKind::UnexpectedEof.into()))
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| Error::Timeout(addr))?
}

/// Writes one length-prefixed DNS message (TCP framing).
pub(crate) async fn write_framed<W: AsyncWriteExt + Unpin>(w: &mut W, msg: &[u8]) -> Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| Error::io("write", std::io::ErrorKind::InvalidInput.into()))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    w.write_all(&framed).await.map_err(|e| Error::io("write", e))
}

/// Reads one length-prefixed DNS message; `None` at a clean end of stream.
pub(crate) async fn read_framed<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io("read", e)),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut msg).await.map_err(|e| Error::io("read", e))?;
    Ok(Some(msg))
}
