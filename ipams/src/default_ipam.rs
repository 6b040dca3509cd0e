//! The default IPAM: predefined local and global pools; the lowest free
//! address (Docker 20.10's default), or serial allocation with Docker's
//! `com.docker.network.ipam.serial=true` option.

use crate::config::{DefaultIpamConfig, PoolSpec};
use crate::ids::BuildIdHasher;
use crate::pool::AddressPool;
use crate::space::Space;
use async_trait::async_trait;
use cnm_ipamapi::HostNetworks;
use cnm_ipamapi::{
    AddressSpaces, Error, ErrorKind, GLOBAL_DEFAULT, Ipam, LOCAL_DEFAULT, ReleaseAddressRequest, ReleasePoolRequest,
    RequestAddressRequest, RequestAddressResponse, RequestPoolRequest, RequestPoolResponse, Result,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The built-in IPAM driver, with the "LocalDefault" and "GlobalDefault" address spaces.
pub struct DefaultIpam {
    /// The predefined pools.
    config: DefaultIpamConfig,
    /// Networks of the host that automatic local pools avoid.
    host: Option<Arc<dyn HostNetworks>>,
    /// Allocated pools and addresses.
    state: Mutex<State>,
}

/// The mutable state of the IPAM.
#[derive(Default)]
struct State {
    /// Allocated pools of the local space.
    local: Space,
    /// Allocated pools of the global space.
    global: Space,
    /// Allocators by pool id.
    pools: HashMap<String, Entry, BuildIdHasher>,
}

/// One allocated pool.
struct Entry {
    /// Whether it belongs to the global space.
    global: bool,
    /// Its address allocator.
    alloc: AddressPool,
    /// Serial allocation (the pool was requested with [`SERIAL_OPTION`]).
    serial: bool,
}

/// Docker's option for serial, delayed-reuse allocation (in the pool's or the address request's options).
pub const SERIAL_OPTION: &str = "com.docker.network.ipam.serial";

/// Whether `options` ask for serial allocation.
fn serial(options: Option<&BTreeMap<String, String>>) -> bool {
    options.and_then(|o| o.get(SERIAL_OPTION)).is_some_and(|v| v == "true")
}

impl State {
    /// The allocated pools of a space.
    fn space(&mut self, global: bool) -> &mut Space {
        if global { &mut self.global } else { &mut self.local }
    }
}

impl fmt::Debug for DefaultIpam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultIpam")
            .field("config", &self.config)
            .field("host_networks", &self.host.is_some())
            .field("pools", &self.lock().pools.len())
            .finish()
    }
}

/// Whether the address space is the global one; an error for unknown spaces.
fn is_global(space: &str) -> Result<bool> {
    match space {
        LOCAL_DEFAULT => Ok(false),
        GLOBAL_DEFAULT => Ok(true),
        other => Err(Error::InvalidAddressSpace(other.to_string())),
    }
}

/// The id of a pool: `<space>/<pool>` or `<space>/<pool>/<sub-pool>`.
fn pool_id(space: &str, pool: &IpNet, sub: Option<&IpNet>) -> String {
    match sub {
        Some(sub) => format!("{space}/{pool}/{sub}"),
        None => format!("{space}/{pool}"),
    }
}

/// An internal error with context.
fn internal(message: String) -> Error {
    Error::Other { kind: ErrorKind::Internal, message }
}

impl DefaultIpam {
    /// An IPAM choosing automatic pools from `config`.
    pub fn new(config: DefaultIpamConfig) -> Self {
        DefaultIpam { config, host: None, state: Mutex::new(State::default()) }
    }

    /// Makes automatic local pools avoid the networks `host` reports.
    pub fn with_host_networks(mut self, host: Arc<dyn HostNetworks>) -> Self {
        self.host = Some(host);
        self
    }

    /// The predefined pools.
    pub fn config(&self) -> &DefaultIpamConfig {
        &self.config
    }

    /// Bytes used by the address allocators of all allocated pools.
    pub fn memory_bytes(&self) -> usize {
        self.lock().pools.values().map(|e| e.alloc.memory_bytes()).sum()
    }

    /// The state, even if a panicking thread poisoned the lock.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The host's networks, when the choice is for the local space.
    async fn host_networks(&self, global: bool) -> Result<Vec<IpNet>> {
        match &self.host {
            Some(host) if !global => host
                .networks()
                .await
                .map_err(|e| internal(format!("could not list the host's networks: {}", cnm_ipamapi::Chain(&e)))),
            _ => Ok(Vec::new()),
        }
    }
}

impl Default for DefaultIpam {
    fn default() -> Self {
        DefaultIpam::new(DefaultIpamConfig::default())
    }
}

#[async_trait]
impl Ipam for DefaultIpam {
    async fn default_address_spaces(&self) -> Result<AddressSpaces> {
        Ok(AddressSpaces { local: LOCAL_DEFAULT.to_string(), global: GLOBAL_DEFAULT.to_string() })
    }

