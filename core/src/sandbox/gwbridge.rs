//! North-south traffic for sandboxes on networks that give no default
//! route (overlay): as Docker's `docker_gwbridge`, such a sandbox is also
//! joined to a local bridge network with masquerading, which gives it its
//! default route; it leaves that bridge with its last global network.

use crate::{Controller, EndpointConfig, Error, JoinOptions, NetworkConfig, Result, Sandbox};

/// The local bridge network's name (Docker's).
pub const GWBRIDGE: &str = "docker_gwbridge";

/// The endpoint of sandbox `sb` on the gateway bridge.
fn endpoint_name(sb: &Sandbox) -> String {
    format!("gateway_{}", sb.container_id())
}

/// Whether the sandbox is on a global network.
async fn on_global_network(ctrl: &Controller, sb: &Sandbox) -> bool {
    for ep in sb.endpoints().await {
        if matches!(ctrl.global_network(ep.network_id()), Ok(Some(_))) {
            return true;
        }
    }
    false
}

impl Controller {
    /// After a join to a global network: a sandbox with no default route
    /// joins the gateway bridge (made on first use, with the `bridge` driver).
    pub(crate) async fn gateway_bridge_attach(&self, sb: &Sandbox) -> Result<()> {
        if sb.info().await?.gateway_endpoint.is_some() || !on_global_network(self, sb).await {
            return Ok(());
        }
        let net = match self.network_by_name(GWBRIDGE).await {
            Ok(n) if n.driver_name() == "bridge" && !matches!(self.global_network(n.id()), Ok(Some(_))) => n,
            Ok(_) => {
                return Err(Error::Forbidden(format!(
                    "network {GWBRIDGE} is not a local bridge network: it cannot be the gateway bridge"
                )));
            }
            Err(_) => {
                let mut cfg = NetworkConfig::default();
                for (k, v) in [
                    ("com.docker.network.bridge.name", GWBRIDGE),
                    ("com.docker.network.bridge.enable_icc", "false"),
                    ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                ] {
                    cfg.driver_options.insert(k.into(), v.into());
                }
                cfg.disable_dns = true;
                match Box::pin(self.new_network("bridge", GWBRIDGE, cfg)).await {
                    Ok(n) => n,
                    // Made meanwhile by a concurrent join.
                    Err(Error::NetworkNameExists(_)) => self.network_by_name(GWBRIDGE).await?,
                    Err(e) => return Err(e),
                }
            }
        };
        // A join to a local network: no attach of its own follows.
        Box::pin(net.connect(&endpoint_name(sb), EndpointConfig::default(), sb, JoinOptions::default())).await?;
        tracing::info!(sandbox = %sb.container_id(), "joined the gateway bridge for its default route");
        Ok(())
    }

    /// After a leave: a sandbox on no global network any more leaves the gateway bridge.
    pub(crate) async fn gateway_bridge_detach(&self, sb: &Sandbox) -> Result<()> {
        if on_global_network(self, sb).await {
            return Ok(());
        }
        let Ok(net) = self.network_by_name(GWBRIDGE).await else { return Ok(()) };
        if let Ok(ep) = net.endpoint(&endpoint_name(sb)).await {
            Box::pin(ep.leave_and_delete(sb)).await?;
        }
        Ok(())
    }
}
