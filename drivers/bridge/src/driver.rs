//! `BridgeDriver`: the `Driver` trait over bridge networks; port publishing
//! is in `publish.rs`, drift repair and orphans in `repair.rs`.

use crate::endpoint::{create_veth, delete_veth, host_name, port_flags};
use crate::network::{self, BridgeEndpoint, BridgeNetwork};
use crate::ports::PortAllocator;
use crate::{BridgeConfig, Error, NAME};
use async_trait::async_trait;
use cnm_driverapi::{
    Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, EndpointInterface, EndpointOperInfoRequest, EndpointOperInfoResponse, InterfaceName,
    JoinRequest, JoinResponse, LeaveRequest, MacAddress, ProgramExternalConnectivityRequest, Result,
    RevokeExternalConnectivityRequest, Table,
};
use cnm_osl::Netlink;
use cnm_osl::firewall::{Firewall, NftFirewall};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The Linux bridge network driver.
pub struct BridgeDriver {
    pub(crate) nl: Netlink,
    pub(crate) firewall: Option<Arc<dyn Firewall>>,
    pub(crate) firewall_ready: tokio::sync::OnceCell<()>,
    pub(crate) ports: tokio::sync::OnceCell<Arc<PortAllocator>>,
    /// Networks by id: looked up and updated only, never held across I/O.
    pub(crate) networks: Arc<Table<String, Arc<BridgeNetwork>>>,
    /// How many times the firewall table was put back after someone removed it.
    pub(crate) table_repairs: Arc<std::sync::atomic::AtomicU64>,
    /// How many bridges and gateway addresses were put back.
    pub(crate) link_repairs: Arc<LinkRepairs>,
    /// The watch of removed links and addresses, started with the first network.
    pub(crate) link_watch: tokio::sync::OnceCell<()>,
    /// Network ids and bridge names of networks being created.
    pub(crate) creating: std::sync::Mutex<std::collections::HashSet<String>>,
    pub(crate) reaper: Arc<crate::reaper::Reaper>,
    /// Where lost veths are reported (the controller's).
    pub(crate) lost: Arc<std::sync::OnceLock<cnm_driverapi::LostInterfaceListener>>,
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

