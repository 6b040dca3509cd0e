//! The `bridge` network driver: one Linux bridge per network, a veth pair per
//! endpoint with the host end a port of the bridge and the other end in the
//! sandbox, the gateway address on the bridge.
//!
//! NAT, isolation, the firewall and published ports are not part of this
//! driver yet; without them containers reach each other and the gateway.

mod config;
mod driver;
mod endpoint;
mod error;
mod network;

pub use config::BridgeConfig;
pub use driver::BridgeDriver;
pub use error::Error;

/// The driver's type name.
pub const NAME: &str = "bridge";
