//! `cnmd --docker-plugins`: instead of its API, cnmd serves its drivers and
//! IPAM to Docker Engine as network plugins (see `cnm-docker-plugin`) —
//! `cnm-bridge`, `cnm-macvlan`, with a cluster store `cnm-overlay`, and
//! the IPAM `cnm` (the default IPAM, or with a cluster store the global
//! one, its pools shared across hosts by name) — in the plugin directory
//! (`--plugin-dir`, by default Docker's `/run/docker/plugins`), journaled
//! in `<data-root>/docker-plugins.db`.
//!
//! `--managed-plugin DRIVER` runs cnmd as Docker's managed (v2) plugin
//! (`contrib/docker-plugin/`): one driver and the IPAM on one socket,
//! [`MANAGED_SOCKET`], both named after the plugin by Docker.

use crate::config::DaemonConfig;
use crate::drivers::DriverOptions;
use anyhow::Context;
use cnm::osl::{Namespace, Netlink};
use cnm_docker_plugin::{Journal, PluginHost, names};
use std::future::Future;
use std::sync::Arc;

/// The journal's file under the data root.
pub const JOURNAL_FILE: &str = "docker-plugins.db";

/// The socket of a managed plugin (its `config.json`'s `interface.socket`).
pub const MANAGED_SOCKET: &str = "cnm.sock";

/// Serves the plugins of `cfg` (or, with `managed`, that one driver as a
/// managed plugin) until `shutdown` completes.
pub async fn serve(
    cfg: &DaemonConfig,
    options: DriverOptions,
    managed: Option<&str>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if managed.is_some() {
        writable_proc_sys()?;
    }
    let (host, finish) = plugin_host(cfg, options, managed).await?;
    let served = host.serve(shutdown).await.context("serve the plugins");
    for f in finish {
        f().await;
    }
    served
}

/// What to finish when the plugins stop: link deletions the drivers left
/// to the background (a disabled managed plugin may never start again to
/// sweep them).
pub type Finish = Vec<Box<dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>>;

/// A managed plugin's `/proc/sys` is read-only (Docker's default container
/// spec), and the drivers set sysctls of the host's network namespace
/// there (the plugin has the host's network): with `CAP_SYS_ADMIN`, the
/// plugin's own mount of it is made writable.
fn writable_proc_sys() -> anyhow::Result<()> {
    use nix::mount::{MsFlags, mount};
    let ro = nix::sys::statvfs::statvfs("/proc/sys")
        .context("inspect /proc/sys")?
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY);
    if ro {
        let flags =
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(None::<&str>, "/proc/sys", None::<&str>, flags, None::<&str>)
            .context("make /proc/sys writable (the plugin needs CAP_SYS_ADMIN)")?;
        tracing::info!("/proc/sys made writable in the plugin's mounts");
    }
    Ok(())
}

/// The drivers `managed` names (all of them: `None`).
#[cfg_attr(not(any(feature = "bridge", feature = "macvlan", feature = "overlay")), allow(dead_code))]
fn wanted(managed: Option<&str>, driver: &str) -> bool {
    managed.is_none_or(|m| m == driver)
}

/// The plugins of `cfg`: every driver compiled in that Docker can use as
/// a plugin (or the one `managed` names, on one socket), and the IPAM.
#[allow(unused_variables, unused_mut)]
pub async fn plugin_host(
    cfg: &DaemonConfig,
    options: DriverOptions,
    managed: Option<&str>,
) -> anyhow::Result<(PluginHost, Finish)> {
    let known = ["bridge", "macvlan", "overlay"];
    if let Some(m) = managed
        && !known.contains(&m)
    {
        anyhow::bail!("--managed-plugin {m:?}: one of {}", known.join(", "));
    }
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
    let mut finish: Finish = Vec::new();
    if managed.is_some() {
        host = host.on_one_socket(MANAGED_SOCKET);
    }
    #[cfg(feature = "bridge")]
    if wanted(managed, "bridge") {
        let bridge = if options.firewall {
            cnm_driver_bridge::BridgeDriver::new(nl.clone())
        } else {
            cnm_driver_bridge::BridgeDriver::with_firewall(nl.clone(), None)
        };
        let bridge = Arc::new(bridge);
        let settle = bridge.clone();
        finish.push(Box::new(move || Box::pin(async move { settle.settle().await })));
        host = host.driver(names::BRIDGE, bridge);
    }
    #[cfg(feature = "macvlan")]
    if wanted(managed, "macvlan") {
        host = host.driver(names::MACVLAN, Arc::new(cnm_driver_macvlan::MacvlanDriver::new(nl.clone())));
    }
    #[cfg(feature = "overlay")]
    if let Some((cluster, overlay)) = options.cluster.clone() {
        use cnm_docker_plugin::shared::{SharedOverlay, SharedPools};
        if wanted(managed, "overlay") {
            let driver = if options.firewall {
                cnm_driver_overlay::OverlayDriver::new(nl.clone(), cluster.clone(), overlay)
            } else {
                cnm_driver_overlay::OverlayDriver::with_firewall(nl.clone(), cluster.clone(), overlay, None)
            };
            let shared = SharedOverlay::new(Arc::new(driver), cluster.clone(), &options.identity);
            host = host.driver(names::OVERLAY, Arc::new(shared));
        }
        let global = cnm_cluster::GlobalIpam::new(cluster.clone(), local).with_owner(&options.identity);
        let ipam = SharedPools::new(Arc::new(global), cluster, &options.identity);
        return Ok((host.ipam(names::IPAM, Arc::new(ipam)), finish));
    }
    if managed == Some("overlay") {
        anyhow::bail!("--managed-plugin overlay needs --cluster-store and --advertise-addr (and the overlay feature)");
    }
    Ok((host.ipam(names::IPAM, local), finish))
}
