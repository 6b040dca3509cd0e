//! Kernel notifications of links and addresses removed (by anyone), so that
//! their owner can notice drift and put things back.

use crate::{Namespace, Result};
use futures::StreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::sys::{AsyncSocket, SocketAddr, TokioSocket};
use std::os::fd::{FromRawFd, IntoRawFd};

const RTMGRP_LINK: u32 = 1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// The receive buffer asked for the notification socket (the kernel caps it
/// at `net.core.rmem_max` and doubles it).
const NOTIFICATION_BUFFER: i32 = 4 << 20;

/// Something removed from a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A link.
    Link {
        /// Its name.
        name: String,
        /// Its alias, which tells links being deleted by their owner apart.
        alias: Option<String>,
    },
    /// Notifications were lost (the socket's buffer overflowed): whoever
    /// follows removals must look at the kernel's state again.
    Overrun,
    /// An address of a link (by index).
    Address {
        /// The link's index.
        index: u32,
        /// The address with its prefix length.
        address: IpNet,
    },
}

/// Follows removals of links and addresses in `ns`; the channel ends when
/// the receiver is dropped (at the next notification) or the socket fails.
pub async fn removals(ns: &Namespace) -> Result<tokio::sync::mpsc::UnboundedReceiver<Removed>> {
    removals_with_buffer(ns, NOTIFICATION_BUFFER).await
}

/// [`removals`] with a receive buffer of `bytes` asked for (the kernel's
/// minimum when smaller; a test of lost notifications asks for none).
pub async fn removals_with_buffer(ns: &Namespace, bytes: i32) -> Result<tokio::sync::mpsc::UnboundedReceiver<Removed>> {
    let fd = ns.run(crate::netlink::open_socket).await??;
    // SAFETY: `fd` is an open netlink socket that we own; TokioSocket takes it over.
    let mut socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
    socket
        .socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        .map_err(|e| crate::Error::io("join netlink notification groups", "", e))?;
    // Room for a burst of removals (a host tearing many containers down);
    // an overflow is still reported, as `Removed::Overrun`.
    socket
        .socket_mut()
        .set_rx_buf_sz(bytes)
        .map_err(|e| crate::Error::io("size the netlink notification buffer", "", e))?;
    let (connection, handle, mut messages) = rtnetlink::from_socket(socket);
    tokio::spawn(connection);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        // The connection lives as long as a handle does.
        let _handle = handle;
        while let Some((msg, _)) = messages.next().await {
            let removed = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                    let (mut name, mut alias) = (None, None);
                    for a in l.attributes {
                        match a {
                            LinkAttribute::IfName(n) => name = Some(n),
                            LinkAttribute::IfAlias(a) => alias = Some(a),
                            _ => {}
                        }
                    }
                    name.map(|name| Removed::Link { name, alias })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(a)) => {
                    let (index, len) = (a.header.index, a.header.prefix_len);
                    a.attributes.into_iter().find_map(|attr| match attr {
                        AddressAttribute::Address(ip) => {
                            IpNet::new(ip, len).ok().map(|address| Removed::Address { index, address })
                        }
                        _ => None,
                    })
                }
                NetlinkPayload::Overrun(_) => Some(Removed::Overrun),
                _ => None,
            };
            if let Some(r) = removed
                && tx.send(r).is_err()
            {
                return;
            }
        }
    });
    Ok(rx)
}
