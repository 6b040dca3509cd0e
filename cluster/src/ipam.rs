//! `GlobalIpam`: the `GlobalDefault` address space in the cluster store.
//!
//! Keys: `ipam/pools/<pool>` (one per pool, created by compare-and-swap;
//! `/` in a prefix is written `_`) and `ipam/addrs/<pool>/<address>` (one
//! per address given out), each holding the mark of the host that asked
//! for it (its engine id, or its address): after a restart, a host releases what it was given that
//! its records do not hold (a crash between the answer and the record).
//! Automatic pools are /24s of 10.0.0.0/8, the lowest free; addresses are
//! the lowest free of the pool (or its range).

use crate::Cluster;
use async_trait::async_trait;
use cnm_ipamapi::{
    AddressSpaces, Error, Held, Ipam, IpamCapability, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse, Result,
};
use ipnet::{IpNet, Ipv4Net};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// The global address space's name (Docker's).
pub const GLOBAL_DEFAULT: &str = "GlobalDefault";
/// How many times a compare-and-swap lost to another host is tried again.
const ATTEMPTS: usize = 64;

/// The default IPAM of a cluster member: `GlobalDefault` in the cluster
/// store, every other space in the local IPAM it wraps.
pub struct GlobalIpam {
    cluster: Cluster,
    local: Arc<dyn Ipam>,
    /// The mark of what this host is given (see [`GlobalIpam::with_owner`]).
    owner: Vec<u8>,
}

impl std::fmt::Debug for GlobalIpam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalIpam").field("cluster", &self.cluster).finish()
    }
}

fn enc(net: &IpNet) -> String {
    net.to_string().replace('/', "_")
}

fn store_error(e: crate::Error) -> Error {
    Error::caused(cnm_ipamapi::ErrorKind::Unavailable, e)
}

/// The pool and sub-pool a global pool id names:
/// `GlobalDefault/<pool>[/<sub>]`.
fn parse_id(id: &str) -> Option<(IpNet, Option<IpNet>)> {
    parse_full_id(id).map(|(p, s, _)| (p, s))
}

/// [`parse_id`] with the store's revision that created the pool's key, when
/// the id carries it (`…@<revision>`; ids given out before it have none).
fn parse_full_id(id: &str) -> Option<(IpNet, Option<IpNet>, Option<i64>)> {
    let rest = id.strip_prefix(GLOBAL_DEFAULT)?.strip_prefix('/')?;
    let (rest, revision) = match rest.rsplit_once('@') {
        Some((r, rev)) => (r, Some(rev.parse().ok()?)),
        None => (rest, None),
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [a, l] => Some((format!("{a}/{l}").parse().ok()?, None, revision)),
        [a, l, b, m] => Some((format!("{a}/{l}").parse().ok()?, Some(format!("{b}/{m}").parse().ok()?), revision)),
        _ => None,
    }
}

impl GlobalIpam {
    /// `GlobalDefault` in `cluster`, the rest in `local`.
    pub fn new(cluster: Cluster, local: Arc<dyn Ipam>) -> Self {
        let owner = cluster.advertise().to_string().into_bytes();
        GlobalIpam { cluster, local, owner }
    }

    /// Marks what this host is given with `identity` (a daemon's engine
    /// id) instead of its advertised address, which another daemon may
    /// share or take over; what a restart sweeps is only what carries it.
    pub fn with_owner(mut self, identity: &str) -> Self {
        if !identity.is_empty() {
            self.owner = identity.as_bytes().to_vec();
        }
        self
    }

    /// The value of the keys this host creates: its mark.
    fn owner(&self) -> Vec<u8> {
        self.owner.clone()
    }

    /// Releases the pools and addresses of the global space this host was
    /// given that `held` does not hold.
    async fn sweep(&self, held: &Held) -> Result<()> {
        let owner = self.owner();
        let pools: BTreeSet<IpNet> = held.pools.iter().filter_map(|id| Some(parse_id(id)?.0)).collect();
        let (kvs, _) = self.cluster.list("ipam/pools/").await.map_err(store_error)?;
        for (key, value) in kvs {
            let Some(pool) = key.strip_prefix("ipam/pools/").and_then(|p| p.replace('_', "/").parse::<IpNet>().ok())
            else {
                continue;
            };
            if value == owner && !pools.contains(&pool) {
                tracing::info!(%pool, "releasing a pool no network holds (a crash before its record)");
                self.release_pool(ReleasePoolRequest { pool_id: format!("{GLOBAL_DEFAULT}/{pool}") }).await?;
            }
        }
        let addresses: BTreeSet<(IpNet, IpAddr)> =
            held.addresses.iter().filter_map(|(id, a)| Some((parse_id(id)?.0, *a))).collect();
        let (kvs, _) = self.cluster.list("ipam/addrs/").await.map_err(store_error)?;
        for (key, value) in kvs {
            let Some((pool, addr)) = key.strip_prefix("ipam/addrs/").and_then(|rest| {
                let (pool, addr) = rest.rsplit_once('/')?;
                Some((pool.replace('_', "/").parse::<IpNet>().ok()?, addr.parse::<IpAddr>().ok()?))
            }) else {
                continue;
            };
            if value == owner && !addresses.contains(&(pool, addr)) {
                tracing::info!(%addr, "releasing an address no record holds (a crash before its record)");
                self.cluster.delete(&key).await.map_err(store_error)?;
            }
        }
        Ok(())
    }

