//! Routes in the main table (`ip route …`).

use crate::{Error, Netlink, Result};
use ipnet::IpNet;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope as KernelScope,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How far a route's destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteScope {
    /// Through a gateway, or anywhere (`scope global`).
    #[default]
    Universe,
    /// Directly connected to the interface (`scope link`).
    Link,
    /// Any other scope the kernel reports (host, site, …).
    Other,
}

/// A route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination (`0.0.0.0/0` or `::/0` for a default route).
    pub destination: IpNet,
    /// The next hop.
    pub gateway: Option<IpAddr>,
    /// The output interface's index.
    pub oif: Option<u32>,
    /// The route's scope.
    pub scope: RouteScope,
}

impl Route {
    /// A directly connected route (`ip route add DEST dev OIF scope link`).
    pub fn connected(destination: IpNet, oif: u32) -> Self {
        Route { destination, gateway: None, oif: Some(oif), scope: RouteScope::Link }
    }

    /// A default route via `gateway`, out of interface `oif`.
    pub fn default_via(gateway: IpAddr, oif: u32) -> Self {
        let destination = match gateway {
            IpAddr::V4(_) => IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            IpAddr::V6(_) => IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        }
        .unwrap_or_default();
        Route { destination, gateway: Some(gateway), oif: Some(oif), scope: RouteScope::Universe }
    }

    /// Whether this is a default route.
    pub fn is_default(&self) -> bool {
        self.destination.prefix_len() == 0
    }

    fn to_message(&self) -> Result<RouteMessage> {
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(self.destination.network(), self.destination.prefix_len())
            .map_err(|e| invalid(self, e))?;
        if let Some(gw) = self.gateway {
            if gw.is_ipv4() != self.destination.addr().is_ipv4() {
                return Err(Error::Invalid(format!("route {self:?}: gateway and destination families differ")));
            }
            b = b.gateway(gw).map_err(|e| invalid(self, e))?;
        }
        if let Some(oif) = self.oif {
            b = b.output_interface(oif);
        }
        b = b.scope(match self.scope {
            RouteScope::Link => KernelScope::Link,
            _ => KernelScope::Universe,
        });
        Ok(b.build())
    }

    fn from_message(msg: &RouteMessage) -> Option<Route> {
        let mut dst: Option<IpAddr> = None;
        let mut gateway = None;
        let mut oif = None;
        let mut table = u32::from(msg.header.table);
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst = route_ip(a),
                RouteAttribute::Gateway(a) => gateway = route_ip(a),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Table(t) => table = *t,
                _ => {}
            }
        }
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            return None;
        }
        let dst = dst.unwrap_or(match msg.header.address_family {
            AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
            _ => Ipv4Addr::UNSPECIFIED.into(),
        });
        let destination = IpNet::new(dst, msg.header.destination_prefix_length).ok()?;
        let scope = match msg.header.scope {
            KernelScope::Universe => RouteScope::Universe,
            KernelScope::Link => RouteScope::Link,
            _ => RouteScope::Other,
        };
        Some(Route { destination, gateway, oif, scope })
    }
}

fn invalid(route: &Route, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("route {route:?}: {e}"))
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

impl Netlink {
    /// Adds (or replaces) a route (`ip route replace …`).
    pub async fn route_add(&self, route: &Route) -> Result<()> {
        let msg = route.to_message()?;
        let req = self.handle.route().add(msg).replace().execute();
        self.call(|| format!("ip route replace {route:?}"), req).await
    }

    /// Deletes a route (`ip route del …`).
    pub async fn route_del(&self, route: &Route) -> Result<()> {
        let msg = route.to_message()?;
        let req = self.handle.route().del(msg).execute();
        self.call(|| format!("ip route del {route:?}"), req).await
    }

    /// The main table's routes of one family (`ip [-6] route show`).
    pub async fn route_list(&self, ipv6: bool) -> Result<Vec<Route>> {
        let msg = if ipv6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        let req = self.handle.route().get(msg);
        let msgs = self.dump(|| "ip route show".to_string(), move || req.execute()).await?;
        Ok(msgs.iter().filter_map(Route::from_message).collect())
    }
}
