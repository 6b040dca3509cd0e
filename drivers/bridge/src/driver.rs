//! `BridgeDriver`: the `Driver` trait over bridge networks.

use crate::endpoint::{create_veth, delete_veth, host_name};
use crate::network::{self, BridgeEndpoint, BridgeNetwork};
use crate::ports::{self, PortAllocator, Published};
use crate::{Error, NAME};
use async_trait::async_trait;
use cnm_driverapi::{
    Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, EndpointInterface, EndpointOperInfoRequest, EndpointOperInfoResponse, InterfaceName,
    JoinRequest, JoinResponse, LeaveRequest, MacAddress, ProgramExternalConnectivityRequest, Result,
    RevokeExternalConnectivityRequest,
};
use cnm_osl::Netlink;
use cnm_osl::firewall::{Firewall, NftFirewall, PortMapping, Proto};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The Linux bridge network driver.
pub struct BridgeDriver {
    nl: Netlink,
    firewall: Option<Arc<dyn Firewall>>,
    firewall_ready: tokio::sync::OnceCell<()>,
    ports: tokio::sync::OnceCell<Arc<PortAllocator>>,
    /// Networks by id: looked up and updated only, never held across I/O.
    networks: Arc<std::sync::Mutex<HashMap<String, Arc<BridgeNetwork>>>>,
    /// How many times the firewall table was put back after someone removed it.
    table_repairs: Arc<std::sync::atomic::AtomicU64>,
    /// How many bridges and gateway addresses were put back.
    link_repairs: Arc<LinkRepairs>,
    /// The watch of removed links and addresses, started with the first network.
    link_watch: tokio::sync::OnceCell<()>,
    /// Network ids and bridge names of networks being created.
    creating: std::sync::Mutex<std::collections::HashSet<String>>,
    reaper: Arc<crate::reaper::Reaper>,
    /// Where lost veths are reported (the controller's).
    lost: Arc<std::sync::OnceLock<cnm_driverapi::LostInterfaceListener>>,
}

impl BridgeDriver {
    /// A bridge driver working in the namespace of `host` (the controller's
    /// host), with the nftables firewall.
    pub fn new(host: Netlink) -> Self {
        let fw = NftFirewall::new(host.namespace().clone());
        Self::with_firewall(host, Some(Arc::new(fw)))
    }

    /// A bridge driver with another firewall backend, or none (then no NAT,
    /// isolation or published ports are programmed).
    pub fn with_firewall(host: Netlink, firewall: Option<Arc<dyn Firewall>>) -> Self {
        BridgeDriver {
            nl: host,
            firewall,
            firewall_ready: tokio::sync::OnceCell::new(),
            ports: tokio::sync::OnceCell::new(),
            networks: Arc::default(),
            table_repairs: Arc::default(),
            link_repairs: Arc::default(),
            link_watch: tokio::sync::OnceCell::new(),
            creating: std::sync::Mutex::new(std::collections::HashSet::new()),
            reaper: Arc::default(),
            lost: Arc::default(),
        }
    }

    /// Waits until every bridge of a deleted network is gone from the kernel
    /// (deletion finishes in the background; see the crate docs).
    pub async fn settle(&self) {
        self.reaper.wait_all().await;
    }

    fn nets(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<BridgeNetwork>>> {
        self.networks.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn network(&self, id: &str) -> Result<Arc<BridgeNetwork>, Error> {
        self.nets().get(id).cloned().ok_or_else(|| Error::NetworkNotFound(id.to_string()))
    }

    /// The firewall, its table created (once per driver).
    async fn firewall(&self) -> Result<Option<&Arc<dyn Firewall>>, Error> {
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

    async fn allocator(&self) -> Result<Arc<PortAllocator>, Error> {
        self.ports
            .get_or_try_init(|| async {
                let range = cnm_osl::reservation::ephemeral_port_range(self.nl.namespace())
                    .await
                    .map_err(|e| Error::os("read the ephemeral port range", e))?;
                // One reservation socket per published port: size the fd table once.
                tokio::task::spawn_blocking(|| cnm_osl::reservation::grow_fd_table(32 * 1024))
                    .await
                    .map_err(|_| Error::PortsPoisoned)?;
                Ok::<_, Error>(Arc::new(PortAllocator::new(range)))
            })
            .await
            .cloned()
    }

    /// Starts (once) following removals of links and addresses, to put back
    /// a bridge or gateway address someone removed; a failure to start is logged.
    async fn watch_links(&self) {
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
                    Err(e) => tracing::warn!(error = %e, "cannot watch for removed bridges and addresses"),
                }
            })
            .await;
    }

