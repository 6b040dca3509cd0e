//! A driver served to Docker, with every call Docker makes journaled: an
//! intent on disk before the driver acts, the outcome after. At start the
//! journal is replayed into the (fresh) driver as cnm's controller replays
//! its store: what was done is told again (the driver adopts the kernel
//! state it finds), what a crash interrupted is undone — Docker saw that
//! call fail, and will never ask to undo it.

use crate::journal::Journal;
use cnm_driverapi::{
    AllocateNetworkRequest, AllocateNetworkResponse, Capability, CreateEndpointRequest, CreateEndpointResponse,
    CreateNetworkRequest, DeleteEndpointRequest, DeleteNetworkRequest, DiscoveryNotification, Driver,
    EndpointOperInfoRequest, EndpointOperInfoResponse, FreeNetworkRequest, GwAllocCheckRequest, GwAllocCheckResponse,
    JoinRequest, JoinResponse, LeaveRequest, ProgramExternalConnectivityRequest, Result,
    RevokeExternalConnectivityRequest, Scope,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where an operation is: asked for (the driver may have acted), or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Phase {
    /// Being made: undone at start if still so.
    Creating,
    /// Done, and told to Docker.
    Ready,
    /// Being removed: finished at start if still so.
    Deleting,
}

/// A network Docker created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkEntry {
    pub(crate) request: CreateNetworkRequest,
    pub(crate) phase: Phase,
}

/// An endpoint Docker created, with its join and published ports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointEntry {
    /// The request, with what the driver chose (its MAC) filled in.
    pub(crate) request: CreateEndpointRequest,
    pub(crate) phase: Phase,
    pub(crate) join: Option<Phase>,
    pub(crate) external: Option<(ProgramExternalConnectivityRequest, Phase)>,
}

/// Counts of what a start replayed and undid.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Networks and endpoints told to the driver again.
    pub restored: usize,
    /// Operations a crash interrupted, undone.
    pub undone: usize,
    /// Networks the driver refused to restore (their records are kept for
    /// the next start, and the driver's clean-up after a restore is skipped).
    pub failed: usize,
}

/// A driver whose calls are journaled (see the module's header).
pub struct JournaledDriver {
    plugin: String,
    inner: Arc<dyn Driver>,
    journal: Journal,
    endpoints: Mutex<HashMap<String, EndpointEntry>>,
}

fn internal(e: crate::Error) -> cnm_driverapi::Error {
    e.into()
}

