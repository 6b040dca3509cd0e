//! Drift repair of joined endpoints: when a driver reports that someone
//! else removed an endpoint's interface (a veth deleted by hand, say), the
//! endpoint is joined again — the driver makes its link, the controller
//! places it in the sandbox with the same name, addresses, routes and, if
//! the endpoint gives the sandbox its gateway, the default routes.

use crate::model::JoinPhase;
use crate::sandbox::{gateway, interface};
use crate::store::Table;
use crate::{Controller, Result};
use cnm_driverapi::{LeaveRequest, LostInterface, LostInterfaceListener};
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

/// The listener given to every driver, and the task that repairs what they report.
pub(crate) struct LostInterfaces {
    tx: tokio::sync::mpsc::UnboundedSender<LostInterface>,
    /// The task's ends: what drivers report, and the end of the controller
    /// (the sender below goes with it; drivers' copies of `tx` may outlive it).
    task: std::sync::Mutex<Option<(tokio::sync::mpsc::UnboundedReceiver<LostInterface>, oneshot::Receiver<()>)>>,
    _alive: oneshot::Sender<()>,
    /// Interfaces put back, by driver.
    pub repaired: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Default for LostInterfaces {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (alive, gone) = oneshot::channel();
        LostInterfaces {
            tx,
            task: std::sync::Mutex::new(Some((rx, gone))),
            _alive: alive,
            repaired: Default::default(),
        }
    }
}

impl LostInterfaces {
    /// Where a driver reports a lost interface.
    pub fn listener(&self) -> LostInterfaceListener {
        let tx = self.tx.clone();
        Arc::new(move |lost| {
            let _ = tx.send(lost);
        })
    }
}

impl Controller {
    /// Starts (once) repairing the interfaces drivers report lost; the task
    /// ends with the controller.
    pub(crate) fn follow_lost_interfaces(&self) {
        let ends = self.inner.lost.task.lock().ok().and_then(|mut r| r.take());
        let Some((mut rx, mut gone)) = ends else { return };
        let weak: Weak<crate::controller::Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let lost = tokio::select! {
                    lost = rx.recv() => match lost {
                        Some(lost) => lost,
                        None => return,
                    },
                    _ = &mut gone => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                let ctrl = Controller { inner };
                match ctrl.repair_interface(&lost).await {
                    Ok(Some(driver)) => {
                        let n = {
                            let mut counts = ctrl.inner.lost.repaired.lock().unwrap_or_else(|p| p.into_inner());
                            let n = counts.entry(driver).or_default();
                            *n += 1;
                            *n
                        };
                        tracing::warn!(endpoint = %lost.endpoint_id, repairs = n, "an interface removed behind our back was put back");
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(endpoint = %lost.endpoint_id, error = %crate::Chain(&e), "an interface was removed and cannot be put back")
                    }
                }
            }
        });
    }

    /// Joins a joined endpoint again if its interface is missing from its
    /// sandbox; the driver's name when it did.
    async fn repair_interface(&self, lost: &LostInterface) -> Result<Option<String>> {
        let _network_lock = self.inner.locks.lock(&lost.network_id).await;
        let Some(sandbox_id) = self.joined_sandbox(&lost.endpoint_id) else { return Ok(None) };
        let _sandbox_lock = self.inner.locks.lock(&sandbox_id).await;
        // Look again under both locks: a leave may have come first.
        if self.joined_sandbox(&lost.endpoint_id).as_ref() != Some(&sandbox_id) {
            return Ok(None);
        }
        let (mut rec, net, sandbox) = {
            let st = self.st();
            let (Some(rec), Some(net), Some(sb)) =
                (st.endpoints.get(&lost.endpoint_id), st.networks.get(&lost.network_id), st.sandboxes.get(&sandbox_id))
            else {
                return Ok(None);
            };
            (rec.clone(), net.clone(), sb.rec.clone())
        };
        if sandbox.config.use_host_namespace || !crate::restore::runtime_namespace_alive(&sandbox) {
            // The container's namespace went, and its interfaces with it.
            return Ok(None);
        }
        let nl = interface::sandbox_netlink(self, &sandbox_id).await?;
        let Some(iface) = rec.join.as_ref().and_then(|j| j.iface.clone()) else { return Ok(None) };
        if nl.link_get(&iface).await.ok().flatten().is_some() {
            // Replaced by the driver itself (a join's leftover), or back already.
            return Ok(None);
        }
        tracing::info!(endpoint = %rec.name, interface = %iface, "joining again an endpoint whose interface was removed");
        let drv = self.driver(&net.driver).await?;
        let leave = LeaveRequest { network_id: net.id.clone(), endpoint_id: rec.id.clone() };
        if let Err(e) = drv.leave(leave).await {
            tracing::debug!(endpoint = %rec.name, error = %crate::Chain(&e), "driver's leave before joining again");
        }
        if let Some(sb) = self.st().sandboxes.get_mut(&sandbox_id) {
            sb.ifindex.remove(&iface);
        }
        // The default routes went with the interface: with no "old" gateway
        // endpoint they are added again if this endpoint holds the role.
        let old_gateway = gateway::current(&self.st(), &sandbox_id).filter(|g| *g != rec.id);
        if let Some(j) = rec.join.as_mut() {
            j.iface = None;
        }
        let again = super::Rejoin { name: Some(&iface), keep_gateway: true };
        let result = self.join_locked(&net, &drv, &mut rec, old_gateway, again).await;
        if let Some(j) = rec.join.as_mut() {
            // Failed, it stays joined with its interface missing: the next start tries again.
            j.phase = JoinPhase::Joined;
            if result.is_err() {
                j.iface = Some(iface);
            }
        }
        self.st().endpoints.insert(rec.id.clone(), rec.clone());
        self.inner.store.put(Table::Endpoints, &rec.id, &rec).await?;
        result?;
        Ok(Some(net.driver))
    }

    /// The sandbox an endpoint is joined to (a confirmed join).
    fn joined_sandbox(&self, endpoint_id: &str) -> Option<String> {
        let st = self.st();
        let j = st.endpoints.get(endpoint_id)?.join.as_ref()?;
        (j.phase == JoinPhase::Joined).then(|| j.sandbox_id.clone())
    }
}
