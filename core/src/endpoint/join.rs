//! `Endpoint::join`: record the intent, ask the driver, place its link in the
//! sandbox, add routes, move the gateway role if this endpoint now holds it,
//! ask the driver's operational data, refresh the sandbox's files, confirm.

use super::{Endpoint, JoinOptions};
use crate::model::{EndpointRecord, JoinPhase, JoinRecord, NetworkRecord};
use crate::sandbox::{Sandbox, gateway, interface};
use crate::store::Table;
use crate::{Controller, Error, Result};
use cnm_driverapi::{Driver, EndpointOperInfoRequest, JoinRequest, LeaveRequest, SandboxOptions};
use std::sync::Arc;

impl Endpoint {
    /// Joins the endpoint to `sandbox`: its interface appears in the
    /// sandbox's namespace with the endpoint's addresses and MAC.
    ///
    /// Errors: [`Error::AlreadyJoined`]; [`Error::Forbidden`] when a host
    /// network meets a sandbox with its own namespace or the reverse; driver
    /// and OS errors, after which nothing of the join is left.
    pub async fn join(&self, sandbox: &Sandbox, options: JoinOptions) -> Result<()> {
        let ctrl = &self.ctrl;
        {
            // The lock order: the network, then the sandbox (see crate::locks).
            let _network_lock = ctrl.inner.locks.lock(&self.network_id).await;
            let _sandbox_lock = ctrl.inner.locks.lock(&sandbox.id).await;
            self.join_held(sandbox, options).await?;
        }
        ctrl.after_join(&self.network_id, &self.id, sandbox).await;
        Ok(())
    }

    /// The work of [`Endpoint::join`], holding the network's and the
    /// sandbox's locks: the intent, then [`Controller::join_recorded`].
    pub(crate) async fn join_held(&self, sandbox: &Sandbox, options: JoinOptions) -> Result<()> {
        let ctrl = &self.ctrl;
        let ep = ctrl.st().endpoints.get(&self.id).ok_or_else(|| Error::EndpointNotFound(self.id.clone()))?.clone();
        if let Some(j) = &ep.join {
            return Err(Error::AlreadyJoined { endpoint: ep.name.clone(), sandbox: j.sandbox_id.clone() });
        }
        let (net, drv) = ctrl.joinable(&ep.network_id, sandbox).await?;
        let old_gateway = gateway::current(&ctrl.st(), &sandbox.id);

        let mut rec = ep;
        rec.join = Some(JoinRecord::intent(&sandbox.id, options));
        ctrl.inner.store.put(Table::Endpoints, &rec.id, &rec).await?;
        ctrl.st().endpoints.insert(rec.id.clone(), rec.clone());
        crate::kill::point("join.intent");
        ctrl.join_recorded(&net, &drv, rec, old_gateway, &sandbox.id).await
    }
}

impl JoinRecord {
    /// The record of a join about to be made: the join's intent.
    pub(crate) fn intent(sandbox_id: &str, options: JoinOptions) -> JoinRecord {
        JoinRecord {
            sandbox_id: sandbox_id.to_string(),
            phase: JoinPhase::Joining,
            iface: None,
            gateway: None,
            gateway_ipv6: None,
            static_routes: Vec::new(),
            disable_gateway_service: false,
            priority: options.priority,
            published: Vec::new(),
            driver_info: Default::default(),
        }
    }
}

impl Controller {
    /// The network an endpoint of `network_id` joins `sandbox` on, and its
    /// driver, once the driver knows the network: [`Error::Forbidden`] when
    /// a host network meets a sandbox with its own namespace or the reverse.
    pub(crate) async fn joinable(
        &self,
        network_id: &str,
        sandbox: &Sandbox,
    ) -> Result<(NetworkRecord, Arc<dyn Driver>)> {
        self.ensure_restored(network_id).await?;
        let (net, host_sandbox) = {
            let st = self.st();
            let net =
                st.networks.get(network_id).ok_or_else(|| Error::NetworkNotFound(network_id.to_string()))?.clone();
            let sb = st.sandboxes.get(&sandbox.id).ok_or_else(|| Error::SandboxNotFound(sandbox.id.clone()))?;
            (net, sb.rec.config.use_host_namespace)
        };
        let drv = self.driver(&net.driver).await?;
        let host_network = drv.capability().host_namespace;
        if host_sandbox != host_network {
            return Err(Error::Forbidden(if host_network {
                format!("network {} shares the host's namespace: only host-namespace sandboxes can join it", net.name)
            } else {
                format!("sandbox {} uses the host's namespace: it can only join host networks", sandbox.container_id)
            }));
        }
        Ok((net, drv))
    }

