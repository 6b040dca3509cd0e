#![doc = include_str!("../README.md")]

mod cluster;
mod config;
mod controller;
mod endpoint;
mod error;
mod host_networks;
mod id;
pub mod kill;
mod locks;
mod model;
mod network;
mod restore;
mod sandbox;
mod state;
mod store;

pub use cnm_kinds::{Chain, chain};
pub use config::{Config, DefaultNetwork};
pub use controller::{Controller, ControllerBuilder};
pub use endpoint::{Endpoint, EndpointConfig, EndpointInfo, JoinOptions};
pub use error::{Error, ErrorKind, Result};
pub use host_networks::HostRoutes;
pub use network::{
    GlobalNetwork, IpamConfig, Network, NetworkConfig, NetworkInfo, PoolInfo, check_name, check_network_name,
};
pub use sandbox::files::{hosts_content, resolv_conf_content};
pub use sandbox::gwbridge::GWBRIDGE;
pub use sandbox::{ExtraHost, RemoteName, Sandbox, SandboxConfig, SandboxInfo};

pub use cnm_dns as dns;
pub use cnm_driverapi as driverapi;
pub use cnm_ipamapi as ipamapi;
pub use cnm_osl as osl;
pub use cnm_osl::userns as rootless;
