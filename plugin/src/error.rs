//! The crate's error type: lookup, transport, protocol and plugin errors,
//! each with the [`ErrorKind`] a caller (or the daemon's HTTP layer) acts on.

use cnm_driverapi::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

/// An error of the remote plugin protocol (client or server side).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No socket or spec file for this plugin name.
    #[error("plugin {name:?} not found")]
    PluginNotFound {
        /// The plugin name.
        name: String,
    },
    /// The plugin name cannot name a file (empty, or with `/` or a leading `.`).
    #[error("invalid plugin name {name:?}")]
    InvalidName {
        /// The plugin name.
        name: String,
    },
    /// A spec file exists but cannot be used.
    #[error("plugin {name:?}: invalid spec file {}: {reason}", path.display())]
    InvalidSpec {
        /// The plugin name.
        name: String,
        /// The spec file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin could not be reached, or the connection broke before an answer.
    #[error("{method}: cannot reach plugin at {address}: {reason}")]
    Transport {
        /// The call, as `Subsystem.Method`.
        method: String,
        /// The plugin's address.
        address: String,
        /// What failed.
        reason: String,
    },
    /// The plugin did not answer within the configured timeout.
    #[error("{method}: plugin at {address} did not answer within {timeout:?}")]
    Timeout {
        /// The call, as `Subsystem.Method`.
        method: String,
        /// The plugin's address.
        address: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The plugin answered with a status other than 200.
    #[error("{method}: {message}")]
    Status {
        /// The call, as `Subsystem.Method`.
        method: String,
        /// The HTTP status.
        status: u16,
        /// The `Err` field of the answer, or its raw body.
        message: String,
        /// The class of the error (from the status, or the answer's `Cnm-Error-Kind` header).
        kind: ErrorKind,
    },
    /// The plugin answered 200 with its error field (`Err`, or `Error` for IPAM) set.
    #[error("remote: {message}")]
    Remote {
        /// The call, as `Subsystem.Method`.
        method: String,
        /// The plugin's message.
        message: String,
        /// The class of the error (from the answer's `Cnm-Error-Kind` header, else internal).
        kind: ErrorKind,
    },
    /// A 200 answer that is not what the protocol allows (empty, not JSON, bad values).
    #[error("{method}: invalid answer from plugin: {reason}")]
    InvalidResponse {
        /// The call, as `Subsystem.Method`.
        method: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin does not implement the role the caller needs.
    #[error("plugin {name:?} does not implement the requested driver ({role})")]
    RoleNotImplemented {
        /// The plugin name.
        name: String,
        /// The role: `NetworkDriver` or `IpamDriver`.
        role: String,
    },
    /// A request could not be encoded.
    #[error("{method}: cannot encode request: {reason}")]
    Encode {
        /// The call, as `Subsystem.Method`.
        method: String,
        /// The encoder's message.
        reason: String,
    },
    /// The plugin server's listener failed or refused its address.
    #[error("plugin server")]
    Server(#[source] std::io::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::PluginNotFound { .. } => ErrorKind::NotFound,
            Error::InvalidName { .. } | Error::InvalidSpec { .. } | Error::Encode { .. } => ErrorKind::InvalidParameter,
            Error::Transport { .. } => ErrorKind::Unavailable,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Status { kind, .. } | Error::Remote { kind, .. } => *kind,
            Error::InvalidResponse { .. } | Error::Server(_) => ErrorKind::Internal,
            Error::RoleNotImplemented { .. } => ErrorKind::NotImplemented,
        }
    }

    /// The HTTP status of a non-200 answer, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the plugin answered 404: "method not implemented" in the protocol.
    pub fn is_not_implemented_status(&self) -> bool {
        self.status() == Some(404)
    }
}

impl From<Error> for cnm_driverapi::Error {
    fn from(e: Error) -> Self {
        cnm_driverapi::Error::from_source(e.kind(), e)
    }
}

impl From<Error> for cnm_ipamapi::Error {
    fn from(e: Error) -> Self {
        cnm_ipamapi::Error::caused(e.kind(), e)
    }
}

/// The response header our plugin server uses to carry the exact error kind
/// (Docker ignores it; our client reads it).
pub const ERROR_KIND_HEADER: &str = "cnm-error-kind";

/// The HTTP status our server answers for an error of `kind`.
///
/// 404 means "method not implemented" in the protocol (Docker treats it as
/// success for Program/RevokeExternalConnectivity), so only `NotImplemented`
/// maps to it; `NotFound` goes out as 500 with the kind in the header.
pub fn status_for_kind(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InvalidParameter => 400,
        ErrorKind::Forbidden => 403,
        ErrorKind::NotImplemented => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::Unavailable => 503,
        ErrorKind::Timeout => 504,
        _ => 500,
    }
}

/// The kind a client assumes for a non-200 status without our header.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        400 => ErrorKind::InvalidParameter,
        403 => ErrorKind::Forbidden,
        404 | 501 => ErrorKind::NotImplemented,
        409 => ErrorKind::Conflict,
        503 => ErrorKind::Unavailable,
        504 => ErrorKind::Timeout,
        _ => ErrorKind::Internal,
    }
}

/// The header value for `kind` (its display form).
pub fn kind_name(kind: ErrorKind) -> String {
    kind.to_string()
}

/// Parses a header value written by [`kind_name`].
pub fn kind_from_name(name: &str) -> Option<ErrorKind> {
    [
        ErrorKind::InvalidParameter,
        ErrorKind::NotFound,
        ErrorKind::Forbidden,
        ErrorKind::Conflict,
        ErrorKind::Unavailable,
        ErrorKind::NotImplemented,
        ErrorKind::Timeout,
        ErrorKind::Internal,
    ]
    .into_iter()
    .find(|k| k.to_string() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_the_header_and_statuses_match_docker_semantics() {
        for k in [ErrorKind::InvalidParameter, ErrorKind::NotFound, ErrorKind::Timeout, ErrorKind::Internal] {
            assert_eq!(kind_from_name(&kind_name(k)), Some(k));
        }
        assert_eq!(kind_from_name("nonsense"), None);
        assert_eq!(status_for_kind(ErrorKind::NotImplemented), 404);
        assert_ne!(status_for_kind(ErrorKind::NotFound), 404, "404 would read as 'not implemented'");
        assert_eq!(kind_for_status(404), ErrorKind::NotImplemented);
        assert_eq!(kind_for_status(201), ErrorKind::Internal);
    }
}
