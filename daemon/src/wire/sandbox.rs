//! The native sandbox resources: what Docker keeps in a container's network
//! settings (`docker run --hostname --dns --add-host -p --expose`).

use super::network::null_default;
use super::ports::PortMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /sandboxes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct SandboxCreateRequest {
    /// The sandbox's name (unique; Docker's container name).
    pub name: String,
    /// The host name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// The domain name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    /// DNS servers (replace the host's).
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// Resolver options.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// Extra `/etc/hosts` entries, `NAME:IP`.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Exposed ports: `"80/tcp": {}`.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// Published ports: `"80/tcp": [{"HostIp": "", "HostPort": "8080"}]`.
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub port_bindings: PortMap,
    /// Share the host's network namespace (for the `host` network).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_namespace: bool,
    /// An existing network namespace to use (a runtime's, such as
    /// `/proc/PID/ns/net`): cnm never removes it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// The container runtime holds the published host ports open itself
    /// (podman): they are mapped, not reserved again (cnm's own field).
    #[serde(rename = "HostPortsHeld", default, skip_serializing_if = "std::ops::Not::not")]
    pub host_ports_held: bool,
}

/// The answer to `POST /sandboxes` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxCreateResponse {
    /// The new sandbox's id.
    pub id: String,
}

/// A sandbox as list and inspect return it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxResource {
    /// The id.
    pub id: String,
    /// The name.
    pub name: String,
    /// The path of its network namespace.
    pub key: String,
    /// The host name.
    pub hostname: String,
    /// The domain name.
    pub domainname: String,
    /// DNS servers.
    pub dns: Vec<String>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
    /// Resolver options.
    pub dns_options: Vec<String>,
    /// Extra `/etc/hosts` entries, `NAME:IP`.
    pub extra_hosts: Vec<String>,
    /// Whether it shares the host's namespace.
    pub host_namespace: bool,
    /// Exposed ports, `"80/tcp"`.
    pub exposed_ports: Vec<String>,
    /// Published ports as requested.
    pub port_bindings: PortMap,
    /// Published ports as programmed (with the host ports chosen).
    pub ports: PortMap,
    /// The networks joined, by network name.
    pub networks: BTreeMap<String, SandboxEndpoint>,
    /// The id of the endpoint providing the default route, if any.
    pub gateway_endpoint: Option<String>,
    /// The sandbox's `/etc/hosts`.
    pub hosts_path: String,
    /// The sandbox's `/etc/resolv.conf`.
    pub resolv_conf_path: String,
    /// What could not be restored at the daemon's last start (a host port
    /// another program took meanwhile, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One network of a sandbox (shaped as Docker's container `EndpointSettings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxEndpoint {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The interface's name inside the sandbox.
    #[serde(rename = "Interface")]
    pub interface: String,
    /// The IPv4 gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// The IPv4 address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Its prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// The IPv6 gateway.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// The IPv6 address.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// Its prefix length.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// The MAC address.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    /// Extra names on the network.
    #[serde(rename = "Aliases")]
    pub aliases: Vec<String>,
}
