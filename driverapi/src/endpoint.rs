//! Endpoint messages: `CreateEndpoint`, `DeleteEndpoint`, `EndpointOperInfo`.

use crate::ports::{MacAddress, PortBinding, TransportPort};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An endpoint's interface: addresses (with the pool's prefix length) and MAC.
///
/// On the wire all three keys are always present; an absent value is `""`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EndpointInterface {
    /// The IPv4 address with prefix length.
    #[serde(rename = "Address", default, with = "crate::wire::empty_none")]
    pub address: Option<IpNet>,
    /// The IPv6 address with prefix length.
    #[serde(rename = "AddressIPv6", default, with = "crate::wire::empty_none")]
    pub address_ipv6: Option<IpNet>,
    /// The MAC address.
    #[serde(rename = "MacAddress", default, with = "crate::wire::empty_none")]
    pub mac_address: Option<MacAddress>,
}

impl EndpointInterface {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.address.is_none() && self.address_ipv6.is_none() && self.mac_address.is_none()
    }
}

/// The `Options` of `CreateEndpoint`.
///
/// Port keys are present (possibly empty) on normal networks and absent on internal ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EndpointOptions {
    /// DNS servers the user gave.
    #[serde(rename = "com.docker.network.endpoint.dnsservers", default, skip_serializing_if = "Option::is_none")]
    pub dns_servers: Option<Vec<String>>,
    /// Exposed ports.
    #[serde(rename = "com.docker.network.endpoint.exposedports", default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<Vec<TransportPort>>,
    /// The user's MAC, base64 of the six raw bytes (as Docker encodes a Go `[]byte`).
    #[serde(
        rename = "com.docker.network.endpoint.macaddress",
        default,
        skip_serializing_if = "Option::is_none",
        with = "mac_base64"
    )]
    pub mac_address: Option<MacAddress>,
    /// Port bindings.
    #[serde(rename = "com.docker.network.portmap", default, skip_serializing_if = "Option::is_none")]
    pub port_map: Option<Vec<PortBinding>>,
    /// Other driver-specific endpoint options, as strings.
    #[serde(flatten)]
    pub generic: BTreeMap<String, serde_json::Value>,
}

mod mac_base64 {
    use crate::MacAddress;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<MacAddress>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(m.octets())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddress>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else { return Ok(None) };
        let raw = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)?;
        let bytes: [u8; 6] = raw.try_into().map_err(|_| serde::de::Error::custom("a MAC address must be 6 bytes"))?;
        Ok(Some(MacAddress(bytes)))
    }
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateEndpointRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The new endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The interface as the controller assigned it; the driver fills only empty fields.
    #[serde(rename = "Interface", default)]
    pub interface: EndpointInterface,
    /// Endpoint options.
    #[serde(rename = "Options", default, deserialize_with = "crate::wire::null_default")]
    pub options: EndpointOptions,
}

/// The answer to `CreateEndpoint`: the fields the driver filled in, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CreateEndpointResponse {
    /// Values the driver chose for fields that were empty in the request.
    /// On the wire only the chosen fields appear.
    #[serde(
        rename = "Interface",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sparse_interface"
    )]
    pub interface: Option<EndpointInterface>,
}

/// Writes only the fields that are set (`{"MacAddress": "…"}`), as plugins answer.
fn sparse_interface<S: serde::Serializer>(v: &Option<EndpointInterface>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    if let Some(i) = v {
        if let Some(a) = &i.address {
            m.serialize_entry("Address", &a.to_string())?;
        }
        if let Some(a) = &i.address_ipv6 {
            m.serialize_entry("AddressIPv6", &a.to_string())?;
        }
        if let Some(mac) = &i.mac_address {
            m.serialize_entry("MacAddress", &mac.to_string())?;
        }
    }
    m.end()
}

/// `NetworkDriver.DeleteEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteEndpointRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// `NetworkDriver.EndpointOperInfo`.
pub type EndpointOperInfoRequest = DeleteEndpointRequest;

/// The answer to `EndpointOperInfo`: free-form operational data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EndpointOperInfoResponse {
    /// Operational data, by key.
    #[serde(rename = "Value", default, deserialize_with = "crate::wire::null_default")]
    pub value: BTreeMap<String, serde_json::Value>,
}
