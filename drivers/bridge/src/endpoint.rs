//! An endpoint's veth pair: named from the endpoint id (so a restarted
//! controller finds it again), the host end a port of the bridge, the other
//! end created directly inside the sandbox's namespace when it exists.

use crate::Error;
use crate::network::BridgeNetwork;
use cnm_osl::{BridgePortFlags, Namespace, Netlink, VethSpec};

/// The host end's name: `veth` and 11 characters of the endpoint id.
pub(crate) fn host_name(endpoint_id: &str) -> String {
    format!("veth{}", cnm_driverapi::id::short(endpoint_id, 11))
}

/// The sandbox end's name until the controller renames it: `cnm` and 12 characters of the id.
pub(crate) fn peer_name(endpoint_id: &str) -> String {
    format!("cnm{}", cnm_driverapi::id::short(endpoint_id, 12))
}

/// Creates the endpoint's veth pair; the peer goes straight into the
/// namespace at `sandbox_key` when there is one (with Docker Engine the
/// namespace may not exist yet: the peer then stays on the host and the
/// engine moves it).
pub(crate) async fn create_veth(
    nl: &Netlink,
    net: &BridgeNetwork,
    endpoint_id: &str,
    mac: Option<[u8; 6]>,
    sandbox_key: &str,
    reaper: &crate::reaper::Reaper,
) -> Result<String, Error> {
    let host = host_name(endpoint_id);
    // The pair of an earlier join of this endpoint may still be going away.
    reaper.wait(&host).await;
    let peer = peer_name(endpoint_id);
    let sandbox = Namespace::open(sandbox_key).ok();
    let spec = VethSpec {
        name: &host,
        peer_name: &peer,
        peer_namespace: sandbox.as_ref(),
        mtu: net.config.mtu,
        peer_mac: mac,
        controller: Some(net.index()),
        up: true,
    };
    match nl.link_add_veth(&spec).await {
        Ok(()) => Ok(peer),
        Err(e) if e.is_exists() => {
            // A leftover of an interrupted join: replace it (synchronously:
            // its name is needed now).
            nl.link_del_by_name(&host).await.map_err(|e| Error::os(format!("delete veth {host}"), e))?;
            nl.link_add_veth(&spec).await.map_err(|e| Error::os(format!("create veth {host}"), e))?;
            Ok(peer)
        }
        Err(e) => Err(Error::os(format!("create veth {host}"), e)),
    }
}

/// Deletes the endpoint's veth pair if it exists (both ends go together):
/// down and marked at once, unregistered by the kernel in the background
/// (a synchronous veth delete costs 20–40 ms of RCU grace periods). The
/// host end goes down even when the sandbox end is down already: left up, it
/// would give the pair its carrier back as soon as a container with
/// `NET_ADMIN` brought its end up again, until the batch deletes it.
pub(crate) async fn delete_veth(nl: &Netlink, endpoint_id: &str, reaper: &crate::reaper::Reaper) -> Result<(), Error> {
    let host = host_name(endpoint_id);
    if reaper.is_pending(&host) {
        return Ok(());
    }
    match nl.link_get(&host).await.map_err(|e| Error::os(format!("find veth {host}"), e))? {
        Some(link) => reaper.reap(nl, &host, link.index).await,
        None => Ok(()),
    }
}

/// The bridge port settings of an endpoint's veth, `None` where the
/// kernel's default stays: isolated when ICC is off (ports of the bridge
/// cannot reach each other at layer 2), hairpin once its ports are
/// published (as publishing sets it).
pub(crate) fn port_flags(net: &BridgeNetwork, endpoint_id: &str) -> BridgePortFlags {
    let isolated = (!net.config.enable_icc).then_some(true);
    let hairpin = net.published.contains(endpoint_id).then_some(true);
    BridgePortFlags { isolated, hairpin }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_fit_ifnamsiz() {
        let id = "c94ac48d9f4e33442bf54673a059b75e842112ea0fb123a12affcc8965dc19c8";
        assert_eq!(super::host_name(id), "vethc94ac48d9f4");
        assert_eq!(super::peer_name(id), "cnmc94ac48d9f4e");
        assert!(super::host_name(id).len() <= 15 && super::peer_name(id).len() <= 15);
        assert_eq!(super::host_name("ab"), "vethab");
    }
}
