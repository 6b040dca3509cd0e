//! `Endpoint::leave` (and `leave_and_delete`): revoke the gateway role if held, ask the driver, remove
//! the link from the sandbox, hand the gateway role on, refresh the files.

use super::Endpoint;
use crate::model::{JoinPhase, Phase};
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
        self.leave_then(sandbox, AfterLeave::Stay).await
    }

    /// Takes the endpoint out of `sandbox` and deletes it, as a disconnect
    /// does: [`Endpoint::leave`] then [`Endpoint::delete`], with two durable
    /// commits fewer (the leave's intent is the deletion's, and the
    /// deletion's end is the leave's). A driver that fails to leave or to
    /// delete the endpoint is logged and the disconnect goes on, as
    /// dockerd's; a leave that fails in the sandbox (cnm's own removal of
    /// the interface) is reported and the endpoint stays, left.
    ///
    /// Errors: [`Error::NotJoined`] if it is not joined to that sandbox.
    /// Teardown keeps going after failures and reports them all.
    pub async fn leave_and_delete(&self, sandbox: &Sandbox) -> Result<()> {
        self.leave_then(sandbox, AfterLeave::Delete).await
    }

    /// A leave under the network's and the sandbox's locks, framed by what
    /// a cluster member does: the endpoint's names withdrawn from the other
    /// hosts first, the gateway bridge left after its last global network.
    async fn leave_then(&self, sandbox: &Sandbox, after: AfterLeave) -> Result<()> {
        let ctrl = &self.ctrl;
        self.check_joined(sandbox)?;
        ctrl.cluster_withdraw_names(&self.network_id, &self.id).await;
        {
            let _network_lock = ctrl.inner.locks.lock(&self.network_id).await;
            let _sandbox_lock = ctrl.inner.locks.lock(&sandbox.id).await;
            self.check_joined(sandbox)?;
            ctrl.leave_locked(&self.id, after).await?;
        }
        ctrl.after_leave(&self.network_id, sandbox).await;
        Ok(())
    }

    /// [`Error::NotJoined`] unless the endpoint is joined to `sandbox`.
    fn check_joined(&self, sandbox: &Sandbox) -> Result<()> {
        let st = self.ctrl.st();
        let ep = st.endpoints.get(&self.id).ok_or_else(|| Error::EndpointNotFound(self.id.clone()))?;
        if ep.join.as_ref().is_none_or(|j| j.sandbox_id != sandbox.id) {
            return Err(Error::NotJoined { endpoint: ep.name.clone(), sandbox: sandbox.id.clone() });
        }
        Ok(())
    }
}

/// What becomes of an endpoint once it has left its sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterLeave {
    /// It stays, with its addresses, ready to join again.
    Stay,
    /// It is deleted next: the leave's intent is also the deletion's (a
    /// crash after it finishes the leave and the deletion at restore).
    Delete,
}

