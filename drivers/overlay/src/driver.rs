//! `OverlayDriver`: per network a namespace with a bridge and a VXLAN
//! device; per endpoint a veth into it; peers from the cluster store.

use crate::config::{LAST_VNI, NetworkOptions, OverlayConfig, VXLANID_LIST};
use crate::peers::{self, Peer};
use crate::{Error, NAME};
use async_trait::async_trait;
use cnm_cluster::Cluster;
use cnm_driverapi::{
    AllocateNetworkRequest, AllocateNetworkResponse, Capability, CreateEndpointRequest, CreateEndpointResponse,
    CreateNetworkRequest, DeleteEndpointRequest, DeleteNetworkRequest, Driver, EndpointInterface, FreeNetworkRequest,
    InterfaceName, JoinRequest, JoinResponse, LeaveRequest, MacAddress, Result, Scope, Table,
};
use cnm_osl::firewall::{Firewall, NftFirewall, VxlanNetwork};
use cnm_osl::{Namespace, Netlink, VethSpec};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;

/// The first VNI given out automatically (Docker's).
const FIRST_VNI: u32 = 4096;
/// The last VNI handed out (the next search starts after it).
const LAST_VNI_KEY: &str = "overlay/vni-last";

/// One network on this host.
struct OverlayNetwork {
    vni: u32,
    /// The MTU of its bridge, VXLAN device and veths.
    mtu: u32,
    ns_path: PathBuf,
    nl: Netlink,
    bridge: u32,
    /// Follows the network's peers in the store.
    peers: tokio::task::JoinHandle<()>,
    /// Its VXLAN as the firewall filters it (port and VNI).
    vxlan: VxlanNetwork,
    /// Whether br_netfilter's calls are known to be off in the namespace
    /// (false while the module is not loaded: it may be loaded later, and
    /// then switches them on; a join looks again).
    netfilter_off: std::sync::atomic::AtomicBool,
}

impl Drop for OverlayNetwork {
    fn drop(&mut self) {
        self.peers.abort();
    }
}

/// An endpoint as created: its network, address and MAC.
#[derive(Debug, Clone, Copy)]
struct OverlayEndpoint {
    ip: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    mac: [u8; 6],
}

impl OverlayEndpoint {
    /// The endpoint as the other hosts learn it, if it has an address.
    fn peer(&self, host: Ipv4Addr) -> Option<Peer> {
        (self.ip.is_some() || self.ipv6.is_some()).then_some(Peer { ip: self.ip, ipv6: self.ipv6, mac: self.mac, host })
    }
}

/// The `overlay` network driver.
pub struct OverlayDriver {
    host: Netlink,
    cluster: Cluster,
    config: OverlayConfig,
    /// Drops VXLAN from addresses that are not a network's peers (`None`:
    /// cnm's firewall is off on this host).
    firewall: Option<Arc<dyn Firewall>>,
    networks: Table<String, Arc<OverlayNetwork>>,
    endpoints: Table<String, OverlayEndpoint>,
    /// This host's joined endpoints, as published.
    joined: peers::Joined,
}

impl std::fmt::Debug for OverlayDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayDriver").field("config", &self.config).finish()
    }
}

fn short(id: &str, n: usize) -> &str {
    cnm_driverapi::id::short(id, n)
}

/// The VNI key of the cluster store.
fn vni_key(vni: u32) -> String {
    format!("overlay/vni/{vni}")
}

impl OverlayDriver {
    /// An overlay driver on the host behind `host`, sharing state through
    /// `cluster`, filtering VXLAN by peer in cnm's nftables table.
    pub fn new(host: Netlink, cluster: Cluster, config: OverlayConfig) -> Self {
        let firewall: Arc<dyn Firewall> = Arc::new(NftFirewall::new(host.namespace().clone()));
        Self::with_firewall(host, cluster, config, Some(firewall))
    }

