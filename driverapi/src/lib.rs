//! The network driver contract of cnm.
//!
//! A network driver implements [`Driver`]; the controller calls it through an
//! `Arc<dyn Driver>`. Every request and response type serializes (serde) to
//! exactly the JSON of Docker's remote network-driver protocol, so the same
//! types serve in-process drivers, remote plugins over HTTP and drivers loaded
//! from shared libraries.

pub mod abi;
mod capability;
mod driver;
mod endpoint;
mod error;
pub mod id;
mod join;
mod network;
mod ports;
mod provider;
mod table;

/// The attribute that makes `impl Driver for …` blocks work (re-exported, so
/// a driver author needs no crate of their own for it).
pub use async_trait::async_trait;
pub use capability::{Capability, Scope};
/// Kill points for crash tests (from the bottom layer).
pub use cnm_kinds::kill;
/// Serde helpers for the remote protocol's encodings (from the bottom layer).
pub use cnm_kinds::wire;
pub use cnm_kinds::{Chain, Kinded, chain};
pub use driver::{Driver, LostInterface, LostInterfaceListener};
pub use endpoint::{
    CreateEndpointRequest, CreateEndpointResponse, DeleteEndpointRequest, EndpointInterface, EndpointOperInfoRequest,
    EndpointOperInfoResponse, EndpointOptions,
};
pub use error::{Error, ErrorKind, Result};
/// IP networks, as the messages carry them.
pub use ipnet;
pub use join::{
    DiscoveryNotification, InterfaceName, JoinRequest, JoinResponse, LeaveRequest, ProgramExternalConnectivityRequest,
    RevokeExternalConnectivityRequest, RouteType, SandboxOptions, StaticRoute,
};
pub use network::{
    AllocateNetworkRequest, AllocateNetworkResponse, CreateNetworkRequest, DeleteNetworkRequest, FreeNetworkRequest,
    GwAllocCheckRequest, GwAllocCheckResponse, IpamData, NetworkOptions,
};
pub use ports::{MacAddress, PortBinding, Protocol, TransportPort};
pub use provider::DriverProvider;
pub use table::Table;

/// Label keys shared by the controller, drivers and the remote protocol.
pub mod label {
    /// Generic (driver-specific) options of a network: the `--opt` map.
    pub const GENERIC: &str = "com.docker.network.generic";
    /// Whether the network has IPv6 enabled.
    pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
    /// Whether the network is internal (no external connectivity).
    pub const INTERNAL: &str = "com.docker.network.internal";
    /// Port bindings of an endpoint or sandbox.
    pub const PORT_MAP: &str = "com.docker.network.portmap";
    /// Exposed ports of an endpoint or sandbox.
    pub const EXPOSED_PORTS: &str = "com.docker.network.endpoint.exposedports";
    /// DNS servers the user gave for an endpoint.
    pub const DNS_SERVERS: &str = "com.docker.network.endpoint.dnsservers";
    /// The MAC address the user gave for an endpoint.
    pub const MAC_ADDRESS: &str = "com.docker.network.endpoint.macaddress";
    /// MTU of a network's links (a generic driver option).
    pub const MTU: &str = "com.docker.network.driver.mtu";
    /// The name prefix of a container's interfaces (a generic driver option).
    pub const CONTAINER_IFACE_PREFIX: &str = "com.docker.network.container_iface_prefix";
}
