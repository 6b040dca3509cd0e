//! Drift repair and orphans: what someone else removed (cnm's firewall
//! table, a network's bridge, a gateway address) is put back as soon as the
//! kernel reports it, a veth removed under a joined endpoint is reported to
//! the controller, and what an interrupted create or delete left (a bridge
//! cnm made, its firewall elements) is removed.

use crate::Error;
use crate::driver::{BridgeDriver, LinkRepairs};
use crate::endpoint::{host_name, port_flags};
use crate::network::{self, BridgeNetwork};
use cnm_driverapi::Table;
use cnm_osl::Netlink;
use cnm_osl::firewall::{Firewall, PortMapping};
use std::sync::Arc;

impl BridgeDriver {
    /// The firewall, its table created (once per driver), and put back
    /// whenever someone removes it.
    pub(crate) async fn firewall(&self) -> Result<Option<&Arc<dyn Firewall>>, Error> {
        let Some(fw) = &self.firewall else { return Ok(None) };
        self.firewall_ready
            .get_or_try_init(|| async {
                fw.ensure_base().await.map_err(|e| Error::os("create the firewall table", e))?;
                if let Some(removed) = fw.table_removed() {
                    let nets = Arc::downgrade(&self.networks);
                    tokio::spawn(repair_table(fw.clone(), nets, removed, self.table_repairs.clone()));
                }
                Ok::<(), Error>(())
            })
            .await?;
        Ok(Some(fw))
    }

    /// What was put back after someone removed it: the firewall table, bridges, gateway addresses.
    pub(crate) fn repair_counts(&self) -> Vec<(String, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        vec![
            ("firewall table".into(), self.table_repairs.load(Relaxed)),
            ("bridge".into(), self.link_repairs.bridges.load(Relaxed)),
            ("gateway address".into(), self.link_repairs.addresses.load(Relaxed)),
        ]
    }

    /// Starts (once) following removals of links and addresses, to put back
    /// a bridge or gateway address someone removed; a failure to start is logged.
    pub(crate) async fn watch_links(&self) {
        let _ = self
            .link_watch
            .get_or_init(|| async {
                match cnm_osl::watch::removals(self.nl.namespace()).await {
                    Ok(rx) => {
                        let ctx = RepairContext {
                            nl: self.nl.clone(),
                            networks: Arc::downgrade(&self.networks),
                            reaper: self.reaper.clone(),
                            repairs: self.link_repairs.clone(),
                            lost: self.lost.clone(),
                        };
                        tokio::spawn(repair_links(ctx, rx));
                    }
                    Err(e) => tracing::warn!(error = %cnm_driverapi::Chain(&e), "cannot watch for removed bridges and addresses"),
                }
            })
            .await;
    }

    /// Removes what an interrupted create or delete of network `id` left: the
    /// bridge cnm made for it (found by its owner mark), that bridge's
    /// firewall elements and port mappings into its subnets (read from the
    /// bridge's addresses). [`Error::NetworkNotFound`] if there is no such bridge.
    pub(crate) async fn remove_orphan(&self, id: &str) -> Result<(), Error> {
        let links = self.nl.link_list().await.map_err(|e| Error::os("list links", e))?;
        let alias = network::owner_alias(id);
        let Some(link) = links.into_iter().find(|l| l.alias.as_deref() == Some(alias.as_str())) else {
            return Err(Error::NetworkNotFound(id.to_string()));
        };
        let addrs = self.nl.addr_list(Some(link.index)).await.map_err(|e| Error::os("list addresses", e))?;
        let subnets: Vec<ipnet::IpNet> = addrs.iter().map(|a| a.net.trunc()).collect();
        if let Some(fw) = self.firewall().await? {
            let rules = cnm_osl::firewall::NetworkRules {
                bridge: link.name.clone(),
                subnets_v4: subnets
                    .iter()
                    .filter_map(|s| if let ipnet::IpNet::V4(v) = s { Some(*v) } else { None })
                    .collect(),
                subnets_v6: subnets
                    .iter()
                    .filter_map(|s| if let ipnet::IpNet::V6(v) = s { Some(*v) } else { None })
                    .collect(),
                masquerade: true,
                internal: false,
                icc: true,
                gateway_v4: Default::default(),
                gateway_v6: None,
            };
            // Every element a network can have (absent ones are fine): an
            // internal network has no masquerading element, so both forms.
            for internal in [false, true] {
                let rules = cnm_osl::firewall::NetworkRules { internal, ..rules.clone() };
                fw.remove_network(&rules).await.map_err(|e| Error::os("remove the network's firewall rules", e))?;
            }
            fw.remove_ports_into(&subnets).await.map_err(|e| Error::os("remove the network's port mappings", e))?;
        }
        if link.carrier {
            // Ports are still up on it (their sandboxes outlived the
            // network): down at once, not when the batch deletes it.
            self.nl.link_set_down(link.index).await.map_err(|e| Error::os(format!("take {} down", link.name), e))?;
        }
        self.reaper.reap_bridge(&self.nl, &link.name, link.index).await?;
        tracing::info!(network = id, bridge = %link.name, "removed the bridge of an interrupted network");
        Ok(())
    }
}

