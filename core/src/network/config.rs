//! What users ask a network to be: [`NetworkConfig`] and its IPAM
//! requests ([`IpamConfig`]). Plain data, below the records that keep it.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One IPAM request of a network: a subnet and optional range, gateway, auxiliary addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// The subnet (`--subnet`); `None` lets the IPAM choose.
    pub subnet: Option<IpNet>,
    /// The range dynamic addresses come from (`--ip-range`).
    pub ip_range: Option<IpNet>,
    /// The gateway (`--gateway`).
    pub gateway: Option<IpAddr>,
    /// Reserved addresses by name (`--aux-address`).
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

impl IpamConfig {
    /// A request for `subnet`.
    pub fn subnet(subnet: IpNet) -> Self {
        IpamConfig { subnet: Some(subnet), ..Default::default() }
    }
}

/// What a new network should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The IPAM driver (`default` unless given).
    pub ipam_driver: String,
    /// IPAM driver options (`--ipam-opt`).
    pub ipam_options: BTreeMap<String, String>,
    /// IPv4 pools; empty: one chosen by the IPAM.
    pub ipv4: Vec<IpamConfig>,
    /// IPv6 pools (with `enable_ipv6`); empty: one chosen by the IPAM.
    pub ipv6: Vec<IpamConfig>,
    /// Whether the network has IPv4 (false: an IPv6-only network, Docker
    /// 28's `EnableIPv4`).
    #[serde(default = "yes")]
    pub enable_ipv4: bool,
    /// Whether the network has IPv6.
    pub enable_ipv6: bool,
    /// Whether the network is internal (no external connectivity).
    pub internal: bool,
    /// User labels (kept by the controller, not sent to drivers).
    pub labels: BTreeMap<String, String>,
    /// Driver options (`--opt`), passed to the driver as strings.
    pub driver_options: BTreeMap<String, String>,
    /// No name resolution through the embedded resolver on this network
    /// (it is always off on the default network, as in Docker).
    #[serde(default)]
    pub disable_dns: bool,
    /// A configuration-only network (Docker's `--config-only`): it holds
    /// pools and options for other networks to take (`config_from`), makes
    /// no driver or IPAM call, and cannot be connected.
    #[serde(default)]
    pub config_only: bool,
    /// The configuration-only network this one took its configuration from.
    #[serde(default)]
    pub config_from: Option<String>,
    /// Docker's `Attachable` (swarm): kept and shown, meaningless on one host.
    #[serde(default)]
    pub attachable: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            ipam_driver: cnm_ipamapi::DEFAULT_IPAM.to_string(),
            ipam_options: BTreeMap::new(),
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            enable_ipv4: true,
            enable_ipv6: false,
            internal: false,
            labels: BTreeMap::new(),
            driver_options: BTreeMap::new(),
            disable_dns: false,
            config_only: false,
            config_from: None,
            attachable: false,
        }
    }
}

fn yes() -> bool {
    true
}

impl NetworkConfig {
    /// Adds an IPv4 or IPv6 pool request for `subnet`.
    pub fn with_subnet(mut self, subnet: IpNet) -> Self {
        match subnet {
            IpNet::V4(_) => self.ipv4.push(IpamConfig::subnet(subnet)),
            IpNet::V6(_) => self.ipv6.push(IpamConfig::subnet(subnet)),
        }
        self
    }

    /// Sets a driver option.
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.driver_options.insert(key.into(), value.into());
        self
    }
}