    /// A join whose intent (`rec`, joining) is on disk and in memory: the
    /// work, then the driver's operational data (`EndpointOperInfo`, as
    /// dockerd asks right after a join) in the confirmation. On failure the
    /// endpoint is recorded unjoined. The caller holds the network's and the
    /// sandbox's locks.
    pub(crate) async fn join_recorded(
        &self,
        net: &NetworkRecord,
        drv: &Arc<dyn Driver>,
        mut rec: EndpointRecord,
        old_gateway: Option<String>,
        sandbox_id: &str,
    ) -> Result<()> {
        match self.join_locked(net, drv, &mut rec, old_gateway, Rejoin::default()).await {
            Ok(()) => {
                let info = EndpointOperInfoRequest { network_id: net.id.clone(), endpoint_id: rec.id.clone() };
                let info = drv.endpoint_oper_info(info).await;
                if let Some(j) = rec.join.as_mut() {
                    j.phase = JoinPhase::Joined;
                    match info {
                        Ok(info) => j.driver_info = info.value,
                        Err(e) => tracing::debug!(endpoint = %rec.name, error = %crate::Chain(&e), "EndpointOperInfo"),
                    }
                }
                // The confirmation and the sandbox's files (which read the
                // records in memory) go together.
                self.st().endpoints.insert(rec.id.clone(), rec.clone());
                let (confirmed, refreshed) = tokio::join!(
                    self.inner.store.put(Table::Endpoints, &rec.id, &rec),
                    self.refresh_sandbox(sandbox_id)
                );
                if let Err(e) = refreshed {
                    tracing::warn!(error = %crate::Chain(&e), "failed to refresh sandbox files");
                }
                confirmed
            }
            Err(e) => {
                rec.join = None;
                self.st().endpoints.insert(rec.id.clone(), rec.clone());
                self.inner.store.put(Table::Endpoints, &rec.id, &rec).await?;
                Err(e)
            }
        }
    }
}

/// What differs when an endpoint that was joined is joined again (at a
/// restore, or when someone removed its interface).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rejoin<'a> {
    /// The interface name it had, kept if no other endpoint took it.
    pub name: Option<&'a str>,
    /// On failure, leave the gateway role where it is: the endpoint stays
    /// joined, without its interface (a repair; the next start tries again).
    pub keep_gateway: bool,
}

