//! Forwarding to a sandbox's upstream servers: each in turn (at most three),
//! the next one on a timeout, a network error, SERVFAIL or REFUSED; an
//! NXDOMAIN or any other answer is final. A query that came over TCP goes
//! upstream over TCP; a truncated UDP answer is passed through, so the asker
//! retries over TCP. Sockets are opened in the namespace the upstream is
//! reached from: the host's for a loopback address (such as 127.0.0.53),
//! the sandbox's otherwise. Each query goes upstream with a fresh random id
//! from a fresh socket, and only an answer with that id and the same
//! question is taken (given back to the asker with its own id).

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
            Err(e) => {
                tracing::debug!(upstream = %up.addr, error = %cnm_osl::Chain(&e), "upstream did not answer; trying the next")
            }
        }
    }
    last
}

/// The question section of a DNS message (its first question: name, type
/// and class), if the message has exactly one and it is well formed.
fn question(msg: &[u8]) -> Option<&[u8]> {
    if msg.len() < 12 || msg[4..6] != [0, 1] {
        return None;
    }
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i)?);
        // A compressed name has no place in a question of one.
        if len & 0xc0 != 0 {
            return None;
        }
        i += 1 + len;
        if len == 0 {
            break;
        }
    }
    msg.get(12..i + 4)
}

/// The query as it goes upstream: the asker's with a fresh random id (so
/// that an answer can be told from a forged one by more than the asker's
/// id), and that id.
fn with_fresh_id(query: &[u8]) -> (Vec<u8>, [u8; 2]) {
    let id: [u8; 2] = rand::random();
    let mut q = query.to_vec();
    if q.len() >= 2 {
        q[..2].copy_from_slice(&id);
    }
    (q, id)
}

/// Whether `resp` answers `sent` (sent with id `id`): the same id and the
/// same question (names compared without regard to case).
fn answers(resp: &[u8], sent: &[u8], id: [u8; 2]) -> bool {
    resp.len() >= 12
        && resp[..2] == id
        && resp[2] & 0x80 != 0
        && matches!((question(resp), question(sent)), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// The upstream's answer given back with the asker's id.
fn restore_id(mut resp: Vec<u8>, query: &[u8]) -> Vec<u8> {
    if resp.len() >= 2 && query.len() >= 2 {
        resp[..2].copy_from_slice(&query[..2]);
    }
    resp
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
    // A socket of its own (a fresh source port the kernel picks at random)
    // and a fresh id per query.
    let (sent, id) = with_fresh_id(query);
    let work = async {
        sock.send(&sent).await.map_err(|e| Error::io("send to upstream", e))?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| Error::io("receive from upstream", e))?;
            // Only the answer to this query (its id and its question) counts.
            if answers(&buf[..n], &sent, id) {
                buf.truncate(n);
                return Ok(restore_id(buf, query));
            }
            tracing::debug!(upstream = %addr, "DNS: an answer that does not match the query, dropped");
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
    let (sent, id) = with_fresh_id(query);
    let work = async {
        write_framed(&mut stream, &sent).await?;
        let resp = read_framed(&mut stream, usize::from(u16::MAX))
            .await?
            .ok_or_else(|| Error::io("read from upstream", std::io::ErrorKind::UnexpectedEof.into()))?;
        if !answers(&resp, &sent, id) {
            return Err(Error::io("read from upstream", std::io::ErrorKind::InvalidData.into()));
        }
        Ok(restore_id(resp, query))
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

/// Reads one length-prefixed DNS message of at most `max` bytes (a longer
/// one is an error before anything is allocated for it); `None` at a clean
/// end of stream.
pub(crate) async fn read_framed<R: AsyncReadExt + Unpin>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io("read", e)),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len > max {
        return Err(Error::io("read", std::io::ErrorKind::InvalidData.into()));
    }
    let mut msg = vec![0u8; len];
    r.read_exact(&mut msg).await.map_err(|e| Error::io("read", e))?;
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (type A, class IN) with id `id`.
    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    fn answer_to(q: &[u8]) -> Vec<u8> {
        let mut a = q.to_vec();
        a[2] |= 0x80;
        a
    }

    #[test]
    fn only_an_answer_with_the_fresh_id_and_the_question_counts() {
        let asked = query(0x1111, "secret.example");
        let (sent, id) = with_fresh_id(&asked);
        assert_eq!(question(&sent), question(&asked), "the question goes upstream as asked");
        let good = answer_to(&sent);
        assert!(answers(&good, &sent, id));
        // Case may differ (0x20 randomisation, servers that lower-case).
        assert!(answers(&answer_to(&query(u16::from_be_bytes(id), "SECRET.example")), &sent, id));
        // The asker's id (what an off-path forger would guess first) does not do.
        let mut forged = answer_to(&asked);
        forged[..2].copy_from_slice(&0x1111u16.to_be_bytes());
        assert!(id == [0x11, 0x11] || !answers(&forged, &sent, id));
        // Another question with the right id does not do either.
        assert!(!answers(&answer_to(&query(u16::from_be_bytes(id), "other.example")), &sent, id));
        // Nor a query (QR clear), nor garbage.
        assert!(!answers(&sent, &sent, id));
        assert!(!answers(&[0u8; 5], &sent, id));
        assert_eq!(&restore_id(good, &asked)[..2], &asked[..2], "the asker gets its own id back");
    }

    #[test]
    fn ids_are_fresh() {
        let asked = query(7, "a.example");
        let ids: std::collections::HashSet<[u8; 2]> = (0..64).map(|_| with_fresh_id(&asked).1).collect();
        assert!(ids.len() > 32, "64 queries, {} distinct ids", ids.len());
    }
}
