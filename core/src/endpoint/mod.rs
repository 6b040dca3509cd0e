//! Endpoints: what users ask for ([`EndpointConfig`]), the [`Endpoint`]
//! handle, and its operations, one file per verb.

pub(crate) mod config;
mod connect;
mod create;
mod delete;
mod join;
mod leave;
mod repair;

pub use config::EndpointConfig;
pub(crate) use create::{endpoint_options, release_addresses};
pub(crate) use join::Rejoin;
pub(crate) use leave::AfterLeave;
pub(crate) use repair::LostInterfaces;

use crate::model::EndpointRecord;
use crate::{Controller, Error, Result};
use cnm_driverapi::{EndpointOperInfoRequest, MacAddress};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Options of a join.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinOptions {
    /// Higher priority endpoints are preferred as the sandbox's gateway.
    pub priority: i32,
}

/// A snapshot of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// The id.
    pub id: String,
    /// The name.
    pub name: String,
    /// The network's id.
    pub network_id: String,
    /// The IPv4 address with its pool's prefix length.
    pub ipv4: Option<IpNet>,
    /// The IPv6 address with its pool's prefix length.
    pub ipv6: Option<IpNet>,
    /// The MAC address.
    pub mac: Option<MacAddress>,
    /// The sandbox the endpoint is joined to.
    pub sandbox_id: Option<String>,
    /// The interface's name inside the sandbox.
    pub interface: Option<String>,
    /// The IPv4 gateway the driver gave at join.
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 gateway the driver gave at join.
    pub gateway_ipv6: Option<Ipv6Addr>,
    /// The configuration it was created with.
    pub config: EndpointConfig,
    /// What the driver last reported of the joined endpoint (asked at the
    /// join, and again by [`Endpoint::driver_info`]); empty while not joined.
    pub driver_info: BTreeMap<String, serde_json::Value>,
}

/// An endpoint, as a handle on the controller.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub(crate) ctrl: Controller,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) network_id: String,
}

impl Endpoint {
    pub(crate) fn handle(ctrl: &Controller, rec: &EndpointRecord) -> Self {
        Endpoint { ctrl: ctrl.clone(), id: rec.id.clone(), name: rec.name.clone(), network_id: rec.network_id.clone() }
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network's id.
    pub fn network_id(&self) -> &str {
        &self.network_id
    }

    /// A snapshot of the endpoint.
    pub async fn info(&self) -> Result<EndpointInfo> {
        let st = self.ctrl.st();
        let rec = st.endpoints.get(&self.id).ok_or_else(|| Error::EndpointNotFound(self.id.clone()))?;
        Ok(EndpointInfo {
            id: rec.id.clone(),
            name: rec.name.clone(),
            network_id: rec.network_id.clone(),
            ipv4: rec.ipv4,
            ipv6: rec.ipv6,
            mac: rec.mac,
            sandbox_id: rec.join.as_ref().map(|j| j.sandbox_id.clone()),
            interface: rec.join.as_ref().and_then(|j| j.iface.clone()),
            gateway: rec.join.as_ref().and_then(|j| j.gateway),
            gateway_ipv6: rec.join.as_ref().and_then(|j| j.gateway_ipv6),
            config: rec.config.clone(),
            driver_info: rec.join.as_ref().map(|j| j.driver_info.clone()).unwrap_or_default(),
        })
    }

    /// The driver's operational data of the endpoint (`EndpointOperInfo`),
    /// plus its MAC address under `com.docker.network.endpoint.macaddress`
    /// when the driver gave none. A joined endpoint keeps the answer: it is
    /// in [`EndpointInfo::driver_info`] until the endpoint leaves.
    pub async fn driver_info(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        let (driver, mac) = {
            let st = self.ctrl.st();
            let rec = st.endpoints.get(&self.id).ok_or_else(|| Error::EndpointNotFound(self.id.clone()))?;
            let net = st.networks.get(&rec.network_id).ok_or_else(|| Error::NetworkNotFound(rec.network_id.clone()))?;
            (net.driver.clone(), rec.mac)
        };
        let drv = self.ctrl.driver(&driver).await?;
        let mut info = drv
            .endpoint_oper_info(EndpointOperInfoRequest {
                network_id: self.network_id.clone(),
                endpoint_id: self.id.clone(),
            })
            .await
            .map_err(|source| Error::Driver { driver, op: "report endpoint information", source })?
            .value;
        // Under the network's lock: a leave under way must not be undone by this write.
        let _network_lock = self.ctrl.inner.locks.lock(&self.network_id).await;
        let updated = {
            let mut st = self.ctrl.st();
            match st.endpoints.get_mut(&self.id) {
                Some(rec) if rec.join.as_ref().is_some_and(|j| j.driver_info != info) => {
                    if let Some(j) = rec.join.as_mut() {
                        j.driver_info = info.clone();
                    }
                    Some(rec.clone())
                }
                _ => None,
            }
        };
        if let Some(rec) = updated
            && let Err(e) = self.ctrl.inner.store.put(crate::store::Table::Endpoints, &rec.id, &rec).await
        {
            tracing::warn!(endpoint = %rec.name, error = %crate::Chain(&e), "failed to record the driver's endpoint information");
        }
        if let Some(mac) = mac {
            info.entry(cnm_driverapi::label::MAC_ADDRESS.to_string())
                .or_insert_with(|| serde_json::Value::String(mac.to_string()));
        }
        Ok(info)
    }
}
