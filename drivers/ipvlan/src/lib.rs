//! The `ipvlan` network driver: each sandbox gets an ipvlan link on a host
//! interface (the network's `parent`), so it sits on that interface's
//! segment with addresses of its own and the parent's MAC address, as
//! Docker's ipvlan driver does.
//!
//! Options (`-o`): `parent` (an interface of the host; `eth0.10` means the
//! 802.1q sub-interface with id 10 of `eth0`, created with the network and
//! removed with the last network using it unless it existed),
//! `ipvlan_mode` (`l2`, the default, `l3`, `l3s`), `ipvlan_flag`
//! (`bridge`, the default, `private`, `vepa`). Without a parent the network
//! is host-only and internal (as Docker's), on a dummy link of its own. The
//! mode and flag belong to the parent's whole ipvlan port, so networks
//! share a parent only with the same mode and flag.
//!
//! In `l2` mode sandboxes route through the network's gateway, as on a
//! LAN. In `l3` and `l3s` modes the host's namespace routes for them: a
//! sandbox's default route is its interface (no gateway, no ARP), and the
//! segment's router must route the networks' subnets to the host. On an
//! internal network sandboxes get no default route (in `l3` modes, a route
//! to each of the network's other subnets instead).
//!
//! Kernels without ipvlan, 802.1q VLAN or dummy links get an error naming
//! the missing module; the kernel is probed when a network asks for it.

mod config;
mod driver;
mod error;

pub use config::IpvlanConfig;
pub use driver::IpvlanDriver;
pub use error::Error;

/// The driver's type name.
pub const NAME: &str = "ipvlan";