    /// An overlay driver with the given firewall (`None`: VXLAN is not
    /// filtered by peer; for hosts where cnm's firewall is off).
    pub fn with_firewall(
        host: Netlink,
        cluster: Cluster,
        config: OverlayConfig,
        firewall: Option<Arc<dyn Firewall>>,
    ) -> Self {
        OverlayDriver {
            host,
            cluster,
            config,
            firewall,
            networks: Table::default(),
            endpoints: Table::default(),
            joined: peers::Joined::default(),
        }
    }

    fn network(&self, nid: &str) -> std::result::Result<Arc<OverlayNetwork>, Error> {
        self.networks.get(nid).ok_or_else(|| Error::NetworkNotFound(nid.into()))
    }

    /// Stops filtering `filter` (its network is gone or was not made); a
    /// failure is logged (the restart's sweep removes what stays).
    async fn unfilter(&self, filter: VxlanNetwork) {
        if let Some(fw) = &self.firewall
            && let Err(e) = fw.remove_vxlan(filter).await
        {
            tracing::warn!(vni = filter.vni, error = %cnm_driverapi::Chain(&e), "cannot remove an overlay network's VXLAN filter");
        }
    }

    /// Reserves `vni` for network `nid` (compare-and-swap); taken by the same network is fine.
    async fn reserve_vni(&self, vni: u32, nid: &str) -> std::result::Result<bool, Error> {
        if self.cluster.create(&vni_key(vni), nid.as_bytes()).await? {
            return Ok(true);
        }
        Ok(self.cluster.get(&vni_key(vni)).await?.as_deref() == Some(nid.as_bytes()))
    }

    /// The network's namespace with its bridge and VXLAN device, made if missing.
    async fn build(&self, nid: &str, vni: u32, mtu: u32) -> std::result::Result<(Namespace, Netlink, u32, u32), Error> {
        let path = self.config.netns_dir.join(format!("ov-{}", short(nid, 12)));
        std::fs::create_dir_all(&self.config.netns_dir).map_err(|e| {
            Error::os(
                format!("create {}", self.config.netns_dir.display()),
                cnm_osl::Error::Io { op: "create directory", path: self.config.netns_dir.clone(), source: e },
            )
        })?;
        let deadline = self.host.deadline();
        let (ns, nl) = match Namespace::open(&path) {
            Ok(ns) => {
                let nl = Netlink::connect(&ns, deadline).await.map_err(|e| Error::os("enter overlay namespace", e))?;
                (ns, nl)
            }
            Err(_) => {
                let _ = Namespace::remove(&path);
                Netlink::create_namespace(&path, deadline)
                    .await
                    .map_err(|e| Error::os("create overlay namespace", e))?
            }
        };
        let os = |op: &str| {
            let op = op.to_string();
            move |e| Error::os(op, e)
        };
        let bridge = match nl.link_get("br0").await.map_err(os("look up br0"))? {
            Some(l) => l.index,
            None => nl.link_add_bridge("br0", Some(mtu), None, None).await.map_err(os("create br0"))?.index,
        };
        nl.link_set_up(bridge).await.map_err(os("bring br0 up"))?;
        let vxlan =
            match nl.link_get("vxlan0").await.map_err(os("look up vxlan0"))? {
                Some(l) => l.index,
                None => {
                    // Made in the host's namespace (its UDP socket lives there), then moved in.
                    let tmp = format!("vx-{vni}");
                    let _ = self.host.link_del_by_name(&tmp).await;
                    let advertise = self.cluster.advertise();
                    self.host
                        .link_add_vxlan(&tmp, vni, advertise, self.config.port, mtu)
                        .await
                        .map_err(os("create the VXLAN device"))?;
                    let link =
                        self.host.link_get(&tmp).await.map_err(os("look up the VXLAN device"))?.ok_or_else(|| {
                            Error::os("look up the VXLAN device", cnm_osl::Error::NotFound(tmp.clone()))
                        })?;
                    self.host.link_move(link.index, &ns, Some("vxlan0")).await.map_err(os("move the VXLAN device"))?;
                    nl.link_get("vxlan0")
                        .await
                        .map_err(os("look up vxlan0"))?
                        .ok_or_else(|| Error::os("look up vxlan0", cnm_osl::Error::NotFound("vxlan0".into())))?
                        .index
                }
            };
        nl.link_set_controller(vxlan, bridge).await.map_err(os("attach vxlan0 to br0"))?;
        nl.link_set_up(vxlan).await.map_err(os("bring vxlan0 up"))?;
        Ok((ns, nl, bridge, vxlan))
    }
}

