//! The class of an error (libnetwork's error classes), and the trait of
//! errors that know theirs.

use std::fmt;

/// The class of an error: what a caller (or the daemon's HTTP layer) can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or names an invalid value (HTTP 400).
    InvalidParameter,
    /// The object the request names does not exist (HTTP 404).
    NotFound,
    /// The request is valid but not allowed in the current state (HTTP 403).
    Forbidden,
    /// The request clashes with an existing object (HTTP 409).
    Conflict,
    /// A resource or service needed for the request is not available (HTTP 503).
    Unavailable,
    /// The driver does not implement this call (HTTP 501).
    NotImplemented,
    /// The operation did not finish in time (HTTP 504).
    Timeout,
    /// Anything else: a bug or an unexpected failure of the system (HTTP 500).
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::InvalidParameter => "invalid parameter",
            ErrorKind::NotFound => "not found",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotImplemented => "not implemented",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
        };
        f.write_str(s)
    }
}

/// An error that knows its class. The driver contract's error converts
/// from any such error, keeping it as its source, so a crate below the
/// contract (the OS layer) needs nothing of the contract.
pub trait Kinded {
    /// The class of this error.
    fn kind(&self) -> ErrorKind;
}
