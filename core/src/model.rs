//! What the controller persists: one record per network, endpoint and
//! sandbox, each with the phase of the operation under way (the intent).

use crate::endpoint::config::EndpointConfig;
use crate::network::config::NetworkConfig;
use crate::sandbox::config::SandboxConfig;
use cnm_driverapi::{MacAddress, PortBinding, StaticRoute};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Where an object is in its life: an intent (`Creating`, `Deleting`) or confirmed (`Ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Phase {
    /// Recorded before any kernel or driver work; rolled back after a crash.
    Creating,
    /// Confirmed; restored after a restart.
    Ready,
    /// Being deleted; the deletion is finished after a crash.
    Deleting,
}

/// One pool of a network, as the IPAM gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PoolRecord {
    pub address_space: String,
    pub pool_id: String,
    pub pool: IpNet,
    pub sub_pool: Option<IpNet>,
    /// The gateway, with the pool's prefix length.
    pub gateway: Option<IpNet>,
    pub aux: BTreeMap<String, IpNet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub config: NetworkConfig,
    pub ipv4: Vec<PoolRecord>,
    pub ipv6: Vec<PoolRecord>,
    pub created: u64,
    /// The nanoseconds of the creation time (Docker shows them).
    #[serde(default)]
    pub created_nanos: u32,
    pub phase: Phase,
    /// Of a global-scope driver: shared with the cluster's other hosts.
    #[serde(default)]
    pub global: bool,
}

/// The state of an endpoint's join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum JoinPhase {
    Joining,
    Joined,
    Leaving,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JoinRecord {
    pub sandbox_id: String,
    pub phase: JoinPhase,
    /// The interface's name inside the sandbox.
    pub iface: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    pub gateway_ipv6: Option<Ipv6Addr>,
    pub static_routes: Vec<StaticRoute>,
    pub disable_gateway_service: bool,
    pub priority: i32,
    /// The ports the driver published for this endpoint (with the host ports
    /// it chose), so a restart publishes the same ones.
    #[serde(default)]
    pub published: Vec<PortBinding>,
    /// The driver's last answer to `EndpointOperInfo` (its port map, MAC, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_info: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub config: EndpointConfig,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub mac: Option<MacAddress>,
    pub join: Option<JoinRecord>,
    pub phase: Phase,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub id: String,
    pub container_id: String,
    pub key: PathBuf,
    pub config: SandboxConfig,
    pub phase: Phase,
    /// The inode of a runtime's namespace (`config.netns`) when it was
    /// adopted: a different one at the same path later is another namespace.
    #[serde(default)]
    pub netns_inode: Option<u64>,
}

impl NetworkRecord {
    /// The pool (IPv4 or IPv6) holding `addr`.
    pub fn pool_of(&self, addr: std::net::IpAddr) -> Option<&PoolRecord> {
        self.ipv4.iter().chain(self.ipv6.iter()).find(|p| p.pool.contains(&addr))
    }
}

/// The names and addresses of an endpoint on another host of the cluster,
/// answered by this host's resolver on that (global) network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteName {
    /// The network (present here too).
    pub network_id: String,
    /// Its names: the container's, its host name, the endpoint's, aliases.
    pub names: Vec<String>,
    /// Its addresses on the network.
    pub addrs: Vec<std::net::IpAddr>,
}