/// Turns off br_netfilter's calls in an overlay namespace: nothing filters
/// br0's frames there, and with the module loaded (as on a Docker host)
/// each would still pass the namespace's IP hooks (2% of the CPU of a
/// sandbox-to-sandbox TCP stream). Whether they are off with the module
/// loaded; a failure is only logged (the network works either way).
async fn bridge_netfilter_off(ns: &Namespace) -> bool {
    match ns.bridge_netfilter_off().await {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::warn!(error = %cnm_driverapi::Chain(&e), "cannot turn off br_netfilter in an overlay namespace");
            false
        }
    }
}

/// Docker's MAC for an IPv4 address (`02:42` and the four bytes).
fn mac_for(ip: Option<Ipv4Addr>, eid: &str) -> [u8; 6] {
    match ip {
        Some(ip) => MacAddress::from_ipv4(ip).octets(),
        None => {
            let b = eid.as_bytes();
            MacAddress::local_unicast([b[0], b[1], b[2], b[3], b[4], b[5]]).octets()
        }
    }
}

/// Why `-o encrypted` is refused, for the reason that holds: the kernel is
/// probed for WireGuard (a throwaway link) and IPsec ESP (module `esp4`).
async fn encryption_refused() -> Error {
    const WHAT: &str = "an encrypted overlay network (-o encrypted)";
    let wireguard = cnm_osl::kernel::has_link(cnm_osl::kernel::LinkFeature::Wireguard).await.unwrap_or_else(|e| {
        tracing::warn!(error = %cnm_driverapi::Chain(&e), "cannot probe the kernel for WireGuard");
        false
    });
    let esp = cnm_osl::kernel::module_available("esp4");
    match (wireguard, esp) {
        (false, false) => {
            Error::MissingKernelFeature { what: WHAT, feature: "IPsec ESP (xfrm with esp4) or WireGuard" }
        }
        (true, true) => Error::NotSupportedYet { what: WHAT, kernel_has: "WireGuard and IPsec ESP" },
        (true, false) => Error::NotSupportedYet { what: WHAT, kernel_has: "WireGuard" },
        (false, true) => Error::NotSupportedYet { what: WHAT, kernel_has: "IPsec ESP" },
    }
}

#[async_trait]
impl Driver for OverlayDriver {
    fn name(&self) -> &str {
        NAME
    }

    /// Global: networks and their addresses are the cluster's.
    fn capability(&self) -> Capability {
        Capability {
            data_scope: Scope::Global,
            connectivity_scope: Some(Scope::Global),
            host_namespace: false,
            ..Capability::local()
        }
    }

