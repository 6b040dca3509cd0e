//! One cluster network behind a Docker network of the same name on each
//! Docker host (feature `cluster`). Docker keeps its networks per host and
//! has no cluster store since 23.0; cnm ties them together by the name the
//! user gives: `-o cnm.network=NAME` on a `cnm-overlay` network, and
//! `--ipam-opt cnm.network=NAME` for its pool from the IPAM `cnm`.
//!
//! In the cluster store, under `docker-plugin/`:
//! - `networks/<NAME>`: the cluster network's id and VNI, made by the
//!   first host (compare-and-swap), with `network-members/<NAME>/<host>`
//!   for each host that has it; the last host to leave frees the VNI;
//! - `pools/<NAME>/<4|6>`: the pool the global IPAM gave the first host,
//!   handed to the others as is, with `pool-members/…` likewise; and
//!   `gateways/<pool id>`: the pool's gateway, one for every host (the
//!   overlay's bridge has it on each).

use async_trait::async_trait;
use cnm_cluster::Cluster;
use cnm_driverapi::{
    AllocateNetworkRequest, Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest,
    DeleteEndpointRequest, DeleteNetworkRequest, Driver, EndpointOperInfoRequest, EndpointOperInfoResponse, ErrorKind,
    FreeNetworkRequest, JoinRequest, JoinResponse, LeaveRequest, ProgramExternalConnectivityRequest,
    RevokeExternalConnectivityRequest,
};
use cnm_ipamapi::{
    AddressSpaces, Held, Ipam, IpamCapability, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The option naming the cluster network (driver) or its pool (IPAM).
pub const NETWORK_OPTION: &str = "cnm.network";
/// The overlay driver's option carrying the VNI.
const VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
const ROOT: &str = "docker-plugin";

fn unavailable(e: cnm_cluster::Error) -> cnm_driverapi::Error {
    cnm_driverapi::Error::from_source(ErrorKind::Unavailable, e)
}

fn ipam_unavailable(e: cnm_cluster::Error) -> cnm_ipamapi::Error {
    cnm_ipamapi::Error::caused(ErrorKind::Unavailable, e)
}

/// A name usable in a store key: what Docker accepts as a network name, no `/`.
fn checked_name(name: &str) -> Result<&str, String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(name) } else { Err(format!("{NETWORK_OPTION} {name:?}: letters, digits, '-', '_' and '.' only")) }
}

/// The cluster network behind a name.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterNetwork {
    id: String,
    vni: String,
}

/// The overlay driver, its networks tied across hosts by name (see the module's header).
pub struct SharedOverlay {
    inner: Arc<dyn Driver>,
    cluster: Cluster,
    host: String,
    /// Docker's network id on this host → the cluster network's id and name.
    networks: Mutex<HashMap<String, (String, String)>>,
}

