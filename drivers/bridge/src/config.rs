//! A bridge network's options, parsed once from Docker's option names.

use crate::Error;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `com.docker.network.bridge.name`: the bridge's name.
pub const OPT_NAME: &str = "com.docker.network.bridge.name";
/// `com.docker.network.bridge.enable_icc`: containers of the network may talk to each other.
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
/// `com.docker.network.bridge.enable_ip_masquerade`: masquerade outgoing traffic.
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// `com.docker.network.bridge.host_binding_ipv4`: default host address of published ports.
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
/// `com.docker.network.bridge.default_bridge`: this is the default bridge network.
pub const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
/// `com.docker.network.bridge.inhibit_ipv4`: do not put the IPv4 gateway on the bridge.
pub const OPT_INHIBIT_IPV4: &str = "com.docker.network.bridge.inhibit_ipv4";

/// `com.docker.network.bridge.gateway_mode_ipv4`: `nat`, `nat-unprotected`, `routed` or `isolated`.
pub const OPT_GATEWAY_MODE_V4: &str = "com.docker.network.bridge.gateway_mode_ipv4";
/// `com.docker.network.bridge.gateway_mode_ipv6`: the same for IPv6.
pub const OPT_GATEWAY_MODE_V6: &str = "com.docker.network.bridge.gateway_mode_ipv6";

pub use cnm_osl::firewall::GatewayMode;

/// A gateway mode's name in Docker's options.
fn mode_name(m: GatewayMode) -> &'static str {
    match m {
        GatewayMode::Nat => "nat",
        GatewayMode::NatUnprotected => "nat-unprotected",
        GatewayMode::Routed => "routed",
        GatewayMode::Isolated => "isolated",
    }
}

/// Docker's parse of a gateway mode, with dockerd's message.
fn parse_mode(key: &str, value: &str) -> Result<GatewayMode, Error> {
    [GatewayMode::Nat, GatewayMode::NatUnprotected, GatewayMode::Routed, GatewayMode::Isolated]
        .into_iter()
        .find(|m| mode_name(*m) == value)
        .ok_or_else(|| Error::InvalidOption {
            key: key.to_string(),
            value: value.to_string(),
            reason: format!("unknown gateway mode {value}: nat, nat-unprotected, routed or isolated"),
        })
}

/// The options of one bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The bridge's name; `None`: `br-` and the first 12 characters of the network id.
    pub bridge_name: Option<String>,
    /// Inter-container communication on the network.
    pub enable_icc: bool,
    /// Masquerading of traffic leaving the host.
    pub enable_ip_masquerade: bool,
    /// Default host address of published ports.
    pub host_binding_ipv4: IpAddr,
    /// Whether this is the default bridge network.
    pub default_bridge: bool,
    /// MTU of the bridge and the veths; `None`: the kernel's default.
    pub mtu: Option<u32>,
    /// Name prefix of the interfaces in sandboxes.
    pub container_iface_prefix: String,
    /// Do not assign the IPv4 gateway to the bridge.
    pub inhibit_ipv4: bool,
    /// How IPv4 crosses the host (`nat` unless given).
    pub gateway_mode_ipv4: GatewayMode,
    /// How IPv6 crosses the host; `None`: routed out, in only through
    /// published ports (cnm's default).
    pub gateway_mode_ipv6: Option<GatewayMode>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            bridge_name: None,
            enable_icc: true,
            enable_ip_masquerade: true,
            host_binding_ipv4: IpAddr::from([0, 0, 0, 0]),
            default_bridge: false,
            mtu: None,
            container_iface_prefix: "eth".to_string(),
            inhibit_ipv4: false,
            gateway_mode_ipv4: GatewayMode::Nat,
            gateway_mode_ipv6: None,
        }
    }
}

/// Go's `strconv.ParseBool`, which Docker uses for these options.
fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(Error::InvalidOption {
            key: key.to_string(),
            value: value.to_string(),
            reason: "expected true or false".into(),
        }),
    }
}

/// The prefix of the bridge driver's own option keys.
const OWN_PREFIX: &str = "com.docker.network.bridge.";

impl BridgeConfig {
    /// Parses a network's generic options; a malformed value, or a key of
    /// the bridge's own (`com.docker.network.bridge.`) it does not know (a
    /// typo), is an error that names the key. Other keys are kept for
    /// inspect and logged, as Docker keeps them.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut c = BridgeConfig::default();
        let invalid = |key: &str, value: &str, reason: &str| Error::InvalidOption {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        for (key, value) in options {
            match key.as_str() {
                OPT_NAME => {
                    if value.is_empty() || value.len() > 15 || value.contains(['/', ':', ' ']) {
                        return Err(invalid(
                            key,
                            value,
                            "an interface name has 1 to 15 characters, no '/', ':' or spaces",
                        ));
                    }
                    c.bridge_name = Some(value.clone());
                }
                OPT_ICC => c.enable_icc = parse_bool(key, value)?,
                OPT_MASQUERADE => c.enable_ip_masquerade = parse_bool(key, value)?,
                OPT_DEFAULT_BRIDGE => c.default_bridge = parse_bool(key, value)?,
                OPT_INHIBIT_IPV4 => c.inhibit_ipv4 = parse_bool(key, value)?,
                OPT_GATEWAY_MODE_V4 => c.gateway_mode_ipv4 = parse_mode(key, value)?,
                OPT_GATEWAY_MODE_V6 => c.gateway_mode_ipv6 = Some(parse_mode(key, value)?),
                OPT_HOST_BINDING => {
                    c.host_binding_ipv4 = value.parse().map_err(|_| invalid(key, value, "expected an IP address"))?;
                }
                cnm_driverapi::label::MTU => {
                    let mtu: u32 = value.parse().map_err(|_| invalid(key, value, "expected a number"))?;
                    if !(68..=65535).contains(&mtu) {
                        return Err(invalid(key, value, "the MTU must be between 68 and 65535"));
                    }
                    c.mtu = Some(mtu);
                }
                cnm_driverapi::label::CONTAINER_IFACE_PREFIX => {
                    if value.is_empty()
                        || value.len() > 10
                        || !value.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
                    {
                        return Err(invalid(key, value, "expected 1 to 10 letters, digits, '_' or '-'"));
                    }
                    c.container_iface_prefix = value.clone();
                }
                _ if key.starts_with(OWN_PREFIX) => return Err(Error::UnknownOption(key.clone())),
                _ => tracing::warn!(option = %key, "option kept, not used by the bridge driver"),
            }
        }
        Ok(c)
    }

