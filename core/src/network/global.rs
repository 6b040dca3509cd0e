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
    /// The shared form of record `rec` (always ready: each host keeps its own phase).
    pub(crate) fn of(rec: &NetworkRecord) -> Self {
        let mut rec = rec.clone();
        rec.phase = Phase::Ready;
        GlobalNetwork(rec)
    }

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
        Ok(rec.global.then(|| GlobalNetwork::of(rec)))
    }

    /// Adopts a global network created on another host: same id, name and
    /// pools (nothing is asked of the IPAM); the local driver creates it.
    /// Adopting a network already here is a no-op; a local network of the
    /// same name is a conflict.
    ///
    /// Whoever can write the cluster store can offer any record, so it is
    /// checked before anything is configured ([`Error::Forbidden`] or
    /// [`Error::InvalidParameter`] otherwise): a valid id and name, a driver
    /// of global scope, not a configuration-only network, pools of their
    /// family with the gateway, sub-pool and auxiliary addresses inside
    /// them, and no pool overlapping a local network's. The driver checks
    /// its options as at any creation.
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
        self.check_adoptable(&rec, &*drv)?;
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

    /// Refuses a record from the cluster store that this host must not configure.
    fn check_adoptable(&self, rec: &NetworkRecord, drv: &dyn cnm_driverapi::Driver) -> Result<()> {
        let refuse = |why: String| Err(Error::Forbidden(format!("global network record {:?}: {why}", rec.name)));
        cnm_driverapi::id::check(&rec.id)
            .map_err(|why| Error::InvalidParameter(format!("global network id: {why}")))?;
        super::check_network_name(&rec.name)?;
        if drv.capability().data_scope != cnm_driverapi::Scope::Global {
            return refuse(format!("driver {} is not of global scope", rec.driver));
        }
        if rec.config.config_only {
            return refuse("a configuration-only network is not shared".into());
        }
        if rec.name == crate::sandbox::gwbridge::GWBRIDGE {
            return refuse("the gateway bridge's name is this host's own".into());
        }
        for (pools, v6) in [(&rec.ipv4, false), (&rec.ipv6, true)] {
            for p in pools {
                let inside = |a: &ipnet::IpNet| p.pool.contains(&a.addr());
                if matches!(p.pool, ipnet::IpNet::V6(_)) != v6 {
                    return refuse(format!("pool {} in the wrong family", p.pool));
                }
                if let Some(g) = p.gateway.as_ref().filter(|g| !inside(g)) {
                    return refuse(format!("gateway {g} outside pool {}", p.pool));
                }
                if let Some(sub) = p.sub_pool.as_ref().filter(|s| !p.pool.contains(*s)) {
                    return refuse(format!("range {sub} outside pool {}", p.pool));
                }
                if let Some((_, a)) = p.aux.iter().find(|(_, a)| !inside(a)) {
                    return refuse(format!("auxiliary address {a} outside pool {}", p.pool));
                }
            }
        }
        let st = self.st();
        // Networks without addresses (null IPAM: `none`, `host`) hold 0.0.0.0/0 for form's sake.
        let local = st.networks.values().filter(|n| !n.global && n.config.ipam_driver != cnm_ipamapi::NULL_IPAM);
        for n in local {
            for (mine, theirs) in
                n.ipv4.iter().chain(&n.ipv6).flat_map(|m| rec.ipv4.iter().chain(&rec.ipv6).map(move |t| (m, t)))
            {
                if mine.pool.contains(&theirs.pool.network()) || theirs.pool.contains(&mine.pool.network()) {
                    return refuse(format!("pool {} overlaps local network {}'s {}", theirs.pool, n.name, mine.pool));
                }
            }
        }
        Ok(())
    }

    /// Forgets a global network removed on another host: the local driver
    /// deletes it; its pools (the cluster's) are left alone. Refused while
    /// it has endpoints here.
    pub async fn forget_network(&self, id: &str) -> Result<()> {
        let _lock = self.inner.locks.lock(id).await;
        let rec = {
            let st = self.st();
            let Some(rec) = st.networks.get(id) else { return Ok(()) };
            let endpoints = st.endpoints_of(id);
            if !endpoints.is_empty() {
                return Err(Error::ActiveEndpoints { name: rec.name.clone(), id: id.to_string(), endpoints });
            }
            rec.clone()
        };
        match self.driver(&rec.driver).await {
            Ok(drv) => {
                let req = cnm_driverapi::DeleteNetworkRequest { network_id: rec.id.clone() };
                if let Err(e) = drv.delete_network(req).await {
                    tracing::warn!(network = %rec.name, error = %crate::Chain(&e), "driver failed to delete a forgotten network");
                }
            }
            Err(e) => {
                tracing::warn!(network = %rec.name, error = %crate::Chain(&e), "cannot delete a forgotten network in its driver")
            }
        }
        self.inner.store.delete(Table::Networks, id).await?;
        self.st().networks.remove(id);
        self.inner.locks.forget(id);
        tracing::info!(network = %rec.name, "global network removed on another host: forgotten");
        Ok(())
    }
}