impl SharedOverlay {
    /// `inner` (the overlay driver) for host `identity` of `cluster`.
    pub fn new(inner: Arc<dyn Driver>, cluster: Cluster, identity: &str) -> Self {
        SharedOverlay { inner, cluster, host: identity.to_string(), networks: Mutex::new(HashMap::new()) }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, String)>> {
        self.networks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cluster network id of Docker network `id`.
    fn cluster_id(&self, id: &str) -> cnm_driverapi::Result<String> {
        self.map()
            .get(id)
            .map(|(c, _)| c.clone())
            .ok_or_else(|| cnm_driverapi::Error::not_found(format!("network {id} not found")))
    }

    /// The cluster network `name`, made with this host's `first_id` and a
    /// new VNI if no host has it yet; this host recorded as a member.
    async fn join_cluster_network(
        &self,
        name: &str,
        first_id: &str,
        req: &CreateNetworkRequest,
    ) -> cnm_driverapi::Result<ClusterNetwork> {
        let key = format!("{ROOT}/networks/{name}");
        let member = format!("{ROOT}/network-members/{name}/{}", self.host);
        for _ in 0..5 {
            if let Some(bytes) = self.cluster.get(&key).await.map_err(unavailable)? {
                let net: ClusterNetwork = serde_json::from_slice(&bytes)
                    .map_err(|e| cnm_driverapi::Error::internal(format!("cluster record {key}: {e}")))?;
                // Only while the network still exists (the last member may be leaving).
                if self.cluster.create_under(&member, b"", &key).await.map_err(unavailable)?
                    || self.cluster.get(&member).await.map_err(unavailable)?.is_some()
                {
                    return Ok(net);
                }
                continue;
            }
            let alloc = AllocateNetworkRequest {
                network_id: first_id.to_string(),
                options: req.options.generic.clone(),
                ipv4_data: req.ipv4_data.clone(),
                ipv6_data: req.ipv6_data.clone(),
            };
            let vni = self.inner.network_allocate(alloc).await?.options.remove(VXLANID_LIST).unwrap_or_default();
            let net = ClusterNetwork { id: first_id.to_string(), vni };
            let bytes = serde_json::to_vec(&net).map_err(|e| cnm_driverapi::Error::internal(e.to_string()))?;
            if self.cluster.create(&key, &bytes).await.map_err(unavailable)? {
                if self.cluster.create_under(&member, b"", &key).await.map_err(unavailable)? {
                    return Ok(net);
                }
                continue;
            }
            // Another host made it meanwhile: ours goes.
            let free = FreeNetworkRequest { network_id: first_id.to_string() };
            self.inner.network_free(free).await?;
        }
        Err(cnm_driverapi::Error::conflict(format!("cluster network {name:?} kept changing while joining it")))
    }

    /// Leaves cluster network `name`; the last host frees its VNI.
    async fn leave_cluster_network(&self, name: &str, cluster_id: &str) -> cnm_driverapi::Result<()> {
        let key = format!("{ROOT}/networks/{name}");
        let members = format!("{ROOT}/network-members/{name}/");
        self.cluster.delete(&format!("{members}{}", self.host)).await.map_err(unavailable)?;
        let present = self.cluster.get(&key).await.map_err(unavailable)?.is_some();
        if present && self.cluster.delete_if_none_under(&key, &members).await.map_err(unavailable)? {
            self.inner.network_free(FreeNetworkRequest { network_id: cluster_id.to_string() }).await?;
        }
        Ok(())
    }

    fn translate_endpoint(&self, mut req: DeleteEndpointRequest) -> cnm_driverapi::Result<DeleteEndpointRequest> {
        req.network_id = self.cluster_id(&req.network_id)?;
        Ok(req)
    }
}

#[async_trait]
impl Driver for SharedOverlay {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_network(&self, mut req: CreateNetworkRequest) -> cnm_driverapi::Result<()> {
        let name = req.options.generic.remove(NETWORK_OPTION).ok_or_else(|| {
            cnm_driverapi::Error::invalid(format!(
                "a cnm overlay network needs -o {NETWORK_OPTION}=NAME: the name that ties it to the same network on other Docker hosts"
            ))
        })?;
        let name = checked_name(&name).map_err(cnm_driverapi::Error::invalid)?.to_string();
        if let Some((other, _)) = self.map().iter().find(|(id, (_, n))| *n == name && **id != req.network_id) {
            return Err(cnm_driverapi::Error::conflict(format!(
                "cluster network {name:?} is already Docker network {other} on this host"
            )));
        }
        let net = self.join_cluster_network(&name, &req.network_id, &req).await?;
        let docker_id = std::mem::replace(&mut req.network_id, net.id.clone());
        req.options.generic.insert(VXLANID_LIST.to_string(), net.vni.clone());
        if let Err(e) = self.inner.create_network(req).await {
            if let Err(left) = self.leave_cluster_network(&name, &net.id).await {
                tracing::warn!(network = %name, error = %cnm_driverapi::Chain(&left), "leaving a cluster network whose creation failed");
            }
            return Err(e);
        }
        self.map().insert(docker_id, (net.id, name));
        Ok(())
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> cnm_driverapi::Result<()> {
        let Some((cluster_id, name)) = self.map().get(&req.network_id).cloned() else {
            return Err(cnm_driverapi::Error::not_found(format!("network {} not found", req.network_id)));
        };
        self.inner.delete_network(DeleteNetworkRequest { network_id: cluster_id.clone() }).await?;
        self.map().remove(&req.network_id);
        self.leave_cluster_network(&name, &cluster_id).await
    }

