//! `Network::delete`: refused while endpoints exist; IPAM releases, then the driver.

use super::{Network, pools};
use crate::model::Phase;
use crate::store::Table;
use crate::{Error, Result};
use cnm_driverapi::DeleteNetworkRequest;

impl Network {
    /// Deletes the network.
    ///
    /// Errors: [`Error::ActiveEndpoints`] while the network has endpoints. A
    /// failing driver or IPAM release is logged and the network is removed
    /// anyway, as Docker does.
    pub async fn delete(&self) -> Result<()> {
        let ctrl = &self.ctrl;
        let mut guard = ctrl.inner.state.lock().await;
        let st = &mut *guard;
        if !st.networks.contains_key(&self.id) {
            return Err(Error::NetworkNotFound(self.id.clone()));
        }
        if st.endpoints.values().any(|e| e.network_id == self.id) {
            return Err(Error::ActiveEndpoints { name: self.name.clone(), id: self.id.clone() });
        }
        let rec = st.networks.get_mut(&self.id).ok_or_else(|| Error::NetworkNotFound(self.id.clone()))?;
        rec.phase = Phase::Deleting;
        ctrl.inner.store.put(Table::Networks, &self.id, &*rec)?;
        let rec = rec.clone();
        ctrl.finish_network_delete(&rec).await;
        st.networks.remove(&self.id);
        Ok(())
    }
}

impl crate::Controller {
    /// Releases a network's pools, deletes it in its driver and forgets it.
    /// Every step runs even if an earlier one failed (errors are logged).
    pub(crate) async fn finish_network_delete(&self, rec: &crate::model::NetworkRecord) {
        match self.ipam(&rec.config.ipam_driver).await {
            Ok(ipam) => {
                pools::release(&*ipam, &rec.ipv4).await;
                pools::release(&*ipam, &rec.ipv6).await;
            }
            Err(e) => tracing::warn!(network = %rec.name, error = %e, "cannot release pools"),
        }
        match self.driver(&rec.driver).await {
            Ok(drv) => {
                if let Err(e) = drv.delete_network(DeleteNetworkRequest { network_id: rec.id.clone() }).await {
                    tracing::warn!(network = %rec.name, error = %e, "driver failed to delete network");
                }
            }
            Err(e) => tracing::warn!(network = %rec.name, error = %e, "cannot delete network in driver"),
        }
        if let Err(e) = self.inner.store.delete(Table::Networks, &rec.id) {
            tracing::warn!(network = %rec.name, error = %e, "cannot remove network from the store");
        }
        tracing::info!(network = %rec.name, "network deleted");
    }
}
