//! Docker's network types: `POST /networks/create`, connect, disconnect,
//! prune, and the network resource returned by list and inspect.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /networks/create`: Docker's `NetworkCreateRequest`, every field the
/// docker CLI may send (API 1.24 to 1.52). As dockerd (Go's decoder), a
/// field it does not know is ignored and a `null` is the field's zero value
/// (docker-py sends `"IPRange": null`, `"Options": null`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateRequest {
    /// The network's name.
    pub name: String,
    /// The driver; empty means `bridge`.
    #[serde(default, deserialize_with = "null_default")]
    pub driver: String,
    /// `local` (or empty); swarm scopes are refused.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Whether IPv4 is enabled (API 1.48+); `false` makes an IPv6-only network.
    #[serde(default, rename = "EnableIPv4", skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// Whether IPv6 is enabled.
    #[serde(default, rename = "EnableIPv6", skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// The IPAM driver and its pools.
    #[serde(default, rename = "IPAM", skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// No external connectivity.
    #[serde(default, deserialize_with = "null_default")]
    pub internal: bool,
    /// Swarm attachability; accepted and echoed, meaningless locally.
    #[serde(default, deserialize_with = "null_default")]
    pub attachable: bool,
    /// Swarm routing-mesh network; refused (403), as dockerd outside a swarm.
    #[serde(default, deserialize_with = "null_default")]
    pub ingress: bool,
    /// A configuration-only network: a record other networks take their configuration from.
    #[serde(default, deserialize_with = "null_default")]
    pub config_only: bool,
    /// The configuration-only network to take the configuration from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ConfigReference>,
    /// Driver options (`-o`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    /// User labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Deprecated in API 1.44: duplicates are always refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_duplicate: Option<bool>,
}

/// A reference to a configuration-only network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    /// The network's name.
    #[serde(default, deserialize_with = "null_default")]
    pub network: String,
}

/// A network's IPAM: driver, pools, options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// The IPAM driver; empty means `default`.
    #[serde(default, deserialize_with = "null_default")]
    pub driver: String,
    /// The pools.
    #[serde(default, deserialize_with = "null_default")]
    pub config: Vec<IpamConfig>,
    /// IPAM driver options.
    #[serde(default, deserialize_with = "null_default")]
    pub options: BTreeMap<String, String>,
}

/// One pool: subnet, range, gateway, reserved addresses (empty strings mean unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// The subnet in CIDR form.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    /// The range dynamic addresses come from, in CIDR form.
    #[serde(default, deserialize_with = "null_default", rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    /// The gateway address.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Reserved addresses by name.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// The answer to `POST /networks/create` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateResponse {
    /// The new network's id.
    pub id: String,
    /// Warnings (always empty).
    #[serde(default, deserialize_with = "null_default")]
    pub warning: String,
}

/// `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnectRequest {
    /// The sandbox's name or id (Docker's container).
    pub container: String,
    /// How the sandbox's endpoint should be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_config: Option<EndpointSettings>,
}

/// Docker's `EndpointSettings` as a connect request carries it; the
/// read-only fields are accepted and ignored, as Docker does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSettings {
    /// Static addresses.
    #[serde(rename = "IPAMConfig", default, skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<EndpointIpamConfig>,
    /// Legacy links; refused when not empty.
    #[serde(rename = "Links", default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// A static MAC address.
    #[serde(
        rename = "MacAddress",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac_address: String,
    /// Extra names on the network.
    #[serde(rename = "Aliases", default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Endpoint driver options; refused when not empty.
    #[serde(
        rename = "DriverOpts",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub driver_opts: BTreeMap<String, String>,
    /// Gateway priority (API 1.48): the highest is the sandbox's default route.
    #[serde(rename = "GwPriority", default, deserialize_with = "null_default", skip_serializing_if = "is_zero")]
    pub gw_priority: i32,
    /// Read-only members of Docker's type (the docker CLI sends them
    /// zeroed); accepted and ignored, as Docker does.
    #[serde(rename = "NetworkID", default, skip_serializing)]
    pub network_id: Option<String>,
    /// Read-only; ignored.
    #[serde(rename = "EndpointID", default, skip_serializing)]
    pub endpoint_id: Option<String>,
    /// Read-only; ignored.
    #[serde(rename = "Gateway", default, skip_serializing)]
    pub gateway: Option<String>,
    /// Read-only; ignored.
    #[serde(rename = "IPAddress", default, skip_serializing)]
    pub ip_address: Option<String>,
    /// Read-only; ignored.
    #[serde(rename = "IPPrefixLen", default, skip_serializing)]
    pub ip_prefix_len: Option<i64>,
    /// Read-only; ignored.
    #[serde(rename = "IPv6Gateway", default, skip_serializing)]
    pub ipv6_gateway: Option<String>,
    /// Read-only; ignored.
    #[serde(rename = "GlobalIPv6Address", default, skip_serializing)]
    pub global_ipv6_address: Option<String>,
    /// Read-only; ignored.
    #[serde(rename = "GlobalIPv6PrefixLen", default, skip_serializing)]
    pub global_ipv6_prefix_len: Option<i64>,
    /// Read-only; ignored.
    #[serde(rename = "DNSNames", default, skip_serializing)]
    pub dns_names: Option<Vec<String>>,
}

