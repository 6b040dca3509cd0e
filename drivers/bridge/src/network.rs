//! A bridge network and its setup steps: find or create the bridge, put the
//! gateways on it, bring it up; and its teardown.

use crate::{BridgeConfig, Error};
use cnm_driverapi::Table;
use cnm_driverapi::{CreateNetworkRequest, MacAddress};
use cnm_osl::firewall::NetworkRules;
use cnm_osl::{LinkKind, Netlink};
use ipnet::IpNet;
use std::net::IpAddr;

/// What the driver knows of an endpoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct BridgeEndpoint {
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub mac: Option<MacAddress>,
}

/// One bridge network.
#[derive(Debug)]
pub(crate) struct BridgeNetwork {
    pub id: String,
    pub config: BridgeConfig,
    pub bridge: String,
    /// The bridge's interface index (changes if the bridge is made again).
    pub index: std::sync::atomic::AtomicU32,
    /// Whether the driver created the bridge (and so deletes it).
    pub owned: bool,
    pub internal: bool,
    /// Gateways with their pool's prefix length.
    pub gateways: Vec<IpNet>,
    /// The network's pools.
    pub pools: Vec<IpNet>,
    pub endpoints: Table<String, BridgeEndpoint>,
    /// Published ports, by endpoint.
    pub published: Table<String, Vec<crate::ports::Published>>,
}

