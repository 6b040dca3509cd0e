//! The `host` network driver: sandboxes on a host network share the host's
//! network stack (Docker's `--network host`), so the driver adds no
//! interface. It behaves as the `null` driver under another name.

use async_trait::async_trait;
use cnm_driver_null::NullDriver;
use cnm_driverapi::{
    Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, JoinRequest, JoinResponse, LeaveRequest, Result,
};

/// The driver's type name.
pub const NAME: &str = "host";

/// The `host` network driver.
#[derive(Debug)]
pub struct HostDriver(NullDriver);

impl Default for HostDriver {
    fn default() -> Self {
        HostDriver(NullDriver::named(NAME))
    }
}

impl HostDriver {
    /// A host driver with no network.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Driver for HostDriver {
    fn name(&self) -> &str {
        NAME
    }
    /// Local, and its networks are the host's own stack.
    fn capability(&self) -> Capability {
        Capability::host_stack()
    }
    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        self.0.create_network(req).await
    }
    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        self.0.delete_network(req).await
    }
    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        self.0.create_endpoint(req).await
    }
    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        self.0.delete_endpoint(req).await
    }
    async fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        self.0.join(req).await
    }
    async fn leave(&self, req: LeaveRequest) -> Result<()> {
        self.0.leave(req).await
    }
}
