//! Placing a driver's link in a sandbox: found in the sandbox already (the
//! fast path: drivers create it there directly) or moved from the host;
//! renamed to prefix + lowest free index, given its MAC and addresses, and
//! brought up; plus the sandbox's routes.

use crate::{Controller, Error, Result};
use cnm_driverapi::{MacAddress, RouteType, StaticRoute};
use cnm_osl::{Namespace, Netlink, Route, RouteScope};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The sandbox's netlink handle, opened on first use and kept.
pub(crate) async fn sandbox_netlink(ctrl: &Controller, sandbox_id: &str) -> Result<Netlink> {
    let (cached, shares_host, key) = {
        let st = ctrl.st();
        let sb = st.sandboxes.get(sandbox_id).ok_or_else(|| Error::SandboxNotFound(sandbox_id.to_string()))?;
        (sb.netlink.clone(), sb.rec.config.use_host_namespace, sb.rec.key.clone())
    };
    if let Some(nl) = cached {
        return Ok(nl);
    }
    let nl = if shares_host {
        ctrl.inner.host.clone()
    } else {
        let ns = Namespace::open(&key).map_err(|e| Error::os("open sandbox namespace", e))?;
        Netlink::connect(&ns, ctrl.inner.config.netlink_deadline)
            .await
            .map_err(|e| Error::os("open sandbox netlink", e))?
    };
    // Two callers may have opened one each: keep the first.
    let mut st = ctrl.st();
    let sb = st.sandboxes.get_mut(sandbox_id).ok_or_else(|| Error::SandboxNotFound(sandbox_id.to_string()))?;
    Ok(sb.netlink.get_or_insert(nl).clone())
}

/// `prefix` followed by the lowest index not in `used` (`eth0`, `eth1`, …).
pub(crate) fn next_name<'a>(prefix: &str, used: impl Iterator<Item = &'a str> + Clone) -> String {
    (0u32..)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| !used.clone().any(|u| u == n))
        .unwrap_or_else(|| prefix.to_string())
}

/// Whether `mac` is to be set on `link`: not when it has it already, and
/// never on an ipvlan link, which has its parent's and cannot be given
/// one, even the same (the recorded MAC of an endpoint whose parent
/// changed its own is not the link's).
fn takes_mac(link: &cnm_osl::Link, mac: &[u8; 6]) -> bool {
    link.mac != Some(*mac) && !matches!(&link.kind, cnm_osl::LinkKind::Other(kind) if kind == "ipvlan")
}

/// Places link `src` in the sandbox as `dst`, with `mac` and `addrs`, up
/// (the MAC as [`takes_mac`] says).
/// Returns the link's index in the sandbox.
pub(crate) async fn place(
    host: &Netlink,
    sb: &Netlink,
    src: &str,
    dst: &str,
    mac: Option<MacAddress>,
    addrs: &[IpNet],
) -> Result<u32> {
    let op = |what: &str| format!("{what} {src} as {dst}");
    let v4_only = !addrs.iter().any(|a| a.addr().is_ipv6());
    // An IPv4-only interface comes up after IPv6 is off on it; the sysctl
    // (a thread in the namespace) runs beside the address writes.
    let up_now = !v4_only;
    let index = match sb.link_get(src).await.map_err(|e| Error::os(op("find"), e))? {
        Some(link) => {
            let mac = mac.map(|m| m.octets()).filter(|m| takes_mac(&link, m));
            let configure = || sb.link_configure(link.index, Some(dst), mac, up_now);
            match configure().await {
                Err(e) if e.is_exists() && park_retired(sb, dst).await? => configure().await,
                r => r,
            }
            .map_err(|e| Error::os(op("configure"), e))?;
            link.index
        }
        None => {
            let link = host
                .link_get(src)
                .await
                .map_err(|e| Error::os(op("find"), e))?
                .ok_or_else(|| Error::os(op("find"), cnm_osl::Error::NotFound(format!("link {src}"))))?;
            let to_sandbox = || host.link_move(link.index, sb.namespace(), Some(dst));
            match to_sandbox().await {
                Err(e) if e.is_exists() && park_retired(sb, dst).await? => to_sandbox().await,
                r => r,
            }
            .map_err(|e| Error::os(op("move"), e))?;
            let moved = sb
                .link_get(dst)
                .await
                .map_err(|e| Error::os(op("find moved"), e))?
                .ok_or_else(|| Error::os(op("find moved"), cnm_osl::Error::NotFound(format!("link {dst}"))))?;
            let mac = mac.map(|m| m.octets()).filter(|m| takes_mac(&moved, m));
            sb.link_configure(moved.index, None, mac, up_now).await.map_err(|e| Error::os(op("configure"), e))?;
            moved.index
        }
    };
    let addresses = async {
        for a in addrs {
            add_address(sb, index, *a).await.map_err(|e| {
                let held = if e.is_address_in_use() { " (another link of its parent still holds it)" } else { "" };
                Error::os(format!("add address {a} to {dst}{held}"), e)
            })?;
        }
        Ok::<_, Error>(())
    };
    if v4_only {
        let (off, added) = tokio::join!(ipv6_off(sb, dst), addresses);
        off?;
        added?;
        sb.link_set_up(index).await.map_err(|e| Error::os(op("bring up"), e))?;
    } else {
        addresses.await?;
    }
    Ok(index)
}