impl JournaledDriver {
    /// `inner`, served as plugin `plugin`, journaled in `journal`.
    pub fn new(plugin: &str, inner: Arc<dyn Driver>, journal: Journal) -> Self {
        JournaledDriver { plugin: plugin.to_string(), inner, journal, endpoints: Mutex::new(HashMap::new()) }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    fn network_key(&self, id: &str) -> String {
        format!("net/{}/{id}", self.plugin)
    }

    fn endpoint_key(&self, id: &str) -> String {
        format!("ep/{}/{id}", self.plugin)
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, EndpointEntry>> {
        self.endpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records endpoint `id`'s entry as `update` makes it (on disk, then in memory).
    async fn update_endpoint(&self, id: &str, update: impl FnOnce(&mut EndpointEntry)) -> Result<()> {
        let Some(mut entry) = self.cache().get(id).cloned() else { return Ok(()) };
        update(&mut entry);
        self.journal.put(&self.endpoint_key(id), &entry).await.map_err(internal)?;
        self.cache().insert(id.to_string(), entry);
        Ok(())
    }

    async fn forget_endpoint(&self, id: &str) -> Result<()> {
        self.journal.remove(&self.endpoint_key(id)).await.map_err(internal)?;
        self.cache().remove(id);
        Ok(())
    }

    /// Replays the journal into the driver (see the module's header).
    pub async fn restore(&self) -> crate::Result<Replayed> {
        let mut counts = Replayed::default();
        let networks: Vec<(String, NetworkEntry)> = self.journal.load(&format!("net/{}/", self.plugin))?;
        let endpoints: Vec<(String, EndpointEntry)> = self.journal.load(&format!("ep/{}/", self.plugin))?;
        let mut failed = std::collections::HashSet::new();
        for (_, n) in &networks {
            let id = &n.request.network_id;
            match self.inner.create_network(n.request.clone()).await {
                Ok(()) => counts.restored += 1,
                Err(e) => {
                    tracing::error!(plugin = %self.plugin, network = %id, error = %cnm_driverapi::Chain(&e), "the driver failed to restore a network; its records wait for the next start");
                    failed.insert(id.clone());
                }
            }
        }
        counts.failed = failed.len();
        for (key, mut e) in endpoints {
            let (nid, eid) = (e.request.network_id.clone(), e.request.endpoint_id.clone());
            if failed.contains(&nid) {
                self.cache().insert(eid, e);
                continue;
            }
            if let Err(err) = self.inner.create_endpoint(e.request.clone()).await {
                tracing::error!(plugin = %self.plugin, endpoint = %eid, error = %cnm_driverapi::Chain(&err), "the driver failed to restore an endpoint");
            }
            if let Some((req, phase)) = e.external.clone() {
                if phase == Phase::Ready {
                    if let Err(err) = self.inner.program_external_connectivity(req).await {
                        tracing::error!(plugin = %self.plugin, endpoint = %eid, error = %cnm_driverapi::Chain(&err), "the driver failed to publish an endpoint's ports again");
                    }
                } else {
                    let req = DeleteEndpointRequest { network_id: nid.clone(), endpoint_id: eid.clone() };
                    let _done =
                        undo("revoke external connectivity", &eid, self.inner.revoke_external_connectivity(req).await);
                    e.external = None;
                    counts.undone += 1;
                }
            }
            if matches!(e.join, Some(Phase::Creating | Phase::Deleting))
                || (e.phase != Phase::Ready && e.join.is_some())
            {
                let req = DeleteEndpointRequest { network_id: nid.clone(), endpoint_id: eid.clone() };
                let _done = undo("leave", &eid, self.inner.leave(req).await);
                e.join = None;
                counts.undone += 1;
            }
            if e.phase != Phase::Ready {
                let req = DeleteEndpointRequest { network_id: nid, endpoint_id: eid.clone() };
                if undo("delete endpoint", &eid, self.inner.delete_endpoint(req).await) {
                    self.journal.remove(&key).await?;
                    counts.undone += 1;
                    continue;
                }
                // Kept as it is: tried again at the next start.
                self.cache().insert(eid, e);
                continue;
            }
            counts.restored += 1;
            self.journal.put(&key, &e).await?;
            self.cache().insert(eid, e);
        }
        for (key, n) in networks {
            let id = &n.request.network_id;
            if n.phase != Phase::Ready && !failed.contains(id) {
                let req = DeleteNetworkRequest { network_id: id.clone() };
                if undo("delete network", id, self.inner.delete_network(req).await) {
                    self.journal.remove(&key).await?;
                    counts.undone += 1;
                }
            }
        }
        // The driver's clean-up removes what no restored network claims: not
        // while a network it should know is missing.
        if failed.is_empty()
            && let Err(e) = self.inner.restored().await
        {
            tracing::warn!(plugin = %self.plugin, error = %cnm_driverapi::Chain(&e), "the driver failed to clean up after the restore");
        }
        Ok(counts)
    }
}

/// Whether an undo step is done: it succeeded, or the driver had nothing
/// to undo (not found); any other failure is logged and the step is kept.
fn undo(what: &str, id: &str, result: Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == cnm_driverapi::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(step = what, id, error = %cnm_driverapi::Chain(&e), "undoing an interrupted call failed; tried again at the next start");
            false
        }
    }
}

#[async_trait::async_trait]
impl Driver for JournaledDriver {
    fn name(&self) -> &str {
        &self.plugin
    }

    /// The driver's, with local data scope: Docker without a cluster store
    /// keeps every network per host (cnm's cluster store ties them together).
    fn capability(&self) -> Capability {
        Capability { data_scope: Scope::Local, ..self.inner.capability() }
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        let key = self.network_key(&req.network_id);
        if self.journal.get::<NetworkEntry>(&key).map_err(internal)?.is_some_and(|n| n.phase == Phase::Ready) {
            // Asked again (Docker retries a call whose connection broke):
            // the record stands, the driver answers.
            return self.inner.create_network(req).await;
        }
        let entry = NetworkEntry { request: req.clone(), phase: Phase::Creating };
        self.journal.put(&key, &entry).await.map_err(internal)?;
        crate::kill::point("plugin.network.intent");
        if let Err(e) = self.inner.create_network(req).await {
            // The driver undoes its own failures.
            self.journal.remove(&key).await.map_err(internal)?;
            return Err(e);
        }
        crate::kill::point("plugin.network.created");
        self.journal.put(&key, &NetworkEntry { phase: Phase::Ready, ..entry }).await.map_err(internal)
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        let key = self.network_key(&req.network_id);
        let entry = self.journal.get::<NetworkEntry>(&key).map_err(internal)?;
        if let Some(entry) = &entry {
            self.journal
                .put(&key, &NetworkEntry { phase: Phase::Deleting, ..entry.clone() })
                .await
                .map_err(internal)?;
        }
        crate::kill::point("plugin.network.deleting");
        if let Err(e) = self.inner.delete_network(req).await {
            // Refused (Docker keeps the network): it stays as it was.
            if let Some(entry) = entry {
                self.journal.put(&key, &entry).await.map_err(internal)?;
            }
            return Err(e);
        }
        self.journal.remove(&key).await.map_err(internal)
    }

    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        let id = req.endpoint_id.clone();
        if self.cache().get(&id).is_some_and(|e| e.phase == Phase::Ready) {
            // Asked again: the record (with its join and ports) stands.
            return self.inner.create_endpoint(req).await;
        }
        let key = self.endpoint_key(&id);
        let mut entry = EndpointEntry { request: req.clone(), phase: Phase::Creating, join: None, external: None };
        self.journal.put(&key, &entry).await.map_err(internal)?;
        let resp = match self.inner.create_endpoint(req).await {
            Ok(r) => r,
            Err(e) => {
                self.journal.remove(&key).await.map_err(internal)?;
                return Err(e);
            }
        };
        crate::kill::point("plugin.endpoint.created");
        // What the driver chose is what a replay must ask for.
        if let Some(chosen) = &resp.interface {
            let i = &mut entry.request.interface;
            i.address = i.address.or(chosen.address);
            i.address_ipv6 = i.address_ipv6.or(chosen.address_ipv6);
            i.mac_address = i.mac_address.or(chosen.mac_address);
        }
        entry.phase = Phase::Ready;
        self.journal.put(&key, &entry).await.map_err(internal)?;
        self.cache().insert(id, entry);
        Ok(resp)
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        let id = req.endpoint_id.clone();
        let before = self.cache().get(&id).map(|e| e.phase);
        self.update_endpoint(&id, |e| e.phase = Phase::Deleting).await?;
        crate::kill::point("plugin.endpoint.deleting");
        if let Err(e) = self.inner.delete_endpoint(req).await {
            if let Some(phase) = before {
                self.update_endpoint(&id, |e| e.phase = phase).await?;
            }
            return Err(e);
        }
        self.forget_endpoint(&id).await
    }

