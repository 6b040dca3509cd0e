//! `Controller::new_network`: record the intent (while allocating pools, where
//! that leaves nothing behind), allocate pools, ask the driver, confirm.

use super::{Network, NetworkConfig, check_network_name, pools};
use crate::model::{NetworkRecord, Phase};
use crate::store::Table;
use crate::{Controller, Error, Result};
use cnm_driverapi::{CreateNetworkRequest, NetworkOptions};

impl Controller {
    /// Creates a network named `name` with driver `driver`.
    ///
    /// Errors: [`Error::InvalidDriver`] (lists the drivers available),
    /// [`Error::NetworkNameExists`], [`Error::InvalidParameter`] for a bad
    /// configuration, IPAM errors (overlapping or exhausted pools) and driver errors.
    pub async fn new_network(&self, driver: &str, name: &str, config: NetworkConfig) -> Result<Network> {
        check_network_name(name)?;
        if config.config_only {
            return self.new_config_only_network(driver, name, config).await;
        }
        let drv = self.driver(driver).await?;
        let ipam = self.ipam(&config.ipam_driver).await?;
        for c in &config.ipv4 {
            pools::validate(c, false)?;
        }
        for c in &config.ipv6 {
            pools::validate(c, true)?;
        }
        if !config.ipv6.is_empty() && !config.enable_ipv6 {
            return Err(Error::InvalidParameter("IPv6 subnets were given but IPv6 is not enabled".into()));
        }
        if !config.enable_ipv4 && !config.enable_ipv6 {
            return Err(Error::InvalidParameter("IPv4 or IPv6 must be enabled".into()));
        }
        if !config.ipv4.is_empty() && !config.enable_ipv4 {
            return Err(Error::InvalidParameter("IPv4 subnets were given but IPv4 is disabled".into()));
        }

        // The name is held from here until the network is inserted (or the creation fails).
        let taken = |ctrl: &Controller| ctrl.st().networks.values().any(|n| n.name == name);
        if taken(self) {
            return Err(Error::NetworkNameExists(name.to_string()));
        }
        let Some(_reserved) = crate::locks::Reservation::take(&self.inner.creating_networks, name) else {
            return Err(Error::NetworkNameExists(name.to_string()));
        };
        if taken(self) {
            return Err(Error::NetworkNameExists(name.to_string()));
        }
        let global = drv.capability().data_scope == cnm_driverapi::Scope::Global;
        if global && name == crate::sandbox::gwbridge::GWBRIDGE {
            return Err(Error::Forbidden(format!(
                "{name} is the local gateway bridge's name: a network of global scope cannot have it"
            )));
        }
        if global && !self.inner.config.cluster {
            return Err(Error::Forbidden(format!(
                "driver {driver} has global scope: its networks need a cluster store (cnmd --cluster-store etcd://HOST:PORT --advertise-addr IP)"
            )));
        }
        // A driver may need no gateway address (dockerd asks before it
        // allocates anything).
        let skip = if drv.capability().gw_alloc_checker {
            let req = cnm_driverapi::GwAllocCheckRequest { options: driver_options(&config) };
            drv.gateway_allocation(req).await.map_err(|source| Error::Driver {
                driver: driver.to_string(),
                op: "check gateway allocation",
                source,
            })?
        } else {
            cnm_driverapi::GwAllocCheckResponse::default()
        };
        let spaces = ipam.default_address_spaces().await.map_err(|e| Error::ipam("get address spaces", e))?;
        let space = if global { spaces.global } else { spaces.local };
        let allocates = config.ipam_driver != cnm_ipamapi::NULL_IPAM;

        let mut rec = new_record(driver, name, config, Phase::Creating);
        rec.global = global;
        // The intent is on disk before an IPAM that keeps its own state (a
        // remote or a cluster-wide one) hands out a pool. A local network's
        // pools from an IPAM whose state is rebuilt from the store leave
        // nothing behind if the process dies: the intent's commit and the
        // allocation (which reads the host's routes) run together.
        let together = !global && self.ipam_replays(&rec.config.ipam_driver).await;
        let intent = rec.clone();
        let write_intent = async {
            let written = self.inner.store.put(Table::Networks, &intent.id, &intent).await;
            if written.is_ok() {
                crate::kill::point("network.create.intent");
            }
            written
        };
        let host = crate::host_networks::HostRoutes::new(self.inner.host.clone());
        let allocate = async {
            let v4 = pools::Family { v6: false, skip_gateway: skip.skip_ipv4 };
            let mut allocated = Ok(());
            if rec.config.enable_ipv4 {
                allocated = pools::allocate(&*ipam, &host, allocates, &space, &rec.config, v4, &mut rec.ipv4).await;
            }
            if allocated.is_ok() && rec.config.enable_ipv6 {
                let v6 = pools::Family { v6: true, skip_gateway: skip.skip_ipv6 };
                allocated = pools::allocate(&*ipam, &host, allocates, &space, &rec.config, v6, &mut rec.ipv6).await;
            }
            allocated
        };
        let mut allocated = if together {
            let (written, allocated) = tokio::join!(write_intent, allocate);
            if let Err(e) = written {
                pools::release(&*ipam, &rec.ipv4).await;
                pools::release(&*ipam, &rec.ipv6).await;
                return Err(e);
            }
            allocated
        } else {
            write_intent.await?;
            allocate.await
        };
        // A global network's cluster-wide resources (a VNI) are allocated
        // once, here; the driver's answer joins its options, so every host
        // creates it alike.
        if allocated.is_ok() && global {
            let req = cnm_driverapi::AllocateNetworkRequest {
                network_id: rec.id.clone(),
                options: rec.config.driver_options.clone(),
                ipv4_data: pools::ipam_data(&rec.ipv4),
                ipv6_data: pools::ipam_data(&rec.ipv6),
            };
            allocated = match drv.network_allocate(req).await {
                Ok(resp) => {
                    rec.config.driver_options.extend(resp.options);
                    Ok(())
                }
                Err(source) => Err(Error::Driver { driver: driver.to_string(), op: "allocate network", source }),
            };
        }
        // What an IPAM keeping its own state and the driver allocated (pools,
        // a VNI) is on disk before anything else happens: a crash from here
        // on is rolled back by releasing it.
        if allocated.is_ok() && !together {
            allocated = self.inner.store.put(Table::Networks, &rec.id, &rec).await;
        }
        if allocated.is_ok() {
            crate::kill::point("network.create.pools");
        }
        let created = match allocated {
            Ok(()) => drv.create_network(driver_request(&rec)).await.map_err(|source| Error::Driver {
                driver: driver.to_string(),
                op: "create network",
                source,
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = created {
            self.undo_creation(&*drv, &*ipam, &rec, false).await;
            return Err(e);
        }
        crate::kill::point("network.create.driver");

        // A global network is shared before it is confirmed here (a crash
        // in between is settled at restart by what the store says), under
        // its lock: the store's echo waits until it is here.
        let _lock = if global { Some(self.inner.locks.lock(&rec.id).await) } else { None };
        if global {
            if let Err(e) = self.cluster_publish(&rec).await {
                // The record may be in the store all the same (an answer
                // lost): undone only once it is surely not.
                self.abandon_global(&*drv, &*ipam, &rec).await;
                return Err(e);
            }
            crate::kill::point("network.create.published");
        }
        rec.phase = Phase::Ready;
        if let Err(e) = self.inner.store.put(Table::Networks, &rec.id, &rec).await {
            if global {
                self.abandon_global(&*drv, &*ipam, &rec).await;
            } else {
                self.undo_creation(&*drv, &*ipam, &rec, true).await;
            }
            return Err(e);
        }
        tracing::info!(network = %rec.name, id = %cnm_driverapi::id::short(&rec.id, 12), driver, "network created");
        let net = Network::handle(self, &rec);
        self.st().networks.insert(rec.id.clone(), rec);
        Ok(net)
    }

    /// Gives up a global network made in the driver whose publication or
    /// confirmation failed: withdrawn from the store if it is there (only if
    /// no host claimed an endpoint), then undone. If the store refuses or
    /// cannot be reached, its intent stays on disk and the next start
    /// settles it by what the store says (kept if published, else rolled back).
    async fn abandon_global(
        &self,
        drv: &dyn cnm_driverapi::Driver,
        ipam: &dyn cnm_ipamapi::Ipam,
        rec: &crate::model::NetworkRecord,
    ) {
        match self.cluster_withdraw(rec).await {
            Ok(()) => self.undo_creation(drv, ipam, rec, true).await,
            Err(e) => {
                let delete = cnm_driverapi::DeleteNetworkRequest { network_id: rec.id.clone() };
                self.rollback("the driver's delete of a failed network", &rec.name, drv.delete_network(delete).await);
                tracing::warn!(network = %rec.name, error = %crate::Chain(&e),
                    "a global network that failed may be in the cluster store: settled at the next start");
            }
        }
    }

    /// Undoes a creation that failed after its allocations: the driver's
    /// network (when `in_driver`, it was created) and cluster-wide
    /// resources, the pools, the intent.
    async fn undo_creation(
        &self,
        drv: &dyn cnm_driverapi::Driver,
        ipam: &dyn cnm_ipamapi::Ipam,
        rec: &crate::model::NetworkRecord,
        in_driver: bool,
    ) {
        if in_driver {
            let delete = cnm_driverapi::DeleteNetworkRequest { network_id: rec.id.clone() };
            self.rollback("the driver's delete of a failed network", &rec.name, drv.delete_network(delete).await);
        }
        let mut freed = true;
        if rec.global {
            let free = cnm_driverapi::FreeNetworkRequest { network_id: rec.id.clone() };
            let outcome = drv.network_free(free).await;
            freed = outcome.is_ok();
            self.rollback("the driver's free of a failed network", &rec.name, outcome);
        }
        pools::release(ipam, &rec.ipv4).await;
        pools::release(ipam, &rec.ipv6).await;
        if !freed {
            // Its cluster-wide resources (a VNI) are freed at the next start.
            return;
        }
        let forgotten = self.inner.store.delete(Table::Networks, &rec.id).await;
        self.rollback("forget the failed network's intent", &rec.name, forgotten);
    }
}

impl Controller {
    /// A configuration-only network: only a record (no pool, no driver call).
    async fn new_config_only_network(&self, driver: &str, name: &str, config: NetworkConfig) -> Result<Network> {
        for c in &config.ipv4 {
            pools::validate(c, false)?;
        }
        for c in &config.ipv6 {
            pools::validate(c, true)?;
        }
        let Some(_reserved) = crate::locks::Reservation::take(&self.inner.creating_networks, name) else {
            return Err(Error::NetworkNameExists(name.to_string()));
        };
        if self.st().networks.values().any(|n| n.name == name) {
            return Err(Error::NetworkNameExists(name.to_string()));
        }
        let rec = new_record(driver, name, config, Phase::Ready);
        self.inner.store.put(Table::Networks, &rec.id, &rec).await?;
        tracing::info!(network = %rec.name, id = %cnm_driverapi::id::short(&rec.id, 12), "configuration-only network created");
        let net = Network::handle(self, &rec);
        self.st().networks.insert(rec.id.clone(), rec);
        Ok(net)
    }
}

/// A new network's record, with a fresh id and the creation time, no pool yet.
fn new_record(driver: &str, name: &str, config: NetworkConfig, phase: Phase) -> NetworkRecord {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    NetworkRecord {
        id: crate::id::new_id(),
        name: name.to_string(),
        driver: driver.to_string(),
        config,
        ipv4: Vec::new(),
        ipv6: Vec::new(),
        created: now.as_secs(),
        created_nanos: now.subsec_nanos(),
        phase,
        global: false,
    }
}

/// What the driver is told of a network (at creation, and again at restore).
pub(crate) fn driver_request(rec: &NetworkRecord) -> CreateNetworkRequest {
    CreateNetworkRequest {
        network_id: rec.id.clone(),
        options: driver_options(&rec.config),
        ipv4_data: pools::ipam_data(&rec.ipv4),
        ipv6_data: pools::ipam_data(&rec.ipv6),
    }
}

/// A network's options as a driver receives them.
fn driver_options(config: &NetworkConfig) -> NetworkOptions {
    NetworkOptions {
        enable_ipv4: config.enable_ipv4,
        enable_ipv6: config.enable_ipv6,
        generic: config.driver_options.clone(),
        internal: config.internal,
        labels: config.labels.clone(),
    }
}
