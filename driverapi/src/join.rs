//! Join-time messages: `Join`, `Leave`, external connectivity and discovery.

use crate::ports::{PortBinding, TransportPort};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A sandbox's options as sent with `Join` and `ProgramExternalConnectivity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SandboxOptions {
    /// Exposed ports of the sandbox.
    #[serde(
        rename = "com.docker.network.endpoint.exposedports",
        default,
        deserialize_with = "crate::wire::null_default"
    )]
    pub exposed_ports: Vec<TransportPort>,
    /// Port bindings of the sandbox.
    #[serde(rename = "com.docker.network.portmap", default, deserialize_with = "crate::wire::null_default")]
    pub port_map: Vec<PortBinding>,
    /// The container runtime holds the bindings' host ports open itself
    /// (podman does): they are mapped, not reserved again (cnm's own key,
    /// sent only when true).
    #[serde(rename = "cnm.ports.held-by-runtime", default, skip_serializing_if = "std::ops::Not::not")]
    pub host_ports_held: bool,
}

/// `NetworkDriver.Join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The path of the sandbox's network namespace.
    ///
    /// With Docker Engine the namespace may not exist yet at join time; the cnm
    /// controller always creates it first, so a driver may create the
    /// container-side link directly inside it (see [`InterfaceName`]).
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// Sandbox options.
    #[serde(rename = "Options", default, deserialize_with = "crate::wire::null_default")]
    pub options: SandboxOptions,
}

/// The link the controller must place in the sandbox, and the name prefix it gets there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceName {
    /// The link's current name. The controller looks for it in the sandbox's
    /// namespace first (a driver may create it there directly, which is much
    /// cheaper than a move), then in the host namespace, from which it moves it.
    #[serde(rename = "SrcName")]
    pub src_name: String,
    /// The name prefix in the sandbox; the controller appends the lowest free index.
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

/// How a static route reaches its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteType {
    /// Through a next hop (0 on the wire).
    NextHop,
    /// Directly connected through the interface (1 on the wire).
    Connected,
}

impl Serialize for RouteType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            RouteType::NextHop => 0,
            RouteType::Connected => 1,
        })
    }
}

impl<'de> Deserialize<'de> for RouteType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(RouteType::NextHop),
            1 => Ok(RouteType::Connected),
            n => Err(serde::de::Error::custom(format!("invalid route type {n}: expected 0 or 1"))),
        }
    }
}

/// A route the driver wants in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoute {
    /// The destination network.
    #[serde(rename = "Destination", with = "crate::wire::string")]
    pub destination: IpNet,
    /// Through a next hop, or directly connected.
    #[serde(rename = "RouteType")]
    pub route_type: RouteType,
    /// The next hop (plain address), for [`RouteType::NextHop`].
    #[serde(rename = "NextHop", default, skip_serializing_if = "Option::is_none", with = "crate::wire::opt_string")]
    pub next_hop: Option<IpAddr>,
}

/// The answer to `Join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JoinResponse {
    /// The link to place in the sandbox; `None` when the driver adds no interface.
    #[serde(rename = "InterfaceName", default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<InterfaceName>,
    /// The IPv4 default gateway through this endpoint (plain address).
    #[serde(rename = "Gateway", default, skip_serializing_if = "Option::is_none", with = "crate::wire::opt_string")]
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 default gateway through this endpoint (plain address).
    #[serde(
        rename = "GatewayIPv6",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::opt_string"
    )]
    pub gateway_ipv6: Option<Ipv6Addr>,
    /// Extra routes to add in the sandbox.
    #[serde(
        rename = "StaticRoutes",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::wire::null_default"
    )]
    pub static_routes: Vec<StaticRoute>,
    /// When true the endpoint needs no gateway service (no default route is required).
    #[serde(rename = "DisableGatewayService", default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_gateway_service: bool,
}

/// `NetworkDriver.Leave`.
pub type LeaveRequest = crate::endpoint::DeleteEndpointRequest;

/// `NetworkDriver.ProgramExternalConnectivity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramExternalConnectivityRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Sandbox options: port bindings and exposed ports.
    #[serde(rename = "Options", default, deserialize_with = "crate::wire::null_default")]
    pub options: SandboxOptions,
}

/// `NetworkDriver.RevokeExternalConnectivity`.
pub type RevokeExternalConnectivityRequest = crate::endpoint::DeleteEndpointRequest;

/// `NetworkDriver.DiscoverNew` / `DiscoverDelete`: a discovery event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryNotification {
    /// The kind of event (1: node discovery).
    #[serde(rename = "DiscoveryType")]
    pub discovery_type: u32,
    /// The event's data.
    #[serde(rename = "DiscoveryData", default)]
    pub discovery_data: serde_json::Value,
}