    async fn create_endpoint(&self, mut req: CreateEndpointRequest) -> cnm_driverapi::Result<CreateEndpointResponse> {
        req.network_id = self.cluster_id(&req.network_id)?;
        self.inner.create_endpoint(req).await
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> cnm_driverapi::Result<()> {
        self.inner.delete_endpoint(self.translate_endpoint(req)?).await
    }

    async fn endpoint_oper_info(
        &self,
        mut req: EndpointOperInfoRequest,
    ) -> cnm_driverapi::Result<EndpointOperInfoResponse> {
        req.network_id = self.cluster_id(&req.network_id)?;
        self.inner.endpoint_oper_info(req).await
    }

    async fn join(&self, mut req: JoinRequest) -> cnm_driverapi::Result<JoinResponse> {
        req.network_id = self.cluster_id(&req.network_id)?;
        self.inner.join(req).await
    }

    async fn leave(&self, req: LeaveRequest) -> cnm_driverapi::Result<()> {
        self.inner.leave(self.translate_endpoint(req)?).await
    }

    async fn program_external_connectivity(
        &self,
        mut req: ProgramExternalConnectivityRequest,
    ) -> cnm_driverapi::Result<()> {
        req.network_id = self.cluster_id(&req.network_id)?;
        self.inner.program_external_connectivity(req).await
    }

    async fn revoke_external_connectivity(&self, req: RevokeExternalConnectivityRequest) -> cnm_driverapi::Result<()> {
        self.inner.revoke_external_connectivity(self.translate_endpoint(req)?).await
    }

    async fn restored(&self) -> cnm_driverapi::Result<()> {
        self.inner.restored().await
    }
}

/// The global IPAM, its pools shared by name across hosts (see the module's header).
pub struct SharedPools {
    inner: Arc<dyn Ipam>,
    cluster: Cluster,
    host: String,
}

/// A shared pool's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SharedPool {
    name: String,
    response: RequestPoolResponse,
}

impl SharedPools {
    /// `inner` (the global IPAM) for host `identity` of `cluster`.
    pub fn new(inner: Arc<dyn Ipam>, cluster: Cluster, identity: &str) -> Self {
        SharedPools { inner, cluster, host: identity.to_string() }
    }

    fn family(v6: bool) -> &'static str {
        if v6 { "6" } else { "4" }
    }

    /// The store key of pool id `id` (a global pool id holds `/`).
    fn by_id(id: &str) -> String {
        format!("{ROOT}/pool-ids/{}", id.replace('/', "_"))
    }

    async fn shared(&self, pool_id: &str) -> cnm_ipamapi::Result<Option<SharedPool>> {
        let Some(bytes) = self.cluster.get(&Self::by_id(pool_id)).await.map_err(ipam_unavailable)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| cnm_ipamapi::Error::InvalidRequest(format!("cluster record of pool {pool_id}: {e}")))
    }
}

#[async_trait]
impl Ipam for SharedPools {
    fn capability(&self) -> IpamCapability {
        self.inner.capability()
    }

    fn keeps(&self, pool_id: &str) -> Option<bool> {
        self.inner.keeps(pool_id)
    }

    async fn default_address_spaces(&self) -> cnm_ipamapi::Result<AddressSpaces> {
        self.inner.default_address_spaces().await
    }

