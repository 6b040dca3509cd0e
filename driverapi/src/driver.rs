//! The `Driver` trait: the contract between the controller and a network driver.

use crate::{
    AllocateNetworkRequest, AllocateNetworkResponse, Capability, CreateEndpointRequest, CreateEndpointResponse,
    CreateNetworkRequest, DeleteEndpointRequest, DeleteNetworkRequest, DiscoveryNotification, EndpointOperInfoRequest,
    EndpointOperInfoResponse, Error, FreeNetworkRequest, GwAllocCheckRequest, GwAllocCheckResponse, JoinRequest,
    JoinResponse, LeaveRequest, ProgramExternalConnectivityRequest, Result, RevokeExternalConnectivityRequest,
};
use async_trait::async_trait;

/// A joined endpoint whose interface was removed by someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostInterface {
    /// The endpoint's network.
    pub network_id: String,
    /// The endpoint.
    pub endpoint_id: String,
}

/// Where a driver reports lost interfaces (see [`Driver::watch_interfaces`]).
pub type LostInterfaceListener = std::sync::Arc<dyn Fn(LostInterface) + Send + Sync>;

/// A network driver: creates networks and endpoints and joins them to sandboxes.
///
/// Drivers return values instead of calling back into the controller. The
/// controller serializes the calls for one endpoint; calls for different
/// networks or endpoints may run concurrently.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// The driver's type name, as users give it (`bridge`, `host`, …).
    fn name(&self) -> &str;

    /// What the driver declares about its scope.
    fn capability(&self) -> Capability;

    /// Creates a network.
    ///
    /// # Behavior
    /// - Idempotent: called again for an existing network (after a restart the
    ///   controller replays every network), it adopts the kernel state it finds
    ///   and re-creates what is missing.
    /// - `InvalidParameter` for malformed options (the error names the key).
    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()>;

    /// Deletes a network and every kernel object the driver made for it.
    ///
    /// # Behavior
    /// - Tolerates objects that are already gone; `NotFound` only for an
    ///   unknown network, which callers may ignore.
    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()>;

    /// Creates an endpoint. The driver may fill fields that are empty in
    /// `req.interface` and returns only those; it must not change given values.
    ///
    /// # Behavior
    /// - Idempotent for an endpoint the driver already knows (restart replay).
    /// - `NotFound` if the network is unknown.
    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse>;

    /// Deletes an endpoint; its links are removed if they still exist.
    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()>;

    /// Operational data of an endpoint (free-form).
    async fn endpoint_oper_info(&self, req: EndpointOperInfoRequest) -> Result<EndpointOperInfoResponse> {
        let _ = req;
        Ok(EndpointOperInfoResponse::default())
    }

    /// Joins an endpoint to a sandbox: prepares the link the controller places
    /// in the sandbox and returns gateways and routes.
    ///
    /// # Behavior
    /// - A failed join must leave nothing behind: the controller does not call
    ///   `leave` after a failed `join`.
    async fn join(&self, req: JoinRequest) -> Result<JoinResponse>;

    /// Undoes a join; removes the links the join made.
    ///
    /// # Behavior
    /// - Tolerates links that are already gone (crash rollback calls it too).
    async fn leave(&self, req: LeaveRequest) -> Result<()>;

    /// Whether a network with these options needs no gateway address, per
    /// family (Docker 28's `GwAllocChecker`). The controller asks before it
    /// allocates the pools, and only a driver whose capability says
    /// `gw_alloc_checker`; a gateway the user gave is reserved anyway. The
    /// default skips nothing.
    async fn gateway_allocation(&self, req: GwAllocCheckRequest) -> Result<GwAllocCheckResponse> {
        let _ = req;
        Ok(GwAllocCheckResponse::default())
    }

    /// Programs external connectivity (published ports, NAT) for the sandbox's
    /// gateway endpoint. The default does nothing.
    async fn program_external_connectivity(&self, req: ProgramExternalConnectivityRequest) -> Result<()> {
        let _ = req;
        Ok(())
    }

    /// Revokes what `program_external_connectivity` did. The default does nothing.
    async fn revoke_external_connectivity(&self, req: RevokeExternalConnectivityRequest) -> Result<()> {
        let _ = req;
        Ok(())
    }

    /// The controller restored everything of this driver at start (every
    /// network told again with `create_network`, every endpoint with
    /// `create_endpoint`, every gateway endpoint's ports with
    /// `program_external_connectivity`): whatever the driver finds in the
    /// kernel that none of them claims is a leftover of a crash, which it may
    /// remove now. Not part of the plugin protocol. The default does nothing.
    async fn restored(&self) -> Result<()> {
        Ok(())
    }

    /// What the driver put back after someone else removed it (drift
    /// repair), by kind, with counts. Not part of the plugin protocol. The
    /// default repairs nothing.
    fn repairs(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// Gives the driver where to report a joined endpoint whose interface
    /// someone else removed (drift), so that the controller joins it again
    /// (the driver's part through [`Driver::join`]). Called once, when the
    /// controller takes the driver on. Not part of the plugin protocol. The
    /// default reports nothing.
    fn watch_interfaces(&self, listener: LostInterfaceListener) {
        let _ = listener;
    }

    /// A node or datastore was discovered. The default ignores the event.
    async fn discover_new(&self, event: DiscoveryNotification) -> Result<()> {
        let _ = event;
        Ok(())
    }

    /// A node or datastore went away. The default ignores the event.
    async fn discover_delete(&self, event: DiscoveryNotification) -> Result<()> {
        let _ = event;
        Ok(())
    }

    /// Allocates network-wide resources on a swarm manager.
    ///
    /// # Behavior
    /// - Local drivers keep the default, which answers `NotImplemented`.
    async fn network_allocate(&self, req: AllocateNetworkRequest) -> Result<AllocateNetworkResponse> {
        let _ = req;
        Err(Error::not_implemented("AllocateNetwork"))
    }

    /// Frees what `network_allocate` allocated.
    ///
    /// # Behavior
    /// - Local drivers keep the default, which answers `NotImplemented`.
    async fn network_free(&self, req: FreeNetworkRequest) -> Result<()> {
        let _ = req;
        Err(Error::not_implemented("FreeNetwork"))
    }
}