    /// Once per network, on the host that creates it: the VNI.
    async fn network_allocate(&self, req: AllocateNetworkRequest) -> Result<AllocateNetworkResponse> {
        let options = NetworkOptions::from_options(&req.options)?;
        if options.encrypted {
            return Err(encryption_refused().await.into());
        }
        let vni = match options.vni {
            Some(vni) => {
                if !self.reserve_vni(vni, &req.network_id).await? {
                    return Err(Error::VniInUse(vni).into());
                }
                vni
            }
            None => {
                let (taken, _) = self.cluster.list("overlay/vni/").await.map_err(Error::from)?;
                let taken: std::collections::BTreeSet<u32> =
                    taken.iter().filter_map(|(k, _)| k.strip_prefix("overlay/vni/")?.parse().ok()).collect();
                // The next free one after the last handed out (wrapping):
                // a VNI just freed is not reused at once (a host cut off
                // meanwhile may still have its old network).
                let last = self.cluster.get(LAST_VNI_KEY).await.map_err(Error::from)?;
                let last = last.and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok());
                let start = last.filter(|l| (FIRST_VNI..LAST_VNI).contains(l)).map_or(FIRST_VNI, |l| l + 1);
                let mut chosen = None;
                let order = (start..=LAST_VNI).chain(FIRST_VNI..start);
                for vni in order.filter(|v| !taken.contains(v)).take(64) {
                    if self.reserve_vni(vni, &req.network_id).await? {
                        chosen = Some(vni);
                        break;
                    }
                }
                let vni = chosen.ok_or(Error::NoVni)?;
                if let Err(e) = self.cluster.put(LAST_VNI_KEY, vni.to_string().as_bytes()).await {
                    tracing::warn!(vni, error = %cnm_driverapi::Chain(&e), "cannot record the last VNI handed out");
                }
                vni
            }
        };
        crate::kill::point("overlay.allocate.vni");
        let mut options = BTreeMap::new();
        options.insert(VXLANID_LIST.to_string(), vni.to_string());
        Ok(AllocateNetworkResponse { options })
    }

    async fn network_free(&self, req: FreeNetworkRequest) -> Result<()> {
        let (vnis, _) = self.cluster.list("overlay/vni/").await.map_err(Error::from)?;
        for (k, v) in vnis {
            if v == req.network_id.as_bytes() {
                self.cluster.delete(&k).await.map_err(Error::from)?;
            }
        }
        self.cluster.delete_prefix(&peers::prefix(&req.network_id)).await.map_err(Error::from)?;
        Ok(())
    }

    /// On every host: the network's namespace, bridge and VXLAN device, and its peers followed.
    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        let nid = req.network_id.clone();
        let options = NetworkOptions::from_options(&req.options.generic)?;
        if options.encrypted {
            return Err(encryption_refused().await.into());
        }
        let vni = options
            .vni
            .ok_or_else(|| Error::InvalidOption(format!("overlay network {nid} has no VXLAN id ({VXLANID_LIST})")))?;
        let mtu = options.mtu_on(self.config.underlay_mtu)?;
        if self.networks.contains(&nid) {
            return Ok(());
        }
        // The filter comes first: the VXLAN device takes nothing from a
        // host that is not a peer, not even before the peers are read.
        let filter = VxlanNetwork { port: self.config.port, vni };
        if let Some(fw) = &self.firewall {
            fw.ensure_base().await.map_err(|e| Error::os("set up the firewall", e))?;
            fw.add_vxlan(filter).await.map_err(|e| Error::os(format!("filter VXLAN id {vni} by peer"), e))?;
        }
        let (ns, nl, bridge, vxlan) = match self.build(&nid, vni, mtu).await {
            Ok(built) => built,
            Err(e) => {
                self.unfilter(filter).await;
                return Err(e.into());
            }
        };
        // br0 holds each pool's gateway address, as Docker's: sandboxes
        // reach it on every host, each its own (ARP for it is answered by
        // the local bridge, never carried to peers).
        for gateway in req.ipv4_data.iter().chain(&req.ipv6_data).filter_map(|d| d.gateway) {
            match nl.addr_add(bridge, gateway).await {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => {
                    // Nothing of the network stays: the VXLAN device (its
                    // socket is the host's), then the namespace.
                    let _ = nl.link_del_by_name("vxlan0").await;
                    if let Some(path) = ns.path() {
                        let _ = Namespace::remove(path);
                    }
                    self.unfilter(filter).await;
                    return Err(Error::os(format!("give br0 the gateway address {gateway}"), e).into());
                }
            }
        }
        let ns_path = ns.path().map(|p| p.to_path_buf()).unwrap_or_default();
        let peers = {
            let pools = req.ipv4_data.iter().chain(&req.ipv6_data).map(|d| d.pool).collect();
            let device = peers::Device { nl: nl.clone(), index: vxlan, filter, firewall: self.firewall.clone() };
            tokio::spawn(peers::follow(self.cluster.clone(), nid.clone(), device, self.joined.clone(), pools))
        };
        tracing::info!(network = %short(&nid, 12), vni, "overlay network");
        let netfilter_off = bridge_netfilter_off(nl.namespace()).await.into();
        let net = OverlayNetwork { vni, mtu, ns_path, nl, bridge, peers, vxlan: filter, netfilter_off };
        self.networks.insert(nid, Arc::new(net));
        Ok(())
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        let net = self.networks.remove(&req.network_id);
        if let Some(net) = net {
            net.peers.abort();
            // The VXLAN device goes first and synchronously: its UDP socket
            // lives in the host's namespace, and a network created next
            // with the same VNI needs it gone.
            if let Err(e) = net.nl.link_del_by_name("vxlan0").await {
                tracing::warn!(network = %short(&req.network_id, 12), error = %cnm_driverapi::Chain(&e), "cannot remove an overlay VXLAN device");
            }
            // The bridge and the endpoints' ends go with the namespace.
            if let Err(e) = Namespace::remove(&net.ns_path) {
                tracing::warn!(network = %short(&req.network_id, 12), vni = net.vni, error = %cnm_driverapi::Chain(&e), "cannot remove an overlay namespace");
            }
            self.unfilter(net.vxlan).await;
        }
        Ok(())
    }

    /// After a restart: what networks that are gone left behind (a crash
    /// during a creation or a removal) goes — their namespaces, a VXLAN
    /// device made but not yet moved into its namespace, their VXLAN
    /// filters.
    async fn restored(&self) -> Result<()> {
        let held = self.networks.values();
        let namespaces: std::collections::BTreeSet<PathBuf> = held.iter().map(|n| n.ns_path.clone()).collect();
        if let Ok(dir) = std::fs::read_dir(&self.config.netns_dir) {
            for entry in dir.flatten() {
                let path = entry.path();
                let ours = entry.file_name().to_str().is_some_and(|n| n.starts_with("ov-"));
                if ours && !namespaces.contains(&path) {
                    tracing::info!(namespace = %path.display(), "removing the namespace of a removed overlay network");
                    // Its VXLAN device first and synchronously, as in a
                    // removal: a network made next with the same VNI needs
                    // its socket (in the host's namespace) gone.
                    if let Ok(ns) = Namespace::open(&path)
                        && let Ok(nl) = Netlink::connect(&ns, self.host.deadline()).await
                        && let Err(e) = nl.link_del_by_name("vxlan0").await
                    {
                        tracing::warn!(namespace = %path.display(), error = %cnm_driverapi::Chain(&e), "cannot remove a stale VXLAN device");
                    }
                    if let Err(e) = Namespace::remove(&path) {
                        tracing::warn!(namespace = %path.display(), error = %cnm_driverapi::Chain(&e), "cannot remove a stale overlay namespace");
                    }
                }
            }
        }
        match self.host.link_list().await {
            Ok(links) => {
                let stray =
                    links.iter().filter(|l| l.name.strip_prefix("vx-").is_some_and(|v| v.parse::<u32>().is_ok()));
                for link in stray {
                    if let Err(e) = self.host.link_del_by_name(&link.name).await {
                        tracing::warn!(link = %link.name, error = %cnm_driverapi::Chain(&e), "cannot remove a stray VXLAN device");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %cnm_driverapi::Chain(&e), "cannot list the host's links for stray VXLAN devices")
            }
        }
        let Some(fw) = &self.firewall else { return Ok(()) };
        let keep: Vec<VxlanNetwork> = held.iter().map(|n| n.vxlan).collect();
        let removed = fw.retain_vxlan(&keep).await.map_err(|e| Error::os("sweep the VXLAN filters", e))?;
        if removed > 0 {
            tracing::info!(removed, "VXLAN filter elements of removed overlay networks swept");
        }
        Ok(())
    }

    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        let net = self.network(&req.network_id)?;
        let ip = match req.interface.address.map(|a| a.addr()) {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => None,
        };
        let ipv6 = match req.interface.address_ipv6.map(|a| a.addr()) {
            Some(IpAddr::V6(v6)) => Some(v6),
            _ => None,
        };
        let given = req.interface.mac_address.map(|m| m.octets());
        let mac = given.unwrap_or_else(|| mac_for(ip, &req.endpoint_id));
        let ep = OverlayEndpoint { ip, ipv6, mac };
        self.endpoints.insert(req.endpoint_id.clone(), ep);
        // Replayed after a restart for an endpoint still joined (its bridge
        // port is there): it is published again, on this run's lease.
        let port = format!("vb{}", short(&req.endpoint_id, 11));
        if let (Some(peer), Ok(Some(_))) = (ep.peer(self.cluster.advertise()), net.nl.link_get(&port).await) {
            self.joined.insert(req.endpoint_id.clone(), (req.network_id.clone(), peer));
            peers::republish(&self.cluster, &req.network_id, &self.joined).await;
        }
        let interface =
            given.is_none().then(|| EndpointInterface { mac_address: Some(MacAddress(mac)), ..Default::default() });
        Ok(CreateEndpointResponse { interface })
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        self.endpoints.remove(&req.endpoint_id);
        Ok(())
    }

    /// A veth pair: one end a port of the network's bridge, the other for
    /// the sandbox; then the endpoint is published to the other hosts.
    async fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        let net = self.network(&req.network_id)?;
        if !net.netfilter_off.load(std::sync::atomic::Ordering::Relaxed)
            && bridge_netfilter_off(net.nl.namespace()).await
        {
            net.netfilter_off.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let ep =
            self.endpoints.get(&req.endpoint_id).ok_or_else(|| Error::EndpointNotFound(req.endpoint_id.clone()))?;
        let outer = format!("ov{}", short(&req.endpoint_id, 11));
        let inner = format!("vb{}", short(&req.endpoint_id, 11));
        // The bridge's end is made in the network's namespace and the
        // sandbox's end straight in the sandbox (no link move: moves cost
        // tens of milliseconds); a runtime whose namespace is not there yet
        // gets it on the host, to move.
        let sandbox = Namespace::open(&req.sandbox_key).ok();
        let _ = net.nl.link_del_by_name(&inner).await;
        let spec = VethSpec {
            name: &inner,
            peer_name: &outer,
            peer_namespace: Some(sandbox.as_ref().unwrap_or(self.host.namespace())),
            mtu: Some(net.mtu),
            peer_mac: Some(ep.mac),
            controller: Some(net.bridge),
            up: true,
        };
        net.nl.link_add_veth(&spec).await.map_err(|e| Error::os(format!("create veth {inner}"), e))?;
        if let Some(peer) = ep.peer(self.cluster.advertise()) {
            self.joined.insert(req.endpoint_id.clone(), (req.network_id.clone(), peer));
            let value = serde_json::to_vec(&peer).map_err(|e| cnm_driverapi::Error::internal(e.to_string()))?;
            if let Err(e) = self.cluster.put_leased(&peers::key(&req.network_id, &req.endpoint_id), &value).await {
                self.joined.remove(&req.endpoint_id);
                let _ = net.nl.link_del_by_name(&inner).await;
                return Err(Error::from(e).into());
            }
            crate::kill::point("overlay.join.peer");
        }
        Ok(JoinResponse {
            interface_name: Some(InterfaceName { src_name: outer, dst_prefix: "eth".into() }),
            ..Default::default()
        })
    }

    async fn leave(&self, req: LeaveRequest) -> Result<()> {
        self.joined.remove(&req.endpoint_id);
        let key = peers::key(&req.network_id, &req.endpoint_id);
        if let Err(e) = self.cluster.delete(&key).await {
            tracing::warn!(endpoint = %short(&req.endpoint_id, 12), error = %cnm_driverapi::Chain(&e), "cannot withdraw an overlay endpoint (its lease will)");
        }
        // Both ends go together; the kernel's 20–40 ms of unregistering
        // happen in the background, not in the leave.
        if let Ok(net) = self.network(&req.network_id) {
            let inner = format!("vb{}", short(&req.endpoint_id, 11));
            let outer = format!("ov{}", short(&req.endpoint_id, 11));
            let host = self.host.clone();
            tokio::spawn(async move {
                let _ = net.nl.link_del_by_name(&inner).await;
                let _ = host.link_del_by_name(&outer).await;
            });
        }
        Ok(())
    }
}
