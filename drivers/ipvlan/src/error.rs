//! The driver's errors, each with its class for the API.

use cnm_driverapi::ErrorKind;

/// An error of the ipvlan driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A driver option (or an endpoint's MAC address) is invalid.
    #[error("{0}")]
    InvalidOption(String),
    /// The network's parent link cannot be had (see `cnm_parent_link`).
    #[error(transparent)]
    Parent(#[from] cnm_parent_link::Error),
    /// Another network uses the parent with another mode or flag, which
    /// the kernel keeps per parent: the new network would change it under
    /// the other's sandboxes.
    #[error(
        "ipvlan network {network} is already using parent interface {parent} in mode {mode} flag {flag}: networks on one parent share the mode and flag"
    )]
    ParentInOtherMode {
        /// The network using the parent.
        network: String,
        /// The parent.
        parent: String,
        /// Its mode.
        mode: &'static str,
        /// Its flag.
        flag: &'static str,
    },
    /// The kernel lacks a link type the network needs.
    #[error("{what} needs {feature}, which this kernel lacks")]
    MissingKernelFeature {
        /// What was being made.
        what: String,
        /// The kernel feature (and its module).
        feature: &'static str,
        /// The kernel's answer.
        #[source]
        source: cnm_osl::Error,
    },
    /// The network is not known to the driver.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// The endpoint is not known to the driver.
    #[error("endpoint {0} not found")]
    EndpointNotFound(String),
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
            Error::ParentInOtherMode { .. } => ErrorKind::Conflict,
            Error::MissingKernelFeature { .. } => ErrorKind::NotImplemented,
            Error::NetworkNotFound(_) | Error::EndpointNotFound(_) => ErrorKind::NotFound,
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
