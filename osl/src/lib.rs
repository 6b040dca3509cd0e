//! The OS layer of cnm: network namespaces, links, addresses, routes and
//! sysctls, all over netlink (rtnetlink), never by spawning `ip`.
//!
//! Namespaces are entered only by short-lived threads of our own: a netlink
//! socket for a namespace is opened by such a thread and then driven from
//! tokio, so tokio worker threads never change namespace. Every netlink
//! request has a deadline, so a stuck kernel call becomes an error.

mod address;
mod error;
pub mod firewall;
pub mod kernel;
mod link;
mod namespace;
mod neighbour;
mod netlink;
pub mod probe;
pub mod reservation;
mod route;
mod sysctl;
pub mod userns;
pub mod watch;
pub mod wireguard;

pub use address::Address;
pub use cnm_kinds::{Chain, chain};
pub use error::{Error, Failed, Result};
pub use link::{BridgePortFlags, IpvlanFlag, IpvlanMode, Link, LinkKind, MacvlanMode, VethSpec};
pub use namespace::Namespace;
pub use netlink::{DEFAULT_DEADLINE, Netlink};
pub use route::{Route, RouteScope};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;