    /// The work of `create_network` once its id and bridge name are claimed.
    async fn create_network_claimed(&self, req: &CreateNetworkRequest) -> Result<(), Error> {
        self.watch_links().await;
        self.reaper.sweep(&self.nl).await?;
        let net = network::setup(&self.nl, req, &self.reaper).await?;
        cnm_driverapi::kill::point("bridge.create.bridge");
        let programmed = async {
            network::host_settings(&self.nl, &net).await?;
            if let Some(fw) = self.firewall().await? {
                fw.add_network(&net.rules()).await.map_err(|e| Error::os("add the network's firewall rules", e))?;
                cnm_driverapi::kill::point("bridge.create.firewall");
                // No port goes into the network yet: a mapping into its
                // subnets is what a crash left (its container gone, its
                // address free); a restore publishes the live ones again.
                match fw.remove_ports_into(&net.pools).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(network = %net.id, removed = n, "removed port mappings left by an earlier run")
                    }
                    Err(e) => return Err(Error::os("remove stale port mappings", e)),
                }
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = programmed.await {
            if let Err(err) = network::teardown(&self.nl, &net, &self.reaper).await {
                tracing::warn!(error = %err, "failed to remove the bridge of a failed network");
            }
            return Err(e);
        }
        self.nets().insert(req.network_id.clone(), Arc::new(net));
        Ok(())
    }

    /// Removes what an interrupted create or delete of network `id` left: the
    /// bridge cnm made for it (found by its owner mark), that bridge's
    /// firewall elements and port mappings into its subnets (read from the
    /// bridge's addresses). [`Error::NetworkNotFound`] if there is no such bridge.
    async fn remove_orphan(&self, id: &str) -> Result<(), Error> {
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
            };
            // Every element a network can have (absent ones are fine): an
            // internal network has no masquerading element, so both forms.
            for internal in [false, true] {
                let rules = cnm_osl::firewall::NetworkRules { internal, ..rules.clone() };
                fw.remove_network(&rules).await.map_err(|e| Error::os("remove the network's firewall rules", e))?;
            }
            fw.remove_ports_into(&subnets).await.map_err(|e| Error::os("remove the network's port mappings", e))?;
        }
        self.reaper.reap_bridge(&self.nl, &link.name, link.index).await?;
        tracing::info!(network = id, bridge = %link.name, "removed the bridge of an interrupted network");
        Ok(())
    }

    /// Takes back every port published for an endpoint.
    async fn unpublish(&self, net: &BridgeNetwork, endpoint_id: &str) -> Result<(), Error> {
        let published = net.published.lock().ok().and_then(|mut p| p.remove(endpoint_id)).unwrap_or_default();
        if published.is_empty() {
            return Ok(());
        }
        let mappings: Vec<PortMapping> = published.iter().flat_map(|p| p.mappings.iter().cloned()).collect();
        let result = match self.firewall().await {
            Ok(Some(fw)) => fw.remove_ports(&mappings).await.map_err(|e| Error::os("unpublish ports", e)),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        cnm_driverapi::kill::point("bridge.unpublish.unmapped");
        if let Ok(alloc) = self.allocator().await {
            for p in &published {
                ports::release(&alloc, p);
            }
        }
        let udp: Vec<cnm_osl::firewall::UdpFlow> = mappings
            .iter()
            .filter(|m| m.proto == Proto::Udp)
            .flat_map(|m| {
                (m.host_port..=m.host_port_end.max(m.host_port))
                    .map(|host_port| cnm_osl::firewall::UdpFlow { host_port, container: m.container_ip })
            })
            .collect();
        if !udp.is_empty() {
            flush_udp_conntrack(&self.nl, udp).await;
        }
        result
    }
}