/// Puts cnm's firewall table back each time someone removes it: the base,
/// every network's elements and every published port; counted and logged.
/// Ends with the driver.
pub(crate) async fn repair_table(
    fw: Arc<dyn Firewall>,
    networks: std::sync::Weak<Table<String, Arc<BridgeNetwork>>>,
    mut removed: tokio::sync::watch::Receiver<u64>,
    repairs: Arc<std::sync::atomic::AtomicU64>,
) {
    while removed.changed().await.is_ok() {
        let Some(nets) = networks.upgrade() else { return };
        let nets: Vec<Arc<BridgeNetwork>> = nets.values();
        let ports: Vec<PortMapping> = nets
            .iter()
            .flat_map(|n| n.published.lock().values().flatten().flat_map(|x| x.mappings.clone()).collect::<Vec<_>>())
            .collect();
        let routed: Vec<cnm_osl::firewall::RoutedPort> = nets
            .iter()
            .flat_map(|n| {
                let mappings: Vec<PortMapping> =
                    n.published.lock().values().flatten().flat_map(|x| x.mappings.clone()).collect();
                n.routed_ports(&mappings)
            })
            .collect();
        let restored = async {
            fw.ensure_base().await?;
            for n in &nets {
                fw.add_network(&n.rules()).await?;
            }
            fw.add_ports(&ports).await?;
            fw.set_routed_ports(&routed, true).await
        };
        match restored.await {
            Ok(()) => {
                let n = repairs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                tracing::warn!(
                    networks = nets.len(),
                    ports = ports.len(),
                    repairs = n,
                    "cnm's firewall table was removed behind its back: put back"
                );
            }
            Err(e) => {
                tracing::error!(error = %cnm_driverapi::Chain(&e), "cnm's firewall table was removed and cannot be put back")
            }
        }
    }
}

/// What the repair of links needs of the driver.
pub(crate) struct RepairContext {
    nl: Netlink,
    networks: std::sync::Weak<Table<String, Arc<BridgeNetwork>>>,
    reaper: Arc<crate::reaper::Reaper>,
    repairs: Arc<LinkRepairs>,
    lost: Arc<std::sync::OnceLock<cnm_driverapi::LostInterfaceListener>>,
}

/// Puts back a network's bridge (with its gateways, its ports and their
/// settings) or a gateway address when someone else removes it, and
/// reports removed veths; after lost notifications, looks at everything
/// again. Ends with the driver.
pub(crate) async fn repair_links(
    ctx: RepairContext,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<cnm_osl::watch::Removed>,
) {
    while let Some(removed) = rx.recv().await {
        let Some(nets) = ctx.networks.upgrade() else { return };
        let nets: Vec<Arc<BridgeNetwork>> = nets.values();
        match removed {
            cnm_osl::watch::Removed::Link { alias, .. } if alias.as_deref() == Some(crate::reaper::REAP_ALIAS) => {}
            cnm_osl::watch::Removed::Link { name, .. } => match nets.iter().find(|n| n.bridge == name && n.owned) {
                Some(net) => repair_bridge(&ctx, net).await,
                None => report_lost_veth(&ctx, &nets, &name),
            },
            cnm_osl::watch::Removed::Address { index, address } => {
                if let Some(net) = nets.iter().find(|n| n.index() == index && wanted_gateways(n).contains(&address)) {
                    repair_address(&ctx, net, address).await;
                }
            }
            cnm_osl::watch::Removed::Overrun => {
                tracing::warn!("link notifications were lost: looking at every bridge and veth again");
                resync(&ctx, &nets).await;
            }
        }
    }
}

/// Puts back a network's bridge that someone removed.
async fn repair_bridge(ctx: &RepairContext, net: &BridgeNetwork) {
    // Our own deletions go through the reaper, marked first.
    if ctx.reaper.is_pending(&net.bridge) {
        return;
    }
    match put_back_bridge(&ctx.nl, net).await {
        Ok(ports) => {
            let n = ctx.repairs.bridges.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::warn!(bridge = %net.bridge, ports, repairs = n, "a bridge was removed behind our back: put back");
        }
        Err(e) => {
            tracing::error!(bridge = %net.bridge, error = %cnm_driverapi::Chain(&e), "a bridge was removed and cannot be put back")
        }
    }
}

