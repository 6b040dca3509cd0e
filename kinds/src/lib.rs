//! The bottom layer of cnm, depending on no other crate of the workspace:
//! what every layer above shares.
//!
//! - [`ErrorKind`]: the class of an error, and [`Kinded`] for errors that
//!   know theirs;
//! - [`Protocol`]: a transport protocol;
//! - [`wire`]: serde helpers for the remote protocol's encodings;
//! - [`kill`]: named kill points for crash tests;
//! - [`Chain`]: an error printed with its causes, each once.

mod chain;
mod error_kind;
pub mod kill;
mod protocol;
pub mod wire;

pub use chain::{Chain, chain};
pub use error_kind::{ErrorKind, Kinded};
pub use protocol::Protocol;