/// Removes the conntrack entries of unpublished UDP ports (over
/// ctnetlink, scoped to the container's address), so a stale flow does not
/// keep sending datagrams to the old container.
async fn flush_udp_conntrack(nl: &Netlink, flows: Vec<cnm_osl::firewall::UdpFlow>) {
    match cnm_osl::firewall::flush_udp_flows(nl.namespace(), flows, nl.deadline()).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(removed = n, "conntrack entries of unpublished UDP ports flushed"),
        Err(e) => tracing::warn!(error = %e, "failed to flush conntrack entries"),
    }
}

/// Puts cnm's firewall table back each time someone removes it: the base,
/// every network's elements and every published port; counted and logged.
/// Ends with the driver.
async fn repair_table(
    fw: Arc<dyn Firewall>,
    networks: std::sync::Weak<std::sync::Mutex<HashMap<String, Arc<BridgeNetwork>>>>,
    mut removed: tokio::sync::watch::Receiver<u64>,
    repairs: Arc<std::sync::atomic::AtomicU64>,
) {
    while removed.changed().await.is_ok() {
        let Some(nets) = networks.upgrade() else { return };
        let nets: Vec<Arc<BridgeNetwork>> = nets.lock().map(|n| n.values().cloned().collect()).unwrap_or_default();
        let ports: Vec<PortMapping> = nets
            .iter()
            .flat_map(|n| {
                n.published
                    .lock()
                    .map(|p| p.values().flatten().flat_map(|x| x.mappings.clone()).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        let restored = async {
            fw.ensure_base().await?;
            for n in &nets {
                fw.add_network(&n.rules()).await?;
            }
            fw.add_ports(&ports).await
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
            Err(e) => tracing::error!(error = %e, "cnm's firewall table was removed and cannot be put back"),
        }
    }
}

/// Counts of links and addresses put back.
#[derive(Debug, Default)]
struct LinkRepairs {
    bridges: std::sync::atomic::AtomicU64,
    addresses: std::sync::atomic::AtomicU64,
}

/// What the repair of links needs of the driver.
struct RepairContext {
    nl: Netlink,
    networks: std::sync::Weak<std::sync::Mutex<HashMap<String, Arc<BridgeNetwork>>>>,
    reaper: Arc<crate::reaper::Reaper>,
    repairs: Arc<LinkRepairs>,
    lost: Arc<std::sync::OnceLock<cnm_driverapi::LostInterfaceListener>>,
}

/// Puts back a network's bridge (with its gateways, its ports and their
/// settings) or a gateway address when someone else removes it, and
/// reports removed veths; after lost notifications, looks at everything
/// again. Ends with the driver.
async fn repair_links(ctx: RepairContext, mut rx: tokio::sync::mpsc::UnboundedReceiver<cnm_osl::watch::Removed>) {
    while let Some(removed) = rx.recv().await {
        let Some(nets) = ctx.networks.upgrade() else { return };
        let nets: Vec<Arc<BridgeNetwork>> = nets.lock().map(|n| n.values().cloned().collect()).unwrap_or_default();
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
        Err(e) => tracing::error!(bridge = %net.bridge, error = %e, "a bridge was removed and cannot be put back"),
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
        Err(e) => tracing::debug!(bridge = %net.bridge, error = %e, "gateway address not put back"),
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
            Err(e) => tracing::warn!(bridge = %net.bridge, error = %e, "cannot look for the bridge"),
        }
    }
    let Some(listener) = ctx.lost.get() else { return };
    for net in nets {
        let eids: Vec<String> = net.endpoints.lock().map(|e| e.keys().cloned().collect()).unwrap_or_default();
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
        let eids: Vec<String> = net.endpoints.lock().map(|e| e.keys().cloned().collect()).unwrap_or_default();
        if let Some(eid) = eids.into_iter().find(|eid| host_name(eid) == name) {
            tracing::warn!(veth = %name, endpoint = %eid, "a container's veth was removed behind our back");
            listener(cnm_driverapi::LostInterface { network_id: net.id.clone(), endpoint_id: eid });
        }
    }
}

/// The bridge port settings of an endpoint's veth, `None` where the
/// kernel's default stays: isolated when ICC is off (ports of the bridge
/// cannot reach each other at layer 2), hairpin once its ports are
/// published (as publishing sets it).
fn port_flags(net: &BridgeNetwork, endpoint_id: &str) -> (Option<bool>, Option<bool>) {
    let isolated = (!net.config.enable_icc).then_some(true);
    let hairpin = net.published.lock().is_ok_and(|p| p.contains_key(endpoint_id)).then_some(true);
    (isolated, hairpin)
}

/// The gateway addresses the network's bridge carries.
fn wanted_gateways(net: &BridgeNetwork) -> Vec<ipnet::IpNet> {
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
    let eids: Vec<String> = net.endpoints.lock().map(|e| e.keys().cloned().collect()).unwrap_or_default();
    let mut ports = 0;
    for eid in eids {
        let host = host_name(&eid);
        let Ok(Some(link)) = nl.link_get(&host).await else { continue };
        nl.link_set_controller(link.index, index)
            .await
            .map_err(|e| Error::os(format!("put {host} back on {}", net.bridge), e))?;
        let (isolated, hairpin) = port_flags(net, &eid);
        if isolated.is_some() || hairpin.is_some() {
            let _ = nl.link_set_bridge_port(link.index, isolated, hairpin).await;
        }
        let _ = nl.link_set_up(link.index).await;
        ports += 1;
    }
    Ok(ports)
}

/// Network ids and bridge names claimed by a `create_network` under way; released when dropped.
struct Claim<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    keys: [String; 2],
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        for k in &self.keys {
            set.remove(k);
        }
    }
}