    async fn request_pool(&self, req: RequestPoolRequest) -> Result<RequestPoolResponse> {
        let global = is_global(&req.address_space)?;
        // A pool of an unspecified address asks for a size only (Docker 29's
        // `--subnet 0.0.0.0/24`, `::/56`): one of that size from the
        // predefined pools (`/0`: their own size).
        let sized = req.pool.filter(|p| p.addr().is_unspecified());
        if let Some(size) = sized {
            if let Some(sub) = req.sub_pool {
                return Err(Error::InvalidSubPool(format!("{sub}: a pool requested by its size alone takes no range")));
            }
            if size.addr().is_ipv6() != req.v6 {
                return Err(Error::InvalidPool(format!("{size}: not of the family the request asks for")));
            }
            let host = self.host_networks(global).await?;
            let mut state = self.lock();
            let specs: Vec<PoolSpec> = self
                .config
                .pools(global, req.v6)
                .iter()
                .filter_map(|s| match size.prefix_len() {
                    0 => Some(*s),
                    p => PoolSpec::new(s.base, p).ok(),
                })
                .collect();
            if specs.is_empty() {
                return Err(Error::InvalidPool(format!("no predefined pool can hold a {size} subnet")));
            }
            let pool = state.space(global).choose(&specs, req.v6, &host).ok_or(Error::NoAvailablePool)?;
            let alloc = AddressPool::new(pool, None)?;
            let id = pool_id(&req.address_space, &pool, None);
            state.space(global).insert(pool);
            state.pools.insert(id.clone(), Entry { global, alloc, serial: serial(Some(&req.options)) });
            return Ok(RequestPoolResponse { pool_id: id, pool, data: BTreeMap::new() });
        }
        let (pool, alloc) = match req.pool {
            Some(pool) => {
                let pool_v6 = matches!(pool, IpNet::V6(_));
                if pool_v6 != req.v6 {
                    return Err(Error::InvalidPool(format!(
                        "{pool} is an IPv{} pool but the request asks for IPv{}",
                        if pool_v6 { 6 } else { 4 },
                        if req.v6 { 6 } else { 4 },
                    )));
                }
                (pool, AddressPool::new(pool, req.sub_pool)?)
            }
            None => {
                if let Some(sub) = req.sub_pool {
                    return Err(Error::InvalidSubPool(format!("{sub}: a sub-pool needs an explicit pool")));
                }
                let host = self.host_networks(global).await?;
                let mut state = self.lock();
                let specs = self.config.pools(global, req.v6);
                let pool = state.space(global).choose(specs, req.v6, &host).ok_or(Error::NoAvailablePool)?;
                let alloc = AddressPool::new(pool, None)?;
                let id = pool_id(&req.address_space, &pool, None);
                state.space(global).insert(pool);
                state.pools.insert(id.clone(), Entry { global, alloc, serial: serial(Some(&req.options)) });
                return Ok(RequestPoolResponse { pool_id: id, pool, data: BTreeMap::new() });
            }
        };
        let mut state = self.lock();
        if let Some(existing) = state.space(global).conflict(&pool) {
            return Err(Error::PoolOverlap { requested: pool.to_string(), existing: existing.to_string() });
        }
        let id = pool_id(&req.address_space, &pool, req.sub_pool.as_ref());
        state.space(global).insert(pool);
        state.pools.insert(id.clone(), Entry { global, alloc, serial: serial(Some(&req.options)) });
        Ok(RequestPoolResponse { pool_id: id, pool, data: BTreeMap::new() })
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<()> {
        let mut state = self.lock();
        let entry = state.pools.remove(&req.pool_id).ok_or(Error::PoolNotFound(req.pool_id))?;
        state.space(entry.global).remove(&entry.alloc.network());
        Ok(())
    }

    async fn request_address(&self, req: RequestAddressRequest) -> Result<RequestAddressResponse> {
        let (addr, prefix) = {
            let mut state = self.lock();
            let Some(entry) = state.pools.get_mut(&req.pool_id) else {
                return Err(Error::PoolNotFound(req.pool_id));
            };
            let alloc = &mut entry.alloc;
            let addr = match req.address {
                Some(ip) => alloc.allocate(ip)?,
                None if req.is_gateway() => alloc.allocate_first()?,
                None if entry.serial || serial(req.options.as_ref()) => alloc.allocate_next()?,
                None => alloc.allocate_lowest()?,
            };
            (addr, alloc.network().prefix_len())
        };
        let address = IpNet::new(addr, prefix).map_err(|e| internal(format!("address {addr}/{prefix}: {e}")))?;
        Ok(RequestAddressResponse { address, data: BTreeMap::new() })
    }

    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<()> {
        let mut state = self.lock();
        let Some(entry) = state.pools.get_mut(&req.pool_id) else {
            return Err(Error::PoolNotFound(req.pool_id));
        };
        if !entry.alloc.release(req.address)? {
            tracing::debug!(
                pool = %req.pool_id,
                address = %req.address,
                "released an address that was not allocated"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
