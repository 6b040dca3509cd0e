//! Everything a cnm driver author needs, in one crate: the driver and IPAM
//! APIs ([`driverapi`], [`ipamapi`], with `async_trait` and `ipnet`), the OS
//! layer ([`osl`]: namespaces, links, addresses, routes over netlink), a
//! helper for per-endpoint state ([`EndpointTable`]), and the three ways to
//! ship one `impl Driver`:
//!
//! * compiled in: `ControllerBuilder::driver(MyDriver::new(…))`;
//! * as a remote plugin: [`PluginServer`] on a unix socket (Docker's protocol);
//! * as a library the daemon loads (`cnmd --driver-dir`): a `cdylib` crate
//!   with one line, [`export_plugin!`].
//!
//! ```ignore
//! cnm_driver_sdk::export_plugin!(|ctx: cnm_driver_sdk::Context| async move {
//!     let host = ctx.host_netlink().await.map_err(|e| e.to_string())?;
//!     Ok(cnm_driver_sdk::Exported::driver(std::sync::Arc::new(MyDriver::new(host))))
//! });
//! ```

pub mod export;

pub use cnm_driver_remote::{PluginServer, serve, serve_ipam, serve_plugin};
pub use cnm_driverapi as driverapi;
pub use cnm_driverapi::abi;
pub use cnm_driverapi::{async_trait, ipnet};
pub use cnm_ipamapi as ipamapi;
pub use cnm_osl as osl;
pub use export::{Context, Exported};

/// Per-endpoint state of a driver, keyed by network and endpoint id: what
/// `create_endpoint` learned and `join` needs (the join request carries
/// only the ids, as Docker's protocol defines it). A [`driverapi::Table`]
/// underneath: a call that panics loses no other call's record.
#[derive(Debug)]
pub struct EndpointTable<T> {
    entries: driverapi::Table<(String, String), T>,
}

impl<T> Default for EndpointTable<T> {
    fn default() -> Self {
        EndpointTable { entries: driverapi::Table::default() }
    }
}

impl<T: Clone> EndpointTable<T> {
    /// Keeps `value` for endpoint `endpoint` of network `network`.
    pub fn insert(&self, network: &str, endpoint: &str, value: T) {
        self.entries.insert((network.to_string(), endpoint.to_string()), value);
    }

    /// The state of an endpoint, or a not-found error naming it.
    pub fn get(&self, network: &str, endpoint: &str) -> driverapi::Result<T> {
        self.entries
            .get(&(network.to_string(), endpoint.to_string()))
            .ok_or_else(|| driverapi::Error::not_found(format!("endpoint {endpoint} of network {network}")))
    }

    /// Forgets an endpoint; its state, if it had one.
    pub fn remove(&self, network: &str, endpoint: &str) -> Option<T> {
        self.entries.remove(&(network.to_string(), endpoint.to_string()))
    }
}
