//! `Network::delete`: refused while endpoints exist; IPAM releases, then the driver.

use super::{Network, pools};
use crate::model::Phase;
use crate::store::Table;
use crate::{Error, Result};
use cnm_driverapi::DeleteNetworkRequest;

impl Network {
    /// Deletes the network.
    ///
    /// Errors: [`Error::ActiveEndpoints`] while the network has endpoints
    /// (on any host of the cluster, for a global network: [`Error::Forbidden`]
    /// naming the hosts). A failing driver or IPAM release is logged and
    /// the network is removed anyway, as Docker does. A global network is
    /// withdrawn from the cluster store first (the other hosts forget it).
    pub async fn delete(&self) -> Result<()> {
        // Held throughout: the store's echo of the withdrawal (which
        // forgets the network) waits for the removal here to finish.
        let _lock = self.ctrl.inner.locks.lock(&self.id).await;
        self.delete_locked(true).await
    }

    /// The removal, holding the network's lock; with `withdraw`, a global
    /// network is withdrawn from the cluster first — after the intent is
    /// on disk (a crash in between is settled at restart by the store), and
    /// only if no host holds an endpoint of it (one transaction): then no
    /// host can claim one any more.
    async fn delete_locked(&self, withdraw: bool) -> Result<()> {
        let ctrl = &self.ctrl;
        let mut rec = {
            let st = ctrl.st();
            let rec = st.networks.get(&self.id).ok_or_else(|| Error::NetworkNotFound(self.id.clone()))?;
            // This host's endpoints, as always (theirs are claims too, but
            // the answer names them).
            let endpoints = st.endpoints_of(&self.id);
            if !endpoints.is_empty() {
                return Err(Error::ActiveEndpoints { name: self.name.clone(), id: self.id.clone(), endpoints });
            }
            let mut rec = rec.clone();
            rec.phase = Phase::Deleting;
            rec
        };
        ctrl.inner.store.put(Table::Networks, &self.id, &rec).await?;
        crate::kill::point("network.delete.intent");
        if withdraw && rec.global {
            if let Err(e) = ctrl.cluster_withdraw(&rec).await {
                rec.phase = Phase::Ready;
                let kept = ctrl.inner.store.put(Table::Networks, &self.id, &rec).await;
                ctrl.rollback("the intent of a refused removal", &self.name, kept);
                return Err(e);
            }
            crate::kill::point("network.delete.withdrawn");
        }
        if let Some(r) = ctrl.st().networks.get_mut(&self.id) {
            r.phase = Phase::Deleting;
        }
        ctrl.finish_network_delete(&rec).await;
        ctrl.st().networks.remove(&self.id);
        ctrl.inner.locks.forget(&self.id);
        Ok(())
    }
}

impl crate::Controller {
    /// Releases a network's pools, deletes it in its driver and forgets it.
    /// Every step runs even if an earlier one failed (errors are logged).
    pub(crate) async fn finish_network_delete(&self, rec: &crate::model::NetworkRecord) {
        if rec.config.config_only {
            // Nothing was allocated or created for it.
            if let Err(e) = self.inner.store.delete(Table::Networks, &rec.id).await {
                tracing::warn!(network = %rec.name, error = %crate::Chain(&e), "cannot remove network from the store");
            }
            return;
        }
        match self.ipam(&rec.config.ipam_driver).await {
            Ok(ipam) => {
                pools::release(&*ipam, &rec.ipv4).await;
                pools::release(&*ipam, &rec.ipv6).await;
            }
            Err(e) => tracing::warn!(network = %rec.name, error = %crate::Chain(&e), "cannot release pools"),
        }
        crate::kill::point("network.delete.pools");
        match self.driver(&rec.driver).await {
            Ok(drv) => {
                if let Err(e) = drv.delete_network(DeleteNetworkRequest { network_id: rec.id.clone() }).await {
                    tracing::warn!(network = %rec.name, error = %crate::Chain(&e), "driver failed to delete network");
                }
                if drv.capability().data_scope == cnm_driverapi::Scope::Global {
                    let free = cnm_driverapi::FreeNetworkRequest { network_id: rec.id.clone() };
                    if let Err(e) = drv.network_free(free).await {
                        tracing::warn!(network = %rec.name, error = %crate::Chain(&e), "driver failed to free the network");
                    }
                }
            }
            Err(e) => tracing::warn!(network = %rec.name, error = %crate::Chain(&e), "cannot delete network in driver"),
        }
        crate::kill::point("network.delete.driver");
        if let Err(e) = self.inner.store.delete(Table::Networks, &rec.id).await {
            tracing::warn!(network = %rec.name, error = %crate::Chain(&e), "cannot remove network from the store");
        }
        tracing::info!(network = %rec.name, "network deleted");
    }
}
