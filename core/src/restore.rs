//! Replaying the store when a controller starts: confirmed objects are
//! restored (kernel state re-checked and re-created where missing),
//! interrupted operations are rolled back or finished. Nothing leaks across
//! a crash: no address, link or namespace.

use crate::endpoint::endpoint_options;
use crate::model::{EndpointRecord, JoinPhase, NetworkRecord, Phase, SandboxRecord};
use crate::network::pools;
use crate::sandbox::interface;
use crate::state::SandboxState;
use crate::store::Table;
use crate::{Controller, Result};
use cnm_driverapi::{CreateEndpointRequest, DeleteEndpointRequest, EndpointInterface, LeaveRequest};
use cnm_ipamapi::RequestAddressRequest;
use std::collections::HashMap;

impl Controller {
    /// Whether an IPAM keeps no state of its own, so the controller claims
    /// the recorded pools and addresses again at start.
    /// Whether pool `pool_id` of IPAM `name` is claimed again at start (and so
    /// not released when an interrupted operation is rolled back): the IPAM's
    /// own word for the pool if it gives one, else [`Controller::ipam_replays`].
    pub(crate) async fn pool_replays(&self, name: &str, pool_id: &str) -> bool {
        match self.ipam(name).await.ok().and_then(|i| i.keeps(pool_id)) {
            Some(kept) => !kept,
            None => self.ipam_replays(name).await,
        }
    }

    pub(crate) async fn ipam_replays(&self, name: &str) -> bool {
        name == cnm_ipamapi::DEFAULT_IPAM
            || name == cnm_ipamapi::NULL_IPAM
            || self.ipam(name).await.is_ok_and(|i| i.capability().requires_request_replay)
    }

    /// Tells each IPAM what the restored records hold of it (see
    /// [`cnm_ipamapi::Ipam::restored`]); a failure is logged.
    pub(crate) async fn ipams_restored(&self) {
        let mut held: std::collections::BTreeMap<String, cnm_ipamapi::Held> = Default::default();
        // Records the restore could not settle (the cluster store could
        // not tell how their operation ends) wait on disk: what they hold
        // is held too.
        let waiting: Vec<NetworkRecord> = match self.inner.store.load::<NetworkRecord>(Table::Networks) {
            Ok(all) => all.into_iter().filter(|n| n.phase != Phase::Ready).collect(),
            Err(e) => {
                tracing::warn!(error = %crate::Chain(&e), "cannot read the network records: IPAMs are not told what is held");
                return;
            }
        };
        {
            let st = self.st();
            for n in st.networks.values().chain(&waiting) {
                let h = held.entry(n.config.ipam_driver.clone()).or_default();
                for p in n.ipv4.iter().chain(&n.ipv6) {
                    h.pools.insert(p.pool_id.clone());
                    for a in p.gateway.iter().chain(p.aux.values()) {
                        h.addresses.insert((p.pool_id.clone(), a.addr()));
                    }
                }
            }
            for e in st.endpoints.values() {
                let Some(n) = st.networks.get(&e.network_id) else { continue };
                let h = held.entry(n.config.ipam_driver.clone()).or_default();
                for a in e.ipv4.iter().chain(&e.ipv6) {
                    if let Some(p) = n.pool_of(a.addr()) {
                        h.addresses.insert((p.pool_id.clone(), a.addr()));
                    }
                }
            }
        }
        let ipams: Vec<(String, std::sync::Arc<dyn cnm_ipamapi::Ipam>)> = self
            .inner
            .ipams
            .read()
            .map(|m| m.iter().map(|(n, i)| (n.clone(), i.clone())).collect())
            .unwrap_or_default();
        for (name, ipam) in ipams {
            let h = held.remove(&name).unwrap_or_default();
            if let Err(e) = ipam.restored(&h).await {
                tracing::warn!(ipam = %name, error = %crate::Chain(&e), "the IPAM failed to clean up after the restore");
            }
        }
    }

