//! `IpvlanDriver`: networks bound to a parent interface, an ipvlan link
//! per joined endpoint, created on the parent and handed to the sandbox.

use crate::{Error, IpvlanConfig, NAME};
use async_trait::async_trait;
use cnm_driverapi::{
    Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, EndpointInterface, GwAllocCheckRequest, GwAllocCheckResponse, InterfaceName,
    IpamData, JoinRequest, JoinResponse, LeaveRequest, MacAddress, Result, RouteType, Scope, StaticRoute, Table,
};
use cnm_osl::Netlink;
use cnm_osl::kernel::LinkFeature;
use cnm_parent_link::{Maker, ParentLink};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// A network the driver knows.
#[derive(Debug, Clone)]
struct IpvlanNetwork {
    config: IpvlanConfig,
    /// The link the network's links hang off (the parent, its VLAN sub-interface, or a dummy).
    link: String,
    /// Whether the driver created `link` (and removes it with the last network using it).
    created: bool,
    pools: Vec<IpamData>,
}

/// The addresses of an endpoint, to find its gateway and routes at join.
#[derive(Debug, Clone, Copy, Default)]
struct EndpointAddrs {
    v4: Option<IpNet>,
    v6: Option<IpNet>,
}

/// The `ipvlan` network driver.
#[derive(Debug)]
pub struct IpvlanDriver {
    host: Netlink,
    networks: Table<String, IpvlanNetwork>,
    endpoints: Table<String, EndpointAddrs>,
    /// Held by a network's creation and removal, from the check of the
    /// networks sharing its parent to the table's update: two of them on
    /// one parent never interleave.
    parents: tokio::sync::Mutex<()>,
    /// The kernel was seen making ipvlan links (a module loaded later is
    /// found by the next probe; one found stays).
    kernel_has_ipvlan: AtomicBool,
}

/// The name of the link of endpoint `eid` while it is in the host's namespace.
fn link_name(eid: &str) -> String {
    format!("iv{}", cnm_driverapi::id::short(eid, 11))
}

/// A network's id as the driver's errors name it.
fn short(nid: &str) -> String {
    cnm_driverapi::id::short(nid, 12).to_string()
}

/// What the error of a kernel without ipvlan names.
const IPVLAN_FEATURE: &str = "ipvlan links (kernel module ipvlan)";

/// How this driver names and marks the parent links it makes (Docker's
/// dummy names; the mark tells its 802.1q links from the user's).
const PARENTS: Maker = Maker { driver: NAME, mark: "cnm:ipvlan", dummy_prefix: "di-" };

impl IpvlanDriver {
    /// An ipvlan driver working on the host's links through `host`.
    pub fn new(host: Netlink) -> Self {
        IpvlanDriver {
            host,
            networks: Table::default(),
            endpoints: Table::default(),
            parents: tokio::sync::Mutex::new(()),
            kernel_has_ipvlan: AtomicBool::new(false),
        }
    }

    fn network(&self, nid: &str) -> std::result::Result<IpvlanNetwork, Error> {
        self.networks.get(nid).ok_or_else(|| Error::NetworkNotFound(nid.into()))
    }

    /// Asks the kernel (a throwaway ipvlan link in a scratch namespace)
    /// whether it makes ipvlan links, before a network that needs them
    /// exists: a kernel without them is refused at `network create`, not
    /// at the first container.
    async fn probe_ipvlan(&self) -> std::result::Result<(), Error> {
        if self.kernel_has_ipvlan.load(Ordering::Relaxed) {
            return Ok(());
        }
        match cnm_osl::kernel::has_link(LinkFeature::Ipvlan).await {
            Ok(true) => {
                self.kernel_has_ipvlan.store(true, Ordering::Relaxed);
                Ok(())
            }
            Ok(false) => Err(Error::MissingKernelFeature {
                what: "an ipvlan network".into(),
                feature: IPVLAN_FEATURE,
                source: cnm_osl::Error::Unsupported(
                    "a throwaway ipvlan link in a scratch namespace was refused as an unknown link type".into(),
                ),
            }),
            Err(e) => Err(Error::os("probe the kernel for ipvlan links", e)),
        }
    }
}

/// The gateway of the pool holding `addr`, else of the first pool.
fn gateway_for(pools: &[IpamData], addr: Option<IpNet>) -> Option<IpAddr> {
    let holder = addr.and_then(|a| pools.iter().find(|p| p.pool.contains(&a.addr())));
    holder.or(pools.first()).and_then(|p| p.gateway).map(|g| g.addr())
}