/// How long an address another link of the same parent still holds is
/// waited for (see [`add_address`]).
const ADDRESS_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Adds `addr` to link `index`. An ipvlan parent lets one of its links
/// hold an address at a time, and the link of a sandbox deleted a moment
/// ago lives on until the kernel has torn its namespace down (in the
/// background, some milliseconds): an address it still holds is asked for
/// again every 20 ms, for at most [`ADDRESS_RELEASE_WAIT`].
async fn add_address(sb: &Netlink, index: u32, addr: IpNet) -> cnm_osl::Result<()> {
    let deadline = tokio::time::Instant::now() + ADDRESS_RELEASE_WAIT;
    loop {
        match sb.addr_add(index, addr).await {
            Err(e) if e.is_address_in_use() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            done => return done,
        }
    }
}

/// Turns IPv6 off on interface `name` of the sandbox before it comes up:
/// an interface that gets no IPv6 address must not configure one from a
/// router advertisement on its segment (a macvlan on the LAN, a rogue
/// container on a bridge), which no firewall of cnm's would cover
/// (CVE-2024-32473 class). A kernel without IPv6 has nothing to turn off.
async fn ipv6_off(sb: &Netlink, name: &str) -> Result<()> {
    match sb.namespace().sysctl_set(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1").await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(Error::os(format!("turn IPv6 off on {name}"), e)),
    }
}

/// The alias of an interface being deleted in the background.
pub(crate) const RETIRED_ALIAS: &str = "cnm:deleting";

/// How long a removed interface stays parked before the controller deletes
/// it itself (when its driver did not).
const PARKED_DELETE_DELAY: std::time::Duration = std::time::Duration::from_secs(2);

/// Removes interface `name` from the sandbox if it is still there: down
/// and marked in one request, deleted in the background (a synchronous
/// delete waits 20–40 ms for the kernel). It keeps its name until a
/// placement wants it (see [`park_retired`]): a rename re-registers the
/// link's sysctl tables, a third of a leave's time. A marked link left by
/// a process that died is deleted when the sandbox is restored.
pub(crate) async fn remove(sb: &Netlink, name: &str) -> Result<()> {
    let op = |what: &str| format!("{what} {name}");
    let Some(link) = sb.link_get(name).await.map_err(|e| Error::os(op("find"), e))? else { return Ok(()) };
    if matches!(&link.kind, cnm_osl::LinkKind::Other(kind) if kind == "ipvlan") {
        // An ipvlan link holds its addresses on its parent while it exists
        // (down too): it goes now, so that they can be given again at once.
        return match sb.link_del(link.index).await {
            Err(e) if !e.is_not_found() => Err(Error::os(op("delete"), e)),
            _ => Ok(()),
        };
    }
    match sb.link_retire(link.index, RETIRED_ALIAS).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(Error::os(op("take down"), e)),
    }
    // Later, and only if still there: the driver usually deletes the link
    // itself (a veth pair goes with its host end), and every delete request
    // holds the kernel's RTNL for a grace period.
    let nl = sb.clone();
    tokio::spawn(async move {
        tokio::time::sleep(PARKED_DELETE_DELAY).await;
        let still = nl.link_get_index(link.index).await.ok().flatten();
        if still.is_some_and(|l| l.alias.as_deref() == Some(RETIRED_ALIAS))
            && let Err(e) = nl.link_del(link.index).await
            && !e.is_not_found()
        {
            tracing::warn!(link = %link.name, error = %crate::Chain(&e), "background delete failed; retried at restore");
        }
    });
    Ok(())
}

