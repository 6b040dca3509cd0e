//! The JSON shapes of the API, shared by the server and `cnmctl`: Docker's
//! Engine API types for networks and the system endpoints, and the native
//! sandbox types. Field names are Docker's (PascalCase). Docker's request
//! types take what dockerd takes (an unknown field is ignored, `null` is a
//! field's zero value); cnm's own (sandboxes, port bindings) refuse unknown
//! fields; response types ignore them (newer servers may add some).

pub mod network;
pub mod ports;
pub mod sandbox;
pub mod system;
pub mod time;

/// The body of every error response: `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// What went wrong, in one line.
    pub message: String,
}