/// A route through the interface itself (no next hop).
fn connected(destination: IpNet) -> StaticRoute {
    StaticRoute { destination, route_type: RouteType::Connected, next_hop: None }
}

/// The routes of a sandbox on a routed (`l3`, `l3s`) network: the default
/// through the interface for each family it has an address of, or, on an
/// internal network, the network's other subnets.
fn routed_routes(net: &IpvlanNetwork, addrs: EndpointAddrs) -> Vec<StaticRoute> {
    let mine = [addrs.v4, addrs.v6];
    if net.config.internal {
        return net
            .pools
            .iter()
            .filter(|p| mine.iter().flatten().any(|a| a.addr().is_ipv4() == p.pool.addr().is_ipv4()))
            .filter(|p| !mine.iter().flatten().any(|a| p.pool.contains(&a.addr())))
            .map(|p| connected(p.pool))
            .collect();
    }
    let mut routes = Vec::new();
    if addrs.v4.is_some() {
        routes.push(connected("0.0.0.0/0".parse().expect("a prefix")));
    }
    if addrs.v6.is_some() {
        routes.push(connected("::/0".parse().expect("a prefix")));
    }
    routes
}

#[async_trait]
impl Driver for IpvlanDriver {
    fn name(&self) -> &str {
        NAME
    }

    /// Local data; connectivity reaches the parent's segment (global, as Docker says).
    fn capability(&self) -> Capability {
        Capability {
            data_scope: Scope::Local,
            connectivity_scope: Some(Scope::Global),
            host_namespace: false,
            gw_alloc_checker: true,
        }
    }

    /// As Docker's: an internal network (or one without a parent) and a
    /// routed one reserve no gateway address they would not use.
    async fn gateway_allocation(&self, req: GwAllocCheckRequest) -> Result<GwAllocCheckResponse> {
        let cfg = IpvlanConfig::from_options(&req.options.generic, req.options.internal)?;
        // A routed mode's default route is the interface: no gateway either.
        let skip = cfg.internal || cfg.routed();
        Ok(GwAllocCheckResponse { skip_ipv4: skip, skip_ipv6: skip })
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        let cfg = IpvlanConfig::from_options(&req.options.generic, req.options.internal)?;
        let nid = req.network_id.clone();
        let _parents = self.parents.lock().await;
        // The kernel keeps the mode and flag per parent, and the last link
        // made sets them for all: networks share a parent only alike.
        if let Some(parent) = &cfg.parent {
            let other = self
                .networks
                .lock()
                .iter()
                .find(|(id, n)| {
                    **id != nid
                        && n.config.parent.as_ref() == Some(parent)
                        && (n.config.mode, n.config.flag) != (cfg.mode, cfg.flag)
                })
                .map(|(id, n)| (id.clone(), n.config.mode, n.config.flag));
            if let Some((other, mode, flag)) = other {
                return Err(Error::ParentInOtherMode {
                    network: short(&other),
                    parent: parent.clone(),
                    mode: mode.name(),
                    flag: flag.name(),
                }
                .into());
            }
        }
        self.probe_ipvlan().await?;
        let ParentLink { name: link, made: created } =
            PARENTS.ensure(&self.host, &nid, cfg.parent.as_deref()).await.map_err(Error::from)?;
        let mut pools = req.ipv4_data.clone();
        pools.extend(req.ipv6_data.iter().cloned());
        tracing::info!(network = %nid, link, mode = cfg.mode.name(), flag = cfg.flag.name(), "ipvlan network");
        let net = IpvlanNetwork { config: cfg, link, created, pools };
        self.networks.insert(nid, net);
        Ok(())
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        let _parents = self.parents.lock().await;
        let net = self.networks.remove(&req.network_id);
        let Some(net) = net.filter(|n| n.created) else { return Ok(()) };
        // A link the driver made and another network still uses (a VLAN
        // sub-interface two networks share) stays; that network removes it.
        let heir = {
            let mut nets = self.networks.lock();
            match nets.values_mut().find(|n| n.link == net.link) {
                Some(n) => {
                    n.created = true;
                    true
                }
                None => false,
            }
        };
        if !heir {
            PARENTS.remove(&self.host, &net.link).await;
        }
        Ok(())
    }

