//! The `overlay` network driver: one layer-2 network across the hosts of a
//! cluster, carried in VXLAN over the hosts' underlay, as Docker's overlay
//! driver — with its shared state in the cluster store (etcd) instead of a
//! gossip protocol.
//!
//! Per network and host: a namespace holding a bridge (`br0`, with each
//! pool's gateway address, IPv4 and IPv6, as Docker's) and a VXLAN
//! device (`vxlan0`: the network's VNI, UDP port 4789 or the configured
//! one, the host's advertised address, no learning, ARP answered from its
//! neighbour table). Each sandbox gets a veth whose other end is a port of
//! `br0`; MTUs are the underlay's less the 50 bytes of VXLAN. Remote
//! endpoints are programmed from the store (a forwarding entry to their
//! host, a neighbour entry per address), never learnt or flooded: an endpoint appears
//! on every host when it joins and disappears when it leaves or its host's
//! lease expires.
//!
//! The VNI is allocated cluster-wide when the network is created (4096 and
//! up, the next free after the last handed out, so a freed one is not
//! reused at once; or `com.docker.network.driver.overlay.vxlanid_list`). Encryption
//! (`-o encrypted`) is refused: on a kernel without IPsec ESP or WireGuard
//! the error says so; on one with either (probed), it says that this
//! version of cnm does not encrypt yet.
//!
//! Options are read once into `NetworkOptions` (`config.rs`); a key the
//! driver does not know is refused by name.
//!
//! Everything is behind the `cluster` feature (the cluster store's client).

#[cfg(feature = "cluster")]
mod config;
#[cfg(feature = "cluster")]
mod driver;
#[cfg(feature = "cluster")]
mod error;
pub mod kill;
#[cfg(feature = "cluster")]
mod peers;

#[cfg(feature = "cluster")]
pub use config::{ENCRYPTED, MTU, NetworkOptions, OverlayConfig, VXLAN_OVERHEAD, VXLANID_LIST};
#[cfg(feature = "cluster")]
pub use driver::OverlayDriver;
#[cfg(feature = "cluster")]
pub use error::Error;

/// The driver's type name.
pub const NAME: &str = "overlay";
