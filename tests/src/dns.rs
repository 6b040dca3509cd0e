//! DNS for the tests: a client that asks from inside a namespace, and small
//! upstream servers (answering, or failing) that the tests run in their
//! "outside" or scratch host namespaces.

use cnm::osl::Namespace;
use cnm_dns::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use cnm_dns::proto::rr::rdata::{A, TXT};
use cnm_dns::proto::rr::{Name, RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The embedded resolver's address.
pub const RESOLVER: SocketAddr = cnm_dns::RESOLVER_ADDR;
/// The address `ext.test.` has at the answering upstream.
pub const EXT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
/// How many bytes of TXT data `big.test.` has (more than any UDP answer may carry).
pub const BIG_TXT_BYTES: usize = 5000;

/// Asks `server` from inside `ns` (UDP, or TCP), with an EDNS0 record when `edns`.
pub async fn ask(
    ns: &Namespace,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    tcp: bool,
    edns: bool,
) -> Result<Message, String> {
    let query = cnm_dns::query_bytes(rand_id(), name, qtype, edns);
    let bytes = ns
        .run(move || -> std::io::Result<Vec<u8>> {
            let timeout = Some(Duration::from_secs(5));
            if tcp {
                let mut s = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(3))?;
                s.set_read_timeout(timeout)?;
                let mut framed = (query.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&query);
                s.write_all(&framed)?;
                let mut len = [0u8; 2];
                s.read_exact(&mut len)?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                s.read_exact(&mut buf)?;
                Ok(buf)
            } else {
                let any: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
                let s = UdpSocket::bind(any)?;
                s.set_read_timeout(timeout)?;
                // Connected, so a closed port is an error at once, not a timeout.
                s.connect(server)?;
                s.send(&query)?;
                let mut buf = vec![0u8; 65535];
                let n = s.recv(&mut buf)?;
                buf.truncate(n);
                Ok(buf)
            }
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{} {name} {qtype} at {server}: {e}", if tcp { "TCP" } else { "UDP" }))?;
    Message::from_vec(&bytes).map_err(|e| format!("bad answer: {e}"))
}

/// Asks the embedded resolver over UDP for `name`'s A records; their addresses.
pub async fn lookup_a(ns: &Namespace, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let m = ask(ns, RESOLVER, name, RecordType::A, false, false).await?;
    if m.metadata.response_code != ResponseCode::NoError {
        return Err(format!("{name}: {:?}", m.metadata.response_code));
    }
    Ok(m.answers.iter().filter_map(|r| if let RData::A(a) = &r.data { Some(a.0) } else { None }).collect())
}

fn rand_id() -> u16 {
    use std::time::SystemTime;
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.subsec_nanos() as u16)
}

/// How a test upstream server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamMode {
    /// `ext.test.` A [`EXT_ADDR`] (TTL 60), `big.test.` TXT of
    /// [`BIG_TXT_BYTES`] (truncated over UDP), NXDOMAIN for anything else.
    Answering,
    /// SERVFAIL to everything.
    Failing,
}

/// A test upstream server on UDP and TCP port 53 in a namespace; counts the queries it gets.
pub struct TestUpstream {
    queries: Arc<AtomicUsize>,
}

impl TestUpstream {
    /// Starts a server on `ip`:53 inside `ns` (its threads live as long as the test process).
    pub async fn start(ns: &Namespace, ip: std::net::IpAddr, mode: UpstreamMode) -> TestUpstream {
        let addr = SocketAddr::new(ip, 53);
        let (udp, tcp) = ns
            .run(move || -> std::io::Result<(UdpSocket, TcpListener)> {
                Ok((UdpSocket::bind(addr)?, TcpListener::bind(addr)?))
            })
            .await
            .expect("enter namespace")
            .unwrap_or_else(|e| panic!("bind upstream {addr}: {e}"));
        let queries = Arc::new(AtomicUsize::new(0));
        let count = queries.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(resp) = respond(&buf[..n], mode, true) {
                    let _ = udp.send_to(&resp, peer);
                }
            }
        });
        let count = queries.clone();
        std::thread::spawn(move || {
            for mut s in tcp.incoming().flatten() {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(resp) = respond(&q, mode, false) {
                    let mut framed = (resp.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&resp);
                    let _ = s.write_all(&framed);
                }
            }
        });
        TestUpstream { queries }
    }

    /// How many queries it has received.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

fn respond(query: &[u8], mode: UpstreamMode, udp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.add_queries(q.queries.iter().cloned());
    if let Some(e) = &q.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(e.max_payload());
        m.set_edns(edns);
    }
    let question: &Query = q.queries.first()?;
    let name = question.name().to_ascii().to_ascii_lowercase();
    match (mode, name.as_str(), question.query_type()) {
        (UpstreamMode::Failing, _, _) => m.metadata.response_code = ResponseCode::ServFail,
        (_, "ext.test.", RecordType::A) => {
            m.add_answer(Record::from_rdata(question.name().clone(), 60, RData::A(A(EXT_ADDR))));
        }
        (_, "big.test.", RecordType::TXT) => {
            let chunks: Vec<String> = (0..BIG_TXT_BYTES / 100).map(|i| format!("{i:0>100}")).collect();
            m.add_answer(Record::from_rdata(question.name().clone(), 60, RData::TXT(TXT::new(chunks))));
        }
        (_, "ext.test." | "big.test.", _) => {}
        _ => m.metadata.response_code = ResponseCode::NXDomain,
    }
    let bytes = m.to_vec().ok()?;
    let limit = q.edns.as_ref().map_or(512, |e| usize::from(e.max_payload().max(512)));
    if udp && bytes.len() > limit {
        m.answers.clear();
        m.metadata.truncation = true;
        return m.to_vec().ok();
    }
    Some(bytes)
}

/// A name, for building queries by hand.
pub fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("valid name")
}

/// A controller for `h` with the embedded resolver on and the bridge driver.
pub async fn controller(h: &crate::TestHost) -> cnm::Controller {
    crate::with_defaults(cnm::Controller::builder(h.config().embedded_dns(true)))
        .driver_on_host(|host| cnm_driver_bridge::BridgeDriver::new(host.clone()))
        .build()
        .await
        .expect("start controller")
}
