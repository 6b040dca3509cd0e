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
//! # The shape of a driver crate
//!
//! The bridge, macvlan and overlay drivers have all of it; host and null,
//! which take no options and make nothing in the kernel, are the `lib.rs`
//! part alone:
//!
//! * `lib.rs`: `NAME` (the driver's type name), the driver type and its
//!   typed per-network config, re-exported;
//! * `config.rs`: the network's options parsed once into that config; a key
//!   in the driver's own namespace that it does not know is refused, naming
//!   the key (keys of other tools are left alone, as Docker does);
//! * `error.rs`: the driver's errors (`thiserror`), each with its
//!   [`driverapi::ErrorKind`] (`driverapi::Kinded`, so `?` makes a
//!   [`driverapi::Error`] of it); an OS failure is the one shared variant
//!   [`osl::Failed`]: what was being done, and the [`osl::Error`] as its
//!   cause (whose kind it keeps). Messages say only what they add; the
//!   cause is the `source()`, and [`driverapi::Chain`] prints the whole;
//! * `driver.rs`: the [`driverapi::Driver`] implementation, with one module
//!   per concept beside it (the bridge driver: `network.rs`, `endpoint.rs`,
//!   `publish.rs`, `repair.rs`);
//! * state shared between calls in a [`driverapi::Table`] (or an
//!   [`EndpointTable`]): a call that panics never makes another lose a
//!   record, as a bare `Mutex<HashMap>` would;
//! * ids from outside checked with [`driverapi::id::check`] and shortened
//!   (for interface names) with [`driverapi::id::short`].
//!
//! A driver of that shape, exported as a library the daemon loads (this
//! example is compiled with the docs):
//!
//! ```no_run
//! use cnm_driver_sdk::async_trait;
//! use cnm_driver_sdk::driverapi::{
//!     self, Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest,
//!     DeleteEndpointRequest, DeleteNetworkRequest, Driver, ErrorKind, JoinRequest, JoinResponse,
//!     LeaveRequest, Table,
//! };
//! use cnm_driver_sdk::osl::Netlink;
//! use std::collections::BTreeMap;
//!
//! // lib.rs
//! /// The driver's type name.
//! pub const NAME: &str = "mine";
//!
//! // config.rs
//! const MTU: &str = "com.example.mine.mtu";
//!
//! /// What a network of this driver is, parsed once from its options.
//! #[derive(Debug, Clone, Default)]
//! pub struct MineConfig {
//!     /// The MTU of the network's links.
//!     pub mtu: Option<u32>,
//! }
//!
//! impl MineConfig {
//!     /// Parses the options; an unknown key of ours is refused.
//!     pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self, MineError> {
//!         let mut cfg = MineConfig::default();
//!         for (key, value) in options {
//!             match key.as_str() {
//!                 MTU => cfg.mtu = Some(value.parse().map_err(|_| MineError::InvalidOption(key.clone()))?),
//!                 k if k.starts_with("com.example.mine.") => return Err(MineError::UnknownOption(key.clone())),
//!                 _ => {}
//!             }
//!         }
//!         Ok(cfg)
//!     }
//! }
//!
//! // error.rs
//! /// An error of the driver.
//! #[derive(Debug, thiserror::Error)]
//! pub enum MineError {
//!     /// An option of ours that we do not know.
//!     #[error("unknown option {0}")]
//!     UnknownOption(String),
//!     /// An option whose value does not parse.
//!     #[error("invalid value of option {0}")]
//!     InvalidOption(String),
//!     /// A network this driver does not have.
//!     #[error("network {0} not found")]
//!     NetworkNotFound(String),
//!     /// A kernel operation failed: the step and the OS layer's error, the
//!     /// one OS variant every driver shares (`os_error.during("create br0")`).
//!     #[error(transparent)]
//!     Os(#[from] cnm_driver_sdk::osl::Failed),
//! }
//!
//! // With its kind, a driver error becomes a `driverapi::Error` by `?`; its
//! // message says only what it adds, its cause stays its `source()`.
//! impl driverapi::Kinded for MineError {
//!     fn kind(&self) -> ErrorKind {
//!         match self {
//!             MineError::UnknownOption(_) | MineError::InvalidOption(_) => ErrorKind::InvalidParameter,
//!             MineError::NetworkNotFound(_) => ErrorKind::NotFound,
//!             MineError::Os(failed) => failed.kind(),
//!         }
//!     }
//! }
//!
//! // driver.rs
//! /// The driver: the host's netlink handle and its networks.
//! pub struct MineDriver {
//!     host: Netlink,
//!     networks: Table<String, MineConfig>,
//! }
//!
//! #[async_trait]
//! impl Driver for MineDriver {
//!     fn name(&self) -> &str {
//!         NAME
//!     }
//!     fn capability(&self) -> Capability {
//!         Capability::local()
//!     }
//!     async fn create_network(&self, req: CreateNetworkRequest) -> driverapi::Result<()> {
//!         let cfg = MineConfig::from_options(&req.options.generic)?;
//!         self.networks.insert(req.network_id, cfg);
//!         Ok(())
//!     }
//!     async fn delete_network(&self, req: DeleteNetworkRequest) -> driverapi::Result<()> {
//!         self.networks.remove(&req.network_id);
//!         Ok(())
//!     }
//!     async fn create_endpoint(&self, req: CreateEndpointRequest) -> driverapi::Result<CreateEndpointResponse> {
//!         self.networks.get(&req.network_id).ok_or_else(|| MineError::NetworkNotFound(req.network_id.clone()))?;
//!         Ok(CreateEndpointResponse::default())
//!     }
//!     async fn delete_endpoint(&self, _req: DeleteEndpointRequest) -> driverapi::Result<()> {
//!         Ok(())
//!     }
//!     async fn join(&self, req: JoinRequest) -> driverapi::Result<JoinResponse> {
//!         // Make the sandbox's link here with `self.host` (see the ptp example),
//!         // named after `driverapi::id::short(&req.endpoint_id, 11)`.
//!         let _link = format!("mn{}", driverapi::id::short(&req.endpoint_id, 11));
//!         let _ = &self.host;
//!         Err(driverapi::Error::not_implemented("join"))
//!     }
//!     async fn leave(&self, _req: LeaveRequest) -> driverapi::Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! // The library's one line (a `cdylib` crate; `cnmd --driver-dir` loads it):
//! cnm_driver_sdk::export_plugin!(|ctx: cnm_driver_sdk::Context| async move {
//!     let host = ctx.host_netlink().await.map_err(|e| cnm_driver_sdk::osl::chain(&e))?;
//!     let driver = MineDriver { host, networks: Table::default() };
//!     Ok(cnm_driver_sdk::Exported::driver(std::sync::Arc::new(driver)))
//! });
//! ```
//!
//! Then run the behaviour suite against it (`cnm-driver-suite`): say what
//! the driver does (`Declared`), and the suite proves it by packets between
//! namespaces, as root or rootless (`cnm_driver_suite::rootless_tests!()`
//! in the test file, then `cargo test` as any user). `examples/ptp/tests/suite.rs`
//! is a whole example.

pub mod export;

pub use cnm_driver_remote::{PluginServer, serve, serve_ipam, serve_plugin};
#[doc(inline)]
pub use cnm_driverapi as driverapi;
pub use cnm_driverapi::abi;
pub use cnm_driverapi::{async_trait, ipnet};
#[doc(inline)]
pub use cnm_ipamapi as ipamapi;
#[doc(inline)]
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
