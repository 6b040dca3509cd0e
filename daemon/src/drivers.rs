//! The drivers compiled in: one Cargo feature per driver, named after it,
//! and one registration line per feature.

use crate::config::{DaemonConfig, DefaultBridge};
use cnm::ControllerBuilder;

/// Options that some built-in drivers take.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Whether the bridge driver programs the nftables firewall.
    pub firewall: bool,
    /// The predefined pools of the default IPAM.
    pub default_pools: cnm_ipams::DefaultIpamConfig,
    /// Where plugins are looked for instead of Docker's directories.
    pub plugin_dir: Option<std::path::PathBuf>,
    /// The daemon's identity (`engine-id` in the data root): the mark of
    /// what the global IPAM hands out to this host.
    pub identity: String,
    /// The cluster this host is a member of: the controller is a member
    /// (it shares global networks and names), the default IPAM keeps the
    /// global address space there, and the overlay driver is registered.
    #[cfg(feature = "overlay")]
    pub cluster: Option<(cnm_cluster::Cluster, cnm_driver_overlay::OverlayConfig)>,
}

/// Registers every driver compiled in, the `null` driver, and the two IPAMs
/// every Docker host has (`default`, which avoids the host's networks, and
/// `null`). With `remote`, driver and IPAM names that are not built in are
/// looked up as Docker plugins (and listed in the unknown-driver error).
#[allow(unused_variables)]
pub fn register_builtin_drivers(builder: ControllerBuilder, opts: DriverOptions) -> ControllerBuilder {
    let pools = opts.default_pools.clone();
    let builder = builder.driver(cnm_driver_null::NullDriver::new());
    #[cfg(feature = "overlay")]
    let builder = match opts.cluster.clone() {
        Some((cluster, overlay)) => {
            let for_driver = cluster.clone();
            let firewall = opts.firewall;
            let identity = opts.identity.clone();
            builder
                .cluster(cluster.clone())
                .ipam_on_host(cnm::ipamapi::DEFAULT_IPAM, move |host| {
                    let local = std::sync::Arc::new(cnm_ipams::DefaultIpam::new(pools).with_host_networks(host));
                    cnm_cluster::GlobalIpam::new(cluster, local).with_owner(&identity)
                })
                .driver_on_host(move |host| overlay_driver(host, for_driver, overlay, firewall))
        }
        None => builder.ipam_on_host(cnm::ipamapi::DEFAULT_IPAM, move |host| {
            cnm_ipams::DefaultIpam::new(pools).with_host_networks(host)
        }),
    };
    #[cfg(not(feature = "overlay"))]
    let builder = builder.ipam_on_host(cnm::ipamapi::DEFAULT_IPAM, move |host| {
        cnm_ipams::DefaultIpam::new(pools).with_host_networks(host)
    });
    let builder = builder.ipam(cnm::ipamapi::NULL_IPAM, cnm_ipams::NullIpam::new());
    #[cfg(feature = "bridge")]
    let builder = builder.driver_on_host(move |host| bridge(host, opts.firewall));
    #[cfg(feature = "host")]
    let builder = builder.driver(cnm_driver_host::HostDriver::new());
    #[cfg(feature = "macvlan")]
    let builder = builder.driver_on_host(|host| cnm_driver_macvlan::MacvlanDriver::new(host.clone()));
    #[cfg(feature = "ipvlan")]
    let builder = builder.driver_on_host(|host| cnm_driver_ipvlan::IpvlanDriver::new(host.clone()));
    #[cfg(feature = "remote")]
    let builder = remote(builder, opts.plugin_dir.as_deref());
    builder
}

#[cfg(feature = "remote")]
fn remote(builder: ControllerBuilder, plugin_dir: Option<&std::path::Path>) -> ControllerBuilder {
    let discovery = match plugin_dir {
        Some(dir) => cnm_driver_remote::Discovery::in_dir(dir),
        None => cnm_driver_remote::Discovery::default(),
    };
    let plugins = std::sync::Arc::new(cnm_driver_remote::PluginProvider::new(discovery));
    builder.driver_provider(plugins.clone()).ipam_provider(plugins)
}

/// The overlay driver, filtering VXLAN by peer unless cnm's firewall is off.
#[cfg(feature = "overlay")]
fn overlay_driver(
    host: &cnm::osl::Netlink,
    cluster: cnm_cluster::Cluster,
    config: cnm_driver_overlay::OverlayConfig,
    firewall: bool,
) -> cnm_driver_overlay::OverlayDriver {
    if firewall {
        cnm_driver_overlay::OverlayDriver::new(host.clone(), cluster, config)
    } else {
        cnm_driver_overlay::OverlayDriver::with_firewall(host.clone(), cluster, config, None)
    }
}

#[cfg(feature = "bridge")]
fn bridge(host: &cnm::osl::Netlink, firewall: bool) -> cnm_driver_bridge::BridgeDriver {
    if firewall {
        cnm_driver_bridge::BridgeDriver::new(host.clone())
    } else {
        cnm_driver_bridge::BridgeDriver::with_firewall(host.clone(), None)
    }
}

