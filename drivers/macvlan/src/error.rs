//! The driver's errors, each with its class for the API.

use cnm_driverapi::ErrorKind;

/// An error of the macvlan driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A driver option is invalid.
    #[error("{0}")]
    InvalidOption(String),
    /// The network's parent link cannot be had (see `cnm_parent_link`).
    #[error(transparent)]
    Parent(#[from] cnm_parent_link::Error),
    /// A passthru network cannot share its parent (the only mode that
    /// takes the parent whole), as Docker's.
    #[error("cannot use mode passthru, macvlan network {network} is already using parent interface {parent}")]
    ParentInUse {
        /// The network using it.
        network: String,
        /// The parent.
        parent: String,
    },
    /// The parent is taken whole by a passthru network.
    #[error("macvlan network {network} is already using parent interface {parent} in mode passthru")]
    ParentInPassthru {
        /// The passthru network.
        network: String,
        /// The parent.
        parent: String,
    },
    /// The network is not known to the driver.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// A kernel operation failed: the step, and the OS layer's error.
    #[error(transparent)]
    Os(#[from] cnm_osl::Failed),
}

impl Error {
    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidOption(_) => ErrorKind::InvalidParameter,
            Error::Parent(e) => e.kind(),
            Error::ParentInUse { .. } | Error::ParentInPassthru { .. } => ErrorKind::Conflict,
            Error::NetworkNotFound(_) => ErrorKind::NotFound,
            Error::Os(failed) => failed.kind(),
        }
    }

    pub(crate) fn os(op: impl Into<String>, source: cnm_osl::Error) -> Self {
        Error::Os(source.during(op))
    }
}

/// A driver error converts into `cnm_driverapi::Error` with `?` (of its kind).
impl cnm_driverapi::Kinded for Error {
    fn kind(&self) -> ErrorKind {
        Error::kind(self)
    }
}
