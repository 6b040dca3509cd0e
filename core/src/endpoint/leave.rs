//! `Endpoint::leave`: revoke the gateway role if held, ask the driver, remove
//! the link from the sandbox, hand the gateway role on, refresh the files.

use super::Endpoint;
use crate::model::JoinPhase;
use crate::sandbox::{Sandbox, gateway, interface};
use crate::store::Table;
use crate::{Controller, Error, Result};
use cnm_driverapi::LeaveRequest;

impl Endpoint {
    /// Takes the endpoint out of `sandbox`. The endpoint keeps its addresses.
    ///
    /// Errors: [`Error::NotJoined`] if it is not joined to that sandbox.
    /// Teardown keeps going after failures and reports them all.
    pub async fn leave(&self, sandbox: &Sandbox) -> Result<()> {
        let ctrl = &self.ctrl;
        let _network_lock = ctrl.inner.locks.lock(&self.network_id).await;
        let _sandbox_lock = ctrl.inner.locks.lock(&sandbox.id).await;
        {
            let st = ctrl.st();
            let ep = st.endpoints.get(&self.id).ok_or_else(|| Error::EndpointNotFound(self.id.clone()))?;
            if ep.join.as_ref().is_none_or(|j| j.sandbox_id != sandbox.id) {
                return Err(Error::NotJoined { endpoint: ep.name.clone(), sandbox: sandbox.id.clone() });
            }
        }
        ctrl.leave_locked(&self.id).await
    }
}

impl Controller {
    /// The work of a leave (also used by sandbox deletion and crash
    /// recovery). The caller holds the network's and the sandbox's locks.
    pub(crate) async fn leave_locked(&self, endpoint_id: &str) -> Result<()> {
        let Some(mut rec) = self.st().endpoints.get(endpoint_id).cloned() else {
            return Err(Error::EndpointNotFound(endpoint_id.to_string()));
        };
        let Some(join) = rec.join.clone() else { return Ok(()) };
        let sandbox_id = join.sandbox_id.clone();
        let old_gateway = gateway::current(&self.st(), &sandbox_id);
        if let Some(j) = rec.join.as_mut() {
            j.phase = JoinPhase::Leaving;
        }
        self.inner.store.put(Table::Endpoints, &rec.id, &rec).await?;
        self.st().endpoints.insert(rec.id.clone(), rec.clone());
        crate::kill::point("leave.intent");

        let mut errs = Vec::new();
        if old_gateway.as_deref() == Some(endpoint_id) {
            self.revoke_connectivity(&rec).await;
        }
        let net = self.st().networks.get(&rec.network_id).cloned();
        if let Some(net) = net {
            match self.driver(&net.driver).await {
                Ok(drv) => {
                    let req = LeaveRequest { network_id: net.id.clone(), endpoint_id: rec.id.clone() };
                    if let Err(source) = drv.leave(req).await {
                        errs.push(Error::Driver { driver: net.driver.clone(), op: "leave", source });
                    }
                }
                Err(e) => errs.push(e),
            }
        }
        crate::kill::point("leave.driver");
        let sandbox_present = || self.st().sandboxes.contains_key(&sandbox_id);
        // A sandbox being deleted loses its namespace and the interfaces with
        // it: nothing to remove (the gateway role still moves, as Docker's does).
        // A runtime's namespace outlives the sandbox: its interfaces are removed.
        let (sandbox_going, runtime_ns) = {
            let st = self.st();
            let sb = st.sandboxes.get(&sandbox_id);
            let runtime_ns = sb.is_some_and(|s| s.rec.config.netns.is_some());
            (sb.is_none_or(|s| s.rec.phase == crate::model::Phase::Deleting) && !runtime_ns, runtime_ns)
        };
        if let Some(iface) = &join.iface
            && !sandbox_going
        {
            match interface::sandbox_netlink(self, &sandbox_id).await {
                Ok(nl) => {
                    if let Err(e) = interface::remove(&nl, iface).await {
                        errs.push(e);
                    }
                }
                // The runtime's namespace is gone (its container exited): so is the interface.
                Err(e) if runtime_ns => tracing::debug!(error = %e, "the runtime's namespace is gone"),
                Err(e) => errs.push(e),
            }
        }
        crate::kill::point("leave.interface");
        rec.join = None;
        if let Err(e) = self.inner.store.put(Table::Endpoints, &rec.id, &rec).await {
            errs.push(e);
        }
        self.st().endpoints.insert(rec.id.clone(), rec);
        if sandbox_present() {
            let old = old_gateway.filter(|g| g != endpoint_id);
            if let Err(e) = self.apply_gateway_change(&sandbox_id, old, true).await {
                errs.push(e);
            }
            if let Err(e) = self.refresh_sandbox(&sandbox_id).await {
                errs.push(e);
            }
        }
        Error::collect(errs)
    }
}
