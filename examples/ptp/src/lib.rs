//! `ptp`: a point-to-point driver written only against `cnm-driver-sdk`,
//! as a driver author out of tree would. Each endpoint gets a veth pair:
//! one end goes into the sandbox (the controller moves, names, addresses
//! and routes it), the other stays on the host with the network's gateway
//! address (/32), proxy ARP, and a host route to the endpoint's address.
//! No bridge: containers reach each other through the host's routing.
//!
//! Three ways to ship the same code:
//! * compiled in: `ControllerBuilder::driver_on_host(|host| PtpDriver::new(host.clone()))`;
//! * as a library: this crate's `cdylib` (`libcnm_example_ptp.so`) in `cnmd --driver-dir`;
//! * as a remote plugin: the `ptp-plugin` binary on a socket in `/run/docker/plugins`.

use cnm_driver_sdk::driverapi::{
    self, Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, EndpointOperInfoRequest, EndpointOperInfoResponse, InterfaceName, JoinRequest,
    JoinResponse, LeaveRequest,
};
use cnm_driver_sdk::ipnet::IpNet;
use cnm_driver_sdk::osl::{Netlink, Route, VethSpec};
use cnm_driver_sdk::{EndpointTable, Exported, async_trait};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

/// The driver's name.
pub const NAME: &str = "ptp";

/// The ptp driver.
#[derive(Debug)]
pub struct PtpDriver {
    host: Netlink,
    /// Network id → its IPv4 gateway.
    gateways: Mutex<HashMap<String, Ipv4Addr>>,
    /// What `create_endpoint` learned: the endpoint's IPv4 address.
    endpoints: EndpointTable<Option<IpNet>>,
}

impl PtpDriver {
    /// A driver working in the host namespace of `host`.
    pub fn new(host: Netlink) -> Self {
        PtpDriver { host, gateways: Mutex::default(), endpoints: EndpointTable::default() }
    }

    fn gateway(&self, network: &str) -> driverapi::Result<Ipv4Addr> {
        let gws = self.gateways.lock().unwrap_or_else(|p| p.into_inner());
        gws.get(network).copied().ok_or_else(|| driverapi::Error::not_found(format!("network {network}")))
    }
}

/// The host end's name: `ptp` and the endpoint id's first 11 characters.
fn host_name(endpoint: &str) -> String {
    format!("ptp{}", endpoint.get(..11).unwrap_or(endpoint))
}

#[async_trait]
impl Driver for PtpDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability::local()
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> driverapi::Result<()> {
        let gateway = req
            .ipv4_data
            .first()
            .and_then(|d| d.gateway)
            .and_then(|g| match g.addr() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| driverapi::Error::invalid("a ptp network needs an IPv4 pool with a gateway"))?;
        // Containers reach each other through the host's routing.
        self.host.namespace().sysctl_set("net/ipv4/ip_forward", "1").await?;
        self.gateways.lock().unwrap_or_else(|p| p.into_inner()).insert(req.network_id, gateway);
        Ok(())
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> driverapi::Result<()> {
        self.gateways.lock().unwrap_or_else(|p| p.into_inner()).remove(&req.network_id);
        Ok(())
    }

    async fn create_endpoint(&self, req: CreateEndpointRequest) -> driverapi::Result<CreateEndpointResponse> {
        self.gateway(&req.network_id)?;
        self.endpoints.insert(&req.network_id, &req.endpoint_id, req.interface.address);
        Ok(CreateEndpointResponse::default())
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> driverapi::Result<()> {
        self.endpoints.remove(&req.network_id, &req.endpoint_id);
        Ok(())
    }

    async fn endpoint_oper_info(&self, req: EndpointOperInfoRequest) -> driverapi::Result<EndpointOperInfoResponse> {
        self.endpoints.get(&req.network_id, &req.endpoint_id)?;
        Ok(EndpointOperInfoResponse::default())
    }

    async fn join(&self, req: JoinRequest) -> driverapi::Result<JoinResponse> {
        let gateway = self.gateway(&req.network_id)?;
        let addr = self
            .endpoints
            .get(&req.network_id, &req.endpoint_id)?
            .ok_or_else(|| driverapi::Error::invalid("a ptp endpoint needs an IPv4 address"))?;
        let (name, peer) = (host_name(&req.endpoint_id), format!("pt{}", req.endpoint_id.get(..11).unwrap_or("")));
        let host_end = self
            .host
            .link_create_veth(&VethSpec { name: &name, peer_name: &peer, up: true, ..Default::default() })
            .await?;
        let configured = async {
            let gw = IpNet::new(gateway.into(), 32).map_err(|e| driverapi::Error::invalid(e.to_string()))?;
            self.host.addr_add(host_end.index, gw).await?;
            // The host end answers ARP for every other address of the subnet.
            self.host.namespace().sysctl_set(&format!("net/ipv4/conf/{name}/proxy_arp"), "1").await?;
            let to_endpoint = IpNet::new(addr.addr(), 32).map_err(|e| driverapi::Error::invalid(e.to_string()))?;
            self.host.route_add(&Route::connected(to_endpoint, host_end.index)).await?;
            Ok::<_, driverapi::Error>(())
        };
        if let Err(e) = configured.await {
            let _ = self.host.link_del(host_end.index).await;
            return Err(e);
        }
        Ok(JoinResponse {
            interface_name: Some(InterfaceName { src_name: peer, dst_prefix: "eth".into() }),
            gateway: Some(gateway),
            ..Default::default()
        })
    }

    async fn leave(&self, req: LeaveRequest) -> driverapi::Result<()> {
        // Deleting the host end takes the peer, the address and the route with it.
        self.host.link_del_by_name(&host_name(&req.endpoint_id)).await?;
        Ok(())
    }
}

/// The plugin this crate exports: the driver on the daemon's host namespace.
pub async fn plugin(ctx: cnm_driver_sdk::Context) -> Result<Exported, String> {
    let host = ctx.host_netlink().await.map_err(|e| cnm_driver_sdk::osl::chain(&e))?;
    Ok(Exported::driver(Arc::new(PtpDriver::new(host))))
}

cnm_driver_sdk::export_plugin!(plugin);