/// Renames a removed interface still called `name` out of the way (to
/// `gone` + its index in hex: unique, and within IFNAMSIZ). False when
/// the link of that name is not one cnm removed.
async fn park_retired(sb: &Netlink, name: &str) -> Result<bool> {
    let op = |what: &str| format!("{what} {name}");
    let Some(link) = sb.link_get(name).await.map_err(|e| Error::os(op("find"), e))? else { return Ok(true) };
    if link.alias.as_deref() != Some(RETIRED_ALIAS) {
        return Ok(false);
    }
    match sb.link_configure(link.index, Some(&format!("gone{:x}", link.index)), None, false).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(true),
        Err(e) => Err(Error::os(op("rename out of the way"), e)),
    }
}

/// Deletes the links a previous process left marked in a sandbox; failures are logged.
pub(crate) async fn sweep_retired(sb: &Netlink) {
    let Ok(links) = sb.link_list().await else { return };
    for l in links.into_iter().filter(|l| l.alias.as_deref() == Some(RETIRED_ALIAS)) {
        if let Err(e) = sb.link_del(l.index).await
            && !e.is_not_found()
        {
            tracing::warn!(link = %l.name, error = %crate::Chain(&e), "failed to delete a link left marked");
        }
    }
}

/// The index of interface `iface` of a sandbox: remembered from its placement, or looked up.
pub(crate) async fn index_of(ctrl: &Controller, sb: &Netlink, sandbox_id: &str, iface: &str) -> Result<Option<u32>> {
    let known = ctrl.st().sandboxes.get(sandbox_id).and_then(|s| s.ifindex.get(iface).copied());
    if let Some(i) = known {
        return Ok(Some(i));
    }
    Ok(sb.link_get(iface).await.map_err(|e| Error::os(format!("find {iface}"), e))?.map(|l| l.index))
}

/// Adds default routes via the gateways, out of interface `index`.
pub(crate) async fn add_default_routes(
    sb: &Netlink,
    index: u32,
    gw4: Option<Ipv4Addr>,
    gw6: Option<Ipv6Addr>,
) -> Result<()> {
    for gw in gw4.map(IpAddr::V4).into_iter().chain(gw6.map(IpAddr::V6)) {
        sb.route_add(&Route::default_via(gw, index))
            .await
            .map_err(|e| Error::os(format!("add default route via {gw} dev index {index}"), e))?;
    }
    Ok(())
}

/// Removes the default routes via the gateways out of interface `index` (absent routes are fine).
pub(crate) async fn del_default_routes(sb: &Netlink, index: u32, gw4: Option<Ipv4Addr>, gw6: Option<Ipv6Addr>) {
    for gw in gw4.map(IpAddr::V4).into_iter().chain(gw6.map(IpAddr::V6)) {
        if let Err(e) = sb.route_del(&Route::default_via(gw, index)).await
            && !e.is_not_found()
        {
            tracing::warn!(%gw, index, error = %crate::Chain(&e), "failed to remove default route");
        }
    }
}

/// Adds a driver's static routes out of link `index`.
pub(crate) async fn add_static_routes(sb: &Netlink, index: u32, routes: &[StaticRoute]) -> Result<()> {
    for r in routes {
        let route = match r.route_type {
            RouteType::NextHop => Route {
                destination: r.destination,
                gateway: Some(r.next_hop.ok_or_else(|| {
                    Error::InvalidParameter(format!("static route to {} has no next hop", r.destination))
                })?),
                oif: Some(index),
                scope: RouteScope::Universe,
            },
            RouteType::Connected => {
                Route { destination: r.destination, gateway: None, oif: Some(index), scope: RouteScope::Link }
            }
        };
        sb.route_add(&route).await.map_err(|e| Error::os(format!("add route to {}", r.destination), e))?;
    }
    Ok(())
}