    async fn pools(&self) -> Result<Vec<IpNet>> {
        let (kvs, _) = self.cluster.list("ipam/pools/").await.map_err(store_error)?;
        Ok(kvs.iter().filter_map(|(k, _)| k.strip_prefix("ipam/pools/")?.replace('_', "/").parse().ok()).collect())
    }

    async fn request_global_pool(&self, req: &RequestPoolRequest) -> Result<RequestPoolResponse> {
        // A pool of an unspecified address asks for a size alone (`/0`: a /24).
        let size = match req.pool {
            Some(p) if p.addr().is_unspecified() => {
                if req.v6 || !(8..=30).contains(&p.prefix_len()) && p.prefix_len() != 0 {
                    return Err(Error::InvalidPool(format!(
                        "{p}: the global space hands out IPv4 subnets of /8 to /30 from 10.0.0.0/8"
                    )));
                }
                Some(if p.prefix_len() == 0 { 24 } else { p.prefix_len() })
            }
            _ => None,
        };
        if let (Some(_), Some(sub)) = (size, req.sub_pool) {
            return Err(Error::InvalidSubPool(format!("{sub}: a pool requested by its size alone takes no range")));
        }
        let requested = req.pool.filter(|_| size.is_none());
        for _ in 0..ATTEMPTS {
            let existing = self.pools().await?;
            let pool = match requested {
                Some(p) => {
                    if let Some(e) = existing.iter().find(|e| e.contains(&p.network()) || p.contains(&e.network())) {
                        return Err(Error::PoolOverlap { requested: p.to_string(), existing: e.to_string() });
                    }
                    p
                }
                None if req.v6 => return Err(Error::NoAvailablePool),
                None => {
                    let base: Ipv4Net = "10.0.0.0/8".parse().map_err(|_| Error::NoAvailablePool)?;
                    let free = base
                        .subnets(size.unwrap_or(24))
                        .map_err(|_| Error::NoAvailablePool)?
                        .map(IpNet::V4)
                        .find(|c| !existing.iter().any(|e| e.contains(&c.network()) || c.contains(&e.network())));
                    free.ok_or(Error::NoAvailablePool)?
                }
            };
            let created = self
                .cluster
                .create_revision(&format!("ipam/pools/{}", enc(&pool)), &self.owner())
                .await
                .map_err(store_error)?;
            if let Some(revision) = created {
                // The id carries the key's revision: a release by a host that
                // lags never takes the pool from a later network given it again.
                let mut id = format!("{GLOBAL_DEFAULT}/{pool}");
                if let Some(s) = req.sub_pool {
                    id = format!("{id}/{s}");
                }
                let id = format!("{id}@{revision}");
                return Ok(RequestPoolResponse { pool_id: id, pool, data: BTreeMap::new() });
            }
            if requested.is_some() {
                return Err(Error::PoolOverlap { requested: pool.to_string(), existing: pool.to_string() });
            }
        }
        Err(Error::NoAvailablePool)
    }

    async fn request_global_address(&self, req: &RequestAddressRequest) -> Result<RequestAddressResponse> {
        let (pool, sub) = parse_id(&req.pool_id).ok_or_else(|| Error::PoolNotFound(req.pool_id.clone()))?;
        let pool_key = format!("ipam/pools/{}", enc(&pool));
        let missing_pool =
            async || -> Result<bool> { Ok(self.cluster.get(&pool_key).await.map_err(store_error)?.is_none()) };
        let dir = format!("ipam/addrs/{}/", enc(&pool));
        for _ in 0..ATTEMPTS {
            let addr = match req.address {
                Some(a) => a,
                None => {
                    let (kvs, _) = self.cluster.list(&dir).await.map_err(store_error)?;
                    let used: BTreeSet<IpAddr> =
                        kvs.iter().filter_map(|(k, _)| k.strip_prefix(&dir)?.parse().ok()).collect();
                    let range = sub.unwrap_or(pool);
                    first_free(range, pool, &used).ok_or(Error::NoAvailableIps)?
                }
            };
            if !pool.contains(&addr) {
                return Err(Error::AddressOutOfRange(addr.to_string()));
            }
            // One transaction: the pool still exists and the address is free.
            if self
                .cluster
                .create_under(&format!("{dir}{addr}"), &self.owner(), &pool_key)
                .await
                .map_err(store_error)?
            {
                let address = IpNet::new(addr, pool.prefix_len()).map_err(|e| Error::InvalidRequest(e.to_string()))?;
                return Ok(RequestAddressResponse { address, data: BTreeMap::new() });
            }
            if missing_pool().await? {
                return Err(Error::PoolNotFound(req.pool_id.clone()));
            }
            if req.address.is_some() {
                return Err(Error::AddressInUse(addr.to_string()));
            }
        }
        Err(Error::NoAvailableIps)
    }
}

