//! `Sandbox::delete`: leave and delete every endpoint joined to it, then
//! remove the namespace and the files.

use super::{Sandbox, files, gateway};
use crate::model::Phase;
use crate::store::Table;
use crate::{Error, Result};

impl Sandbox {
    /// Deletes the sandbox: every joined endpoint leaves and is deleted (as
    /// libnetwork does), then the namespace and the files go. Keeps going
    /// after failures and reports them all.
    pub async fn delete(&self) -> Result<()> {
        let ctrl = &self.ctrl;
        // The locks of every network the sandbox has endpoints on, then its
        // own (the lock order); if a join came in meanwhile, again.
        let networks_of = || -> Result<Vec<String>> {
            let st = ctrl.st();
            if !st.sandboxes.contains_key(&self.id) {
                return Err(Error::SandboxNotFound(self.id.clone()));
            }
            let mut v: Vec<String> = st
                .endpoints
                .values()
                .filter(|e| e.join.as_ref().is_some_and(|j| j.sandbox_id == self.id))
                .map(|e| e.network_id.clone())
                .collect();
            v.sort();
            v.dedup();
            Ok(v)
        };
        let mut networks = networks_of()?;
        for ep in self.endpoints().await {
            ctrl.cluster_withdraw_names(ep.network_id(), ep.id()).await;
        }
        let (_network_locks, _sandbox_lock) = loop {
            let net_locks = ctrl.inner.locks.lock_all(&networks).await;
            let sb_lock = ctrl.inner.locks.lock(&self.id).await;
            let now = networks_of()?;
            if now.iter().all(|n| networks.contains(n)) {
                break (net_locks, sb_lock);
            }
            networks = now;
        };
        let rec = {
            let mut st = ctrl.st();
            let sb = st.sandboxes.get_mut(&self.id).ok_or_else(|| Error::SandboxNotFound(self.id.clone()))?;
            sb.rec.phase = Phase::Deleting;
            sb.rec.clone()
        };
        ctrl.inner.store.put(Table::Sandboxes, &self.id, &rec).await?;
        crate::kill::point("sandbox.delete.intent");
        let mut errs = Vec::new();
        let joined: Vec<String> =
            gateway::ordered_endpoints(&ctrl.st(), &self.id).into_iter().map(str::to_string).collect();
        for eid in joined {
            if let Err(e) = ctrl.leave_locked(&eid, crate::endpoint::AfterLeave::Delete).await {
                errs.push(e);
            }
            let removed = {
                let mut st = ctrl.st();
                st.endpoints.remove(&eid).map(|rec| {
                    let net = st.networks.get(&rec.network_id).cloned();
                    (rec, net)
                })
            };
            if let Some((rec, net)) = removed
                && let Err(e) = ctrl.finish_endpoint_delete(&rec, net.as_ref()).await
            {
                errs.push(e);
            }
        }
        crate::kill::point("sandbox.delete.leaves");
        ctrl.cleanup_sandbox_namespace(&rec);
        crate::kill::point("sandbox.delete.namespace");
        ctrl.st().sandboxes.remove(&self.id);
        if let Err(e) = ctrl.refresh_dns(&self.id).await {
            errs.push(e);
        }
        let dir = files::sandbox_dir(ctrl.config(), &self.id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errs.push(Error::io("remove directory", dir, e));
        }
        if let Err(e) = ctrl.inner.store.delete(Table::Sandboxes, &self.id).await {
            errs.push(e);
        }
        ctrl.inner.locks.forget(&self.id);
        Error::collect(errs)
    }
}