    pub(crate) fn nets(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<BridgeNetwork>>> {
        self.networks.lock()
    }

    pub(crate) async fn network(&self, id: &str) -> Result<Arc<BridgeNetwork>, Error> {
        self.nets().get(id).cloned().ok_or_else(|| Error::NetworkNotFound(id.to_string()))
    }

    /// The work of `create_network` once its id and bridge name are claimed.
    async fn create_network_claimed(&self, req: &CreateNetworkRequest, config: BridgeConfig) -> Result<(), Error> {
        self.watch_links().await;
        self.reaper.sweep(&self.nl).await?;
        let net = network::setup(&self.nl, req, config, &self.reaper).await?;
        crate::kill::point("bridge.create.bridge");
        // The host's sysctls (files in the namespace) and the firewall (nft
        // requests) go together: the bridge has no port yet.
        let firewall = async {
            if let Some(fw) = self.firewall().await? {
                fw.add_network(&net.rules()).await.map_err(|e| Error::os("add the network's firewall rules", e))?;
                crate::kill::point("bridge.create.firewall");
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
        let programmed = tokio::try_join!(network::host_settings(&self.nl, &net), firewall);
        if let Err(e) = programmed {
            if let Err(err) = network::teardown(&self.nl, &net, &self.reaper).await {
                tracing::warn!(error = %cnm_driverapi::Chain(&err), "failed to remove the bridge of a failed network");
            }
            return Err(e);
        }
        self.nets().insert(req.network_id.clone(), Arc::new(net));
        Ok(())
    }
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

pub(crate) fn endpoint_of(net: &BridgeNetwork, eid: &str) -> Result<BridgeEndpoint, Error> {
    net.endpoints.get(eid).ok_or_else(|| Error::EndpointNotFound(eid.to_string()))
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
        let config = BridgeConfig::from_options(&req.options.generic)?;
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
        let created = self.create_network_claimed(&req, config).await;
        drop(claim);
        Ok(created?)
    }

    /// What was put back after someone removed it: the firewall table, bridges, gateway addresses.
    fn repairs(&self) -> Vec<(String, u64)> {
        self.repair_counts()
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
        let eids: Vec<String> = net.published.keys();
        for eid in eids {
            if let Err(e) = self.unpublish(&net, &eid).await {
                tracing::warn!(error = %cnm_driverapi::Chain(&e), "failed to unpublish ports of a deleted network");
            }
        }
        // The firewall's elements and the bridge are independent: both
        // requests are in flight at once.
        let firewall = async {
            let removed = match self.firewall().await {
                Ok(Some(fw)) => fw
                    .remove_network(&net.rules())
                    .await
                    .map_err(|e| Error::os("remove the network's firewall rules", e)),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            crate::kill::point("bridge.delete.firewall");
            removed
        };
        let (fw_result, retired) = tokio::join!(firewall, network::teardown(&self.nl, &net, &self.reaper));
        crate::kill::point("bridge.delete.retired");
        retired?;
        fw_result?;
        Ok(())
    }

    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        let net = self.network(&req.network_id).await?;
        let given = &req.interface;
        // Docker's bridge derives the MAC from the IPv4 address when none
        // is given; an endpoint with no IPv4 address (an IPv6-only network)
        // gets a locally administered one made of its id.
        let derived = match (given.mac_address, given.address.map(|a| a.addr())) {
            (None, Some(IpAddr::V4(v4))) => Some(MacAddress::from_ipv4(v4)),
            (None, _) => Some(mac_of_id(&req.endpoint_id)),
            _ => None,
        };
        let ep = BridgeEndpoint { ipv4: given.address, ipv6: given.address_ipv6, mac: given.mac_address.or(derived) };
        net.endpoints.insert(req.endpoint_id.clone(), ep);
        Ok(CreateEndpointResponse {
            interface: derived.map(|mac| EndpointInterface { mac_address: Some(mac), ..Default::default() }),
        })
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        if let Ok(net) = self.network(&req.network_id).await {
            self.unpublish(&net, &req.endpoint_id).await?;
            net.endpoints.remove(&req.endpoint_id);
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
            .get(&req.endpoint_id)
            .map(|v| v.iter().map(|p| p.binding.clone()).collect())
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
        crate::kill::point("bridge.join.veth");
        // Ports already published: a join again after a repair.
        let flags = port_flags(&net, &req.endpoint_id);
        if !flags.is_empty() {
            let host = host_name(&req.endpoint_id);
            let port = async {
                let link = self.nl.link_get(&host).await?.ok_or_else(|| cnm_osl::Error::NotFound(host.clone()))?;
                self.nl.link_set_bridge_port(link.index, flags).await
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
        crate::kill::point("bridge.leave.retired");
        Ok(())
    }

    /// Publishes the sandbox's port bindings for this endpoint (see `publish.rs`).
    async fn program_external_connectivity(&self, req: ProgramExternalConnectivityRequest) -> Result<()> {
        Ok(self.publish(&req).await?)
    }

    async fn revoke_external_connectivity(&self, req: RevokeExternalConnectivityRequest) -> Result<()> {
        let net = self.network(&req.network_id).await?;
        self.unpublish(&net, &req.endpoint_id).await?;
        Ok(())
    }
}

/// Counts of links and addresses put back.
#[derive(Debug, Default)]
pub(crate) struct LinkRepairs {
    pub(crate) bridges: std::sync::atomic::AtomicU64,
    pub(crate) addresses: std::sync::atomic::AtomicU64,
}

/// A locally administered unicast MAC made of the first 12 hex digits of
/// endpoint id `id` (stable across restarts).
fn mac_of_id(id: &str) -> MacAddress {
    let mut b = [0u8; 6];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = id.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
    }
    MacAddress::local_unicast(b)
}