impl BridgeNetwork {
    /// The bridge's interface index.
    pub fn index(&self) -> u32 {
        self.index.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the firewall needs to know of this network.
    pub fn rules(&self) -> NetworkRules {
        NetworkRules {
            bridge: self.bridge.clone(),
            subnets_v4: self.pools.iter().filter_map(|p| if let IpNet::V4(v) = p { Some(*v) } else { None }).collect(),
            subnets_v6: self.pools.iter().filter_map(|p| if let IpNet::V6(v) = p { Some(*v) } else { None }).collect(),
            masquerade: self.config.enable_ip_masquerade,
            internal: self.internal,
            icc: self.config.enable_icc,
            gateway_v4: self.config.gateway_mode_ipv4,
            // Unique local addresses are never routed beyond the host:
            // without a mode, they are masqueraded (Docker 27+'s default).
            gateway_v6: self.config.gateway_mode_ipv6.or_else(|| {
                let ula = |p: &IpNet| matches!(p, IpNet::V6(v) if (v.addr().segments()[0] & 0xfe00) == 0xfc00);
                self.pools.iter().any(ula).then_some(cnm_osl::firewall::GatewayMode::Nat)
            }),
        }
    }

    /// The published ports of `mappings` reached at the containers' own
    /// addresses: those of a family whose gateway mode is `routed`.
    pub fn routed_ports(&self, mappings: &[cnm_osl::firewall::PortMapping]) -> Vec<cnm_osl::firewall::RoutedPort> {
        use crate::config::GatewayMode::Routed;
        let mut out: Vec<cnm_osl::firewall::RoutedPort> = Vec::new();
        for m in mappings {
            let routed = if m.container_ip.is_ipv6() {
                self.config.gateway_mode_ipv6 == Some(Routed)
            } else {
                self.config.gateway_mode_ipv4 == Routed
            };
            let p = cnm_osl::firewall::RoutedPort {
                proto: m.proto,
                container_ip: m.container_ip,
                container_port: m.container_port,
            };
            if routed && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// The gateway of the pool holding `addr`.
    pub fn gateway_for(&self, addr: IpAddr) -> Option<IpAddr> {
        self.gateways.iter().find(|g| g.contains(&addr)).map(|g| g.addr())
    }
}

/// The alias marking a bridge as created by cnm for network `id`.
pub(crate) fn owner_alias(id: &str) -> String {
    format!("cnm:{id}")
}

/// A stable, locally administered MAC for the bridge, from the network id, so
/// the bridge's MAC does not change as ports come and go.
fn bridge_mac(id: &str) -> [u8; 6] {
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    for (i, b) in id.as_bytes().chunks(2).take(5).enumerate() {
        let hex = std::str::from_utf8(b).ok().and_then(|s| u8::from_str_radix(s, 16).ok());
        mac[i + 1] = hex.unwrap_or(b[0]);
    }
    mac
}

/// Step 1: find the bridge (adopting one the user made) or create it.
pub(crate) async fn ensure_bridge(nl: &Netlink, id: &str, name: &str, mtu: Option<u32>) -> Result<(u32, bool), Error> {
    match nl.link_get(name).await.map_err(|e| Error::os(format!("look up bridge {name}"), e))? {
        Some(link) if link.kind != LinkKind::Bridge => Err(Error::NotABridge(name.to_string())),
        Some(link) => {
            let owned = link.alias.as_deref() == Some(owner_alias(id).as_str());
            if let Some(mtu) = mtu.filter(|m| *m != link.mtu) {
                nl.link_set_mtu(link.index, mtu).await.map_err(|e| Error::os(format!("set MTU of {name}"), e))?;
            }
            Ok((link.index, owned))
        }
        None => {
            let alias = owner_alias(id);
            let link = nl
                .link_add_bridge(name, mtu, Some(bridge_mac(id)), Some(&alias))
                .await
                .map_err(|e| Error::os(format!("create bridge {name}"), e))?;
            tracing::info!(bridge = name, "bridge created");
            Ok((link.index, true))
        }
    }
}

/// `accept_ra=0` on a bridge cnm made, before it comes up: a container's
/// router advertisement must not make it the host's IPv6 router
/// (CVE-2020-13401 class). The ports (veth host ends) are enslaved when
/// they are made, so their frames reach only the bridge's stack. A bridge
/// the user made is left as it is (it may carry the LAN's own routers).
async fn refuse_router_advertisements(nl: &Netlink, bridge: &str) -> Result<(), Error> {
    match nl.namespace().sysctl_set(&format!("net/ipv6/conf/{bridge}/accept_ra"), "0").await {
        Ok(()) => Ok(()),
        // A kernel without IPv6: nothing to refuse.
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(Error::os(format!("refuse router advertisements on {bridge}"), e)),
    }
}

/// Sets up the network's bridge; on failure removes what it created.
pub(crate) async fn setup(
    nl: &Netlink,
    req: &CreateNetworkRequest,
    config: BridgeConfig,
    reaper: &crate::reaper::Reaper,
) -> Result<BridgeNetwork, Error> {
    if req.ipv4_data.is_empty() && (req.options.enable_ipv4 || req.ipv6_data.is_empty()) {
        return Err(Error::NoIpv4Pool);
    }
    let isolated_v4 = config.gateway_mode_ipv4 == crate::config::GatewayMode::Isolated;
    let isolated_v6 = config.gateway_mode_ipv6 == Some(crate::config::GatewayMode::Isolated);
    if (isolated_v4 || isolated_v6) && !req.options.internal {
        return Err(Error::InvalidOption {
            key: if isolated_v4 { crate::config::OPT_GATEWAY_MODE_V4 } else { crate::config::OPT_GATEWAY_MODE_V6 }
                .to_string(),
            value: "isolated".into(),
            reason: "gateway mode 'isolated' can only be used for an internal network".into(),
        });
    }
    let bridge = config.bridge_name(&req.network_id);
    // A bridge of this name still being deleted must be gone before we look.
    reaper.wait(&bridge).await;
    let (index, owned) = ensure_bridge(nl, &req.network_id, &bridge, config.mtu).await?;
    // An isolated family has no gateway: no address on the bridge, no
    // default route in the containers (for IPv6 not even a link-local
    // address on the bridge).
    let mut gateways: Vec<IpNet> = Vec::new();
    if !config.inhibit_ipv4 && !isolated_v4 {
        gateways.extend(req.ipv4_data.iter().filter_map(|d| d.gateway));
    }
    if req.options.enable_ipv6 && !isolated_v6 {
        gateways.extend(req.ipv6_data.iter().filter_map(|d| d.gateway));
    }
    let steps = async {
        if owned {
            refuse_router_advertisements(nl, &bridge).await?;
        }
        if owned && isolated_v6 {
            nl.namespace()
                .sysctl_set(&format!("net/ipv6/conf/{bridge}/disable_ipv6"), "1")
                .await
                .map_err(|e| Error::os(format!("turn IPv6 off on isolated {bridge}"), e))?;
        }
        for gw in &gateways {
            nl.addr_add(index, *gw).await.map_err(|e| Error::os(format!("add gateway {gw} to {bridge}"), e))?;
        }
        nl.link_set_up(index).await.map_err(|e| Error::os(format!("bring {bridge} up"), e))
    };
    if let Err(e) = steps.await {
        if owned {
            let _ = reaper.reap_bridge(nl, &bridge, index).await;
        }
        return Err(e);
    }
    // The gateway used at join time comes from the pools even with
    // inhibit_ipv4; an isolated family has none.
    let gateways = req
        .ipv4_data
        .iter()
        .filter(|_| !isolated_v4)
        .chain(req.ipv6_data.iter().filter(|_| !isolated_v6))
        .filter_map(|d| d.gateway)
        .collect();
    let v6 = req.options.enable_ipv6;
    let pools = req.ipv4_data.iter().chain(req.ipv6_data.iter().filter(|_| v6)).map(|d| d.pool).collect();
    Ok(BridgeNetwork {
        id: req.network_id.clone(),
        config,
        bridge,
        index: std::sync::atomic::AtomicU32::new(index),
        owned,
        internal: req.options.internal,
        gateways,
        pools,
        endpoints: Table::default(),
        published: Table::default(),
    })
}

/// Removes the bridge if the driver created it (down and marked at once,
/// deleted in the background by `reaper`), or else the gateways it added.
pub(crate) async fn teardown(nl: &Netlink, net: &BridgeNetwork, reaper: &crate::reaper::Reaper) -> Result<(), Error> {
    if net.owned {
        reaper.reap_bridge(nl, &net.bridge, net.index()).await?;
        tracing::info!(bridge = %net.bridge, "bridge deleted");
        return Ok(());
    }
    for gw in &net.gateways {
        if let Err(e) = nl.addr_del(net.index(), *gw).await
            && !e.is_not_found()
        {
            return Err(Error::os(format!("remove gateway {gw} from {}", net.bridge), e));
        }
    }
    Ok(())
}

/// The host settings a non-internal network needs: IP forwarding (IPv6 too
/// when the network has it), and `route_localnet` on the bridge so the host
/// reaches published ports through localhost. One thread sets them all; the
/// FORWARD policy of other tables is left alone.
pub(crate) async fn host_settings(nl: &Netlink, net: &BridgeNetwork) -> Result<(), Error> {
    if net.internal {
        return Ok(());
    }
    let mut settings = Vec::new();
    if net.pools.iter().any(|p| p.addr().is_ipv4()) {
        settings.push(("net/ipv4/ip_forward".to_string(), "1".to_string()));
    }
    if net.pools.iter().any(|p| p.addr().is_ipv6()) {
        settings.push(("net/ipv6/conf/all/forwarding".to_string(), "1".to_string()));
    }
    settings.push((format!("net/ipv4/conf/{}/route_localnet", net.bridge), "1".to_string()));
    let changed = nl.namespace().sysctl_ensure(settings).await.map_err(|e| Error::os("set host sysctls", e))?;
    for (key, old) in changed {
        if !key.ends_with("route_localnet") {
            tracing::info!(key, from = %old, to = "1", "changed a host sysctl for bridge networking");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bridge_mac_is_local_unicast_and_stable() {
        let m = super::bridge_mac("0a1b2c3d4e5f6789");
        assert_eq!(m, [0x02, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e]);
        assert_eq!(m[0] & 0x01, 0, "unicast");
    }
}