/// What the built-in drivers and IPAMs of `cfg` are registered with.
///
/// The default pools: IPv4 ones as given (or the built-in ones); IPv6 ones
/// as given, or else, as Docker 27+'s, /64s of a unique local /48 derived
/// from the daemon's identity ([`ula_prefix`]), so `--ipv6` without a
/// subnet works.
pub fn driver_options(cfg: &DaemonConfig) -> DriverOptions {
    let mut default_pools = cnm_ipams::DefaultIpamConfig::default();
    let (v6, v4): (Vec<_>, Vec<_>) = cfg.default_address_pools.iter().cloned().partition(|p| p.base.addr().is_ipv6());
    if !v4.is_empty() {
        default_pools.local_pools = v4;
    }
    let identity = crate::api::system::engine_id(&cfg.data_root);
    default_pools.local_pools_v6 = if v6.is_empty() {
        let ula = ula_prefix(&identity);
        cnm_ipams::PoolSpec::new(ula.into(), 64).into_iter().collect()
    } else {
        v6
    };
    DriverOptions {
        firewall: cfg.firewall,
        default_pools,
        plugin_dir: cfg.plugin_dir.clone(),
        identity,
        #[cfg(feature = "overlay")]
        cluster: None,
    }
}

/// The unique local IPv6 prefix (a /48 of `fd00::/8`) of the daemon with
/// identity `engine_id`, as Docker's: the low 40 bits of the first 8 bytes
/// of the identity's SHA-256 after `fd`.
pub fn ula_prefix(engine_id: &str) -> ipnet::Ipv6Net {
    let digest = ring::digest::digest(&ring::digest::SHA256, engine_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    let bits = u64::from_be_bytes(first) & ((1 << 40) - 1);
    let addr = (0xfdu128 << 120) | (u128::from(bits) << 80);
    ipnet::Ipv6Net::new_assert(std::net::Ipv6Addr::from(addr), 48)
}

/// The controller's configuration from `cfg`.
pub fn controller_config(cfg: &DaemonConfig) -> cnm::Config {
    let mut c = cnm::Config::new(&cfg.data_root).exec_root(&cfg.exec_root).host_resolv_conf(&cfg.host_resolv_conf);
    c = c.embedded_dns(cfg.embedded_dns).cluster(cfg.cluster_store.is_some());
    if let Some(ns) = &cfg.host_netns {
        c = c.host_namespace(ns);
    }
    if let Some(net) = cfg.default_network.as_ref().and_then(default_network) {
        c = c.default_network(net);
    }
    c
}

/// The default network of `d` (docker0's role): a bridge network, so only
/// with the `bridge` driver compiled in.
#[cfg(feature = "bridge")]
pub fn default_network(d: &DefaultBridge) -> Option<cnm::DefaultNetwork> {
    let bridge = cnm_driver_bridge::BridgeConfig {
        bridge_name: Some(d.interface.clone()),
        default_bridge: true,
        ..Default::default()
    };
    let mut config = cnm::NetworkConfig { driver_options: bridge.to_options(), ..Default::default() };
    let mut ipam = cnm::IpamConfig::default();
    if let Some(bip) = d.bip {
        ipam.subnet = Some(bip.trunc());
        ipam.gateway = Some(bip.addr());
    }
    ipam.ip_range = d.fixed_cidr;
    if ipam != cnm::IpamConfig::default() {
        config.ipv4.push(ipam);
    }
    Some(cnm::DefaultNetwork::new(&d.name, cnm_driver_bridge::NAME, config))
}

/// Without the `bridge` driver there is no default network.
#[cfg(not(feature = "bridge"))]
pub fn default_network(d: &DefaultBridge) -> Option<cnm::DefaultNetwork> {
    tracing::warn!(network = %d.name, "no default network: the bridge driver is not compiled in");
    None
}

/// Loads every driver library of `dir` (feature `dylib`) and registers its
/// network driver and/or IPAM under the name it exports. A library that
/// cannot be loaded (another ABI version, a failed start) is an error:
/// the daemon does not start with a driver missing.
#[cfg(feature = "dylib")]
pub async fn load_driver_dir(
    builder: ControllerBuilder,
    dir: &std::path::Path,
    host_netns: Option<&std::path::Path>,
) -> Result<ControllerBuilder, cnm_driver_dylib::Error> {
    let config = cnm::driverapi::abi::LibraryConfig { host_namespace: host_netns.map(|p| p.display().to_string()) };
    let mut builder = builder;
    for path in cnm_driver_dylib::libraries_in(dir)? {
        let lib = cnm_driver_dylib::DriverLibrary::open(&path, &config)?;
        let plugin = lib.activate(cnm_driver_remote::ClientConfig::default()).await?;
        tracing::info!(library = %path.display(), name = lib.name(), implements = ?plugin.manifest.implements, "driver library loaded");
        if let Some(network) = plugin.network {
            let d = network.map_err(|source| cnm_driver_dylib::Error::Plugin { path: path.clone(), source })?;
            builder = builder.driver_arc(d);
        }
        if let Some(ipam) = plugin.ipam {
            let i = ipam.map_err(|source| cnm_driver_dylib::Error::Plugin { path: path.clone(), source })?;
            builder = builder.ipam_arc(lib.name(), i);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ula_prefix_is_a_stable_48_of_fd00_8() {
        let a = super::ula_prefix("6a1c9d5e-0000-4000-8000-000000000001");
        assert_eq!(a, super::ula_prefix("6a1c9d5e-0000-4000-8000-000000000001"), "stable");
        assert_eq!(a.prefix_len(), 48);
        assert_eq!(a.addr().octets()[0], 0xfd);
        assert_ne!(a, super::ula_prefix("another"), "one per identity");
    }
}
