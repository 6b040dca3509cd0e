//! Which joined endpoint gives a sandbox its default route (the "gateway
//! endpoint"), chosen as libnetwork does, and moving that role when
//! endpoints join and leave.

use crate::model::{EndpointRecord, JoinPhase};
use crate::state::State;
use crate::{Controller, Error, Result};
use cnm_driverapi::{ProgramExternalConnectivityRequest, RevokeExternalConnectivityRequest, SandboxOptions};
use std::cmp::Reverse;

/// Libnetwork's endpoint order: non-internal before internal, then
/// priority (high first), then dual-stack gateways before the rest, then
/// network name (with no priority set, Docker 20.10's order exactly).
fn order_key<'a>(st: &'a State, ep: &'a EndpointRecord) -> (bool, Reverse<i32>, bool, &'a str, &'a str) {
    let net = st.networks.get(&ep.network_id);
    let join = ep.join.as_ref();
    let dual = join.is_some_and(|j| j.gateway.is_some() && j.gateway_ipv6.is_some());
    (
        net.is_some_and(|n| n.config.internal),
        Reverse(join.map_or(0, |j| j.priority)),
        !dual,
        net.map_or("", |n| n.name.as_str()),
        ep.id.as_str(),
    )
}

/// Ids of the endpoints joined (or joining) to a sandbox, best gateway candidate first.
pub(crate) fn ordered_endpoints<'a>(st: &'a State, sandbox_id: &str) -> Vec<&'a str> {
    let mut eps: Vec<&EndpointRecord> = st
        .endpoints
        .values()
        .filter(|e| e.join.as_ref().is_some_and(|j| j.sandbox_id == sandbox_id && j.phase != JoinPhase::Leaving))
        .collect();
    eps.sort_by(|a, b| order_key(st, a).cmp(&order_key(st, b)));
    eps.into_iter().map(|e| e.id.as_str()).collect()
}

/// The sandbox's gateway endpoint: the first in order that has a gateway.
pub(crate) fn current(st: &State, sandbox_id: &str) -> Option<String> {
    ordered_endpoints(st, sandbox_id)
        .into_iter()
        .filter_map(|id| st.endpoints.get(id))
        .find(|e| e.join.as_ref().is_some_and(|j| j.gateway.is_some() || j.gateway_ipv6.is_some()))
        .map(|e| e.id.clone())
}

impl Controller {
    /// Moves the gateway role from `old` to whichever endpoint holds it now:
    /// the old one loses its default routes and external connectivity, the
    /// new one gets them. As in libnetwork, a join never programs external
    /// connectivity on an internal network's endpoint, but a leave that hands
    /// the role on does (`after_leave`), and the endpoint losing the role is
    /// revoked whatever its network. The caller holds the sandbox's lock.
    pub(crate) async fn apply_gateway_change(
        &self,
        sandbox_id: &str,
        old: Option<String>,
        after_leave: bool,
    ) -> Result<()> {
        let (mut options, old_rec, new_rec, new_net) = {
            let st = self.st();
            let new = current(&st, sandbox_id);
            if new == old {
                return Ok(());
            }
            let options = st
                .sandboxes
                .get(sandbox_id)
                .map(|s| SandboxOptions {
                    exposed_ports: s.rec.config.exposed_ports.clone(),
                    port_map: s.rec.config.port_bindings.clone(),
                    host_ports_held: s.rec.config.host_ports_held,
                })
                .unwrap_or_default();
            let old_rec = old.as_ref().and_then(|id| st.endpoints.get(id)).cloned();
            let new_rec = new.as_ref().and_then(|id| st.endpoints.get(id)).cloned();
            let new_net = new_rec.as_ref().and_then(|r| st.networks.get(&r.network_id)).cloned();
            (options, old_rec, new_rec, new_net)
        };
        let nl = super::interface::sandbox_netlink(self, sandbox_id).await?;
        if let Some(old_rec) = old_rec
            && let Some(j) = old_rec.join.as_ref().filter(|j| j.phase != JoinPhase::Leaving)
        {
            if let Some(iface) = &j.iface
                && let Ok(Some(index)) = super::interface::index_of(self, &nl, sandbox_id, iface).await
            {
                super::interface::del_default_routes(&nl, index, j.gateway, j.gateway_ipv6).await;
            }
            self.revoke_connectivity(&old_rec).await;
        }
        if let Some(new_rec) = new_rec {
            let Some(j) = new_rec.join.as_ref() else { return Ok(()) };
            if let Some(iface) = &j.iface
                && let Some(index) = super::interface::index_of(self, &nl, sandbox_id, iface).await?
            {
                super::interface::add_default_routes(&nl, index, j.gateway, j.gateway_ipv6).await?;
            }
            let net = new_net.ok_or_else(|| Error::NetworkNotFound(new_rec.network_id.clone()))?;
            if after_leave || !net.config.internal {
                let driver = net.driver.clone();
                let drv = self.driver(&driver).await?;
                // After a restart, publish the host ports chosen before.
                if !j.published.is_empty() {
                    options.port_map = j.published.clone();
                }
                let publishes = !options.port_map.is_empty();
                let req = ProgramExternalConnectivityRequest {
                    network_id: net.id.clone(),
                    endpoint_id: new_rec.id.clone(),
                    options,
                };
                drv.program_external_connectivity(req).await.map_err(|source| Error::Driver {
                    driver: driver.clone(),
                    op: "program external connectivity",
                    source,
                })?;
                crate::kill::point("gateway.programmed");
                if publishes {
                    self.record_published(&drv, &new_rec.network_id, &new_rec.id).await;
                }
            }
        }
        Ok(())
    }

    /// Asks the driver which ports it published for an endpoint (with the
    /// host ports it chose) and records them; failures are logged.
    async fn record_published(&self, drv: &std::sync::Arc<dyn cnm_driverapi::Driver>, nid: &str, eid: &str) {
        let req = cnm_driverapi::EndpointOperInfoRequest { network_id: nid.to_string(), endpoint_id: eid.to_string() };
        let bindings = match drv.endpoint_oper_info(req).await {
            Ok(info) => info
                .value
                .get(cnm_driverapi::label::PORT_MAP)
                .and_then(|v| serde_json::from_value::<Vec<cnm_driverapi::PortBinding>>(v.clone()).ok())
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(endpoint = eid, error = %crate::Chain(&e), "driver did not report published ports");
                return;
            }
        };
        let updated = {
            let mut st = self.st();
            let Some(rec) = st.endpoints.get_mut(eid) else { return };
            let Some(j) = rec.join.as_mut() else { return };
            j.published = bindings;
            rec.clone()
        };
        if let Err(e) = self.inner.store.put(crate::store::Table::Endpoints, eid, &updated).await {
            tracing::warn!(endpoint = eid, error = %crate::Chain(&e), "failed to record published ports");
        }
    }

    /// Revokes external connectivity of an endpoint (whatever its network,
    /// as libnetwork does); failures are logged (as Docker does on leave).
    pub(crate) async fn revoke_connectivity(&self, ep: &EndpointRecord) {
        let Some(net) = self.st().networks.get(&ep.network_id).cloned() else { return };
        let Ok(drv) = self.driver(&net.driver).await else { return };
        let req = RevokeExternalConnectivityRequest { network_id: net.id.clone(), endpoint_id: ep.id.clone() };
        if let Err(e) = drv.revoke_external_connectivity(req).await {
            tracing::warn!(endpoint = %ep.name, error = %crate::Chain(&e), "failed to revoke external connectivity");
        }
        crate::kill::point("gateway.revoked");
    }
}
