//! What users ask an endpoint to be: [`EndpointConfig`]. Plain data,
//! below the records that keep it.

use cnm_driverapi::{MacAddress, PortBinding, TransportPort};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a new endpoint should be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConfig {
    /// A static IPv4 address (`--ip`).
    pub ipv4: Option<Ipv4Addr>,
    /// A static IPv6 address (`--ip6`).
    pub ipv6: Option<Ipv6Addr>,
    /// A MAC address; derived from the IPv4 address when absent.
    pub mac: Option<MacAddress>,
    /// Extra names of the endpoint on its network (`--alias`).
    pub aliases: Vec<String>,
    /// DNS servers for this endpoint.
    pub dns_servers: Vec<String>,
    /// Exposed ports (`--expose`).
    pub exposed_ports: Vec<TransportPort>,
    /// Published ports (`-p`).
    pub port_bindings: Vec<PortBinding>,
    /// Link-local addresses put on the interface besides its own (`--link-local-ip`;
    /// 169.254.0.0/16 as /16, fe80::/10 as /64, as libnetwork does); never sent to the driver.
    #[serde(default)]
    pub link_local_ips: Vec<std::net::IpAddr>,
    /// The interface's name in the sandbox (Docker's endpoint option
    /// `com.docker.network.endpoint.ifname`) instead of the driver's prefix
    /// and the next free number; a join fails if the sandbox has one of
    /// that name already.
    #[serde(default)]
    pub ifname: Option<String>,
    /// Sysctls of the interface, set in the sandbox after it is placed
    /// (Docker's endpoint option `com.docker.network.endpoint.sysctls`):
    /// keys `net.X.Y.IFNAME.Z` with X `ipv4`, `ipv6` or `mpls`, `IFNAME`
    /// standing for the interface's name.
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    /// Other endpoint driver options (Docker's endpoint `DriverOpts`):
    /// handed to the driver's `CreateEndpoint` among its options, as
    /// dockerd hands them; a driver that takes none ignores them.
    #[serde(default)]
    pub driver_options: std::collections::BTreeMap<String, String>,
}
