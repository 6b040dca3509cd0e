//! Port and MAC address types of the protocol: `PortBinding`, `TransportPort`, `MacAddress`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

pub use cnm_kinds::Protocol;

/// A port a container exposes: `{"Proto": 6, "Port": 80}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TransportPort {
    /// The transport protocol.
    #[serde(rename = "Proto")]
    pub proto: Protocol,
    /// The container port.
    #[serde(rename = "Port")]
    pub port: u16,
}

/// A published port: container port to host address and port (range).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortBinding {
    /// The transport protocol.
    #[serde(rename = "Proto")]
    pub proto: Protocol,
    /// The container address (empty until the endpoint has one).
    #[serde(rename = "IP", with = "crate::wire::empty_none", default)]
    pub ip: Option<std::net::IpAddr>,
    /// The container port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// The host address to bind; `None` means every address.
    #[serde(rename = "HostIP", with = "crate::wire::empty_none", default)]
    pub host_ip: Option<std::net::IpAddr>,
    /// The first host port (0: any ephemeral port).
    #[serde(rename = "HostPort", default)]
    pub host_port: u16,
    /// The last host port of the range (equal to `host_port`, or 0, for a single port).
    #[serde(rename = "HostPortEnd", default)]
    pub host_port_end: u16,
}

/// An Ethernet MAC address, written `02:42:ac:11:00:02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// Docker's MAC for an IPv4 address: `02:42` followed by the four address bytes.
    pub fn from_ipv4(ip: std::net::Ipv4Addr) -> Self {
        let o = ip.octets();
        MacAddress([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// A MAC made of `bytes` as Docker generates one: locally administered,
    /// unicast (pass random bytes).
    pub fn local_unicast(bytes: [u8; 6]) -> Self {
        let mut b = bytes;
        b[0] = (b[0] & 0xfe) | 0x02;
        MacAddress(b)
    }

    /// The six bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// A MAC as a driver reports it in JSON: `"02:42:…"`, or the base64 of
    /// the six bytes (a Go `net.HardwareAddr` marshalled as `[]byte`).
    pub fn from_reported(v: &serde_json::Value) -> Option<Self> {
        use base64::Engine;
        let s = v.as_str()?;
        if let Ok(m) = s.parse() {
            return Some(m);
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).ok()?;
        Some(MacAddress(raw.try_into().ok()?))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl FromStr for MacAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(|| format!("invalid MAC address {s:?}"))?;
            if p.len() != 2 {
                return Err(format!("invalid MAC address {s:?}"));
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("invalid MAC address {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid MAC address {s:?}"));
        }
        Ok(MacAddress(out))
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}
