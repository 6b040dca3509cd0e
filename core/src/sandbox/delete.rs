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
        let mut guard = ctrl.inner.state.lock().await;
        let st = &mut *guard;
        let sb = st.sandboxes.get_mut(&self.id).ok_or_else(|| Error::SandboxNotFound(self.id.clone()))?;
        sb.rec.phase = Phase::Deleting;
        ctrl.inner.store.put(Table::Sandboxes, &self.id, &sb.rec)?;
        let mut errs = Vec::new();
        let joined: Vec<String> = gateway::ordered_endpoints(st, &self.id).into_iter().map(str::to_string).collect();
        for eid in joined {
            if let Err(e) = ctrl.leave_locked(st, &eid).await {
                errs.push(e);
            }
            if let Some(rec) = st.endpoints.remove(&eid) {
                let net = st.networks.get(&rec.network_id).cloned();
                if let Err(e) = ctrl.finish_endpoint_delete(&rec, net.as_ref()).await {
                    errs.push(e);
                }
            }
        }
        if let Some(sb) = st.sandboxes.remove(&self.id) {
            ctrl.cleanup_sandbox_namespace(&sb.rec, st);
        }
        let dir = files::sandbox_dir(ctrl.config(), &self.id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errs.push(Error::io("remove directory", dir, e));
        }
        if let Err(e) = ctrl.inner.store.delete(Table::Sandboxes, &self.id) {
            errs.push(e);
        }
        Error::collect(errs)
    }
}
