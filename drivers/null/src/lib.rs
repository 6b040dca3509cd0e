//! The `null` network driver: endpoints get no interface, so a sandbox on a
//! null network has loopback only (Docker's `--network none`).

use async_trait::async_trait;
use cnm_driverapi::{
    Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, Error, JoinRequest, JoinResponse, LeaveRequest, Result,
};
use std::collections::HashSet;
use std::sync::Mutex;

/// The driver's type name.
pub const NAME: &str = "null";

/// The `null` network driver.
#[derive(Debug, Default)]
pub struct NullDriver {
    networks: Mutex<HashSet<String>>,
}

impl NullDriver {
    /// A null driver with no networks.
    pub fn new() -> Self {
        Self::default()
    }

    fn known(&self, network_id: &str) -> Result<()> {
        let nets = self.networks.lock().map_err(|_| Error::internal("null driver state poisoned"))?;
        if nets.contains(network_id) {
            Ok(())
        } else {
            Err(Error::not_found(format!("network {network_id} not found")))
        }
    }
}

#[async_trait]
impl Driver for NullDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability::local()
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        let mut nets = self.networks.lock().map_err(|_| Error::internal("null driver state poisoned"))?;
        nets.insert(req.network_id);
        Ok(())
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        let mut nets = self.networks.lock().map_err(|_| Error::internal("null driver state poisoned"))?;
        nets.remove(&req.network_id);
        Ok(())
    }

    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        self.known(&req.network_id)?;
        Ok(CreateEndpointResponse::default())
    }

    async fn delete_endpoint(&self, _req: DeleteEndpointRequest) -> Result<()> {
        Ok(())
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        self.known(&req.network_id)?;
        Ok(JoinResponse { disable_gateway_service: true, ..JoinResponse::default() })
    }

    async fn leave(&self, _req: LeaveRequest) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls a future that never waits on I/O (the null driver never does).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn join(nid: &str) -> JoinRequest {
        JoinRequest {
            network_id: nid.into(),
            endpoint_id: "e".into(),
            sandbox_key: "/x".into(),
            options: Default::default(),
        }
    }

    #[test]
    fn join_gives_no_interface_and_unknown_networks_are_refused() {
        let d = NullDriver::new();
        let err = block_on(d.join(join("n"))).unwrap_err();
        assert_eq!(err.kind(), cnm_driverapi::ErrorKind::NotFound);
        block_on(d.create_network(CreateNetworkRequest {
            network_id: "n".into(),
            options: Default::default(),
            ipv4_data: vec![],
            ipv6_data: vec![],
        }))
        .unwrap();
        let r = block_on(d.join(join("n"))).unwrap();
        assert!(r.interface_name.is_none());
        assert!(r.gateway.is_none());
        assert!(r.disable_gateway_service);
    }
}
