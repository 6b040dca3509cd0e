//! Connection tracking entries of unpublished ports, removed over ctnetlink
//! (no `conntrack` process): a UDP flow that was translated to a container
//! would otherwise keep sending a client's datagrams to it after the port
//! went to another container.

use super::nfnl::{NFNL_SUBSYS_CTNETLINK, NLM_F_DUMP, Socket, attrs};
use crate::{Namespace, Result};
use std::net::IpAddr;
use std::time::Duration;

const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const IPPROTO_UDP: u8 = 17;

/// A flow to forget: UDP to host port `host_port`, translated to `container`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFlow {
    /// The published host port.
    pub host_port: u16,
    /// The container's address the flow was translated to.
    pub container: IpAddr,
}

/// What an entry says: its protocol, original destination port, the source of its reply, and its original tuple.
fn parse(entry: &[u8]) -> Option<(u8, u16, IpAddr, Vec<u8>)> {
    let (mut orig, mut reply) = (None, None);
    for (ty, payload) in attrs(entry) {
        match ty {
            CTA_TUPLE_ORIG => orig = Some(payload),
            CTA_TUPLE_REPLY => reply = Some(payload),
            _ => {}
        }
    }
    let orig = orig?;
    let (mut proto, mut dport) = (None, None);
    for (ty, payload) in attrs(orig) {
        if ty == CTA_TUPLE_PROTO {
            for (t, v) in attrs(payload) {
                match t {
                    CTA_PROTO_NUM => proto = v.first().copied(),
                    CTA_PROTO_DST_PORT => dport = v.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])),
                    _ => {}
                }
            }
        }
    }
    let mut src = None;
    for (ty, payload) in attrs(reply?) {
        if ty == CTA_TUPLE_IP {
            for (t, v) in attrs(payload) {
                match t {
                    CTA_IP_V4_SRC => src = <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
                    CTA_IP_V6_SRC => src = <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
                    _ => {}
                }
            }
        }
    }
    Some((proto?, dport?, src?, orig.to_vec()))
}

/// Removes the tracked UDP flows of `flows` in namespace `ns`: entries whose
/// original destination port is the host port and whose replies come from
/// the container. Returns how many were removed.
pub async fn flush_udp_flows(ns: &Namespace, flows: Vec<UdpFlow>, deadline: Duration) -> Result<usize> {
    if flows.is_empty() {
        return Ok(0);
    }
    let mut sock = Socket::open(ns, deadline).await?;
    tokio::task::spawn_blocking(move || {
        let mut removed = 0;
        for (family, v6) in [(libc::AF_INET as u8, false), (libc::AF_INET6 as u8, true)] {
            if !flows.iter().any(|f| f.container.is_ipv6() == v6) {
                continue;
            }
            let entries = sock.request_in(
                NFNL_SUBSYS_CTNETLINK,
                IPCTNL_MSG_CT_GET,
                NLM_F_DUMP,
                family,
                "list conntrack",
                |_| {},
            )?;
            for entry in entries {
                let Some((proto, dport, src, orig)) = parse(&entry) else { continue };
                if proto != IPPROTO_UDP || !flows.iter().any(|f| f.host_port == dport && f.container == src) {
                    continue;
                }
                let deleted = sock.request_in(
                    NFNL_SUBSYS_CTNETLINK,
                    IPCTNL_MSG_CT_DELETE,
                    0,
                    family,
                    "delete conntrack entry",
                    |w| w.attr(CTA_TUPLE_ORIG | NLA_F_NESTED, &orig),
                );
                match deleted {
                    Ok(_) => removed += 1,
                    // Gone meanwhile (expired, or removed by another flush).
                    Err(crate::Error::Netlink { errno: Some(libc::ENOENT), .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    })
    .await
    .map_err(|e| crate::Error::Internal(format!("conntrack flush task: {e}")))?
}
