//! The drivers compiled in: one Cargo feature per driver, named after it,
//! and one registration line per feature.

use cnm::ControllerBuilder;

/// Options that some built-in drivers take.
#[derive(Debug, Clone, Copy)]
pub struct DriverOptions {
    /// Whether the bridge driver programs the nftables firewall.
    pub firewall: bool,
}

/// Registers every driver compiled in. `null` is always present (core
/// registers it). With `remote`, driver and IPAM names that are not built
/// in are looked up as Docker plugins (and listed in the unknown-driver error).
#[allow(unused_variables)]
pub fn register_builtin_drivers(builder: ControllerBuilder, opts: DriverOptions) -> ControllerBuilder {
    #[cfg(feature = "bridge")]
    let builder = builder.driver(move |host| bridge(host, opts.firewall));
    #[cfg(feature = "host")]
    let builder = builder.driver(|_| cnm_driver_host::HostDriver::new());
    #[cfg(feature = "remote")]
    let builder = remote(builder);
    builder
}

#[cfg(feature = "remote")]
fn remote(builder: ControllerBuilder) -> ControllerBuilder {
    let plugins = std::sync::Arc::new(cnm_driver_remote::PluginProvider::new(cnm_driver_remote::Discovery::default()));
    builder.driver_provider(plugins.clone()).ipam_provider(plugins)
}

#[cfg(feature = "bridge")]
fn bridge(host: &cnm::osl::Netlink, firewall: bool) -> cnm_driver_bridge::BridgeDriver {
    if firewall {
        cnm_driver_bridge::BridgeDriver::new(host.clone())
    } else {
        cnm_driver_bridge::BridgeDriver::with_firewall(host.clone(), None)
    }
}