fn endpoint_of(net: &BridgeNetwork, eid: &str) -> Result<BridgeEndpoint, Error> {
    let eps = net.endpoints.lock().map_err(|_| Error::EndpointNotFound(eid.to_string()))?;
    eps.get(eid).cloned().ok_or_else(|| Error::EndpointNotFound(eid.to_string()))
}

#[async_trait]
impl Driver for BridgeDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability::local()
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        let config = crate::BridgeConfig::from_options(&req.options.generic)?;
        let bridge = config.bridge_name(&req.network_id);
        // Claim the id and the bridge name, then work without the lock.
        let claim = {
            let nets = self.nets();
            if nets.contains_key(&req.network_id) {
                return Ok(());
            }
            if let Some(other) = nets.values().find(|n| n.bridge == bridge) {
                return Err(Error::BridgeInUse { bridge, network: other.id.clone() }.into());
            }
            let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
            if creating.contains(&req.network_id) || creating.contains(&bridge) {
                return Err(Error::BridgeInUse { bridge, network: req.network_id.clone() }.into());
            }
            creating.insert(req.network_id.clone());
            creating.insert(bridge.clone());
            Claim { set: &self.creating, keys: [req.network_id.clone(), bridge.clone()] }
        };
        let created = self.create_network_claimed(&req).await;
        drop(claim);
        Ok(created?)
    }

    /// What was put back after someone removed it: the firewall table, bridges, gateway addresses.
    fn repairs(&self) -> Vec<(String, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        vec![
            ("firewall table".into(), self.table_repairs.load(Relaxed)),
            ("bridge".into(), self.link_repairs.bridges.load(Relaxed)),
            ("gateway address".into(), self.link_repairs.addresses.load(Relaxed)),
        ]
    }

    fn watch_interfaces(&self, listener: cnm_driverapi::LostInterfaceListener) {
        let _ = self.lost.set(listener);
    }

    /// After a restore: the firewall keeps only the elements of the networks
    /// restored and the port mappings into their subnets (the live ones were
    /// published again); what a crash left of anything else goes.
    async fn restored(&self) -> Result<()> {
        let Some(fw) = self.firewall().await? else { return Ok(()) };
        let (bridges, subnets): (Vec<String>, Vec<ipnet::IpNet>) = {
            let nets = self.nets();
            (nets.values().map(|n| n.bridge.clone()).collect(), nets.values().flat_map(|n| n.pools.clone()).collect())
        };
        match fw.retain(&bridges, &subnets).await {
            Ok(0) => Ok(()),
            Ok(n) => {
                tracing::info!(removed = n, "removed firewall elements that no network claims");
                Ok(())
            }
            Err(e) => Err(Error::os("reconcile the firewall with the restored networks", e).into()),
        }
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        let net = self.nets().remove(&req.network_id);
        let Some(net) = net else {
            // Unknown here: a crash may have interrupted its creation or
            // deletion, leaving the bridge cnm made for it.
            return Ok(self.remove_orphan(&req.network_id).await?);
        };
        let eids: Vec<String> = net.published.lock().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        for eid in eids {
            if let Err(e) = self.unpublish(&net, &eid).await {
                tracing::warn!(error = %e, "failed to unpublish ports of a deleted network");
            }
        }
        let fw_result = match self.firewall().await {
            Ok(Some(fw)) => {
                fw.remove_network(&net.rules()).await.map_err(|e| Error::os("remove the network's firewall rules", e))
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        cnm_driverapi::kill::point("bridge.delete.firewall");
        network::teardown(&self.nl, &net, &self.reaper).await?;
        cnm_driverapi::kill::point("bridge.delete.retired");
        fw_result?;
        Ok(())
    }

    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        let net = self.network(&req.network_id).await?;
        let given = &req.interface;
        // Docker's bridge derives the MAC from the IPv4 address when none is given.
        let derived = match (given.mac_address, given.address.map(|a| a.addr())) {
            (None, Some(IpAddr::V4(v4))) => Some(MacAddress::from_ipv4(v4)),
            _ => None,
        };
        let ep = BridgeEndpoint { ipv4: given.address, ipv6: given.address_ipv6, mac: given.mac_address.or(derived) };
        net.endpoints
            .lock()
            .map_err(|_| cnm_driverapi::Error::internal("bridge endpoint table poisoned"))?
            .insert(req.endpoint_id.clone(), ep);
        Ok(CreateEndpointResponse {
            interface: derived.map(|mac| EndpointInterface { mac_address: Some(mac), ..Default::default() }),
        })
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        if let Ok(net) = self.network(&req.network_id).await {
            self.unpublish(&net, &req.endpoint_id).await?;
            if let Ok(mut eps) = net.endpoints.lock() {
                eps.remove(&req.endpoint_id);
            }
        }
        delete_veth(&self.nl, &req.endpoint_id, &self.reaper).await?;
        Ok(())
    }

    async fn endpoint_oper_info(&self, req: EndpointOperInfoRequest) -> Result<EndpointOperInfoResponse> {
        let net = self.network(&req.network_id).await?;
        let ep = endpoint_of(&net, &req.endpoint_id)?;
        let mut resp = EndpointOperInfoResponse::default();
        if let Some(mac) = ep.mac {
            resp.value.insert(cnm_driverapi::label::MAC_ADDRESS.into(), mac.to_string().into());
        }
        let bindings: Vec<cnm_driverapi::PortBinding> = net
            .published
            .lock()
            .ok()
            .and_then(|p| p.get(&req.endpoint_id).map(|v| v.iter().map(|p| p.binding.clone()).collect()))
            .unwrap_or_default();
        if !bindings.is_empty() {
            let value = serde_json::to_value(bindings).map_err(|e| cnm_driverapi::Error::internal(e.to_string()))?;
            resp.value.insert(cnm_driverapi::label::PORT_MAP.into(), value);
        }
        Ok(resp)
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        let net = self.network(&req.network_id).await?;
        let ep = endpoint_of(&net, &req.endpoint_id)?;
        let peer =
            create_veth(&self.nl, &net, &req.endpoint_id, ep.mac.map(|m| m.octets()), &req.sandbox_key, &self.reaper)
                .await?;
        cnm_driverapi::kill::point("bridge.join.veth");
        // Ports already published: a join again after a repair.
        let (isolated, hairpin) = port_flags(&net, &req.endpoint_id);
        if isolated.is_some() || hairpin.is_some() {
            let host = host_name(&req.endpoint_id);
            let port = async {
                let link = self.nl.link_get(&host).await?.ok_or_else(|| cnm_osl::Error::NotFound(host.clone()))?;
                self.nl.link_set_bridge_port(link.index, isolated, hairpin).await
            };
            if let Err(e) = port.await {
                let _ = delete_veth(&self.nl, &req.endpoint_id, &self.reaper).await;
                return Err(Error::os(format!("configure bridge port {host}"), e).into());
            }
        }
        let (gateway, gateway_ipv6) = if net.internal {
            (None, None)
        } else {
            let v4 = ep.ipv4.and_then(|a| net.gateway_for(a.addr())).and_then(|g| match g {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            });
            let v6 = ep.ipv6.and_then(|a| net.gateway_for(a.addr())).and_then(|g| match g {
                IpAddr::V6(v6) => Some(v6),
                IpAddr::V4(_) => None,
            });
            (v4, v6)
        };
        Ok(JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: peer,
                dst_prefix: net.config.container_iface_prefix.clone(),
            }),
            gateway,
            gateway_ipv6,
            static_routes: Vec::new(),
            disable_gateway_service: false,
        })
    }

    async fn leave(&self, req: LeaveRequest) -> Result<()> {
        delete_veth(&self.nl, &req.endpoint_id, &self.reaper).await?;
        cnm_driverapi::kill::point("bridge.leave.retired");
        Ok(())
    }

    /// Publishes the sandbox's port bindings for this endpoint: host ports
    /// allocated and reserved, DNAT map elements added in one transaction.
    async fn program_external_connectivity(&self, req: ProgramExternalConnectivityRequest) -> Result<()> {
        let net = self.network(&req.network_id).await?;
        let ep = endpoint_of(&net, &req.endpoint_id)?;
        let already = net.published.lock().map(|p| p.contains_key(&req.endpoint_id)).unwrap_or(false);
        if net.internal || req.options.port_map.is_empty() || already {
            return Ok(());
        }
        let alloc = self.allocator().await?;
        let bindings = req.options.port_map.clone();
        let default_ip = net.config.host_binding_ipv4;
        let (v4, v6) = (ep.ipv4.map(|a| a.addr()), ep.ipv6.map(|a| a.addr()));
        let alloc2 = alloc.clone();
        let published: Vec<Published> = cnm_osl::reservation::with_port_binder(self.nl.namespace(), move |bind| {
            let mut out: Vec<Published> = Vec::new();
            for b in &bindings {
                let addrs = ports::host_addresses(b.host_ip, default_ip, v4.is_some(), v6.is_some());
                match ports::publish_one(&alloc2, b, &addrs, v4, v6, bind) {
                    Ok(p) => out.push(p),
                    Err(e) => {
                        for p in &out {
                            ports::release(&alloc2, p);
                        }
                        return Err(e);
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::os("reserve host ports", e))??;
        cnm_driverapi::kill::point("bridge.publish.reserved");
        if let Some(fw) = self.firewall().await? {
            let mappings: Vec<PortMapping> = published.iter().flat_map(|p| p.mappings.iter().cloned()).collect();
            if let Err(e) = fw.add_ports(&mappings).await {
                for p in &published {
                    ports::release(&alloc, p);
                }
                return Err(Error::os("publish ports", e).into());
            }
        }
        cnm_driverapi::kill::point("bridge.publish.mapped");

        // With br_netfilter, a container reaching its own published port has
        // its frames sent back out of the port they came in by: hairpin mode.
        let host = host_name(&req.endpoint_id);
        let hairpin = async {
            let link = self.nl.link_get(&host).await?.ok_or_else(|| cnm_osl::Error::NotFound(host.clone()))?;
            self.nl.link_set_bridge_port(link.index, None, Some(true)).await
        };
        if let Err(e) = hairpin.await {
            tracing::warn!(port = %host, error = %e, "failed to set hairpin mode; the container cannot reach its own published ports");
        }
        if let Ok(mut p) = net.published.lock() {
            p.insert(req.endpoint_id.clone(), published);
        }
        Ok(())
    }

    async fn revoke_external_connectivity(&self, req: RevokeExternalConnectivityRequest) -> Result<()> {
        let net = self.network(&req.network_id).await?;
        self.unpublish(&net, &req.endpoint_id).await?;
        Ok(())
    }
}
