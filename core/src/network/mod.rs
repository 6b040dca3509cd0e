//! Networks: what users ask for ([`NetworkConfig`]), the [`Network`] handle,
//! and its operations, one file per verb.

mod create;
pub(crate) use create::driver_request;
pub(crate) mod config;
mod delete;
mod global;
pub(crate) mod pools;
pub use config::{IpamConfig, NetworkConfig};
pub use global::GlobalNetwork;

use crate::{Controller, Endpoint, Error, Result};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// Checks a network's name as dockerd does: any name but the empty one.
/// Stricter on purpose: no control character (a name is printed in logs,
/// tables and error messages, where a newline or an escape would forge
/// lines). A network's name never becomes a path, a link name or a key.
pub fn check_network_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidParameter("invalid name: name is empty".into()));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidParameter(format!(
            "invalid network name {name:?}: control characters are not allowed"
        )));
    }
    Ok(())
}

/// Checks an endpoint's or a sandbox's name as Docker checks a container's:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (it becomes a DNS name and a hosts entry).
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