    pub(crate) async fn restore(&self) -> Result<()> {
        let networks: Vec<NetworkRecord> = self.inner.store.load(Table::Networks)?;
        let sandboxes: Vec<SandboxRecord> = self.inner.store.load(Table::Sandboxes)?;
        let endpoints: Vec<EndpointRecord> = self.inner.store.load(Table::Endpoints)?;
        if networks.is_empty() && sandboxes.is_empty() && endpoints.is_empty() {
            return Ok(());
        }
        // Runs inside `build`, before the controller is handed out: nothing
        // else can take the object locks yet.
        for n in networks {
            self.restore_network(n).await;
        }
        let mut recreated = Vec::new();
        let mut vanished = Vec::new();
        for s in sandboxes {
            if s.phase == Phase::Ready && s.config.netns.is_some() && !runtime_namespace_alive(&s) {
                vanished.push(s.clone());
            }
            if let Some(id) = self.restore_sandbox(s).await {
                recreated.push(id);
            }
        }
        // Interfaces whose background deletion a crash cut short.
        let own_ns: Vec<String> = self
            .st()
            .sandboxes
            .values()
            .filter(|s| !s.rec.config.use_host_namespace)
            .map(|s| s.rec.id.clone())
            .collect();
        for id in own_ns {
            if let Ok(nl) = interface::sandbox_netlink(self, &id).await {
                interface::sweep_retired(&nl).await;
            }
        }
        for e in endpoints {
            self.restore_endpoint(e, &recreated).await;
        }
        // A runtime's namespace gone while the controller was away: its
        // container exited, so its sandbox and endpoints go (the interfaces
        // went with the namespace).
        for s in vanished {
            tracing::info!(sandbox = %s.container_id, key = %s.key.display(), "the runtime's namespace is gone: removing the sandbox");
            if let Err(e) = crate::Sandbox::handle(self, &s).delete().await {
                tracing::warn!(sandbox = %s.container_id, error = %crate::Chain(&e), "removing a sandbox whose namespace is gone");
            }
        }
        let ids: Vec<String> = self.st().sandboxes.keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.apply_gateway_change(&id, None, false).await {
                tracing::warn!(sandbox = %id, error = %crate::Chain(&e), "failed to restore the gateway of a sandbox");
                // Reported on the sandbox: a host port another program took meanwhile, say.
                if let Some(sb) = self.st().sandboxes.get_mut(&id) {
                    sb.errors.push(format!("restoring its gateway and published ports: {}", crate::Chain(&e)));
                }
            }
            if let Err(e) = self.refresh_sandbox(&id).await {
                tracing::warn!(sandbox = %id, error = %crate::Chain(&e), "failed to restore sandbox files");
            }
        }
        let st = self.st();
        tracing::info!(
            networks = st.networks.len(),
            endpoints = st.endpoints.len(),
            sandboxes = st.sandboxes.len(),
            "state restored"
        );
        Ok(())
    }

    async fn restore_network(&self, mut n: NetworkRecord) {
        if n.config.config_only {
            // A record only: nothing to claim or tell a driver.
            if n.phase == Phase::Ready {
                self.st().networks.insert(n.id.clone(), n);
            } else {
                self.finish_network_delete(&n).await;
            }
            return;
        }
        if n.phase != Phase::Ready && n.global {
            match self.cluster_settle(&n).await {
                Some(crate::cluster::Settle::Forward) => {
                    tracing::info!(network = %n.name, phase = ?n.phase, "the cluster store has the network as it is: keeping it");
                    n.phase = Phase::Ready;
                    if let Err(e) = self.inner.store.put(Table::Networks, &n.id, &n).await {
                        tracing::error!(network = %n.name, error = %crate::Chain(&e), "cannot confirm a kept global network");
                    }
                }
                Some(crate::cluster::Settle::Back) => {}
                // Neither kept nor removed: its intent waits on disk.
                None => return,
            }
        }
        if n.phase != Phase::Ready {
            tracing::info!(network = %n.name, phase = ?n.phase, "rolling back an interrupted network operation");
            // Pools claimed again at start were not claimed in this process:
            // only the driver needs undoing for them; the others are released.
            for pools in [&mut n.ipv4, &mut n.ipv6] {
                let mut kept = Vec::new();
                for p in pools.drain(..) {
                    if !self.pool_replays(&n.config.ipam_driver, &p.pool_id).await {
                        kept.push(p);
                    }
                }
                *pools = kept;
            }
            self.finish_network_delete(&n).await;
            return;
        }
        if self.ipam_replays(&n.config.ipam_driver).await {
            match self.ipam(&n.config.ipam_driver).await {
                Ok(ipam) => {
                    let allocates = n.config.ipam_driver != cnm_ipamapi::NULL_IPAM;
                    let opts = n.config.ipam_options.clone();
                    for pools in [&mut n.ipv4, &mut n.ipv6] {
                        for p in pools.iter_mut() {
                            // A pool the IPAM keeps itself (in a store of its own) is not asked for again.
                            if ipam.keeps(&p.pool_id) == Some(true) {
                                continue;
                            }
                            if let Err(e) = pools::replay(&*ipam, allocates, &opts, std::slice::from_mut(p)).await {
                                tracing::error!(network = %n.name, error = %crate::Chain(&e), "failed to claim the network's pools again");
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(network = %n.name, error = %crate::Chain(&e), "network's ipam is not available")
                }
            }
        }
        match self.driver(&n.driver).await {
            Ok(drv) => {
                let req = crate::network::driver_request(&n);
                if let Err(e) = drv.create_network(req).await {
                    tracing::error!(network = %n.name, error = %crate::Chain(&e), "driver failed to restore network; will retry on next use");
                    self.st().unrestored.insert(n.id.clone());
                }
            }
            Err(e) => {
                tracing::error!(network = %n.name, error = %crate::Chain(&e), "network's driver is not available; will retry on next use");
                self.st().unrestored.insert(n.id.clone());
            }
        }
        self.st().networks.insert(n.id.clone(), n);
    }

    /// Restores a sandbox; returns its id if its namespace had to be re-created.
    async fn restore_sandbox(&self, mut s: SandboxRecord) -> Option<String> {
        if s.phase != Phase::Ready {
            tracing::info!(sandbox = %s.container_id, phase = ?s.phase, "rolling back an interrupted sandbox operation");
            self.cleanup_sandbox_namespace(&s);
            self.remove_sandbox_dir(&s.id);
            let forgotten = self.inner.store.delete(Table::Sandboxes, &s.id).await;
            self.rollback("forget the sandbox's record", &s.container_id, forgotten);
            return None;
        }
        let mut recreated = None;
        // A runtime's namespace is never re-created: it is there, or its sandbox goes.
        let present = s.config.use_host_namespace || s.config.netns.is_some() || cnm_osl::Namespace::is_mounted(&s.key);
        if !present || s.config.use_host_namespace {
            match self.setup_sandbox_namespace(&s).await {
                Ok(_) if !present => {
                    tracing::info!(sandbox = %s.container_id, "re-created missing sandbox namespace");
                    recreated = Some(s.id.clone());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(sandbox = %s.container_id, error = %crate::Chain(&e), "failed to re-create sandbox namespace")
                }
            }
        }
        s.phase = Phase::Ready;
        self.st()
            .sandboxes
            .insert(s.id.clone(), SandboxState { rec: s, netlink: None, ifindex: HashMap::new(), errors: Vec::new() });
        recreated
    }

    async fn restore_endpoint(&self, mut e: EndpointRecord, recreated: &[String]) {
        let Some(net) = self.st().networks.get(&e.network_id).cloned() else {
            tracing::warn!(endpoint = %e.name, "forgetting an endpoint whose network is gone");
            let forgotten = self.inner.store.delete(Table::Endpoints, &e.id).await;
            self.rollback("forget the endpoint's record", &e.name, forgotten);
            return;
        };
        let unrestored = self.st().unrestored.contains(&net.id);
        let drv = if unrestored { None } else { self.driver(&net.driver).await.ok() };
        if e.phase != Phase::Ready {
            tracing::info!(endpoint = %e.name, phase = ?e.phase, "rolling back an interrupted endpoint operation");
            if let Some(drv) = &drv
                && e.join.is_some()
            {
                let left = drv.leave(LeaveRequest { network_id: net.id.clone(), endpoint_id: e.id.clone() }).await;
                self.rollback("the driver's leave", &e.name, left);
            }
            // A disconnect's intent may name the interface it was removing.
            let sandbox_present = |id: &str| self.st().sandboxes.contains_key(id);
            if let Some(j) = &e.join
                && let Some(iface) = &j.iface
                && sandbox_present(&j.sandbox_id)
                && let Ok(nl) = interface::sandbox_netlink(self, &j.sandbox_id).await
            {
                let removed = interface::remove(&nl, iface).await;
                self.rollback("remove the sandbox's interface", iface, removed);
            }
            if let Some(drv) = &drv {
                let deleted = drv
                    .delete_endpoint(DeleteEndpointRequest { network_id: net.id.clone(), endpoint_id: e.id.clone() })
                    .await;
                self.rollback("the driver's endpoint delete", &e.name, deleted);
            }
            if let Ok(ipam) = self.ipam(&net.config.ipam_driver).await {
                // Addresses of pools claimed again at start were not claimed in this process.
                let mut given = e.clone();
                for a in [&mut given.ipv4, &mut given.ipv6] {
                    if let Some(pool) = a.and_then(|x| net.pool_of(x.addr()))
                        && self.pool_replays(&net.config.ipam_driver, &pool.pool_id).await
                    {
                        *a = None;
                    }
                }
                crate::endpoint::release_addresses(&*ipam, &net, &given).await;
            }
            let forgotten = self.inner.store.delete(Table::Endpoints, &e.id).await;
            self.rollback("forget the endpoint's record", &e.name, forgotten);
            if net.global {
                // Its share of the network in the cluster goes now, not
                // when the crashed process's lease expires.
                self.cluster_withdraw_names(&net.id, &e.id).await;
                self.cluster_release_endpoint(&net.id, &e.id).await;
            }
            return;
        }
        if self.ipam_replays(&net.config.ipam_driver).await
            && net.config.ipam_driver != cnm_ipamapi::NULL_IPAM
            && let Ok(ipam) = self.ipam(&net.config.ipam_driver).await
        {
            for a in e.ipv4.iter().chain(e.ipv6.iter()) {
                let Some(pool) = net.pool_of(a.addr()) else { continue };
                if ipam.keeps(&pool.pool_id) == Some(true) {
                    continue;
                }
                let req =
                    RequestAddressRequest { pool_id: pool.pool_id.clone(), address: Some(a.addr()), options: None };
                if let Err(err) = ipam.request_address(req).await {
                    tracing::error!(endpoint = %e.name, address = %a, error = %crate::Chain(&err), "failed to claim the endpoint's address again");
                }
            }
        }
        if let Some(drv) = &drv {
            restore_in_driver(drv, &net, &e).await;
        }
        let Some(join) = e.join.clone() else {
            self.st().endpoints.insert(e.id.clone(), e);
            return;
        };
        let sandbox_present = self.st().sandboxes.contains_key(&join.sandbox_id);
        let mut rejoin = join.phase == JoinPhase::Joined && sandbox_present;
        if rejoin && !recreated.contains(&join.sandbox_id) {
            // The join is confirmed: keep it if its interface is still there.
            if let Some(iface) = &join.iface {
                let present = match interface::sandbox_netlink(self, &join.sandbox_id).await {
                    Ok(nl) => nl.link_get(iface).await.ok().flatten().is_some_and(|l| l.up),
                    Err(_) => false,
                };
                if present {
                    self.st().endpoints.insert(e.id.clone(), e);
                    return;
                }
            } else {
                self.st().endpoints.insert(e.id.clone(), e);
                return;
            }
        }
        // Undo whatever the interrupted (or broken) join left behind.
        if let Some(drv) = &drv {
            let left = drv.leave(LeaveRequest { network_id: net.id.clone(), endpoint_id: e.id.clone() }).await;
            self.rollback("the driver's leave", &e.name, left);
        }
        if let (Some(iface), true) = (&join.iface, sandbox_present)
            && let Ok(nl) = interface::sandbox_netlink(self, &join.sandbox_id).await
        {
            let removed = interface::remove(&nl, iface).await;
            self.rollback("remove the sandbox's interface", iface, removed);
        }
        if rejoin {
            tracing::info!(endpoint = %e.name, "re-creating the interface of a confirmed join");
            if let Some(j) = e.join.as_mut() {
                j.phase = JoinPhase::Joining;
                j.iface = None;
            }
            self.st().endpoints.insert(e.id.clone(), e.clone());
            let again = crate::endpoint::Rejoin { name: join.iface.as_deref(), keep_gateway: false };
            let result = match &drv {
                Some(drv) => self.join_locked(&net, drv, &mut e, None, again).await,
                None => Err(crate::Error::InvalidDriver { name: net.driver.clone(), available: self.drivers() }),
            };
            match result {
                Ok(()) => {
                    if let Some(j) = e.join.as_mut() {
                        j.phase = JoinPhase::Joined;
                    }
                }
                Err(err) => {
                    tracing::error!(endpoint = %e.name, error = %crate::Chain(&err), "failed to re-join endpoint");
                    rejoin = false;
                }
            }
        }
        if !rejoin {
            tracing::info!(endpoint = %e.name, "rolled back an interrupted join");
            e.join = None;
        }
        if let Err(err) = self.inner.store.put(Table::Endpoints, &e.id, &e).await {
            tracing::warn!(error = %crate::Chain(&err), "failed to record restored endpoint");
        }
        self.st().endpoints.insert(e.id.clone(), e);
    }
}

impl Controller {
    /// Tells a network's driver about it if the driver missed it at start
    /// (its plugin was down, say), with the network's endpoints; a no-op
    /// otherwise. The caller holds the network's lock.
    pub(crate) async fn ensure_restored(&self, network_id: &str) -> Result<()> {
        let (net, endpoints) = {
            let st = self.st();
            if !st.unrestored.contains(network_id) {
                return Ok(());
            }
            let Some(net) = st.networks.get(network_id).cloned() else { return Ok(()) };
            let endpoints: Vec<EndpointRecord> = st
                .endpoints
                .values()
                .filter(|e| e.network_id == network_id && e.phase == Phase::Ready)
                .cloned()
                .collect();
            (net, endpoints)
        };
        let drv = self.driver(&net.driver).await?;
        drv.create_network(crate::network::driver_request(&net)).await.map_err(|source| crate::Error::Driver {
            driver: net.driver.clone(),
            op: "restore network",
            source,
        })?;
        for e in &endpoints {
            restore_in_driver(&drv, &net, e).await;
        }
        self.st().unrestored.remove(network_id);
        tracing::info!(network = %net.name, "network restored in its driver");
        Ok(())
    }
}

/// Tells a driver about an endpoint again, as it was created; failures are logged.
async fn restore_in_driver(drv: &std::sync::Arc<dyn cnm_driverapi::Driver>, net: &NetworkRecord, e: &EndpointRecord) {
    let req = CreateEndpointRequest {
        network_id: net.id.clone(),
        endpoint_id: e.id.clone(),
        interface: EndpointInterface { address: e.ipv4, address_ipv6: e.ipv6, mac_address: e.mac },
        options: endpoint_options(net, &e.config),
    };
    if let Err(err) = drv.create_endpoint(req).await {
        tracing::error!(endpoint = %e.name, error = %crate::Chain(&err), "driver failed to restore endpoint");
    }
}

/// Whether a sandbox's runtime namespace is still the one it was created on.
pub(crate) fn runtime_namespace_alive(s: &SandboxRecord) -> bool {
    cnm_osl::Namespace::open(&s.key).is_ok_and(|ns| s.netns_inode.is_none_or(|ino| ino == ns.inode()))
}
