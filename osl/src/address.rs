//! Addresses on links (`ip addr …`).

use crate::{Netlink, Result};
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use std::net::IpAddr;

/// An address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The link's index.
    pub index: u32,
    /// The address with its prefix length.
    pub net: IpNet,
}

fn from_message(msg: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
    let mut addr = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => addr = Some(*ip),
            AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
            _ => {}
        }
    }
    let net = IpNet::new(addr?, msg.header.prefix_len).ok()?;
    Some(Address { index: msg.header.index, net })
}

impl Netlink {
    /// Adds `net` to link `index` (`ip addr replace NET dev X`); idempotent.
    ///
    /// IPv6 addresses skip duplicate address detection (as Docker does), so
    /// they are usable at once.
    pub async fn addr_add(&self, index: u32, net: IpNet) -> Result<()> {
        let mut req = self.handle.address().add(index, net.addr(), net.prefix_len()).replace();
        if net.addr().is_ipv6() {
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        self.call(|| format!("ip addr replace {net} dev index {index}"), req.execute()).await
    }

    /// Removes `net` from link `index` (`ip addr del`).
    pub async fn addr_del(&self, index: u32, net: IpNet) -> Result<()> {
        let msgs = self.addr_messages(Some(index)).await?;
        for msg in msgs {
            if from_message(&msg).is_some_and(|a| a.net == net) {
                let req = self.handle.address().del(msg).execute();
                return self.call(|| format!("ip addr del {net} dev index {index}"), req).await;
            }
        }
        Ok(())
    }

    /// Addresses of link `index`, or of every link (`ip addr show`).
    pub async fn addr_list(&self, index: Option<u32>) -> Result<Vec<Address>> {
        let msgs = self.addr_messages(index).await?;
        Ok(msgs.iter().filter_map(from_message).collect())
    }

    /// Whether any link of the namespace has address `ip`.
    pub async fn addr_exists(&self, ip: IpAddr) -> Result<bool> {
        Ok(self.addr_list(None).await?.iter().any(|a| a.net.addr() == ip))
    }

    async fn addr_messages(&self, index: Option<u32>) -> Result<Vec<AddressMessage>> {
        let mut req = self.handle.address().get();
        if let Some(i) = index {
            req = req.set_link_index_filter(i);
        }
        self.dump(|| "ip addr show".to_string(), move || req.execute()).await
    }
}