/// Static addresses of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIpamConfig {
    /// A static IPv4 address (`--ip`).
    #[serde(
        rename = "IPv4Address",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_address: String,
    /// A static IPv6 address (`--ip6`).
    #[serde(
        rename = "IPv6Address",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_address: String,
    /// Link-local addresses; refused when not empty.
    #[serde(
        rename = "LinkLocalIPs",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub link_local_ips: Vec<String>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkDisconnectRequest {
    /// The sandbox's name or id.
    pub container: String,
    /// Disconnect even if the sandbox is gone (removes a stale endpoint).
    #[serde(default, deserialize_with = "null_default")]
    pub force: bool,
}

/// The answer to `POST /networks/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkPruneResponse {
    /// Names of the networks deleted; `null` when none was, as dockerd
    /// answers (Go's empty slice).
    #[serde(default, deserialize_with = "null_default", serialize_with = "empty_as_null")]
    pub networks_deleted: Vec<String>,
}

/// A network as list and inspect return it (Docker's `NetworkResource`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    /// The name.
    pub name: String,
    /// The id.
    pub id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Always `local`.
    pub scope: String,
    /// The driver.
    pub driver: String,
    /// Always true.
    #[serde(rename = "EnableIPv4", default, deserialize_with = "null_default")]
    pub enable_ipv4: bool,
    /// Whether the network has IPv6.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// The IPAM driver and the pools allocated.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// No external connectivity.
    pub internal: bool,
    /// As created (meaningless without a swarm).
    pub attachable: bool,
    /// Always false (no swarm).
    pub ingress: bool,
    /// The configuration-only network it was made from (empty: none).
    pub config_from: ConfigReference,
    /// Whether it is a configuration-only network.
    pub config_only: bool,
    /// The sandboxes joined, by sandbox id.
    #[serde(default, deserialize_with = "null_default")]
    pub containers: BTreeMap<String, EndpointResource>,
    /// Driver options.
    #[serde(default, deserialize_with = "null_default")]
    pub options: BTreeMap<String, String>,
    /// User labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// What is allocated in the network's subnets (inspect at API 1.52+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NetworkStatus>,
}

/// A network's runtime status (API 1.52's `Status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// The addresses allocated.
    #[serde(rename = "IPAM")]
    pub ipam: IpamStatus,
}

/// The addresses allocated in each subnet of a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamStatus {
    /// By subnet (CIDR); absent for a network without addresses (`host`, `none`).
    #[serde(rename = "Subnets", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subnets: BTreeMap<String, SubnetStatus>,
}

/// The addresses allocated in one subnet, counted as dockerd counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetStatus {
    /// Addresses in use: the subnet's first address (and, in IPv4, its
    /// broadcast address, both but in a /31 or /32), the gateway, the
    /// auxiliary addresses and the endpoints' addresses.
    #[serde(rename = "IPsInUse")]
    pub ips_in_use: u64,
    /// Addresses still free in the range addresses are handed out from
    /// (the subnet, or its `IPRange`), at most 2^64 - 1.
    #[serde(rename = "DynamicIPsAvailable")]
    pub dynamic_ips_available: u64,
}

/// A sandbox joined to a network, as inspect lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointResource {
    /// The sandbox's name.
    #[serde(rename = "Name")]
    pub name: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The interface's MAC address.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    /// The IPv4 address in CIDR form, or empty.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// The IPv6 address in CIDR form, or empty.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// Serializes an empty list as `null`, as Go's encoder does an empty slice.
fn empty_as_null<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() { s.serialize_none() } else { v.serialize(s) }
}

/// Deserializes `null` as the type's default (Go sends `null` for empty
/// maps and slices, and its decoder reads `null` as a zero value).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
