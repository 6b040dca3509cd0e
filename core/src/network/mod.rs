//! Networks: what users ask for ([`NetworkConfig`]), the [`Network`] handle,
//! and its operations, one file per verb.

mod create;
pub(crate) use create::driver_request;
mod delete;
mod global;
pub(crate) mod pools;
pub use global::GlobalNetwork;

use crate::{Controller, Endpoint, Error, Result};
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

/// A pool of a network as allocated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    /// The pool.
    pub subnet: IpNet,
    /// The dynamic range, if any.
    pub ip_range: Option<IpNet>,
    /// The gateway, with the pool's prefix length.
    pub gateway: Option<IpNet>,
    /// Auxiliary addresses.
    pub aux_addresses: BTreeMap<String, IpNet>,
}

/// A snapshot of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The id (64 hex characters).
    pub id: String,
    /// The name.
    pub name: String,
    /// The driver's name.
    pub driver: String,
    /// The configuration it was created with.
    pub config: NetworkConfig,
    /// The IPv4 pools.
    pub ipv4: Vec<PoolInfo>,
    /// The IPv6 pools.
    pub ipv6: Vec<PoolInfo>,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// The nanoseconds of the creation time.
    pub created_nanos: u32,
    /// Ids of the network's endpoints.
    pub endpoints: Vec<String>,
    /// Of a global-scope driver: shared with the cluster's other hosts.
    pub global: bool,
}

/// A network, as a handle on the controller.
#[derive(Clone, Debug)]
pub struct Network {
    pub(crate) ctrl: Controller,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) driver: String,
}

impl Network {
    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver's name.
    pub fn driver_name(&self) -> &str {
        &self.driver
    }

    /// A snapshot of the network.
    pub async fn info(&self) -> Result<NetworkInfo> {
        let st = self.ctrl.st();
        let rec = st.networks.get(&self.id).ok_or_else(|| Error::NetworkNotFound(self.id.clone()))?;
        let pools = |ps: &[crate::model::PoolRecord]| {
            ps.iter()
                .map(|p| PoolInfo {
                    subnet: p.pool,
                    ip_range: p.sub_pool,
                    gateway: p.gateway,
                    aux_addresses: p.aux.clone(),
                })
                .collect()
        };
        let mut endpoints: Vec<String> =
            st.endpoints.values().filter(|e| e.network_id == self.id).map(|e| e.id.clone()).collect();
        endpoints.sort();
        Ok(NetworkInfo {
            id: rec.id.clone(),
            name: rec.name.clone(),
            driver: rec.driver.clone(),
            config: rec.config.clone(),
            ipv4: pools(&rec.ipv4),
            ipv6: pools(&rec.ipv6),
            created: rec.created,
            created_nanos: rec.created_nanos,
            endpoints,
            global: rec.global,
        })
    }

    /// The network's endpoints.
    pub async fn endpoints(&self) -> Vec<Endpoint> {
        let st = self.ctrl.st();
        let mut eps: Vec<Endpoint> = st
            .endpoints
            .values()
            .filter(|e| e.network_id == self.id)
            .map(|e| Endpoint::handle(&self.ctrl, e))
            .collect();
        eps.sort_by(|a, b| a.name.cmp(&b.name));
        eps
    }

    /// The endpoint with this name or id.
    pub async fn endpoint(&self, name_or_id: &str) -> Result<Endpoint> {
        let st = self.ctrl.st();
        st.endpoints
            .values()
            .find(|e| e.network_id == self.id && (e.id == name_or_id || e.name == name_or_id))
            .map(|e| Endpoint::handle(&self.ctrl, e))
            .ok_or_else(|| Error::EndpointNotFound(name_or_id.to_string()))
    }

    pub(crate) fn handle(ctrl: &Controller, rec: &crate::model::NetworkRecord) -> Network {
        Network { ctrl: ctrl.clone(), id: rec.id.clone(), name: rec.name.clone(), driver: rec.driver.clone() }
    }
}

impl Controller {
    /// Every network, by name.
    pub async fn networks(&self) -> Vec<Network> {
        let st = self.st();
        let mut nets: Vec<Network> = st.networks.values().map(|n| Network::handle(self, n)).collect();
        nets.sort_by(|a, b| a.name.cmp(&b.name));
        nets
    }

    /// The network named `name`.
    pub async fn network_by_name(&self, name: &str) -> Result<Network> {
        let st = self.st();
        st.networks
            .values()
            .find(|n| n.name == name)
            .map(|n| Network::handle(self, n))
            .ok_or_else(|| Error::NetworkNotFound(name.to_string()))
    }

    /// The network with id `id` (a unique prefix of at least 1 character is accepted).
    pub async fn network_by_id(&self, id: &str) -> Result<Network> {
        let st = self.st();
        if let Some(n) = st.networks.get(id) {
            return Ok(Network::handle(self, n));
        }
        let mut found = st.networks.values().filter(|n| !id.is_empty() && n.id.starts_with(id));
        match (found.next(), found.next()) {
            (Some(n), None) => Ok(Network::handle(self, n)),
            _ => Err(Error::NetworkNotFound(id.to_string())),
        }
    }
}

/// Checks a name (network, endpoint, sandbox) as Docker does: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "invalid {kind} name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}
