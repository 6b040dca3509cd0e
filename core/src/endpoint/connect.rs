//! `Network::connect`: an endpoint created and joined to a sandbox in one
//! step, as `docker network connect` does: the record that ends the
//! creation is the join's intent, one durable commit fewer than
//! [`Network::create_endpoint`] followed by [`Endpoint::join`].

use super::{Endpoint, EndpointConfig, JoinOptions};
use crate::Result;
use crate::network::Network;
use crate::sandbox::Sandbox;

impl Network {
    /// Creates an endpoint named `name` on this network and joins it to
    /// `sandbox`. A join that fails deletes the endpoint again (its
    /// addresses are released).
    ///
    /// Errors: those of [`Network::create_endpoint`] and [`Endpoint::join`].
    pub async fn connect(
        &self,
        name: &str,
        config: EndpointConfig,
        sandbox: &Sandbox,
        options: JoinOptions,
    ) -> Result<Endpoint> {
        super::create::check_request(name, &config)?;
        let ctrl = &self.ctrl;
        // The lock order: the network, then the sandbox (see crate::locks).
        let _network_lock = ctrl.inner.locks.lock(&self.id).await;
        let _sandbox_lock = ctrl.inner.locks.lock(&sandbox.id).await;
        let rec = self.create_locked(name, config).await?;
        let ep = Endpoint::handle(ctrl, &rec);
        // Ready in memory; on disk the creation's intent until the join's
        // intent replaces it (a crash in between rolls the endpoint back).
        ctrl.st().endpoints.insert(rec.id.clone(), rec);
        if let Err(e) = ep.join_held(sandbox, options).await {
            if let Err(del) = ep.delete_locked().await {
                tracing::warn!(endpoint = %ep.name, error = %del, "cannot delete the endpoint of a failed join");
            }
            return Err(e);
        }
        Ok(ep)
    }
}
