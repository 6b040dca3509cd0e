//! Errors of the bridge driver, and how they map to driver error kinds.

use cnm_driverapi::ErrorKind;

/// An error of the bridge driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a malformed value.
    #[error("invalid value {value:?} for option {key}: {reason}")]
    InvalidOption {
        /// The option's key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option the bridge driver does not know.
    #[error("unknown bridge option {0}")]
    UnknownOption(String),
    /// The network is unknown to the driver.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// The endpoint is unknown to the driver.
    #[error("endpoint {0} not found")]
    EndpointNotFound(String),
    /// Another network uses the bridge already.
    #[error("bridge {bridge} is already used by network {network}")]
    BridgeInUse {
        /// The bridge's name.
        bridge: String,
        /// The network using it.
        network: String,
    },
    /// A link of that name exists and is not a bridge.
    #[error("link {0} exists and is not a bridge")]
    NotABridge(String),
    /// A network without an IPv4 pool (and not IPv6-only with an IPv6 pool).
    #[error("a bridge network needs an IPv4 pool, or IPv6 only with an IPv6 pool")]
    NoIpv4Pool,
    /// No host port could be had for a binding.
    #[error("cannot publish {proto} port {range} on {ip}: {reason}")]
    PortUnavailable {
        /// The protocol.
        proto: &'static str,
        /// The host address.
        ip: std::net::IpAddr,
        /// The port or range asked for.
        range: String,
        /// Why.
        reason: String,
    },
    /// A binding whose host address family the container has no address of.
    #[error("cannot publish port {0}: the container has no address of the host address's family")]
    NoAddressForBinding(u16),
    /// The thread preparing the port allocator (its file descriptor table) panicked.
    #[error("the port allocator could not be prepared: its helper thread panicked")]
    PortsPoisoned,
    /// A kernel operation failed: the step, and the OS layer's error.
    #[error(transparent)]
    Os(#[from] cnm_osl::Failed),
}

impl Error {
    pub(crate) fn os(op: impl Into<String>, source: cnm_osl::Error) -> Self {
        Error::Os(source.during(op))
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidOption { .. } | Error::UnknownOption(_) | Error::NoIpv4Pool => ErrorKind::InvalidParameter,
            Error::NetworkNotFound(_) | Error::EndpointNotFound(_) => ErrorKind::NotFound,
            Error::BridgeInUse { .. } | Error::NotABridge(_) | Error::PortUnavailable { .. } => ErrorKind::Conflict,
            Error::NoAddressForBinding(_) => ErrorKind::InvalidParameter,
            Error::PortsPoisoned => ErrorKind::Internal,
            Error::Os(failed) => failed.kind(),
        }
    }
}

/// A driver error converts into `cnm_driverapi::Error` with `?` (of its kind).
impl cnm_driverapi::Kinded for Error {
    fn kind(&self) -> ErrorKind {
        Error::kind(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_driver_error_keeps_the_bridge_error_as_its_cause() {
        let e = Error::NotABridge("eth0".into());
        let text = e.to_string();
        let d = cnm_driverapi::Error::from(e);
        assert_eq!(d.kind(), ErrorKind::Conflict);
        assert_eq!(cnm_driverapi::chain(&d), text, "the cause's text once, nothing added");
        assert!(d.source().is_none(), "the bridge error has no cause of its own");
        let cause = d.cause().and_then(|s| s.downcast_ref::<Error>()).expect("typed cause");
        assert!(matches!(cause, Error::NotABridge(n) if n == "eth0"));
    }

    #[test]
    fn an_os_failure_prints_its_step_and_cause_once() {
        let os = cnm_osl::Error::NotFound("link br-x".into());
        let d = cnm_driverapi::Error::from(Error::os("create br-x", os));
        assert_eq!(d.kind(), ErrorKind::Internal);
        assert_eq!(d.to_string(), "create br-x");
        assert_eq!(cnm_driverapi::chain(&d), "create br-x: link br-x not found");
    }
}
