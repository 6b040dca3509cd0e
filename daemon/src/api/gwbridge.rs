//! North-south traffic for sandboxes on networks that give no default
//! route (overlay): as Docker's `docker_gwbridge`, such a sandbox is also
//! joined to a local bridge network with masquerading, which gives it its
//! default route; it leaves that bridge with its last such network.

use crate::errors::ApiResult;
use cnm::{Controller, EndpointConfig, JoinOptions, NetworkConfig, Sandbox};

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

/// After a connect: a sandbox on a global network with no default route
/// joins the gateway bridge (made on first use).
pub async fn attach_if_needed(ctrl: &Controller, sb: &Sandbox) -> ApiResult<()> {
    if sb.info().await?.gateway_endpoint.is_some() || !on_global_network(ctrl, sb).await {
        return Ok(());
    }
    let net = match ctrl.network_by_name(GWBRIDGE).await {
        Ok(n) => n,
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
            match ctrl.new_network("bridge", GWBRIDGE, cfg).await {
                Ok(n) => n,
                // Made meanwhile by a concurrent connect.
                Err(cnm::Error::NetworkNameExists(_)) => ctrl.network_by_name(GWBRIDGE).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    net.connect(&endpoint_name(sb), EndpointConfig::default(), sb, JoinOptions::default()).await?;
    tracing::info!(sandbox = %sb.container_id(), "joined the gateway bridge for its default route");
    Ok(())
}

/// After a disconnect: a sandbox on no global network any more leaves the gateway bridge.
pub async fn detach_if_unneeded(ctrl: &Controller, sb: &Sandbox) -> ApiResult<()> {
    if on_global_network(ctrl, sb).await {
        return Ok(());
    }
    let Ok(net) = ctrl.network_by_name(GWBRIDGE).await else { return Ok(()) };
    if let Ok(ep) = net.endpoint(&endpoint_name(sb)).await {
        ep.leave_and_delete(sb).await?;
    }
    Ok(())
}