/// Puts back a gateway address that someone removed from a network's bridge.
async fn repair_address(ctx: &RepairContext, net: &BridgeNetwork, address: ipnet::IpNet) {
    match ctx.nl.addr_add(net.index(), address).await {
        Ok(()) => {
            let n = ctx.repairs.addresses.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::warn!(bridge = %net.bridge, %address, repairs = n, "a gateway address was removed behind our back: put back");
        }
        // Gone with its bridge (being put back, or deleted).
        Err(e) => {
            tracing::debug!(bridge = %net.bridge, error = %cnm_driverapi::Chain(&e), "gateway address not put back")
        }
    }
}

/// After lost notifications: every owned bridge and its gateway addresses
/// are checked and put back, and every endpoint whose veth is missing is
/// reported (the controller knows which of them are joined).
async fn resync(ctx: &RepairContext, nets: &[Arc<BridgeNetwork>]) {
    for net in nets.iter().filter(|n| n.owned) {
        match ctx.nl.link_get(&net.bridge).await {
            Ok(None) => repair_bridge(ctx, net).await,
            Ok(Some(link)) => {
                let have: Vec<ipnet::IpNet> = ctx
                    .nl
                    .addr_list(Some(link.index))
                    .await
                    .map(|a| a.into_iter().map(|a| a.net).collect())
                    .unwrap_or_default();
                for gw in wanted_gateways(net).into_iter().filter(|g| !have.contains(g)) {
                    repair_address(ctx, net, gw).await;
                }
            }
            Err(e) => {
                tracing::warn!(bridge = %net.bridge, error = %cnm_driverapi::Chain(&e), "cannot look for the bridge")
            }
        }
    }
    let Some(listener) = ctx.lost.get() else { return };
    for net in nets {
        let eids: Vec<String> = net.endpoints.keys();
        for eid in eids {
            let host = host_name(&eid);
            if !ctx.reaper.is_pending(&host) && matches!(ctx.nl.link_get(&host).await, Ok(None)) {
                // Not joined, or joined and lost: the controller tells which.
                listener(cnm_driverapi::LostInterface { network_id: net.id.clone(), endpoint_id: eid });
            }
        }
    }
}

/// A joined endpoint's veth pair removed by someone else (its host end is
/// `name`): the controller is told, to join the endpoint again.
fn report_lost_veth(ctx: &RepairContext, nets: &[Arc<BridgeNetwork>], name: &str) {
    let Some(listener) = ctx.lost.get() else { return };
    for net in nets {
        let eids: Vec<String> = net.endpoints.keys();
        if let Some(eid) = eids.into_iter().find(|eid| host_name(eid) == name) {
            tracing::warn!(veth = %name, endpoint = %eid, "a container's veth was removed behind our back");
            listener(cnm_driverapi::LostInterface { network_id: net.id.clone(), endpoint_id: eid });
        }
    }
}

/// The gateway addresses the network's bridge carries.
pub(crate) fn wanted_gateways(net: &BridgeNetwork) -> Vec<ipnet::IpNet> {
    net.gateways.iter().filter(|g| !(g.addr().is_ipv4() && net.config.inhibit_ipv4)).copied().collect()
}

/// Makes the bridge again, with its gateways, and puts the veths of its
/// endpoints back on it with their port settings; returns how many.
async fn put_back_bridge(nl: &Netlink, net: &BridgeNetwork) -> Result<usize, Error> {
    let (index, _) = network::ensure_bridge(nl, &net.id, &net.bridge, net.config.mtu).await?;
    net.index.store(index, std::sync::atomic::Ordering::Relaxed);
    for gw in wanted_gateways(net) {
        match nl.addr_add(index, gw).await {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => return Err(Error::os(format!("add gateway {gw} to {}", net.bridge), e)),
        }
    }
    nl.link_set_up(index).await.map_err(|e| Error::os(format!("bring {} up", net.bridge), e))?;
    let eids: Vec<String> = net.endpoints.keys();
    let mut ports = 0;
    for eid in eids {
        let host = host_name(&eid);
        let Ok(Some(link)) = nl.link_get(&host).await else { continue };
        nl.link_set_controller(link.index, index)
            .await
            .map_err(|e| Error::os(format!("put {host} back on {}", net.bridge), e))?;
        let flags = port_flags(net, &eid);
        if !flags.is_empty() {
            let _ = nl.link_set_bridge_port(link.index, flags).await;
        }
        let _ = nl.link_set_up(link.index).await;
        ports += 1;
    }
    Ok(ports)
}
