//! The host's networks: what an IPAM that picks pools by itself must avoid.
//! The controller provides them (routes and addresses of its host namespace)
//! to an IPAM that asks for them when it is registered.

use async_trait::async_trait;
use ipnet::IpNet;

/// A source of the networks in use in the host's namespace (routes and addresses).
#[async_trait]
pub trait HostNetworks: Send + Sync {
    /// The networks currently in use on the host.
    async fn networks(&self) -> std::io::Result<Vec<IpNet>>;
}

/// A fixed list of host networks (for configuration and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticHostNetworks(pub Vec<IpNet>);

#[async_trait]
impl HostNetworks for StaticHostNetworks {
    async fn networks(&self) -> std::io::Result<Vec<IpNet>> {
        Ok(self.0.clone())
    }
}
