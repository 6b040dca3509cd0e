//! An IPAM served to Docker, with what it hands out journaled: a pool or
//! address is recorded once the IPAM granted it and forgotten before it
//! is released. At start, an IPAM that keeps no state of its own (the
//! default IPAM, in memory) is asked for every recorded pool and address
//! again; one that keeps its own (the global IPAM, in etcd) is told what
//! the journal holds and releases what it granted to this host beyond
//! that (a crash between its answer and the record).

use crate::journal::Journal;
use cnm_ipamapi::{
    AddressSpaces, Held, Ipam, IpamCapability, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse, Result,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;

/// A pool Docker was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PoolEntry {
    request: RequestPoolRequest,
    response: RequestPoolResponse,
}

/// An address Docker was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AddressEntry {
    request: RequestAddressRequest,
    address: IpAddr,
}

/// An IPAM whose grants are journaled (see the module's header).
pub struct JournaledIpam {
    plugin: String,
    inner: Arc<dyn Ipam>,
    journal: Journal,
}

fn failed(e: crate::Error) -> cnm_ipamapi::Error {
    cnm_ipamapi::Error::caused(cnm_driverapi::ErrorKind::Internal, e)
}

impl JournaledIpam {
    /// `inner`, served as plugin `plugin`, journaled in `journal`.
    pub fn new(plugin: &str, inner: Arc<dyn Ipam>, journal: Journal) -> Self {
        JournaledIpam { plugin: plugin.to_string(), inner, journal }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    fn pool_key(&self, pool_id: &str) -> String {
        format!("pool/{}/{pool_id}", self.plugin)
    }

    fn address_prefix(&self, pool_id: &str) -> String {
        format!("addr/{}/{pool_id}#", self.plugin)
    }

    fn address_key(&self, pool_id: &str, address: IpAddr) -> String {
        format!("{}{address}", self.address_prefix(pool_id))
    }

    /// Replays the journal into the IPAM (see the module's header); the
    /// number of pools and addresses held.
    pub async fn restore(&self) -> crate::Result<usize> {
        let pools: Vec<(String, PoolEntry)> = self.journal.load(&format!("pool/{}/", self.plugin))?;
        let addresses: Vec<(String, AddressEntry)> = self.journal.load(&format!("addr/{}/", self.plugin))?;
        let mut held = Held::default();
        for (_, p) in &pools {
            let id = &p.response.pool_id;
            held.pools.insert(id.clone());
            if self.inner.keeps(id) == Some(true) {
                continue;
            }
            let again = RequestPoolRequest { pool: Some(p.response.pool), ..p.request.clone() };
            match self.inner.request_pool(again).await {
                Ok(r) if r.pool_id == *id => {}
                Ok(r) => {
                    tracing::error!(plugin = %self.plugin, pool = %id, got = %r.pool_id, "a pool came back under another id")
                }
                Err(e) => {
                    tracing::error!(plugin = %self.plugin, pool = %id, error = %cnm_ipamapi::Chain(&e), "failed to claim a pool again")
                }
            }
        }
        for (_, a) in &addresses {
            let pool = &a.request.pool_id;
            held.addresses.insert((pool.clone(), a.address));
            if self.inner.keeps(pool) == Some(true) {
                continue;
            }
            let again = RequestAddressRequest { address: Some(a.address), ..a.request.clone() };
            if let Err(e) = self.inner.request_address(again).await {
                tracing::error!(plugin = %self.plugin, address = %a.address, error = %cnm_ipamapi::Chain(&e), "failed to claim an address again");
            }
        }
        let count = held.pools.len() + held.addresses.len();
        if let Err(e) = self.inner.restored(&held).await {
            tracing::warn!(plugin = %self.plugin, error = %cnm_ipamapi::Chain(&e), "the IPAM failed to clean up after the restore");
        }
        Ok(count)
    }
}

#[async_trait::async_trait]
impl Ipam for JournaledIpam {
    fn capability(&self) -> IpamCapability {
        self.inner.capability()
    }

    async fn default_address_spaces(&self) -> Result<AddressSpaces> {
        self.inner.default_address_spaces().await
    }

    async fn request_pool(&self, req: RequestPoolRequest) -> Result<RequestPoolResponse> {
        let response = self.inner.request_pool(req.clone()).await?;
        crate::kill::point("plugin.pool.granted");
        let entry = PoolEntry { request: req, response: response.clone() };
        if let Err(e) = self.journal.put(&self.pool_key(&response.pool_id), &entry).await {
            let release = ReleasePoolRequest { pool_id: response.pool_id.clone() };
            if let Err(r) = self.inner.release_pool(release).await {
                tracing::warn!(pool = %response.pool_id, error = %cnm_ipamapi::Chain(&r), "releasing a pool that could not be recorded");
            }
            return Err(failed(e));
        }
        Ok(response)
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<()> {
        for (key, _) in self.journal.load::<AddressEntry>(&self.address_prefix(&req.pool_id)).map_err(failed)? {
            self.journal.remove(&key).await.map_err(failed)?;
        }
        self.journal.remove(&self.pool_key(&req.pool_id)).await.map_err(failed)?;
        self.inner.release_pool(req).await
    }

    async fn request_address(&self, req: RequestAddressRequest) -> Result<RequestAddressResponse> {
        let response = self.inner.request_address(req.clone()).await?;
        crate::kill::point("plugin.address.granted");
        let address = response.address.addr();
        let entry = AddressEntry { request: req.clone(), address };
        if let Err(e) = self.journal.put(&self.address_key(&req.pool_id, address), &entry).await {
            let release = ReleaseAddressRequest { pool_id: req.pool_id.clone(), address };
            if let Err(r) = self.inner.release_address(release).await {
                tracing::warn!(%address, error = %cnm_ipamapi::Chain(&r), "releasing an address that could not be recorded");
            }
            return Err(failed(e));
        }
        Ok(response)
    }

    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<()> {
        self.journal.remove(&self.address_key(&req.pool_id, req.address)).await.map_err(failed)?;
        crate::kill::point("plugin.address.releasing");
        self.inner.release_address(req).await
    }
}
