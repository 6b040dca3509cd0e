//! The `Ipam` trait: the contract between the controller and an IPAM driver.

use crate::{
    AddressSpaces, IpamCapability, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse, Result,
};
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// An IPAM driver: hands out pools and addresses in them.
#[async_trait]
pub trait Ipam: Send + Sync + 'static {
    /// What the IPAM needs from the controller.
    fn capability(&self) -> IpamCapability {
        IpamCapability::default()
    }

    /// Whether the IPAM keeps pool `pool_id` and its addresses itself across
    /// a controller's restart (in a store of its own): the controller then
    /// never asks for them again at start, and releases them when it rolls
    /// back an interrupted operation. `None` (the default): as for any IPAM
    /// of its name and capability.
    fn keeps(&self, pool_id: &str) -> Option<bool> {
        let _ = pool_id;
        None
    }

    /// The default local and global address spaces.
    async fn default_address_spaces(&self) -> Result<AddressSpaces>;

    /// Allocates a pool: the requested one, or one the IPAM chooses.
    ///
    /// # Behavior
    /// - `InvalidAddressSpace`, `InvalidPool`, `InvalidSubPool` for bad input;
    ///   `PoolOverlap` when a requested pool overlaps an allocated one;
    ///   `NoAvailablePool` when the IPAM has nothing left to choose.
    async fn request_pool(&self, req: RequestPoolRequest) -> Result<RequestPoolResponse>;

    /// Releases a pool.
    ///
    /// # Behavior
    /// - `PoolNotFound` for an unknown id.
    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<()>;

    /// Allocates an address in a pool: the preferred one, or the next free one.
    ///
    /// # Behavior
    /// - `AddressInUse`, `AddressOutOfRange` for a preferred address that
    ///   cannot be had; `NoAvailableIps` when the (sub-)pool is full.
    async fn request_address(&self, req: RequestAddressRequest) -> Result<RequestAddressResponse>;

    /// Releases an address.
    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<()>;

    /// Called once after a controller's restart with everything its records
    /// hold of this IPAM: an IPAM that keeps its own state may release what
    /// it handed out to this host that no record holds (a crash between
    /// its answer and the record's write). The default does nothing.
    async fn restored(&self, held: &Held) -> Result<()> {
        let _ = held;
        Ok(())
    }
}

/// What a controller's records hold of one IPAM after a restart (see
/// [`Ipam::restored`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// The pools, by id.
    pub pools: BTreeSet<String>,
    /// The addresses (gateways, auxiliary addresses, endpoints'), by pool id.
    pub addresses: BTreeSet<(String, IpAddr)>,
}

/// Supplies IPAM drivers by name on demand (remote plugins).
#[async_trait]
pub trait IpamProvider: Send + Sync + 'static {
    /// The IPAM driver named `name`, or `None` if this provider has no such driver.
    ///
    /// # Behavior
    /// - Answers quickly (as a network-driver provider's `network_driver` does).
    async fn ipam_driver(&self, name: &str) -> Result<Option<std::sync::Arc<dyn Ipam>>>;

    /// The names this provider can supply now (for error messages).
    async fn available(&self) -> Vec<String> {
        Vec::new()
    }
}
