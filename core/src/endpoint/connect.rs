//! `Network::connect`: an endpoint created and joined to a sandbox in one
//! step, as `docker network connect` does: the creation's intent is also
//! the join's, two durable commits fewer than [`Network::create_endpoint`]
//! followed by [`Endpoint::join`]. A crash before the confirmation rolls
//! both back.

use super::{Endpoint, EndpointConfig, JoinOptions};
use crate::Result;
use crate::model::JoinRecord;
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
        let ep = self.connect_locked(name, config, sandbox, options).await?;
        self.ctrl.after_join(&self.id, ep.id(), sandbox).await;
        Ok(ep)
    }

    /// The work of [`Network::connect`], under the network's and the sandbox's locks.
    async fn connect_locked(
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
        let (net, drv) = ctrl.joinable(&self.id, sandbox).await?;
        let old_gateway = crate::sandbox::gateway::current(&ctrl.st(), &sandbox.id);
        let join = JoinRecord::intent(&sandbox.id, options);
        let rec = self.create_locked(name, config, Some(join)).await?;
        let ep = Endpoint::handle(ctrl, &rec);
        // Ready and joining in memory; on disk the creation's intent until
        // the join's confirmation replaces it.
        ctrl.st().endpoints.insert(rec.id.clone(), rec.clone());
        if let Err(e) = ctrl.join_recorded(&net, &drv, rec, old_gateway, &sandbox.id).await {
            if let Err(del) = ep.delete_locked().await {
                tracing::warn!(endpoint = %ep.name, error = %crate::Chain(&del), "cannot delete the endpoint of a failed join");
            }
            return Err(e);
        }
        Ok(ep)
    }
}