/// The lowest address of `range` (within `pool`) that is neither used, the
/// pool's network address nor its broadcast address.
fn first_free(range: IpNet, pool: IpNet, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    range.hosts().find(|a| !used.contains(a) && *a != pool.network() && *a != pool.broadcast())
}

#[async_trait]
impl Ipam for GlobalIpam {
    fn capability(&self) -> IpamCapability {
        self.local.capability()
    }

    /// The global space is kept in the cluster store; the rest as the local IPAM says.
    fn keeps(&self, pool_id: &str) -> Option<bool> {
        if parse_id(pool_id).is_some() { Some(true) } else { self.local.keeps(pool_id) }
    }

    async fn default_address_spaces(&self) -> Result<AddressSpaces> {
        let local = self.local.default_address_spaces().await?.local;
        Ok(AddressSpaces { local, global: GLOBAL_DEFAULT.to_string() })
    }

    async fn request_pool(&self, req: RequestPoolRequest) -> Result<RequestPoolResponse> {
        if req.address_space != GLOBAL_DEFAULT {
            return self.local.request_pool(req).await;
        }
        self.request_global_pool(&req).await
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<()> {
        let Some((pool, _, revision)) = parse_full_id(&req.pool_id) else {
            return self.local.release_pool(req).await;
        };
        let (key, addrs) = (format!("ipam/pools/{}", enc(&pool)), format!("ipam/addrs/{}/", enc(&pool)));
        if let Some(rev) = revision {
            // Only the pool given with this id (not one given again since).
            let keys = [(addrs.as_str(), true), (key.as_str(), false)];
            self.cluster.delete_if_created_at(&key, rev, &keys).await.map_err(store_error)?;
            return Ok(());
        }
        self.cluster.delete_prefix(&addrs).await.map_err(store_error)?;
        self.cluster.delete(&key).await.map_err(store_error)
    }

    async fn request_address(&self, req: RequestAddressRequest) -> Result<RequestAddressResponse> {
        if parse_id(&req.pool_id).is_none() {
            return self.local.request_address(req).await;
        }
        self.request_global_address(&req).await
    }

    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<()> {
        let Some((pool, _, revision)) = parse_full_id(&req.pool_id) else {
            return self.local.release_address(req).await;
        };
        let key = format!("ipam/addrs/{}/{}", enc(&pool), req.address);
        if let Some(rev) = revision {
            let guard = format!("ipam/pools/{}", enc(&pool));
            self.cluster.delete_if_created_at(&guard, rev, &[(key.as_str(), false)]).await.map_err(store_error)?;
            return Ok(());
        }
        self.cluster.delete(&key).await.map_err(store_error)
    }

    /// The global space's pools and addresses given to this host that no
    /// record holds are released; the local IPAM is told the rest.
    async fn restored(&self, held: &Held) -> Result<()> {
        let global = |id: &String| parse_id(id).is_some();
        let local = Held {
            pools: held.pools.iter().filter(|id| !global(id)).cloned().collect(),
            addresses: held.addresses.iter().filter(|(id, _)| !global(id)).cloned().collect(),
        };
        self.local.restored(&local).await?;
        self.sweep(held).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ids_and_free_addresses() {
        let (p, s) = parse_id("GlobalDefault/10.0.3.0/24/10.0.3.128/25").unwrap();
        assert_eq!((p.to_string(), s.map(|s| s.to_string())), ("10.0.3.0/24".into(), Some("10.0.3.128/25".into())));
        let (p, s, rev) = parse_full_id("GlobalDefault/10.0.3.0/24@42").unwrap();
        assert_eq!((p.to_string(), s, rev), ("10.0.3.0/24".into(), None, Some(42)));
        assert!(parse_full_id("GlobalDefault/10.0.3.0/24@x").is_none());
        assert!(parse_id("LocalDefault/10.0.3.0/24").is_none());
        let pool: IpNet = "10.0.3.0/24".parse().unwrap();
        let used: BTreeSet<IpAddr> = ["10.0.3.1".parse().unwrap()].into();
        assert_eq!(first_free(pool, pool, &used), Some("10.0.3.2".parse().unwrap()));
    }
}