    async fn endpoint_oper_info(&self, req: EndpointOperInfoRequest) -> Result<EndpointOperInfoResponse> {
        self.inner.endpoint_oper_info(req).await
    }

    /// Docker moves the interface into the container itself: the driver
    /// is not told the namespace, so it leaves the link on the host for
    /// Docker to find by name (Docker's namespace is visible here on a real host).
    async fn join(&self, mut req: JoinRequest) -> Result<JoinResponse> {
        let id = req.endpoint_id.clone();
        req.sandbox_key = String::new();
        self.update_endpoint(&id, |e| e.join = Some(Phase::Creating)).await?;
        crate::kill::point("plugin.join.intent");
        match self.inner.join(req).await {
            Ok(resp) => {
                crate::kill::point("plugin.join.done");
                self.update_endpoint(&id, |e| e.join = Some(Phase::Ready)).await?;
                Ok(resp)
            }
            Err(e) => {
                self.update_endpoint(&id, |e| e.join = None).await?;
                Err(e)
            }
        }
    }

    async fn leave(&self, req: LeaveRequest) -> Result<()> {
        let id = req.endpoint_id.clone();
        self.update_endpoint(&id, |e| e.join = Some(Phase::Deleting)).await?;
        crate::kill::point("plugin.leave.intent");
        self.inner.leave(req).await?;
        self.update_endpoint(&id, |e| e.join = None).await
    }

    async fn gateway_allocation(&self, req: GwAllocCheckRequest) -> Result<GwAllocCheckResponse> {
        self.inner.gateway_allocation(req).await
    }

    async fn program_external_connectivity(&self, req: ProgramExternalConnectivityRequest) -> Result<()> {
        let id = req.endpoint_id.clone();
        let intent = req.clone();
        self.update_endpoint(&id, |e| e.external = Some((intent, Phase::Creating))).await?;
        crate::kill::point("plugin.publish.intent");
        match self.inner.program_external_connectivity(req.clone()).await {
            Ok(()) => self.update_endpoint(&id, |e| e.external = Some((req, Phase::Ready))).await,
            Err(e) => {
                self.update_endpoint(&id, |e| e.external = None).await?;
                Err(e)
            }
        }
    }

    async fn revoke_external_connectivity(&self, req: RevokeExternalConnectivityRequest) -> Result<()> {
        let id = req.endpoint_id.clone();
        self.update_endpoint(&id, |e| {
            if let Some((_, phase)) = e.external.as_mut() {
                *phase = Phase::Deleting;
            }
        })
        .await?;
        self.inner.revoke_external_connectivity(req).await?;
        self.update_endpoint(&id, |e| e.external = None).await
    }

    async fn discover_new(&self, event: DiscoveryNotification) -> Result<()> {
        self.inner.discover_new(event).await
    }

    async fn discover_delete(&self, event: DiscoveryNotification) -> Result<()> {
        self.inner.discover_delete(event).await
    }

    async fn network_allocate(&self, req: AllocateNetworkRequest) -> Result<AllocateNetworkResponse> {
        self.inner.network_allocate(req).await
    }

    async fn network_free(&self, req: FreeNetworkRequest) -> Result<()> {
        self.inner.network_free(req).await
    }
}
