//! The `null` network driver: endpoints get no interface, so a sandbox on a
//! null network has loopback only (Docker's `--network none`).

use async_trait::async_trait;
use cnm_driverapi::{
    Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, Error, ErrorKind, JoinRequest, JoinResponse, LeaveRequest, Result,
};
use std::sync::Mutex;

/// The driver's type name.
pub const NAME: &str = "null";

/// The `null` network driver. Also the base of the `host` driver, which
/// behaves the same under another name: neither adds an interface.
#[derive(Debug)]
pub struct NullDriver {
    name: &'static str,
    /// The one network of this type (libnetwork allows a single instance).
    network: Mutex<Option<String>>,
}

impl Default for NullDriver {
    fn default() -> Self {
        Self::named(NAME)
    }
}

impl NullDriver {
    /// A null driver with no network.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same driver under another type name (the `host` driver uses it).
    pub fn named(name: &'static str) -> Self {
        NullDriver { name, network: Mutex::new(None) }
    }

    /// The network's id, if it has one (a holder that panicked leaves the
    /// value whole: it is used as is).
    fn network(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.network.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn known(&self, network_id: &str) -> Result<()> {
        let net = self.network();
        if net.as_deref() == Some(network_id) {
            Ok(())
        } else {
            Err(Error::not_found(format!("network {network_id} not found")))
        }
    }
}

#[async_trait]
impl Driver for NullDriver {
    fn name(&self) -> &str {
        self.name
    }

    fn capability(&self) -> Capability {
        Capability::local()
    }

    /// # Behavior
    /// - `Forbidden` for a second network: only one instance is allowed.
    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        let mut net = self.network();
        match net.as_deref() {
            Some(id) if id != req.network_id => Err(Error::new(
                ErrorKind::Forbidden,
                format!("only one instance of \"{}\" network is allowed", self.name),
            )),
            _ => {
                *net = Some(req.network_id);
                Ok(())
            }
        }
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        let mut net = self.network();
        if net.as_deref() == Some(req.network_id.as_str()) {
            *net = None;
        }
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
        // Restoring the same network is fine; a second one is not.
        let again = |id: &str| CreateNetworkRequest {
            network_id: id.into(),
            options: Default::default(),
            ipv4_data: vec![],
            ipv6_data: vec![],
        };
        block_on(d.create_network(again("n"))).unwrap();
        let err = block_on(d.create_network(again("m"))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert!(err.to_string().contains("only one instance of \"null\""), "{err}");
    }
}