impl Controller {
    /// The work of a join once the intent is recorded; undoes itself on
    /// failure. The caller holds the network's and the sandbox's locks.
    pub(crate) async fn join_locked(
        &self,
        net: &NetworkRecord,
        drv: &Arc<dyn Driver>,
        rec: &mut EndpointRecord,
        old_gateway: Option<String>,
        again: Rejoin<'_>,
    ) -> Result<()> {
        let Some(sandbox_id) = rec.join.as_ref().map(|j| j.sandbox_id.clone()) else {
            return Err(Error::InvalidParameter("join without a sandbox".into()));
        };
        let (options, key) = {
            let st = self.st();
            let sb = st.sandboxes.get(&sandbox_id).ok_or_else(|| Error::SandboxNotFound(sandbox_id.clone()))?;
            let options = SandboxOptions {
                exposed_ports: sb.rec.config.exposed_ports.clone(),
                port_map: sb.rec.config.port_bindings.clone(),
                host_ports_held: sb.rec.config.host_ports_held,
            };
            (options, sb.rec.key.display().to_string())
        };
        let req = JoinRequest { network_id: net.id.clone(), endpoint_id: rec.id.clone(), sandbox_key: key, options };
        let resp =
            drv.join(req).await.map_err(|source| Error::Driver { driver: net.driver.clone(), op: "join", source })?;
        crate::kill::point("join.driver");

        let mut placed: Option<String> = None;
        let result: Result<()> = async {
            let nl = interface::sandbox_netlink(self, &sandbox_id).await?;
            if let Some(ifn) = &resp.interface_name {
                let used: Vec<String> = self
                    .st()
                    .endpoints
                    .values()
                    .filter(|e| e.id != rec.id)
                    .filter_map(|e| e.join.as_ref().filter(|j| j.sandbox_id == sandbox_id))
                    .filter_map(|j| j.iface.clone())
                    .collect();
                let asked = rec.config.ifname.as_deref();
                if let Some(n) = asked.filter(|n| used.iter().any(|u| u == n)) {
                    return Err(Error::InvalidParameter(format!(
                        "interface name {n} is already in use in the sandbox"
                    )));
                }
                let dst = match again.name.or(asked).filter(|n| !used.iter().any(|u| u == n)) {
                    Some(name) => name.to_string(),
                    None => interface::next_name(&ifn.dst_prefix, used.iter().map(String::as_str)),
                };
                let mut addrs: Vec<_> = rec.ipv4.iter().chain(rec.ipv6.iter()).copied().collect();
                for ip in &rec.config.link_local_ips {
                    let len = if ip.is_ipv4() { 16 } else { 64 };
                    addrs.extend(ipnet::IpNet::new(*ip, len).ok());
                }
                let index = match interface::place(&self.inner.host, &nl, &ifn.src_name, &dst, rec.mac, &addrs).await {
                    Ok(i) => i,
                    Err(e) => {
                        // The link may be half-configured under either name.
                        self.rollback(
                            "remove a half-placed interface",
                            &ifn.src_name,
                            interface::remove(&nl, &ifn.src_name).await,
                        );
                        self.rollback("remove a half-placed interface", &dst, interface::remove(&nl, &dst).await);
                        return Err(e);
                    }
                };
                for (key, value) in &rec.config.sysctls {
                    let set = async {
                        let path = super::create::interface_sysctl_path(key, &dst)?;
                        nl.namespace()
                            .sysctl_set(&path, value)
                            .await
                            .map_err(|e| Error::os(format!("set interface sysctl {key}={value} on {dst}"), e))
                    };
                    if let Err(e) = set.await {
                        self.rollback(
                            "remove an interface whose sysctls failed",
                            &dst,
                            interface::remove(&nl, &dst).await,
                        );
                        return Err(e);
                    }
                }
                placed = Some(dst.clone());
                if let Some(sb) = self.st().sandboxes.get_mut(&sandbox_id) {
                    sb.ifindex.insert(dst.clone(), index);
                }
                interface::add_static_routes(&nl, index, &resp.static_routes).await?;
            }
            if let Some(j) = rec.join.as_mut() {
                j.iface = placed.clone();
                j.gateway = resp.gateway;
                j.gateway_ipv6 = resp.gateway_ipv6;
                j.static_routes = resp.static_routes.clone();
                j.disable_gateway_service = resp.disable_gateway_service;
            }
            self.st().endpoints.insert(rec.id.clone(), rec.clone());
            crate::kill::point("join.interface");
            self.apply_gateway_change(&sandbox_id, old_gateway.clone(), false).await?;
            crate::kill::point("join.gateway");
            // The gateway change may have recorded published ports on this endpoint.
            if let Some(cur) = self.st().endpoints.get(&rec.id) {
                rec.join = cur.join.clone();
            }
            Ok(())
        }
        .await;

        if let Err(e) = result {
            // Undo: the endpoint stops counting for the gateway, the old
            // gateway endpoint gets its role back if this one had taken it,
            // the driver forgets the join.
            let took_gateway =
                !again.keep_gateway && gateway::current(&self.st(), &sandbox_id).as_deref() == Some(rec.id.as_str());
            if let Some(j) = rec.join.as_mut() {
                j.phase = JoinPhase::Leaving;
            }
            self.st().endpoints.insert(rec.id.clone(), rec.clone());
            if took_gateway {
                let given_back = self.apply_gateway_change(&sandbox_id, Some(rec.id.clone()), false).await;
                self.rollback("give the gateway role back after a failed join", &sandbox_id, given_back);
            }
            let leave = LeaveRequest { network_id: net.id.clone(), endpoint_id: rec.id.clone() };
            self.rollback("the driver's leave after a failed join", &rec.name, drv.leave(leave).await);
            if let (Some(name), Ok(nl)) = (placed, interface::sandbox_netlink(self, &sandbox_id).await) {
                let removed = interface::remove(&nl, &name).await;
                self.rollback("remove the interface of a failed join", &name, removed);
            }
            return Err(e);
        }
        Ok(())
    }
}
