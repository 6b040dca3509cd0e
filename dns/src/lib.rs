//! The embedded DNS resolver of cnm sandboxes, as Docker's: a server at
//! 127.0.0.11:53 (UDP and TCP) inside every sandbox on a network with DNS
//! on, answering the names of the sandboxes it shares a network with
//! (container name, host name, aliases; A, AAAA and PTR; several owners of
//! one alias all answered, shuffled) and forwarding every other name to the
//! sandbox's upstream servers.
//!
//! One [`Resolver`] holds the records of every sandbox as an immutable
//! snapshot that the control path replaces whole ([`Resolver::update`]);
//! queries read it without a lock. Each sandbox gets a [`SandboxServer`],
//! a pair of sockets served by tasks of the caller's tokio runtime.

mod answer;
mod cache;
mod fast;
mod forward;
mod records;
mod server;

pub use answer::{EDNS_PAYLOAD, INTERNAL_TTL, query_bytes};
pub use forward::{MAX_UPSTREAMS, Upstream};
pub use records::{Entry, Lookup, Records};
pub use server::{MAX_IN_FLIGHT, MAX_TCP_CONNECTIONS, RESOLVER_ADDR, SandboxServer};

pub use hickory_proto as proto;

use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;

/// An error of the resolver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("{op}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Entering a namespace failed.
    #[error(transparent)]
    Os(#[from] cnm_osl::Error),
    /// The resolver answered a lookup with an error code.
    #[error("{name}: {code}")]
    Answer {
        /// The name looked up.
        name: String,
        /// The answer's RCODE.
        code: hickory_proto::op::ResponseCode,
    },
    /// An upstream server did not answer in time.
    #[error("upstream {0} did not answer in time")]
    Timeout(SocketAddr),
}

impl Error {
    pub(crate) fn io(op: &'static str, source: std::io::Error) -> Self {
        Error::Io { op, source }
    }
}

/// The result type of the resolver.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The records of every sandbox, shared by all sandbox servers.
#[derive(Debug, Default)]
pub struct Resolver {
    records: ArcSwap<Records>,
}

impl Resolver {
    /// A resolver that knows no name yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Resolver::default())
    }

    /// Replaces every record at once: the next query sees the new names.
    pub fn update(&self, records: Records) {
        self.records.store(Arc::new(records));
    }

    /// The records in use.
    pub fn records(&self) -> Arc<Records> {
        self.records.load_full()
    }
}

/// Asks the embedded resolver of the sandbox whose namespace is `ns` for
/// the IPv4 addresses of `name`, over UDP, from inside the namespace.
pub async fn lookup_ipv4(
    ns: &cnm_osl::Namespace,
    name: &str,
    timeout: std::time::Duration,
) -> Result<Vec<std::net::Ipv4Addr>> {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::{RData, RecordType};
    let query = query_bytes(rand::random(), name, RecordType::A, false);
    let answer = ns
        .run(move || -> std::io::Result<Vec<u8>> {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            s.connect(RESOLVER_ADDR)?;
            s.set_read_timeout(Some(timeout))?;
            s.send(&query)?;
            let mut buf = vec![0u8; 4096];
            let n = s.recv(&mut buf)?;
            buf.truncate(n);
            Ok(buf)
        })
        .await?
        .map_err(|e| Error::io("ask 127.0.0.11", e))?;
    let m = Message::from_vec(&answer)
        .map_err(|e| Error::io("read the answer", std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    if m.metadata.response_code != ResponseCode::NoError {
        return Err(Error::Answer { name: name.to_string(), code: m.metadata.response_code });
    }
    Ok(m.answers.iter().filter_map(|r| if let RData::A(a) = &r.data { Some(a.0) } else { None }).collect())
}
