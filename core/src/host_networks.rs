//! The host's networks (routes and addresses), so the default IPAM can skip
//! pools that would clash with them.

use async_trait::async_trait;
use cnm_osl::Netlink;
use ipnet::IpNet;

/// Reads routes and addresses of the host namespace over netlink.
pub struct HostRoutes {
    nl: Netlink,
}

impl HostRoutes {
    /// Reads the routes and addresses of `nl`'s namespace.
    pub fn new(nl: Netlink) -> Self {
        HostRoutes { nl }
    }
}

#[async_trait]
impl cnm_ipamapi::HostNetworks for HostRoutes {
    async fn networks(&self) -> std::io::Result<Vec<IpNet>> {
        // The OS layer's error stays the cause (typed, not flattened).
        let io = std::io::Error::other;
        let mut out = Vec::new();
        for v6 in [false, true] {
            for r in self.nl.route_list(v6).await.map_err(io)? {
                if !r.is_default() {
                    out.push(r.destination.trunc());
                }
            }
        }
        for a in self.nl.addr_list(None).await.map_err(io)? {
            if !a.net.addr().is_loopback() {
                out.push(a.net.trunc());
            }
        }
        Ok(out)
    }
}
