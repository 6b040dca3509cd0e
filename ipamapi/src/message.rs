//! The IPAM protocol's request and response types.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The answer to `IpamDriver.GetCapabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IpamCapability {
    /// The IPAM needs the endpoint's MAC address with each address request.
    #[serde(rename = "RequiresMACAddress", default)]
    pub requires_mac_address: bool,
    /// The IPAM keeps no state: the controller replays its pools and addresses on start.
    #[serde(rename = "RequiresRequestReplay", default)]
    pub requires_request_replay: bool,
}

/// The answer to `IpamDriver.GetDefaultAddressSpaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSpaces {
    /// The address space for local-scope networks.
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local: String,
    /// The address space for global-scope networks.
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global: String,
}

/// `IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolRequest {
    /// The address space.
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// The requested pool; `None` (`""`) lets the IPAM choose one.
    #[serde(rename = "Pool", default, with = "cnm_kinds::wire::empty_none")]
    pub pool: Option<IpNet>,
    /// The sub-pool addresses are allocated from (`--ip-range`); `""` for the whole pool.
    #[serde(rename = "SubPool", default, with = "cnm_kinds::wire::empty_none")]
    pub sub_pool: Option<IpNet>,
    /// IPAM driver options (`--ipam-opt`).
    #[serde(rename = "Options", default, deserialize_with = "cnm_kinds::wire::null_default")]
    pub options: BTreeMap<String, String>,
    /// True for an IPv6 pool (also when `pool` is given).
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

/// The answer to `RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolResponse {
    /// An opaque id the later calls use.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The pool (CIDR).
    #[serde(rename = "Pool", with = "cnm_kinds::wire::string")]
    pub pool: IpNet,
    /// Extra data; only `com.docker.network.gateway` (CIDR) is interpreted.
    #[serde(rename = "Data", default, deserialize_with = "cnm_kinds::wire::null_default")]
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePoolRequest {
    /// The pool's id.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressRequest {
    /// The pool's id.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The preferred address (plain IP); `None` (`""`) for any.
    #[serde(rename = "Address", default, with = "cnm_kinds::wire::empty_none")]
    pub address: Option<IpAddr>,
    /// Options: `{"RequestAddressType": "com.docker.network.gateway"}` for a
    /// gateway, `None` (`null`) for auxiliary and endpoint addresses.
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, String>>,
}

impl RequestAddressRequest {
    /// Whether this request is for the network's gateway.
    pub fn is_gateway(&self) -> bool {
        self.options
            .as_ref()
            .and_then(|o| o.get(crate::label::REQUEST_ADDRESS_TYPE))
            .is_some_and(|v| v == crate::label::GATEWAY)
    }
}

/// The answer to `RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressResponse {
    /// The address, with the pool's prefix length.
    #[serde(rename = "Address", with = "cnm_kinds::wire::string")]
    pub address: IpNet,
    /// Extra data (ignored by the controller).
    #[serde(rename = "Data", default, deserialize_with = "cnm_kinds::wire::null_default")]
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAddressRequest {
    /// The pool's id.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address (plain IP).
    #[serde(rename = "Address", with = "cnm_kinds::wire::string")]
    pub address: IpAddr,
}