    /// An ipvlan link has its parent's MAC address, and no other: the
    /// endpoint is given it, and another one the user asked for is refused.
    /// A MAC the controller passes on its own (an endpoint's recorded one,
    /// replayed after a restart while the parent has another now) is not
    /// the user's: the link simply has the parent's.
    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        let net = self.network(&req.network_id)?;
        let link = self
            .host
            .link_get(&net.link)
            .await
            .map_err(|e| Error::os(format!("look up {}", net.link), e))?
            .ok_or_else(|| Error::from(cnm_parent_link::Error::Gone(net.link.clone())))?;
        let parent_mac = link.mac.map(MacAddress);
        if let Some(mac) = req.options.mac_address
            && Some(mac) != parent_mac
        {
            return Err(Error::InvalidOption(format!(
                "ipvlan links have their parent's MAC address: {mac} cannot be given (the parent {} has {})",
                net.link,
                parent_mac.map_or_else(|| "none".to_string(), |m| m.to_string())
            ))
            .into());
        }
        let addrs = EndpointAddrs { v4: req.interface.address, v6: req.interface.address_ipv6 };
        self.endpoints.insert(req.endpoint_id, addrs);
        let interface = (req.interface.mac_address.is_none() && parent_mac.is_some())
            .then(|| EndpointInterface { mac_address: parent_mac, ..Default::default() });
        Ok(CreateEndpointResponse { interface })
    }

    /// A runtime moves a container's link back to the host when the
    /// container stops, after the leave: one found here now goes.
    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        self.endpoints.remove(&req.endpoint_id);
        let name = link_name(&req.endpoint_id);
        match self.host.link_del_by_name(&name).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(Error::os(format!("delete ipvlan link {name}"), e).into()),
        }
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        let net = self.network(&req.network_id)?;
        let parent = self
            .host
            .link_get(&net.link)
            .await
            .map_err(|e| Error::os(format!("look up {}", net.link), e))?
            .ok_or_else(|| Error::from(cnm_parent_link::Error::Gone(net.link.clone())))?;
        let name = link_name(&req.endpoint_id);
        // A link left by an interrupted join goes first.
        let _ = self.host.link_del_by_name(&name).await;
        match self.host.link_add_ipvlan(&name, parent.index, net.config.mode, net.config.flag).await {
            Ok(()) => {}
            Err(e @ cnm_osl::Error::Unsupported(_)) => {
                return Err(Error::MissingKernelFeature {
                    what: format!("an ipvlan link on {}", net.link),
                    feature: IPVLAN_FEATURE,
                    source: e,
                }
                .into());
            }
            Err(e) => return Err(Error::os(format!("create ipvlan link {name} on {}", net.link), e).into()),
        }
        let addrs =
            self.endpoints.get(&req.endpoint_id).ok_or_else(|| Error::EndpointNotFound(req.endpoint_id.clone()));
        let addrs = match addrs {
            Ok(a) => a,
            Err(e) => {
                let _ = self.host.link_del_by_name(&name).await;
                return Err(e.into());
            }
        };
        let mut resp = JoinResponse {
            interface_name: Some(InterfaceName { src_name: name, dst_prefix: "eth".into() }),
            ..Default::default()
        };
        if net.config.routed() {
            // The host's namespace routes: no gateway, the interface is the way out.
            resp.disable_gateway_service = true;
            resp.static_routes = routed_routes(&net, addrs);
        } else if !net.config.internal {
            let v4: Vec<IpamData> = net.pools.iter().filter(|p| p.pool.addr().is_ipv4()).cloned().collect();
            let v6: Vec<IpamData> = net.pools.iter().filter(|p| p.pool.addr().is_ipv6()).cloned().collect();
            if let Some(IpAddr::V4(g)) = gateway_for(&v4, addrs.v4) {
                resp.gateway = Some(g);
            }
            if addrs.v6.is_some()
                && let Some(IpAddr::V6(g)) = gateway_for(&v6, addrs.v6)
            {
                resp.gateway_ipv6 = Some(g);
            }
        }
        Ok(resp)
    }

    async fn leave(&self, req: LeaveRequest) -> Result<()> {
        // The link is in the sandbox, removed with it; one still here is a leftover.
        let _ = self.host.link_del_by_name(&link_name(&req.endpoint_id)).await;
        Ok(())
    }
}