    /// The generic options that [`BridgeConfig::from_options`] reads back as
    /// this configuration: Docker's option names, only where a field differs
    /// from the default (what a caller that builds a network, such as a
    /// daemon's default bridge, passes in `NetworkConfig::options`).
    pub fn to_options(&self) -> BTreeMap<String, String> {
        let d = BridgeConfig::default();
        let mut o = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            o.insert(k.to_string(), v);
        };
        if let Some(name) = &self.bridge_name {
            put(OPT_NAME, name.clone());
        }
        if self.enable_icc != d.enable_icc {
            put(OPT_ICC, self.enable_icc.to_string());
        }
        if self.enable_ip_masquerade != d.enable_ip_masquerade {
            put(OPT_MASQUERADE, self.enable_ip_masquerade.to_string());
        }
        if self.host_binding_ipv4 != d.host_binding_ipv4 {
            put(OPT_HOST_BINDING, self.host_binding_ipv4.to_string());
        }
        if self.default_bridge {
            put(OPT_DEFAULT_BRIDGE, "true".into());
        }
        if let Some(mtu) = self.mtu {
            put(cnm_driverapi::label::MTU, mtu.to_string());
        }
        if self.container_iface_prefix != d.container_iface_prefix {
            put(cnm_driverapi::label::CONTAINER_IFACE_PREFIX, self.container_iface_prefix.clone());
        }
        if self.inhibit_ipv4 {
            put(OPT_INHIBIT_IPV4, "true".into());
        }
        if self.gateway_mode_ipv4 != d.gateway_mode_ipv4 {
            put(OPT_GATEWAY_MODE_V4, mode_name(self.gateway_mode_ipv4).into());
        }
        if let Some(m) = self.gateway_mode_ipv6 {
            put(OPT_GATEWAY_MODE_V6, mode_name(m).into());
        }
        o
    }

    /// The bridge's name for network `network_id`.
    pub fn bridge_name(&self, network_id: &str) -> String {
        self.bridge_name.clone().unwrap_or_else(|| format!("br-{}", cnm_driverapi::id::short(network_id, 12)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_docker_names() {
        let c = BridgeConfig::from_options(&opts(&[])).unwrap();
        assert_eq!(c, BridgeConfig::default());
        assert_eq!(c.bridge_name("0123456789abcdef"), "br-0123456789ab");
        let c = BridgeConfig::from_options(&opts(&[
            (OPT_NAME, "mybr0"),
            (OPT_ICC, "false"),
            ("com.docker.network.driver.mtu", "1400"),
            ("com.docker.network.container_iface_prefix", "veth"),
        ]))
        .unwrap();
        assert_eq!(c.bridge_name("x"), "mybr0");
        assert!(!c.enable_icc);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.container_iface_prefix, "veth");
    }

    #[test]
    fn options_read_back_as_the_same_config() {
        assert!(BridgeConfig::default().to_options().is_empty());
        let c = BridgeConfig {
            bridge_name: Some("cnm0".into()),
            enable_icc: false,
            enable_ip_masquerade: false,
            host_binding_ipv4: "127.0.0.1".parse().unwrap(),
            default_bridge: true,
            mtu: Some(1400),
            container_iface_prefix: "veth".into(),
            inhibit_ipv4: true,
            gateway_mode_ipv4: GatewayMode::Routed,
            gateway_mode_ipv6: Some(GatewayMode::NatUnprotected),
        };
        let o = c.to_options();
        assert_eq!(o.get(OPT_DEFAULT_BRIDGE).map(String::as_str), Some("true"));
        assert_eq!(BridgeConfig::from_options(&o).unwrap(), c);
    }

    #[test]
    fn bad_options_name_the_key() {
        let e = BridgeConfig::from_options(&opts(&[("com.docker.network.driver.mtu", "big")])).unwrap_err();
        assert!(e.to_string().contains("com.docker.network.driver.mtu"), "{e}");
        let e = BridgeConfig::from_options(&opts(&[(OPT_GATEWAY_MODE_V4, "foo")])).unwrap_err();
        assert!(e.to_string().contains("unknown gateway mode foo"), "{e}");
        let e = BridgeConfig::from_options(&opts(&[("com.docker.network.bridge.colour", "blue")])).unwrap_err();
        assert!(e.to_string().contains("com.docker.network.bridge.colour"), "{e}");
        // Not the bridge's: kept, as Docker keeps it.
        assert_eq!(BridgeConfig::from_options(&opts(&[("colour", "blue")])).unwrap(), BridgeConfig::default());
        let e = BridgeConfig::from_options(&opts(&[(OPT_ICC, "yes")])).unwrap_err();
        assert!(e.to_string().contains(OPT_ICC), "{e}");
        let e = BridgeConfig::from_options(&opts(&[(OPT_NAME, "a-name-far-too-long")])).unwrap_err();
        assert!(e.to_string().contains(OPT_NAME), "{e}");
    }
}
