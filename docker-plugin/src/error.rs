//! The plugin host's errors: its journal and its sockets.

use cnm_driverapi::ErrorKind;
use std::path::PathBuf;

/// An error of the plugin host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The journal (a redb database) failed.
    #[error("journal {}: {op}", path.display())]
    Journal {
        /// The journal's file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The database's error (boxed: redb's is large).
        #[source]
        source: Box<redb::Error>,
    },
    /// A record of the journal could not be encoded or read back.
    #[error("journal record {key}")]
    Record {
        /// The record's key.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A journal write did not finish (its thread was cancelled or panicked).
    #[error("journal write of {key} did not finish")]
    Unfinished {
        /// The record's key.
        key: String,
        /// How the write's thread ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A plugin socket could not be made ready.
    #[error("plugin socket {}: {op}", path.display())]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process already serves a plugin of this name.
    #[error("plugin socket {}: another process serves it", path.display())]
    InUse {
        /// The socket's path.
        path: PathBuf,
    },
    /// A plugin server stopped.
    #[error("plugin {name} stopped serving")]
    Serve {
        /// The plugin's name.
        name: String,
        /// The server's error.
        #[source]
        source: cnm_driver_remote::Error,
    },
    /// A plugin server's task ended abnormally (it panicked).
    #[error("a plugin server stopped")]
    Stopped {
        /// How the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl cnm_driverapi::Kinded for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InUse { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }
}

/// The result type of the plugin host.
pub type Result<T, E = Error> = std::result::Result<T, E>;
