//! IPAM errors, as libnetwork's IPAM defines them.

use crate::ErrorKind;

/// An error of an IPAM driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address space is not known to this IPAM.
    #[error("invalid address space {0:?}")]
    InvalidAddressSpace(String),
    /// The requested pool is not a valid subnet.
    #[error("invalid pool {0}")]
    InvalidPool(String),
    /// The requested sub-pool is not valid or not inside its pool.
    #[error("invalid sub-pool {0}")]
    InvalidSubPool(String),
    /// No pool with this id.
    #[error("pool {0} not found")]
    PoolNotFound(String),
    /// The requested pool overlaps a pool already allocated in the address space.
    #[error("pool {requested} overlaps with pool {existing} already allocated in the address space")]
    PoolOverlap {
        /// The pool that was asked for.
        requested: String,
        /// The allocated pool it overlaps.
        existing: String,
    },
    /// Every predefined pool is taken or overlaps the host's networks.
    #[error("could not find an available, non-overlapping address pool among the defaults to assign to the network")]
    NoAvailablePool,
    /// The pool has no free address left.
    #[error("no available addresses on this pool")]
    NoAvailableIps,
    /// The requested address is already allocated.
    #[error("address {0} already in use")]
    AddressInUse(String),
    /// The requested address is outside the pool (or sub-pool).
    #[error("requested address {0} is out of range")]
    AddressOutOfRange(String),
    /// A request field is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A failure of another layer (a plugin call, a host look-up): that
    /// error itself, with a kind ([`Error::caused`]).
    #[error(transparent)]
    Cause(Caused),
    /// Any other failure, with its kind (remote IPAM errors answered as text).
    #[error("{message}")]
    Other {
        /// The class of the error.
        kind: ErrorKind,
        /// What went wrong.
        message: String,
    },
}

/// Another layer's error as an IPAM error of `kind`: its text and causes
/// are the IPAM error's.
#[derive(Debug)]
pub struct Caused {
    kind: ErrorKind,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl std::fmt::Display for Caused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for Caused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// The result type of IPAM calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `source` (another layer's error) as an IPAM error of `kind`.
    pub fn caused(kind: ErrorKind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Cause(Caused { kind, source: Box::new(source) })
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidAddressSpace(_)
            | Error::InvalidPool(_)
            | Error::InvalidSubPool(_)
            | Error::AddressOutOfRange(_)
            | Error::InvalidRequest(_) => ErrorKind::InvalidParameter,
            Error::PoolNotFound(_) => ErrorKind::NotFound,
            // dockerd's classes (libnetwork's ErrPoolOverlap, ErrIPAlreadyAllocated): 403.
            Error::PoolOverlap { .. } | Error::AddressInUse(_) => ErrorKind::Forbidden,
            Error::NoAvailablePool | Error::NoAvailableIps => ErrorKind::Unavailable,
            Error::Other { kind, .. } => *kind,
            Error::Cause(c) => c.kind,
        }
    }
}
