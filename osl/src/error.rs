//! Errors of the OS layer, with the operation and object they concern.

use std::path::PathBuf;

/// An error of the OS layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A netlink request failed; `errno` is the kernel's answer when there is one.
    #[error("{op}: {message}")]
    Netlink {
        /// What was being done (`ip link add br-1234 type bridge`, …).
        op: String,
        /// The kernel's errno (positive), if it answered with one.
        errno: Option<i32>,
        /// The error text.
        message: String,
    },
    /// A netlink request did not complete before its deadline.
    #[error("{op}: no answer from the kernel within {millis} ms")]
    Timeout {
        /// What was being done.
        op: String,
        /// The deadline that passed.
        millis: u128,
    },
    /// A system call or file operation failed.
    #[error("{op} {path}", path = path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A link, address or route that the operation needs does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request is invalid before reaching the kernel.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The kernel does not support what was asked (a link kind, for example).
    #[error("{0}")]
    Unsupported(String),
    /// A program the layer runs (the host's `iptables`) failed.
    #[error("{op}: {message}")]
    Command {
        /// The command line.
        op: String,
        /// What it said, or why it could not run.
        message: String,
    },
    /// A bug of this layer: a namespace thread or task that panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The class of an error, shared by every crate of the project.
pub use cnm_kinds::ErrorKind;

/// A step of a driver (or any caller) that failed in the OS layer: what
/// was being done (`create br0`), and the OS layer's error as its cause.
/// The one OS-error variant every driver's error type wraps
/// (`#[error(transparent)] Os(#[from] cnm_osl::Failed)`); its kind is its
/// cause's.
#[derive(Debug, thiserror::Error)]
#[error("{op}")]
pub struct Failed {
    /// What was being done.
    pub op: String,
    /// The OS layer's error.
    #[source]
    pub source: Error,
}

impl Failed {
    /// `source`, failing step `op`.
    pub fn new(op: impl Into<String>, source: Error) -> Self {
        Failed { op: op.into(), source }
    }

    /// The class of this error: its cause's.
    pub fn kind(&self) -> ErrorKind {
        self.source.kind()
    }
}

impl cnm_kinds::Kinded for Failed {
    fn kind(&self) -> ErrorKind {
        self.source.kind()
    }
}

impl Error {
    /// This error as the cause of step `op` ([`Failed`]).
    pub fn during(self, op: impl Into<String>) -> Failed {
        Failed::new(op, self)
    }
}

/// The result type of the OS layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn netlink(op: impl Into<String>, err: rtnetlink::Error) -> Self {
        let op = op.into();
        match err {
            rtnetlink::Error::NetlinkError(msg) => {
                let errno = msg.code.map(|c| -c.get());
                let message = match errno {
                    Some(e) => std::io::Error::from_raw_os_error(e).to_string(),
                    None => msg.to_string(),
                };
                if errno == Some(libc::EOPNOTSUPP) && op.contains("type ") {
                    return Error::Unsupported(format!("{op}: this kernel does not support the link type ({message})"));
                }
                Error::Netlink { op, errno, message }
            }
            other => Error::Netlink { op, errno: None, message: other.to_string() },
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// The kernel's errno, if this is a netlink or I/O error that carries one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { errno, .. } => *errno,
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The class of this error, for callers that report it (an HTTP status,
    /// a driver error): an invalid request is the caller's, a timeout and a
    /// missing kernel feature are their own kinds, the rest is internal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::InvalidParameter,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Unsupported(_) => ErrorKind::NotImplemented,
            Error::Netlink { .. }
            | Error::Io { .. }
            | Error::NotFound(_)
            | Error::Internal(_)
            | Error::Command { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the object did not exist (ENOENT, ENODEV, ESRCH, or [`Error::NotFound`]).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
            || matches!(self.errno(), Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL))
    }

    /// Whether the object already existed (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// Whether an address is held elsewhere (EADDRINUSE): an ipvlan
    /// sibling of the same parent has it.
    pub fn is_address_in_use(&self) -> bool {
        self.errno() == Some(libc::EADDRINUSE)
    }
}

/// The kind travels with the error: the driver contract's error converts
/// from it (keeping it as the cause) without this crate knowing that contract.
impl cnm_kinds::Kinded for Error {
    fn kind(&self) -> ErrorKind {
        Error::kind(self)
    }
}
