//! The controller's error type: one variant per meaning, each with a kind.

pub use cnm_driverapi::ErrorKind;

/// An error of the controller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A network with this name exists already.
    #[error("network with name {0} already exists")]
    NetworkNameExists(String),
    /// No network has this name or id.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// The network still has endpoints (dockerd 20.10's message, with the
    /// endpoints listed as dockerd 25 and later list them).
    #[error(
        "network {name} id {id} has active endpoints ({})",
        .endpoints.iter().map(|(n, i)| format!("name:{n:?} id:{:?}", cnm_driverapi::id::short(i, 12))).collect::<Vec<_>>().join(", ")
    )]
    ActiveEndpoints {
        /// The network's name.
        name: String,
        /// The network's id.
        id: String,
        /// Its endpoints: name (the sandbox's, for a connect) and id.
        endpoints: Vec<(String, String)>,
    },
    /// An endpoint with this name exists already on the network.
    #[error("endpoint with name {name} already exists in network {network}")]
    EndpointNameExists {
        /// The endpoint name.
        name: String,
        /// The network's name.
        network: String,
    },
    /// No endpoint has this name or id.
    #[error("endpoint {0} not found")]
    EndpointNotFound(String),
    /// No sandbox has this id or container id.
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    /// A sandbox exists already for this container.
    #[error("sandbox for container {0} already exists")]
    SandboxExists(String),
    /// The endpoint is joined to a sandbox already.
    #[error("endpoint {endpoint} is already joined to sandbox {sandbox}")]
    AlreadyJoined {
        /// The endpoint's name.
        endpoint: String,
        /// The sandbox's id.
        sandbox: String,
    },
    /// The endpoint is not joined to that sandbox.
    #[error("endpoint {endpoint} is not joined to sandbox {sandbox}")]
    NotJoined {
        /// The endpoint's name.
        endpoint: String,
        /// The sandbox's id.
        sandbox: String,
    },
    /// The endpoint is joined, so it cannot be deleted.
    #[error("endpoint {0} is joined to a sandbox: leave it first")]
    EndpointJoined(String),
    /// No driver has this name.
    #[error("could not find a network driver named {name:?}; available drivers: {available}", available = .available.join(", "))]
    InvalidDriver {
        /// The name asked for.
        name: String,
        /// The drivers registered.
        available: Vec<String>,
    },
    /// No IPAM driver has this name.
    #[error("could not find an ipam driver named {name:?}; available ipam drivers: {available}", available = .available.join(", "))]
    InvalidIpamDriver {
        /// The name asked for.
        name: String,
        /// The IPAM drivers registered.
        available: Vec<String>,
    },
    /// Two network drivers were registered under one name.
    #[error("two network drivers are registered under the name {0:?}")]
    DuplicateDriver(String),
    /// Two IPAM drivers were registered under one name.
    #[error("two ipam drivers are registered under the name {0:?}")]
    DuplicateIpamDriver(String),
    /// A request's parameters are invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The operation is not allowed for this object.
    #[error("{0}")]
    Forbidden(String),
    /// A network driver failed.
    #[error("{driver} driver failed to {op}")]
    Driver {
        /// The driver's name.
        driver: String,
        /// What the driver was asked to do.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: cnm_driverapi::Error,
    },
    /// An IPAM driver failed.
    #[error("ipam failed to {op}")]
    Ipam {
        /// What the IPAM was asked to do.
        op: String,
        /// The IPAM's error.
        #[source]
        source: cnm_ipamapi::Error,
    },
    /// The OS layer (netlink, namespaces) failed.
    #[error("{op}")]
    Os {
        /// What was being done.
        op: String,
        /// The OS layer's error.
        #[source]
        source: cnm_osl::Error,
    },
    /// The embedded DNS server of a sandbox could not start.
    #[error("DNS server of sandbox {sandbox}")]
    Dns {
        /// The sandbox's id.
        sandbox: String,
        /// The resolver's error.
        #[source]
        source: cnm_dns::Error,
    },
    /// A file could not be read or written.
    #[error("{op} {path}", path = .path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// The cluster store could not be reached or refused a change, so
    /// global networks cannot change now.
    #[error("global networks cannot change now: {op}")]
    ClusterStore {
        /// What was being done.
        op: String,
        /// The cluster store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Several failures during a teardown that kept going.
    #[error("{}", .0.iter().map(cnm_kinds::chain).collect::<Vec<_>>().join("; "))]
    Multiple(Vec<Error>),
}

/// The result type of the controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NetworkNameExists(_)
            | Error::EndpointNameExists { .. }
            | Error::SandboxExists(_)
            | Error::AlreadyJoined { .. } => ErrorKind::Conflict,
            Error::NetworkNotFound(_)
            | Error::EndpointNotFound(_)
            | Error::SandboxNotFound(_)
            | Error::InvalidDriver { .. }
            | Error::InvalidIpamDriver { .. } => ErrorKind::NotFound,
            Error::ActiveEndpoints { .. } | Error::EndpointJoined(_) | Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::NotJoined { .. }
            | Error::InvalidParameter(_)
            | Error::DuplicateDriver(_)
            | Error::DuplicateIpamDriver(_) => ErrorKind::InvalidParameter,
            Error::Driver { source, .. } => source.kind(),
            Error::Ipam { source, .. } => source.kind(),
            Error::Os { source, .. } => source.kind(),
            Error::Io { .. } | Error::Store(_) | Error::Dns { .. } => ErrorKind::Internal,
            Error::ClusterStore { .. } => ErrorKind::Unavailable,
            Error::Multiple(errs) => errs.first().map(Error::kind).unwrap_or(ErrorKind::Internal),
        }
    }

    pub(crate) fn os(op: impl Into<String>, source: cnm_osl::Error) -> Self {
        Error::Os { op: op.into(), source }
    }

    pub(crate) fn ipam(op: impl Into<String>, source: cnm_ipamapi::Error) -> Self {
        Error::Ipam { op: op.into(), source }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// Folds the errors of a teardown into one result (style: keep going, report all).
    pub(crate) fn collect(mut errs: Vec<Error>) -> Result<()> {
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(Error::Multiple(errs)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each layer says what it adds; the chain prints every cause once,
    /// however many wrappers (transparent or not) lie between.
    #[test]
    fn a_driver_failure_prints_each_cause_once() {
        let os = cnm_osl::Error::NotFound("link br-x".into()).during("create br-x");
        let driver = cnm_driverapi::Error::from_source(os.kind(), os);
        let e = Error::Driver { driver: "bridge".into(), op: "create network", source: driver };
        assert_eq!(e.to_string(), "bridge driver failed to create network");
        assert_eq!(crate::chain(&e), "bridge driver failed to create network: create br-x: link br-x not found");
        let wrapped = cnm_driverapi::Error::internal("plugin call").with_source(std::io::Error::other("EOF"));
        let e = Error::Driver { driver: "p".into(), op: "join", source: wrapped };
        assert_eq!(crate::chain(&e), "p driver failed to join: plugin call: EOF");
    }
}
