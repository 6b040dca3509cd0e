//! The `bridge` network driver: one Linux bridge per network, a veth pair per
//! endpoint with the host end a port of the bridge and the other end in the
//! sandbox, the gateway address on the bridge.
//!
//! The firewall (one nftables table, `inet cnm`) masquerades outgoing
//! traffic, isolates networks from each other, enforces ICC off and internal
//! networks, and publishes ports through DNAT map elements; a plain attach
//! needs no firewall change at all. ICC off is also enforced at layer 2 with
//! isolated bridge ports.
//!
//! A deleted network's bridge is taken down and marked at once; the kernel's
//! unregister (20 to 40 ms of RCU grace periods) finishes in the background,
//! and a bridge left marked by a process that died is deleted at the next start.

mod config;
mod driver;
mod endpoint;
mod error;
pub mod kill;
mod network;
mod ports;
mod publish;
mod reaper;
mod repair;

pub use config::BridgeConfig;
pub use driver::BridgeDriver;
pub use error::Error;

/// The driver's type name.
pub const NAME: &str = "bridge";
