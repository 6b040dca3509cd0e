//! The IPAM (IP address management) contract of cnm.
//!
//! An IPAM driver implements [`Ipam`]; the controller calls it through an
//! `Arc<dyn Ipam>`. Request and response types serialize to exactly the JSON
//! of Docker's remote IPAM protocol: pools and answered addresses in CIDR
//! form, requested and released addresses as plain IPs.

mod error;
mod host;
mod ipam;
mod message;

pub use error::{Error, Result};
pub use host::{HostNetworks, StaticHostNetworks};
pub use ipam::{Held, Ipam, IpamProvider};
pub use message::{
    AddressSpaces, IpamCapability, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse,
};

/// The error kinds, shared with the driver API.
pub use cnm_kinds::{Chain, ErrorKind, chain};

/// Option and data keys of the IPAM protocol.
pub mod label {
    /// `RequestAddress` option key whose value marks the request type.
    pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
    /// The value of [`REQUEST_ADDRESS_TYPE`] for a network's gateway; also the
    /// `RequestPool` data key of a gateway the IPAM chose (CIDR).
    pub const GATEWAY: &str = "com.docker.network.gateway";
    /// `RequestAddress` option carrying the endpoint's MAC (colon notation).
    pub const MAC_ADDRESS: &str = "com.docker.network.endpoint.macaddress";
}

/// Name of the default IPAM driver.
pub const DEFAULT_IPAM: &str = "default";
/// Name of the null IPAM driver.
pub const NULL_IPAM: &str = "null";
/// The default local address space.
pub const LOCAL_DEFAULT: &str = "LocalDefault";
/// The default global address space.
pub const GLOBAL_DEFAULT: &str = "GlobalDefault";
