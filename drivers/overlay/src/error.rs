//! The driver's errors, each with its class for the API.

use cnm_driverapi::ErrorKind;

/// An error of the overlay driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A driver option is invalid.
    #[error("{0}")]
    InvalidOption(String),
    /// A driver option the driver does not know.
    #[error("the overlay driver has no option {0:?}")]
    UnknownOption(String),
    /// The requested VNI belongs to another network.
    #[error("VXLAN id {0} is already in use in the cluster")]
    VniInUse(u32),
    /// Every VNI is taken.
    #[error("no VXLAN id left in the cluster")]
    NoVni,
    /// The kernel lacks what the network needs.
    #[error("{what} needs {feature}, which this kernel lacks")]
    MissingKernelFeature {
        /// What was asked for.
        what: &'static str,
        /// The kernel feature.
        feature: &'static str,
    },
    /// Encrypted networks are asked for on a kernel that could carry them.
    #[error("{what} is not supported by this version of cnm (this kernel has {kernel_has})")]
    NotSupportedYet {
        /// What was asked for.
        what: &'static str,
        /// What the kernel has that would carry it.
        kernel_has: &'static str,
    },
    /// The network is not known to the driver.
    #[error("overlay network {0} not found")]
    NetworkNotFound(String),
    /// The endpoint is not known to the driver.
    #[error("overlay endpoint {0} not found")]
    EndpointNotFound(String),
    /// The cluster store failed.
    #[error(transparent)]
    Cluster(#[from] cnm_cluster::Error),
    /// A kernel operation failed: the step, and the OS layer's error.
    #[error(transparent)]
    Os(#[from] cnm_osl::Failed),
}

impl Error {
    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidOption(_) | Error::UnknownOption(_) => ErrorKind::InvalidParameter,
            Error::VniInUse(_) => ErrorKind::Conflict,
            Error::NoVni | Error::Cluster(_) => ErrorKind::Unavailable,
            Error::MissingKernelFeature { .. } | Error::NotSupportedYet { .. } => ErrorKind::NotImplemented,
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
