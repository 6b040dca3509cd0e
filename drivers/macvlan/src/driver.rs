//! `MacvlanDriver`: networks bound to a parent interface, a macvlan link
//! per joined endpoint, created on the parent and handed to the sandbox.

use crate::{Error, MacvlanConfig, NAME};
use async_trait::async_trait;
use cnm_driverapi::{
    Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, GwAllocCheckRequest, GwAllocCheckResponse, InterfaceName, IpamData, JoinRequest,
    JoinResponse, LeaveRequest, Result, Scope, Table,
};
use cnm_osl::{MacvlanMode, Netlink};
use cnm_parent_link::{Maker, ParentLink};
use ipnet::IpNet;
use std::net::IpAddr;

/// A network the driver knows.
#[derive(Debug, Clone)]
struct MacvlanNetwork {
    config: MacvlanConfig,
    /// The link the network's links hang off (the parent, its VLAN sub-interface, or a dummy).
    link: String,
    /// Whether the driver created `link` (and removes it with the network).
    created: bool,
    pools: Vec<IpamData>,
}

/// The addresses of an endpoint, to find its gateway at join.
#[derive(Debug, Clone, Copy, Default)]
struct EndpointAddrs {
    v4: Option<IpNet>,
    v6: Option<IpNet>,
}

/// The `macvlan` network driver.
#[derive(Debug)]
pub struct MacvlanDriver {
    host: Netlink,
    networks: Table<String, MacvlanNetwork>,
    endpoints: Table<String, EndpointAddrs>,
    /// Held by a network's creation and removal, from the check of the
    /// networks sharing its parent to the table's update: two of them on
    /// one parent never interleave.
    parents: tokio::sync::Mutex<()>,
}

/// The name of the link of endpoint `eid` while it is in the host's namespace.
fn link_name(eid: &str) -> String {
    format!("mv{}", cnm_driverapi::id::short(eid, 11))
}

/// A network's id as the driver's errors name it.
fn short(nid: &str) -> String {
    cnm_driverapi::id::short(nid, 12).to_string()
}

/// How this driver names and marks the parent links it makes (Docker's
/// dummy names; the mark tells its 802.1q links from the user's).
const PARENTS: Maker = Maker { driver: NAME, mark: "cnm:macvlan", dummy_prefix: "dm-" };

impl MacvlanDriver {
    /// A macvlan driver working on the host's links through `host`.
    pub fn new(host: Netlink) -> Self {
        MacvlanDriver {
            host,
            networks: Table::default(),
            endpoints: Table::default(),
            parents: tokio::sync::Mutex::new(()),
        }
    }

    fn network(&self, nid: &str) -> std::result::Result<MacvlanNetwork, Error> {
        self.networks.get(nid).ok_or_else(|| Error::NetworkNotFound(nid.into()))
    }
}

/// The gateway of the pool holding `addr`, else of the first pool.
fn gateway_for(pools: &[IpamData], addr: Option<IpNet>) -> Option<IpAddr> {
    let holder = addr.and_then(|a| pools.iter().find(|p| p.pool.contains(&a.addr())));
    holder.or(pools.first()).and_then(|p| p.gateway).map(|g| g.addr())
}

#[async_trait]
impl Driver for MacvlanDriver {
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

    /// As Docker's: an internal network (or one without a parent) reserves
    /// no gateway address it would not use.
    async fn gateway_allocation(&self, req: GwAllocCheckRequest) -> Result<GwAllocCheckResponse> {
        let cfg = MacvlanConfig::from_options(&req.options.generic, req.options.internal)?;
        let skip = cfg.internal;
        Ok(GwAllocCheckResponse { skip_ipv4: skip, skip_ipv6: skip })
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        let cfg = MacvlanConfig::from_options(&req.options.generic, req.options.internal)?;
        let nid = req.network_id.clone();
        let _parents = self.parents.lock().await;
        // Several networks may share a parent (Docker 28's rule), unless
        // one of them is in passthru mode, which takes the parent whole.
        if let Some(parent) = &cfg.parent {
            let sharing: Vec<(String, MacvlanMode)> = self
                .networks
                .lock()
                .iter()
                .filter(|(id, n)| **id != nid && n.config.parent.as_ref() == Some(parent))
                .map(|(id, n)| (id.clone(), n.config.mode))
                .collect();
            if let Some((other, _)) = sharing.first().filter(|_| cfg.mode == MacvlanMode::Passthru) {
                return Err(Error::ParentInUse { network: short(other), parent: parent.clone() }.into());
            }
            if let Some((other, _)) = sharing.iter().find(|(_, mode)| *mode == MacvlanMode::Passthru) {
                return Err(Error::ParentInPassthru { network: short(other), parent: parent.clone() }.into());
            }
        }
        let ParentLink { name: link, made: created } =
            PARENTS.ensure(&self.host, &nid, cfg.parent.as_deref()).await.map_err(Error::from)?;
        let mut pools = req.ipv4_data.clone();
        pools.extend(req.ipv6_data.iter().cloned());
        tracing::info!(network = %nid, link, mode = cfg.mode.name(), "macvlan network");
        let net = MacvlanNetwork { config: cfg, link, created, pools };
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

    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        self.network(&req.network_id)?;
        let addrs = EndpointAddrs { v4: req.interface.address, v6: req.interface.address_ipv6 };
        self.endpoints.insert(req.endpoint_id, addrs);
        Ok(CreateEndpointResponse::default())
    }

    /// Docker Engine moves a container's link back to the host when the
    /// container stops, after the leave: one found here now goes.
    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        self.endpoints.remove(&req.endpoint_id);
        let name = link_name(&req.endpoint_id);
        match self.host.link_del_by_name(&name).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(Error::os(format!("delete macvlan link {name}"), e).into()),
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
        self.host
            .link_add_macvlan(&name, parent.index, net.config.mode, None)
            .await
            .map_err(|e| Error::os(format!("create macvlan link {name} on {}", net.link), e))?;
        let addrs = self.endpoints.get(&req.endpoint_id).unwrap_or_default();
        let mut resp = JoinResponse {
            interface_name: Some(InterfaceName { src_name: name, dst_prefix: "eth".into() }),
            ..Default::default()
        };
        if !net.config.internal {
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
