//! cnm for Docker Engine users: cnm's drivers and IPAM served as Docker
//! network plugins (the v1 plugin protocol, a socket each in Docker's
//! plugin directory), so `docker network create -d cnm-bridge --ipam-driver
//! cnm` gives Docker containers cnm's networks, published ports without a
//! proxy process, and (with a cluster store) overlay networks across
//! Docker hosts without swarm.
//!
//! Docker is the controller here: it creates networks and endpoints, moves
//! interfaces and keeps its own records, but replays nothing to a plugin
//! that restarts. So every driver call is journaled ([`journal`]) before
//! the driver acts, and every pool and address once the IPAM granted it
//! (forgotten before it is released), and all is replayed into fresh
//! drivers and IPAMs at start ([`driver`], [`ipam`]); [`host`] serves them.

pub mod driver;
mod error;
pub mod host;
pub mod ipam;
pub mod journal;
pub mod kill;
#[cfg(feature = "cluster")]
pub mod shared;

pub use driver::{JournaledDriver, Replayed};
pub use error::{Error, Result};
pub use host::{DEFAULT_PLUGIN_DIR, PluginHost};
pub use ipam::JournaledIpam;
pub use journal::Journal;

/// The plugin names cnm's drivers and IPAM are served under.
pub mod names {
    /// The bridge driver.
    pub const BRIDGE: &str = "cnm-bridge";
    /// The macvlan driver.
    pub const MACVLAN: &str = "cnm-macvlan";
    /// The overlay driver (with a cluster store).
    pub const OVERLAY: &str = "cnm-overlay";
    /// The IPAM: the default one, or with a cluster store the global one.
    pub const IPAM: &str = "cnm";
}
