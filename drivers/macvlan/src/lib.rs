//! The `macvlan` network driver: each sandbox gets a macvlan link on a
//! host interface (the network's `parent`), so it sits on that interface's
//! Ethernet segment with a MAC and addresses of its own, as Docker's
//! macvlan driver does.
//!
//! Options (`-o`): `parent` (an interface of the host; `eth0.10` means the
//! 802.1q sub-interface with id 10 of `eth0`, created with the network and
//! removed with it unless it existed), `macvlan_mode` (`bridge`, the
//! default, `private`, `vepa`, `passthru`). Without a parent the network is
//! host-only and internal (as Docker's), on a dummy link of its own.
//! Several networks may share a parent, except in `passthru` mode. On an
//! internal network sandboxes get no default route, and no gateway address
//! is reserved.
//!
//! Kernels without 802.1q VLAN or dummy links get an error naming the
//! missing feature.

mod config;
mod driver;
mod error;

pub use config::MacvlanConfig;
pub use driver::MacvlanDriver;
pub use error::Error;

/// The driver's type name.
pub const NAME: &str = "macvlan";
