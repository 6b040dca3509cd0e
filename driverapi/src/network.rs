//! Network messages: `CreateNetwork`, `DeleteNetwork`, `AllocateNetwork`, `FreeNetwork`.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One IPAM pool of a network as the driver sees it (`IPv4Data`/`IPv6Data` entries).
///
/// `Gateway` and `AuxAddresses` carry the pool's prefix length (`10.0.0.1/24`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamData {
    /// The IPAM address space of the pool.
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    /// Auxiliary addresses reserved in the pool, by name.
    #[serde(
        rename = "AuxAddresses",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::wire::null_default"
    )]
    pub aux_addresses: BTreeMap<String, IpNet>,
    /// The gateway address, with the pool's prefix length.
    #[serde(rename = "Gateway", default, skip_serializing_if = "Option::is_none", with = "crate::wire::opt_string")]
    pub gateway: Option<IpNet>,
    /// The pool.
    #[serde(rename = "Pool", with = "crate::wire::string")]
    pub pool: IpNet,
}

/// The `Options` of `CreateNetwork`: generic driver options and network flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOptions {
    /// Whether the network has IPv4 (false: IPv6 only, Docker 28's
    /// `EnableIPv4`; sent only when false).
    #[serde(rename = "com.docker.network.enable_ipv4", default = "yes", skip_serializing_if = "is_true")]
    pub enable_ipv4: bool,
    /// Whether the network has IPv6.
    #[serde(rename = "com.docker.network.enable_ipv6", default)]
    pub enable_ipv6: bool,
    /// Driver-specific options (`--opt key=value`), as strings.
    #[serde(rename = "com.docker.network.generic", default, deserialize_with = "crate::wire::null_default")]
    pub generic: BTreeMap<String, String>,
    /// Whether the network is internal (sent only when true, as Docker does).
    #[serde(rename = "com.docker.network.internal", default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// User labels of the network; kept in process, never sent over the wire (Docker does not).
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            enable_ipv4: true,
            enable_ipv6: false,
            generic: BTreeMap::new(),
            internal: false,
            labels: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

/// `NetworkDriver.CreateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateNetworkRequest {
    /// The new network's id (64 hex characters).
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Generic options and flags.
    #[serde(rename = "Options", default)]
    pub options: NetworkOptions,
    /// The IPv4 pools, at least one.
    #[serde(rename = "IPv4Data", default, deserialize_with = "crate::wire::null_default")]
    pub ipv4_data: Vec<IpamData>,
    /// The IPv6 pools; empty when IPv6 is off.
    #[serde(rename = "IPv6Data", default, deserialize_with = "crate::wire::null_default")]
    pub ipv6_data: Vec<IpamData>,
}

/// `NetworkDriver.DeleteNetwork`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteNetworkRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// `NetworkDriver.AllocateNetwork` (swarm managers only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateNetworkRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// String options.
    #[serde(rename = "Options", default, deserialize_with = "crate::wire::null_default")]
    pub options: BTreeMap<String, String>,
    /// The IPv4 pools.
    #[serde(rename = "IPv4Data", default, deserialize_with = "crate::wire::null_default")]
    pub ipv4_data: Vec<IpamData>,
    /// The IPv6 pools.
    #[serde(rename = "IPv6Data", default, deserialize_with = "crate::wire::null_default")]
    pub ipv6_data: Vec<IpamData>,
}

/// The answer to `NetworkDriver.AllocateNetwork`: driver data handed to the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AllocateNetworkResponse {
    /// Driver-specific options.
    #[serde(rename = "Options", default, deserialize_with = "crate::wire::null_default")]
    pub options: BTreeMap<String, String>,
}

/// `NetworkDriver.GwAllocCheck` (Docker 28): asked before a network's
/// pools are allocated, of a driver whose capability has `GwAllocChecker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GwAllocCheckRequest {
    /// The options the network will be created with, as in `CreateNetwork`.
    #[serde(rename = "Options", default)]
    pub options: NetworkOptions,
}

/// The answer to `NetworkDriver.GwAllocCheck`: the families whose gateway
/// address is not to be reserved (unless the user gave one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GwAllocCheckResponse {
    /// Reserve no IPv4 gateway address.
    #[serde(rename = "SkipIPv4", default)]
    pub skip_ipv4: bool,
    /// Reserve no IPv6 gateway address.
    #[serde(rename = "SkipIPv6", default)]
    pub skip_ipv6: bool,
}

/// `NetworkDriver.FreeNetwork` (swarm managers only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeNetworkRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}