impl Controller {
    /// The work of a leave (also used by sandbox deletion and crash
    /// recovery). The caller holds the network's and the sandbox's locks.
    /// The driver's leave and the removal of the sandbox's interface run
    /// together (one is on the host's netlink socket, the other on the
    /// sandbox's), as do the last commit and the refresh of the files.
    pub(crate) async fn leave_locked(&self, endpoint_id: &str, after: AfterLeave) -> Result<()> {
        let Some(mut rec) = self.st().endpoints.get(endpoint_id).cloned() else {
            return Err(Error::EndpointNotFound(endpoint_id.to_string()));
        };
        let Some(join) = rec.join.clone() else { return Ok(()) };
        let sandbox_id = join.sandbox_id.clone();
        let old_gateway = gateway::current(&self.st(), &sandbox_id);
        if let Some(j) = rec.join.as_mut() {
            j.phase = JoinPhase::Leaving;
        }
        let deleting = after == AfterLeave::Delete;
        if deleting {
            rec.phase = Phase::Deleting;
        }
        self.inner.store.put(Table::Endpoints, &rec.id, &rec).await?;
        self.st().endpoints.insert(rec.id.clone(), rec.clone());
        crate::kill::point("leave.intent");

        if old_gateway.as_deref() == Some(endpoint_id) {
            self.revoke_connectivity(&rec).await;
        }
        // A sandbox being deleted loses its namespace and the interfaces with
        // it: nothing to remove (the gateway role still moves, as Docker's does).
        // A runtime's namespace outlives the sandbox: its interfaces are removed.
        let (sandbox_going, runtime_ns) = {
            let st = self.st();
            let sb = st.sandboxes.get(&sandbox_id);
            let runtime_ns = sb.is_some_and(|s| s.rec.config.netns.is_some());
            (sb.is_none_or(|s| s.rec.phase == crate::model::Phase::Deleting) && !runtime_ns, runtime_ns)
        };
        let net = self.st().networks.get(&rec.network_id).cloned();
        let driver_leave = async {
            let Some(net) = &net else { return Ok(()) };
            let drv = self.driver(&net.driver).await?;
            let req = LeaveRequest { network_id: net.id.clone(), endpoint_id: rec.id.clone() };
            let left = drv.leave(req).await;
            crate::kill::point("leave.driver");
            // As dockerd's: the driver's failure is logged, and the leave
            // (and a deletion after it) goes on.
            if let Err(e) = left {
                tracing::warn!(endpoint = %rec.name, network = %net.name, driver = %net.driver, error = %crate::Chain(&e),
                    "the driver failed to leave; the leave goes on");
            }
            Ok(())
        };
        let interface_removal = async {
            let Some(iface) = join.iface.as_ref().filter(|_| !sandbox_going) else { return Ok(()) };
            let removed = match interface::sandbox_netlink(self, &sandbox_id).await {
                Ok(nl) => interface::remove(&nl, iface).await,
                // The runtime's namespace is gone (its container exited): so is the interface.
                Err(e) if runtime_ns => {
                    tracing::debug!(error = %crate::Chain(&e), "the runtime's namespace is gone");
                    Ok(())
                }
                Err(e) => Err(e),
            };
            crate::kill::point("leave.interface");
            removed
        };
        let (left, removed) = tokio::join!(driver_leave, interface_removal);
        let mut errs: Vec<Error> = [left, removed].into_iter().filter_map(Result::err).collect();

        rec.join = None;
        self.st().endpoints.insert(rec.id.clone(), rec.clone());
        let sandbox_stays = self.st().sandboxes.contains_key(&sandbox_id);
        let old = old_gateway.filter(|g| g != endpoint_id);
        if deleting && errs.is_empty() {
            // The gateway role moves first, then the driver deletes the
            // endpoint (dockerd's order) while the files are rewritten: the
            // intent on disk already holds the deletion.
            if sandbox_stays {
                errs.extend(self.apply_gateway_change(&sandbox_id, old, true).await.err());
            }
            let refresh = async { if sandbox_stays { self.refresh_sandbox(&sandbox_id).await } else { Ok(()) } };
            let (deleted, refreshed) = tokio::join!(self.finish_endpoint_delete(&rec, net.as_ref()), refresh);
            self.st().endpoints.remove(&rec.id);
            errs.extend([deleted, refreshed].into_iter().filter_map(Result::err));
            return Error::collect(errs);
        }
        let refresh = async {
            if !sandbox_stays {
                return Vec::new();
            }
            let moved = self.apply_gateway_change(&sandbox_id, old, true).await;
            let refreshed = self.refresh_sandbox(&sandbox_id).await;
            [moved, refreshed].into_iter().filter_map(Result::err).collect()
        };
        // A leave that failed (the sandbox's interface could not be
        // removed, or the driver is gone) is not followed by the deletion:
        // the endpoint stays, left.
        if deleting {
            rec.phase = Phase::Ready;
            self.st().endpoints.insert(rec.id.clone(), rec.clone());
        }
        let confirm = self.inner.store.put(Table::Endpoints, &rec.id, &rec);
        let (confirmed, refresh_errs) = tokio::join!(confirm, refresh);
        if let Err(e) = confirmed {
            errs.push(e);
        }
        errs.extend(refresh_errs);
        Error::collect(errs)
    }
}
