//! `Endpoint::delete`: refused while joined; the driver, then the IPAM.

use super::Endpoint;
use super::create::release_addresses;
use crate::model::{EndpointRecord, Phase};
use crate::store::Table;
use crate::{Controller, Error, Result};
use cnm_driverapi::DeleteEndpointRequest;

impl Endpoint {
    /// Deletes the endpoint and releases its addresses.
    ///
    /// Errors: [`Error::EndpointJoined`] while it is joined to a sandbox.
    pub async fn delete(&self) -> Result<()> {
        let _lock = self.ctrl.inner.locks.lock(&self.network_id).await;
        self.delete_locked().await
    }

    /// The work of [`Endpoint::delete`], holding the network's lock.
    pub(crate) async fn delete_locked(&self) -> Result<()> {
        let ctrl = &self.ctrl;
        let (mut rec, net) = {
            let st = ctrl.st();
            let rec = st.endpoints.get(&self.id).ok_or_else(|| Error::EndpointNotFound(self.id.clone()))?;
            if rec.join.is_some() {
                return Err(Error::EndpointJoined(self.name.clone()));
            }
            (rec.clone(), st.networks.get(&rec.network_id).cloned())
        };
        rec.phase = Phase::Deleting;
        ctrl.inner.store.put(Table::Endpoints, &self.id, &rec).await?;
        crate::kill::point("endpoint.delete.intent");
        ctrl.st().endpoints.insert(rec.id.clone(), rec.clone());
        let result = ctrl.finish_endpoint_delete(&rec, net.as_ref()).await;
        ctrl.st().endpoints.remove(&self.id);
        result
    }
}

impl Controller {
    /// Deletes an endpoint in its driver, releases its addresses and forgets
    /// it; keeps going after failures. A driver's failure is logged, as
    /// dockerd does; a missing driver or IPAM and the store's are reported.
    pub(crate) async fn finish_endpoint_delete(
        &self,
        rec: &EndpointRecord,
        net: Option<&crate::model::NetworkRecord>,
    ) -> Result<()> {
        let mut errs = Vec::new();
        if let Some(net) = net {
            match self.driver(&net.driver).await {
                Ok(drv) => {
                    let req = DeleteEndpointRequest { network_id: net.id.clone(), endpoint_id: rec.id.clone() };
                    // As dockerd's: the driver's failure is logged, and the
                    // deletion goes on (the address is released).
                    if let Err(e) = drv.delete_endpoint(req).await {
                        tracing::warn!(endpoint = %rec.name, network = %net.name, driver = %net.driver, error = %crate::Chain(&e),
                            "the driver failed to delete the endpoint; the deletion goes on");
                    }
                }
                Err(e) => errs.push(e),
            }
            crate::kill::point("endpoint.delete.driver");
            match self.ipam(&net.config.ipam_driver).await {
                Ok(ipam) => release_addresses(&*ipam, net, rec).await,
                Err(e) => errs.push(e),
            }
        }
        if let Err(e) = self.inner.store.delete(Table::Endpoints, &rec.id).await {
            errs.push(e);
        }
        if net.is_some_and(|n| n.global) {
            self.cluster_release_endpoint(&rec.network_id, &rec.id).await;
        }
        Error::collect(errs)
    }
}