    async fn request_pool(&self, mut req: RequestPoolRequest) -> cnm_ipamapi::Result<RequestPoolResponse> {
        let Some(name) = req.options.remove(NETWORK_OPTION) else { return self.inner.request_pool(req).await };
        let name = checked_name(&name).map_err(cnm_ipamapi::Error::InvalidRequest)?.to_string();
        // Docker asks in its local space (the plugin's scope is local): a
        // pool the hosts share is the cluster's.
        req.address_space = cnm_ipamapi::GLOBAL_DEFAULT.to_string();
        let key = format!("{ROOT}/pools/{name}/{}", Self::family(req.v6));
        let member = format!("{ROOT}/pool-members/{name}/{}/{}", Self::family(req.v6), self.host);
        for _ in 0..5 {
            if let Some(bytes) = self.cluster.get(&key).await.map_err(ipam_unavailable)? {
                let shared: SharedPool = serde_json::from_slice(&bytes)
                    .map_err(|e| cnm_ipamapi::Error::InvalidRequest(format!("cluster record {key}: {e}")))?;
                if let Some(asked) = req.pool.filter(|p| !p.addr().is_unspecified())
                    && asked != shared.response.pool
                {
                    return Err(cnm_ipamapi::Error::PoolOverlap {
                        requested: asked.to_string(),
                        existing: format!("{} (the pool of cluster network {name:?})", shared.response.pool),
                    });
                }
                if self.cluster.create_under(&member, b"", &key).await.map_err(ipam_unavailable)?
                    || self.cluster.get(&member).await.map_err(ipam_unavailable)?.is_some()
                {
                    return Ok(shared.response);
                }
                continue;
            }
            let response = self.inner.request_pool(req.clone()).await?;
            let shared = SharedPool { name: name.clone(), response: response.clone() };
            let bytes = serde_json::to_vec(&shared).map_err(|e| cnm_ipamapi::Error::InvalidRequest(e.to_string()))?;
            if self.cluster.create(&key, &bytes).await.map_err(ipam_unavailable)? {
                self.cluster.put(&Self::by_id(&response.pool_id), &bytes).await.map_err(ipam_unavailable)?;
                if self.cluster.create_under(&member, b"", &key).await.map_err(ipam_unavailable)? {
                    return Ok(response);
                }
                continue;
            }
            self.inner.release_pool(ReleasePoolRequest { pool_id: response.pool_id }).await?;
        }
        Err(cnm_ipamapi::Error::InvalidRequest(format!("the pool of {name:?} kept changing while asking for it")))
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> cnm_ipamapi::Result<()> {
        let Some(shared) = self.shared(&req.pool_id).await? else { return self.inner.release_pool(req).await };
        let v6 = shared.response.pool.addr().is_ipv6();
        let key = format!("{ROOT}/pools/{}/{}", shared.name, Self::family(v6));
        let members = format!("{ROOT}/pool-members/{}/{}/", shared.name, Self::family(v6));
        self.cluster.delete(&format!("{members}{}", self.host)).await.map_err(ipam_unavailable)?;
        let present = self.cluster.get(&key).await.map_err(ipam_unavailable)?.is_some();
        if present && self.cluster.delete_if_none_under(&key, &members).await.map_err(ipam_unavailable)? {
            self.cluster.delete(&Self::by_id(&req.pool_id)).await.map_err(ipam_unavailable)?;
            self.cluster
                .delete(&format!("{ROOT}/gateways/{}", req.pool_id.replace('/', "_")))
                .await
                .map_err(ipam_unavailable)?;
            return self.inner.release_pool(req).await;
        }
        Ok(())
    }

    async fn request_address(&self, req: RequestAddressRequest) -> cnm_ipamapi::Result<RequestAddressResponse> {
        if !req.is_gateway() || self.shared(&req.pool_id).await?.is_none() {
            return self.inner.request_address(req).await;
        }
        let key = format!("{ROOT}/gateways/{}", req.pool_id.replace('/', "_"));
        for _ in 0..5 {
            if let Some(bytes) = self.cluster.get(&key).await.map_err(ipam_unavailable)? {
                let given: RequestAddressResponse = serde_json::from_slice(&bytes)
                    .map_err(|e| cnm_ipamapi::Error::InvalidRequest(format!("cluster record {key}: {e}")))?;
                if let Some(asked) = req.address
                    && asked != given.address.addr()
                {
                    return Err(cnm_ipamapi::Error::AddressInUse(format!(
                        "{asked}: the shared pool's gateway is {}",
                        given.address.addr()
                    )));
                }
                return Ok(given);
            }
            let given = self.inner.request_address(req.clone()).await?;
            let bytes = serde_json::to_vec(&given).map_err(|e| cnm_ipamapi::Error::InvalidRequest(e.to_string()))?;
            if self.cluster.create(&key, &bytes).await.map_err(ipam_unavailable)? {
                return Ok(given);
            }
            let release = ReleaseAddressRequest { pool_id: req.pool_id.clone(), address: given.address.addr() };
            self.inner.release_address(release).await?;
        }
        Err(cnm_ipamapi::Error::InvalidRequest("the shared pool's gateway kept changing".into()))
    }

    /// A shared pool's gateway stays for the other hosts: it goes with the pool.
    async fn release_address(&self, req: ReleaseAddressRequest) -> cnm_ipamapi::Result<()> {
        let key = format!("{ROOT}/gateways/{}", req.pool_id.replace('/', "_"));
        if let Some(bytes) = self.cluster.get(&key).await.map_err(ipam_unavailable)?
            && serde_json::from_slice::<RequestAddressResponse>(&bytes).is_ok_and(|g| g.address.addr() == req.address)
        {
            return Ok(());
        }
        self.inner.release_address(req).await
    }

    /// What this host's journal holds, and every shared pool and gateway
    /// (another host may have made them, or still use them).
    async fn restored(&self, held: &Held) -> cnm_ipamapi::Result<()> {
        let mut held = held.clone();
        let (pools, _) = self.cluster.list(&format!("{ROOT}/pool-ids/")).await.map_err(ipam_unavailable)?;
        for (_, bytes) in pools {
            if let Ok(p) = serde_json::from_slice::<SharedPool>(&bytes) {
                held.pools.insert(p.response.pool_id);
            }
        }
        let (gateways, _) = self.cluster.list(&format!("{ROOT}/gateways/")).await.map_err(ipam_unavailable)?;
        for (key, bytes) in gateways {
            let Some(id) = key.strip_prefix(&format!("{ROOT}/gateways/")) else { continue };
            if let Ok(g) = serde_json::from_slice::<RequestAddressResponse>(&bytes)
                && let Some(pool) = held.pools.iter().find(|p| p.replace('/', "_") == id).cloned()
            {
                held.addresses.insert((pool, g.address.addr()));
            }
        }
        self.inner.restored(&held).await
    }
}
