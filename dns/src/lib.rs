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
mod forward;
mod records;
mod server;

pub use answer::{EDNS_PAYLOAD, INTERNAL_TTL, query_bytes};
pub use forward::{MAX_UPSTREAMS, Upstream};
pub use records::{Entry, Lookup, Records};
pub use server::{MAX_IN_FLIGHT, RESOLVER_ADDR, SandboxServer};

pub use hickory_proto as proto;

use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;

/// An error of the resolver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("{op}: {source}")]
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
