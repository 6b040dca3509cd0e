//! One cluster network behind a Docker network of the same name on each
//! Docker host (feature `cluster`). Docker keeps its networks per host and
//! has no cluster store since 23.0; cnm ties them together by the name the
//! user gives: `-o cnm.network=NAME` on a `cnm-overlay` network, and
//! `--ipam-opt cnm.network=NAME` for its pool from the IPAM `cnm`.
//!
//! In the cluster store, under `docker-plugin/`:
//! - `networks/<NAME>`: the cluster network's id, VNI and subnets, made by
//!   the first host (compare-and-swap), with `network-members/<NAME>/<host>`
//!   for each host that has it; the last host to leave frees the VNI;
//! - `pools/<NAME>/<4|6>`: the pool the global IPAM gave the first host,
//!   handed to the others as is, with `pool-members/<NAME>/<4|6>/<host>`
//!   likewise; and `gateways/<pool id>`: the pool's gateway, one for every
//!   host (the overlay's bridge has it on each).
//!
//! A host's memberships are its own to end: at start, those its journal no
//! longer holds (a crash between a grant and its record, a release whose
//! store call failed) are left, so the last one out still frees the
//! network. Memberships are not leased: a host that never starts again
//! keeps its share until an operator deletes its keys.

use async_trait::async_trait;
use cnm_cluster::Cluster;
use cnm_driverapi::{
    AllocateNetworkRequest, Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest,
    DeleteEndpointRequest, DeleteNetworkRequest, Driver, EndpointOperInfoRequest, EndpointOperInfoResponse, ErrorKind,
    FreeNetworkRequest, JoinRequest, JoinResponse, LeaveRequest, ProgramExternalConnectivityRequest,
    RevokeExternalConnectivityRequest,
};
use cnm_ipamapi::{
    AddressSpaces, GLOBAL_DEFAULT, Held, Ipam, IpamCapability, ReleaseAddressRequest, ReleasePoolRequest,
    RequestAddressRequest, RequestAddressResponse, RequestPoolRequest, RequestPoolResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The option naming the cluster network (driver) or its pool (IPAM).
pub const NETWORK_OPTION: &str = "cnm.network";
/// The overlay driver's option carrying the VNI.
const VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
const ROOT: &str = "docker-plugin";
/// Compare-and-swap rounds before a key that keeps changing is an error.
const ROUNDS: usize = 5;

/// A cluster record that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cluster record {key}")]
pub struct RecordError {
    key: String,
    #[source]
    source: serde_json::Error,
}

/// A key that kept changing under compare-and-swap.
#[derive(Debug, thiserror::Error)]
#[error("{what} kept changing in the cluster store while it was being claimed")]
pub struct Contended {
    what: String,
}

fn unavailable(e: cnm_cluster::Error) -> cnm_driverapi::Error {
    cnm_driverapi::Error::from_source(ErrorKind::Unavailable, e)
}

fn ipam_unavailable(e: cnm_cluster::Error) -> cnm_ipamapi::Error {
    cnm_ipamapi::Error::caused(ErrorKind::Unavailable, e)
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, RecordError> {
    serde_json::from_slice(bytes).map_err(|source| RecordError { key: key.to_string(), source })
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, RecordError> {
    serde_json::to_vec(value).map_err(|source| RecordError { key: key.to_string(), source })
}

fn record_driver(e: RecordError) -> cnm_driverapi::Error {
    cnm_driverapi::Error::from_source(ErrorKind::Internal, e)
}

fn record_ipam(e: RecordError) -> cnm_ipamapi::Error {
    cnm_ipamapi::Error::caused(ErrorKind::Internal, e)
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
    /// The IPv4 and IPv6 subnets, which every host's network must have.
    #[serde(default)]
    subnets: Vec<String>,
}

fn subnets(req: &CreateNetworkRequest) -> Vec<String> {
    req.ipv4_data.iter().chain(&req.ipv6_data).map(|d| d.pool.to_string()).collect()
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
        let ours = subnets(req);
        for _ in 0..ROUNDS {
            if let Some(bytes) = self.cluster.get(&key).await.map_err(unavailable)? {
                let net: ClusterNetwork = decode(&key, &bytes).map_err(record_driver)?;
                if !net.subnets.is_empty() && net.subnets != ours {
                    return Err(cnm_driverapi::Error::invalid(format!(
                        "cluster network {name:?} has subnets {:?}, this network {ours:?}: give every host's network \
                         --ipam-driver cnm --ipam-opt {NETWORK_OPTION}={name}",
                        net.subnets
                    )));
                }
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
            let net = ClusterNetwork { id: first_id.to_string(), vni, subnets: ours.clone() };
            if self.cluster.create(&key, &encode(&key, &net).map_err(record_driver)?).await.map_err(unavailable)? {
                if self.cluster.create_under(&member, b"", &key).await.map_err(unavailable)? {
                    return Ok(net);
                }
                continue;
            }
            // Another host made it meanwhile: ours goes.
            self.inner.network_free(FreeNetworkRequest { network_id: first_id.to_string() }).await?;
        }
        Err(cnm_driverapi::Error::from_source(
            ErrorKind::Conflict,
            Contended { what: format!("cluster network {name:?}") },
        ))
    }

    /// Leaves cluster network `name`; the last host frees its VNI.
    async fn leave_cluster_network(&self, name: &str) -> cnm_driverapi::Result<()> {
        let key = format!("{ROOT}/networks/{name}");
        let members = format!("{ROOT}/network-members/{name}/");
        self.cluster.delete(&format!("{members}{}", self.host)).await.map_err(unavailable)?;
        let Some(bytes) = self.cluster.get(&key).await.map_err(unavailable)? else { return Ok(()) };
        let net: ClusterNetwork = decode(&key, &bytes).map_err(record_driver)?;
        if self.cluster.delete_if_none_under(&key, &members).await.map_err(unavailable)? {
            self.inner.network_free(FreeNetworkRequest { network_id: net.id }).await?;
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
            if let Err(left) = self.leave_cluster_network(&name).await {
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
        self.inner.delete_network(DeleteNetworkRequest { network_id: cluster_id }).await?;
        self.map().remove(&req.network_id);
        self.leave_cluster_network(&name).await
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

    /// Leaves the cluster networks this host is still a member of that no
    /// restored network is (see the module's header), then the driver's own clean-up.
    async fn restored(&self) -> cnm_driverapi::Result<()> {
        let prefix = format!("{ROOT}/network-members/");
        let (members, _) = self.cluster.list(&prefix).await.map_err(unavailable)?;
        let held: Vec<String> = self.map().values().map(|(_, n)| n.clone()).collect();
        for (key, _) in members {
            let Some((name, host)) = key.strip_prefix(&prefix).and_then(|r| r.rsplit_once('/')) else { continue };
            if host == self.host && !held.iter().any(|h| h == name) {
                tracing::info!(network = name, "leaving a cluster network no Docker network of this host is");
                self.leave_cluster_network(name).await?;
            }
        }
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

fn family(v6: bool) -> &'static str {
    if v6 { "6" } else { "4" }
}

/// Only pools of the global space can be shared: the others never touch the store.
fn global(pool_id: &str) -> bool {
    pool_id.starts_with(GLOBAL_DEFAULT)
}

fn gateway_key(pool_id: &str) -> String {
    format!("{ROOT}/gateways/{}", pool_id.replace('/', "_"))
}

impl SharedPools {
    /// `inner` (the global IPAM) for host `identity` of `cluster`.
    pub fn new(inner: Arc<dyn Ipam>, cluster: Cluster, identity: &str) -> Self {
        SharedPools { inner, cluster, host: identity.to_string() }
    }

    /// Every shared pool, by store key.
    async fn all(&self) -> cnm_ipamapi::Result<Vec<(String, SharedPool)>> {
        let (kvs, _) = self.cluster.list(&format!("{ROOT}/pools/")).await.map_err(ipam_unavailable)?;
        kvs.into_iter().map(|(k, v)| Ok((k.clone(), decode(&k, &v).map_err(record_ipam)?))).collect()
    }

    /// The shared pool of id `pool_id`, with its store key.
    async fn shared(&self, pool_id: &str) -> cnm_ipamapi::Result<Option<(String, SharedPool)>> {
        if !global(pool_id) {
            return Ok(None);
        }
        Ok(self.all().await?.into_iter().find(|(_, p)| p.response.pool_id == pool_id))
    }

    /// Ends this host's share of the pool under `key`; the last host
    /// releases it (and its gateway).
    async fn leave_pool(&self, key: &str, pool: &SharedPool) -> cnm_ipamapi::Result<()> {
        let v6 = pool.response.pool.addr().is_ipv6();
        let members = format!("{ROOT}/pool-members/{}/{}/", pool.name, family(v6));
        self.cluster.delete(&format!("{members}{}", self.host)).await.map_err(ipam_unavailable)?;
        if self.cluster.get(key).await.map_err(ipam_unavailable)?.is_none() {
            return Ok(());
        }
        if self.cluster.delete_if_none_under(key, &members).await.map_err(ipam_unavailable)? {
            let id = pool.response.pool_id.clone();
            self.cluster.delete(&gateway_key(&id)).await.map_err(ipam_unavailable)?;
            return self.inner.release_pool(ReleasePoolRequest { pool_id: id }).await;
        }
        Ok(())
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
        req.address_space = GLOBAL_DEFAULT.to_string();
        let key = format!("{ROOT}/pools/{name}/{}", family(req.v6));
        let member = format!("{ROOT}/pool-members/{name}/{}/{}", family(req.v6), self.host);
        if self.cluster.get(&member).await.map_err(ipam_unavailable)?.is_some() {
            return Err(cnm_ipamapi::Error::Other {
                kind: ErrorKind::Conflict,
                message: format!("the pool of cluster network {name:?} is already another network's on this host"),
            });
        }
        for _ in 0..ROUNDS {
            if let Some(bytes) = self.cluster.get(&key).await.map_err(ipam_unavailable)? {
                let shared: SharedPool = decode(&key, &bytes).map_err(record_ipam)?;
                if let Some(asked) = req.pool.filter(|p| !p.addr().is_unspecified())
                    && asked != shared.response.pool
                {
                    return Err(cnm_ipamapi::Error::PoolOverlap {
                        requested: asked.to_string(),
                        existing: format!("{} (the pool of cluster network {name:?})", shared.response.pool),
                    });
                }
                if self.cluster.create_under(&member, b"", &key).await.map_err(ipam_unavailable)? {
                    return Ok(shared.response);
                }
                continue;
            }
            let response = match self.inner.request_pool(req.clone()).await {
                Ok(r) => r,
                // Another host may have just taken this subnet for the name: read again.
                Err(cnm_ipamapi::Error::PoolOverlap { requested, existing }) => {
                    if self.cluster.get(&key).await.map_err(ipam_unavailable)?.is_some() {
                        continue;
                    }
                    return Err(cnm_ipamapi::Error::PoolOverlap { requested, existing });
                }
                Err(e) => return Err(e),
            };
            let shared = SharedPool { name: name.clone(), response: response.clone() };
            if self
                .cluster
                .create(&key, &encode(&key, &shared).map_err(record_ipam)?)
                .await
                .map_err(ipam_unavailable)?
            {
                if self.cluster.create_under(&member, b"", &key).await.map_err(ipam_unavailable)? {
                    return Ok(response);
                }
                continue;
            }
            self.inner.release_pool(ReleasePoolRequest { pool_id: response.pool_id }).await?;
        }
        Err(cnm_ipamapi::Error::caused(ErrorKind::Conflict, Contended { what: format!("the pool of {name:?}") }))
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> cnm_ipamapi::Result<()> {
        match self.shared(&req.pool_id).await? {
            Some((key, pool)) => self.leave_pool(&key, &pool).await,
            None => self.inner.release_pool(req).await,
        }
    }

    async fn request_address(&self, req: RequestAddressRequest) -> cnm_ipamapi::Result<RequestAddressResponse> {
        if !req.is_gateway() || self.shared(&req.pool_id).await?.is_none() {
            return self.inner.request_address(req).await;
        }
        let key = gateway_key(&req.pool_id);
        for _ in 0..ROUNDS {
            if let Some(bytes) = self.cluster.get(&key).await.map_err(ipam_unavailable)? {
                let given: RequestAddressResponse = decode(&key, &bytes).map_err(record_ipam)?;
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
            if self.cluster.create(&key, &encode(&key, &given).map_err(record_ipam)?).await.map_err(ipam_unavailable)? {
                return Ok(given);
            }
            let release = ReleaseAddressRequest { pool_id: req.pool_id.clone(), address: given.address.addr() };
            self.inner.release_address(release).await?;
        }
        Err(cnm_ipamapi::Error::caused(ErrorKind::Conflict, Contended { what: "the shared pool's gateway".into() }))
    }

    /// A shared pool's gateway stays for the other hosts: it goes with the pool.
    async fn release_address(&self, req: ReleaseAddressRequest) -> cnm_ipamapi::Result<()> {
        if global(&req.pool_id) {
            let key = gateway_key(&req.pool_id);
            if let Some(bytes) = self.cluster.get(&key).await.map_err(ipam_unavailable)? {
                let given: RequestAddressResponse = decode(&key, &bytes).map_err(record_ipam)?;
                if given.address.addr() == req.address {
                    return Ok(());
                }
            }
        }
        self.inner.release_address(req).await
    }

    /// Leaves the shared pools this host is a member of that `held` (its
    /// journal) no longer holds; then the global IPAM's sweep, with every
    /// shared pool and gateway held (other hosts use them).
    async fn restored(&self, held: &Held) -> cnm_ipamapi::Result<()> {
        let pools = self.all().await?;
        for (key, pool) in &pools {
            let v6 = pool.response.pool.addr().is_ipv6();
            let member = format!("{ROOT}/pool-members/{}/{}/{}", pool.name, family(v6), self.host);
            let ours = self.cluster.get(&member).await.map_err(ipam_unavailable)?.is_some();
            if ours && !held.pools.contains(&pool.response.pool_id) {
                tracing::info!(pool = %pool.response.pool, name = %pool.name, "leaving a shared pool no network of this host holds");
                self.leave_pool(key, pool).await?;
            }
        }
        let mut held = held.clone();
        for (_, pool) in self.all().await? {
            let id = pool.response.pool_id.clone();
            let gateway = gateway_key(&id);
            if let Some(bytes) = self.cluster.get(&gateway).await.map_err(ipam_unavailable)? {
                let given: RequestAddressResponse = decode(&gateway, &bytes).map_err(record_ipam)?;
                held.addresses.insert((id.clone(), given.address.addr()));
            }
            held.pools.insert(id);
        }
        self.inner.restored(&held).await
    }
}
