//! The firewall: one nftables table owned by cnm (`inet cnm`), programmed
//! over nf_tables netlink alone (nothing to install in user space), behind
//! a small trait so that tests can record calls instead.
//!
//! The rules are constant; networks and published ports are set and map
//! elements, so adding a network or a port never adds a rule, every change
//! of one operation is one atomic transaction, and other tables are never
//! touched. A `user` chain is evaluated first and never flushed (Docker's
//! `DOCKER-USER` role).

mod conntrack;
mod elements;
pub mod iptables;
mod nfnl;
mod nft;
mod recording;
mod ruleset;

pub use conntrack::{UdpFlow, flush_udp_flows};
pub use nft::NftFirewall;
pub use recording::{FirewallCall, RecordingFirewall};

use crate::Result;
use async_trait::async_trait;
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::IpAddr;

/// The table cnm owns (family inet).
pub(crate) const TABLE: &str = "cnm";

/// A transport protocol of a published port (the one enum of the bottom layer).
pub use cnm_kinds::Protocol;

/// What the firewall needs to know of one bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    /// The bridge interface.
    pub bridge: String,
    /// IPv4 subnets of the network.
    pub subnets_v4: Vec<Ipv4Net>,
    /// IPv6 subnets of the network.
    pub subnets_v6: Vec<Ipv6Net>,
    /// Masquerade traffic leaving the host.
    pub masquerade: bool,
    /// Internal: no traffic in or out, only between its containers.
    pub internal: bool,
    /// Inter-container communication (routed traffic within the bridge).
    pub icc: bool,
    /// How IPv4 crosses the host's gateway (Docker's `gateway_mode_ipv4`).
    pub gateway_v4: GatewayMode,
    /// How IPv6 crosses it (`gateway_mode_ipv6`); `None`: routed out without
    /// masquerading, in only through published ports (cnm's default, as
    /// Docker 20.10's).
    pub gateway_v6: Option<GatewayMode>,
}

/// How traffic of one address family crosses the host between a bridge
/// network and the outside (Docker's gateway modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum GatewayMode {
    /// Masqueraded out (if the network masquerades); in only through
    /// published ports of the host.
    #[default]
    Nat,
    /// As `Nat`, and anything from outside may reach the containers'
    /// addresses directly.
    NatUnprotected,
    /// Not masqueraded; from outside, ICMP and the published ports at the
    /// containers' own addresses.
    Routed,
    /// No gateway: the network is internal (nothing crosses).
    Isolated,
}

/// A published port of a container on a `routed` network, reached at the
/// container's own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoutedPort {
    /// The transport protocol.
    pub proto: Protocol,
    /// The container's address.
    pub container_ip: IpAddr,
    /// The container's port.
    pub container_port: u16,
}

/// One published port (or port range) of a container: DNAT from the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// The transport protocol.
    pub proto: Protocol,
    /// The host address; `None`: every local address of the family of `container_ip`.
    pub host_ip: Option<IpAddr>,
    /// The first host port.
    pub host_port: u16,
    /// The last host port (equal to `host_port` for one port); a range maps
    /// every port to `container_port`.
    pub host_port_end: u16,
    /// The container's address.
    pub container_ip: IpAddr,
    /// The container's port.
    pub container_port: u16,
}

/// An overlay network's VXLAN on this host: the UDP port its device
/// listens on and its VNI. Such traffic is accepted only from the
/// network's peers ([`Firewall::set_vxlan_peers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VxlanNetwork {
    /// The VXLAN UDP port (4789 by default).
    pub port: u16,
    /// The VXLAN network identifier (24 bits).
    pub vni: u32,
}

/// A set or map element as the kernel reports it (raw bytes, each field of a
/// concatenation padded to 4 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetElement {
    /// The key.
    pub key: Vec<u8>,
    /// The end of a range key.
    pub key_end: Option<Vec<u8>>,
    /// A map element's value.
    pub data: Option<Vec<u8>>,
}

/// A firewall backend.
#[async_trait]
pub trait Firewall: Send + Sync + 'static {
    /// Creates the table, its sets, maps and chains if missing, and re-asserts
    /// the constant rules; the user chain is created once and never flushed.
    async fn ensure_base(&self) -> Result<()>;

    /// Adds (idempotently) a network's set elements.
    async fn add_network(&self, net: &NetworkRules) -> Result<()>;

    /// Removes a network's set elements (absent ones are fine).
    async fn remove_network(&self, net: &NetworkRules) -> Result<()>;

    /// Adds port mappings, all in one transaction.
    async fn add_ports(&self, ports: &[PortMapping]) -> Result<()>;

    /// Removes port mappings, all in one transaction (absent ones are fine).
    async fn remove_ports(&self, ports: &[PortMapping]) -> Result<()>;

    /// Accepts traffic from outside to `ports` (with `open`) or stops
    /// accepting it (absent ones are fine), in one transaction. A backend
    /// without gateway modes accepts nothing more.
    async fn set_routed_ports(&self, ports: &[RoutedPort], open: bool) -> Result<()> {
        let _ = (ports, open);
        Ok(())
    }

    /// Removes every element of a network's sets whose bridge is not in
    /// `bridges`, and every port mapping whose container address is in none
    /// of `subnets` (what a crash left of networks that no longer exist), in
    /// one transaction; returns how many elements were removed.
    async fn retain(&self, bridges: &[String], subnets: &[ipnet::IpNet]) -> Result<usize>;

    /// Removes every port mapping whose container address is inside one of
    /// `subnets`, whoever added it (what a crash left behind), in one
    /// transaction; returns how many were removed.
    async fn remove_ports_into(&self, subnets: &[ipnet::IpNet]) -> Result<usize>;

    /// Starts filtering VXLAN for `net`: from now on it is accepted only
    /// from the addresses given to [`Firewall::set_vxlan_peers`] (none yet).
    async fn add_vxlan(&self, net: VxlanNetwork) -> Result<()>;

    /// Makes `peers` the underlay addresses VXLAN for `net` is accepted
    /// from (those added, others removed), in one transaction.
    async fn set_vxlan_peers(&self, net: VxlanNetwork, peers: &[std::net::Ipv4Addr]) -> Result<()>;

    /// Stops filtering VXLAN for `net` and forgets its peers (the network
    /// is gone from this host).
    async fn remove_vxlan(&self, net: VxlanNetwork) -> Result<()>;

    /// Removes the filter and peers of every VXLAN network not in `keep`
    /// (what a crash left of networks that no longer exist); returns how
    /// many elements were removed.
    async fn retain_vxlan(&self, keep: &[VxlanNetwork]) -> Result<usize>;

    /// Removes the whole table (tests and uninstall); the user chain goes too.
    async fn remove_all(&self) -> Result<()>;

    /// A count of the deletions of cnm's table by anyone, once `ensure_base`
    /// has run (`None`: this backend cannot tell). Whoever owns the state
    /// then puts it back.
    fn table_removed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}
