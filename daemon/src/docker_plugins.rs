//! `cnmd --docker-plugins`: instead of its API, cnmd serves its drivers and
//! IPAM to Docker Engine as network plugins (see `cnm-docker-plugin`) —
//! `cnm-bridge`, `cnm-macvlan`, with a cluster store `cnm-overlay`, and
//! the IPAM `cnm` (the default IPAM, or with a cluster store the global
//! one, its pools shared across hosts by name) — in the plugin directory
//! (`--plugin-dir`, by default Docker's `/run/docker/plugins`), journaled
//! in `<data-root>/docker-plugins.db`.

use crate::config::DaemonConfig;
use crate::drivers::DriverOptions;
use anyhow::Context;
use cnm::osl::{Namespace, Netlink};
use cnm_docker_plugin::{Journal, PluginHost, names};
use std::future::Future;
use std::sync::Arc;

/// The journal's file under the data root.
pub const JOURNAL_FILE: &str = "docker-plugins.db";

/// Serves the plugins of `cfg` until `shutdown` completes.
pub async fn serve(
    cfg: &DaemonConfig,
    options: DriverOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let host = plugin_host(cfg, options).await?;
    let replayed = host.restore().await.context("replay the journal")?;
    tracing::info!(restored = replayed.restored, undone = replayed.undone, "journal replayed");
    host.serve(shutdown).await.context("serve the plugins")?;
    Ok(())
}

/// The plugins of `cfg`: every driver compiled in that Docker can use as
/// a plugin, and the IPAM.
#[allow(unused_variables, unused_mut)]
pub async fn plugin_host(cfg: &DaemonConfig, options: DriverOptions) -> anyhow::Result<PluginHost> {
    let ns = match &cfg.host_netns {
        Some(p) => Namespace::open(p).with_context(|| format!("open the host namespace {}", p.display()))?,
        None => Namespace::current().context("open this namespace")?,
    };
    let nl = Netlink::connect(&ns, cnm::osl::DEFAULT_DEADLINE).await.context("open the host's netlink")?;
    let journal = Journal::open(&cfg.data_root.join(JOURNAL_FILE))?;
    let dir = cfg.plugin_dir.clone().unwrap_or_else(|| cnm_docker_plugin::DEFAULT_PLUGIN_DIR.into());
    let local: Arc<dyn cnm::ipamapi::Ipam> = Arc::new(
        cnm_ipams::DefaultIpam::new(options.default_pools.clone())
            .with_host_networks(Arc::new(cnm::HostRoutes::new(nl.clone()))),
    );
    let mut host = PluginHost::new(&dir, journal);
    #[cfg(feature = "bridge")]
    {
        let bridge = if options.firewall {
            cnm_driver_bridge::BridgeDriver::new(nl.clone())
        } else {
            cnm_driver_bridge::BridgeDriver::with_firewall(nl.clone(), None)
        };
        host = host.driver(names::BRIDGE, Arc::new(bridge));
    }
    #[cfg(feature = "macvlan")]
    {
        host = host.driver(names::MACVLAN, Arc::new(cnm_driver_macvlan::MacvlanDriver::new(nl.clone())));
    }
    #[cfg(feature = "overlay")]
    if let Some((cluster, overlay)) = options.cluster.clone() {
        use cnm_docker_plugin::shared::{SharedOverlay, SharedPools};
        let driver = if options.firewall {
            cnm_driver_overlay::OverlayDriver::new(nl.clone(), cluster.clone(), overlay)
        } else {
            cnm_driver_overlay::OverlayDriver::with_firewall(nl.clone(), cluster.clone(), overlay, None)
        };
        let shared = SharedOverlay::new(Arc::new(driver), cluster.clone(), &options.identity);
        host = host.driver(names::OVERLAY, Arc::new(shared));
        let global = cnm_cluster::GlobalIpam::new(cluster.clone(), local).with_owner(&options.identity);
        let ipam = SharedPools::new(Arc::new(global), cluster, &options.identity);
        return Ok(host.ipam(names::IPAM, Arc::new(ipam)));
    }
    Ok(host.ipam(names::IPAM, local))
}
