//! Static neighbour and forwarding-database entries, as an overlay programs
//! its peers (`ip neigh replace IP lladdr MAC dev X nud permanent`,
//! `bridge fdb replace MAC dev X dst IP self permanent`).

use crate::{Netlink, Result};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage};
use rtnetlink::packet_route::{AddressFamily, neighbour::NeighbourState};
use std::net::IpAddr;

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl Netlink {
    /// Adds or replaces a permanent neighbour: `ip` is at `mac` on link `index`.
    pub async fn neigh_replace(&self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<()> {
        let req = self.handle.neighbours().add(index, ip).link_layer_address(&mac).replace().execute();
        self.call(|| format!("ip neigh replace {ip} lladdr {} dev index {index}", mac_text(mac)), req).await
    }

    /// Removes the neighbour `ip` from link `index` (absent is fine).
    pub async fn neigh_del(&self, index: u32, ip: IpAddr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        msg.header.ifindex = index;
        msg.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        let req = self.handle.neighbours().del(msg).execute();
        match self.call(|| format!("ip neigh del {ip} dev index {index}"), req).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Adds or replaces a forwarding entry of a VXLAN link: frames to `mac`
    /// go to the underlay address `dst` (`bridge fdb replace … self permanent`).
    pub async fn fdb_replace(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<()> {
        let mut req = self.handle.neighbours().add_bridge(index, &mac).destination(dst).replace();
        req.message_mut().header.flags = NeighbourFlags::Own;
        req.message_mut().header.state = NeighbourState::Permanent;
        let req = req.execute();
        self.call(|| format!("bridge fdb replace {} dev index {index} dst {dst} self permanent", mac_text(mac)), req)
            .await
    }

    /// Removes what the bridge that link `index` is a port of has learnt of
    /// `mac` on that port (`bridge fdb del MAC dev PORT master`; absent is
    /// fine): a MAC that moves away from behind the port (an address and
    /// its MAC handed to an endpoint elsewhere) must not stay there until
    /// the entry ages out.
    pub async fn fdb_forget_learned(&self, index: u32, mac: [u8; 6]) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Controller;
        msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        let req = self.handle.neighbours().del(msg).execute();
        match self.call(|| format!("bridge fdb del {} dev index {index} master", mac_text(mac)), req).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Removes the forwarding entry of `mac` from VXLAN link `index` (absent is fine).
    pub async fn fdb_del(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        msg.attributes.push(NeighbourAttribute::Destination(match dst {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        let req = self.handle.neighbours().del(msg).execute();
        match self.call(|| format!("bridge fdb del {} dev index {index} self", mac_text(mac)), req).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}
