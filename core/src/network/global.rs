//! Networks of global scope, shared by the hosts of a cluster: the form a
//! network travels in through the cluster store, and its adoption (or
//! removal) on the hosts that did not create it.
//!
//! The host that creates a global network allocates its pools (in the
//! cluster's address space) and its cluster-wide resources; every other
//! host adopts it with the same id, name and pools, and its local driver
//! creates it. Removing it on any host releases the pools; the others
//! forget it.

use super::Network;
use crate::model::{NetworkRecord, Phase};
use crate::store::Table;
use crate::{Controller, Error, Result};
use serde::{Deserialize, Serialize};

/// A network of global scope as the cluster store holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GlobalNetwork(pub(crate) NetworkRecord);

impl GlobalNetwork {
    /// The network's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }
}

impl Controller {
    /// Network `id` in the form the cluster store keeps; `None` for a local network.
    pub fn global_network(&self, id: &str) -> Result<Option<GlobalNetwork>> {
        let st = self.st();
        let rec = st.networks.get(id).ok_or_else(|| Error::NetworkNotFound(id.to_string()))?;
        Ok(rec.global.then(|| {
            let mut rec = rec.clone();
            rec.phase = Phase::Ready;
            GlobalNetwork(rec)
        }))
    }

    /// Adopts a global network created on another host: same id, name and
    /// pools (nothing is asked of the IPAM); the local driver creates it.
    /// Adopting a network already here is a no-op; a local network of the
    /// same name is a conflict.
    pub async fn adopt_network(&self, network: GlobalNetwork) -> Result<Network> {
        let mut rec = network.0;
        let _lock = self.inner.locks.lock(&rec.id).await;
        if let Some(existing) = self.st().networks.get(&rec.id) {
            return Ok(Network::handle(self, existing));
        }
        let Some(_reserved) = crate::locks::Reservation::take(&self.inner.creating_networks, &rec.name) else {
            return Err(Error::NetworkNameExists(rec.name.clone()));
        };
        if self.st().networks.values().any(|n| n.name == rec.name) {
            return Err(Error::NetworkNameExists(rec.name.clone()));
        }
        let drv = self.driver(&rec.driver).await?;
        rec.phase = Phase::Ready;
        rec.global = true;
        self.inner.store.put(Table::Networks, &rec.id, &rec).await?;
        if let Err(source) = drv.create_network(super::driver_request(&rec)).await {
            self.inner.store.delete(Table::Networks, &rec.id).await?;
            return Err(Error::Driver { driver: rec.driver.clone(), op: "create network", source });
        }
        tracing::info!(network = %rec.name, id = %cnm_driverapi::id::short(&rec.id, 12), "global network adopted");
        let net = Network::handle(self, &rec);
        self.st().networks.insert(rec.id.clone(), rec);
        Ok(net)
    }

    /// Forgets a global network removed on another host: the local driver
    /// deletes it; its pools (the cluster's) are left alone. Refused while
    /// it has endpoints here.
    pub async fn forget_network(&self, id: &str) -> Result<()> {
        let _lock = self.inner.locks.lock(id).await;
        let rec = {
            let st = self.st();
            let Some(rec) = st.networks.get(id) else { return Ok(()) };
            if st.endpoints.values().any(|e| e.network_id == id) {
                return Err(Error::ActiveEndpoints { name: rec.name.clone(), id: id.to_string() });
            }
            rec.clone()
        };
        match self.driver(&rec.driver).await {
            Ok(drv) => {
                let req = cnm_driverapi::DeleteNetworkRequest { network_id: rec.id.clone() };
                if let Err(e) = drv.delete_network(req).await {
                    tracing::warn!(network = %rec.name, error = %e, "driver failed to delete a forgotten network");
                }
            }
            Err(e) => {
                tracing::warn!(network = %rec.name, error = %e, "cannot delete a forgotten network in its driver")
            }
        }
        self.inner.store.delete(Table::Networks, id).await?;
        self.st().networks.remove(id);
        self.inner.locks.forget(id);
        tracing::info!(network = %rec.name, "global network removed on another host: forgotten");
        Ok(())
    }
}
