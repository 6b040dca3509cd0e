//! The controller's part of a join, done by hand so that the suite needs no
//! controller: the link a join names is placed in the sandbox (moved from
//! the host, or found there), named, given its MAC and address, brought up
//! and routed as the join's answer says. Also the probes: a TCP service in
//! a sandbox, and the waits for a link to go.

use crate::host::Sandbox;
use cnm_driverapi::{JoinResponse, MacAddress, RouteType};
use cnm_osl::{Netlink, Route, RouteScope};
use ipnet::IpNet;
use std::net::SocketAddr;

/// What a placed interface is called in the sandbox.
pub(crate) fn sandbox_name(prefix: &str) -> String {
    format!("{prefix}0")
}

/// Places the link of `resp` in `sb` with `address` and `mac` (not set
/// again where the link has it: an ipvlan link cannot be given even its
/// own), and adds the join's routes. Does nothing for a join without an
/// interface.
pub(crate) async fn place(
    host: &Netlink,
    sb: &Sandbox,
    resp: &JoinResponse,
    address: Option<IpNet>,
    mac: Option<MacAddress>,
) -> Result<(), String> {
    let Some(iface) = &resp.interface_name else { return Ok(()) };
    let dst = sandbox_name(&iface.dst_prefix);
    let e = |what: String| move |err: cnm_osl::Error| format!("{what}: {}", cnm_osl::chain(&err));
    let nl = &sb.netlink;
    let index = match nl.link_get(&iface.src_name).await.map_err(e(format!("find {}", iface.src_name)))? {
        Some(link) => {
            let mac = mac.map(|m| m.octets()).filter(|m| link.mac != Some(*m));
            nl.link_configure(link.index, Some(&dst), mac, false)
                .await
                .map_err(e(format!("name {} {dst}", iface.src_name)))?;
            link.index
        }
        None => {
            let link =
                host.link_get(&iface.src_name).await.map_err(e(format!("find {}", iface.src_name)))?.ok_or_else(
                    || format!("join named {}, which is neither on the host nor in the sandbox", iface.src_name),
                )?;
            host.link_move(link.index, sb.namespace(), Some(&dst))
                .await
                .map_err(e(format!("move {} into the sandbox", iface.src_name)))?;
            let moved = nl.link_get(&dst).await.map_err(e(format!("find {dst}")))?;
            let moved = moved.ok_or_else(|| format!("{dst} is not in the sandbox after the move"))?;
            let mac = mac.map(|m| m.octets()).filter(|m| moved.mac != Some(*m));
            nl.link_configure(moved.index, None, mac, false).await.map_err(e(format!("configure {dst}")))?;
            moved.index
        }
    };
    if let Some(a) = address {
        nl.addr_add(index, a).await.map_err(e(format!("add {a} to {dst}")))?;
    }
    nl.link_set_up(index).await.map_err(e(format!("bring {dst} up")))?;
    for r in &resp.static_routes {
        let route = match r.route_type {
            RouteType::Connected => Route::connected(r.destination, index),
            RouteType::NextHop => {
                Route { destination: r.destination, gateway: r.next_hop, oif: Some(index), scope: RouteScope::Universe }
            }
        };
        nl.route_add(&route).await.map_err(e(format!("add route {}", r.destination)))?;
    }
    if let Some(gw) = resp.gateway {
        nl.route_add(&Route::default_via(gw.into(), index)).await.map_err(e(format!("add default route via {gw}")))?;
    }
    Ok(())
}

/// Whether a probe's error means the other side is silent (no answer,
/// refused, no route), as opposed to a probe that could not run.
pub(crate) fn is_silence(e: &cnm_osl::Error) -> bool {
    use std::io::ErrorKind as K;
    match e {
        cnm_osl::Error::Io { source, .. } => matches!(
            source.kind(),
            K::TimedOut
                | K::WouldBlock
                | K::ConnectionRefused
                | K::ConnectionReset
                | K::HostUnreachable
                | K::NetworkUnreachable
        ),
        _ => false,
    }
}

/// The answer a [`Service`] gives every connection.
pub(crate) const ANSWER: &[u8] = b"cnm-driver-suite";

/// A TCP service in a sandbox: answers [`ANSWER`] to every connection
/// until dropped.
pub(crate) struct Service(tokio::task::JoinHandle<()>);

impl Service {
    /// Listens on `addr` inside `sb`.
    pub(crate) async fn start(sb: &Sandbox, addr: SocketAddr) -> Result<Service, String> {
        let listener = sb
            .namespace()
            .run(move || {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(l)
            })
            .await
            .map_err(|e| format!("enter the sandbox: {}", cnm_osl::chain(&e)))?
            .map_err(|e| format!("listen on {addr} in the sandbox: {e}"))?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listen on {addr}: {e}"))?;
        Ok(Service(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(ANSWER).await;
                let _ = s.shutdown().await;
            }
        })))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.0.abort();
    }
}
