//! `BridgeDriver`: the `Driver` trait over bridge networks.

use crate::endpoint::{create_veth, delete_veth};
use crate::network::{self, BridgeEndpoint, BridgeNetwork};
use crate::{Error, NAME};
use async_trait::async_trait;
use cnm_driverapi::{
    Capability, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteEndpointRequest,
    DeleteNetworkRequest, Driver, EndpointInterface, EndpointOperInfoRequest, EndpointOperInfoResponse, InterfaceName,
    JoinRequest, JoinResponse, LeaveRequest, MacAddress, Result,
};
use cnm_osl::Netlink;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The Linux bridge network driver.
pub struct BridgeDriver {
    nl: Netlink,
    networks: tokio::sync::Mutex<HashMap<String, Arc<BridgeNetwork>>>,
}

impl BridgeDriver {
    /// A bridge driver working in the namespace of `host` (the controller's host).
    pub fn new(host: Netlink) -> Self {
        BridgeDriver { nl: host, networks: tokio::sync::Mutex::new(HashMap::new()) }
    }

    async fn network(&self, id: &str) -> Result<Arc<BridgeNetwork>, Error> {
        self.networks.lock().await.get(id).cloned().ok_or_else(|| Error::NetworkNotFound(id.to_string()))
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
        let mut nets = self.networks.lock().await;
        if nets.contains_key(&req.network_id) {
            return Ok(());
        }
        let config = crate::BridgeConfig::from_options(&req.options.generic)?;
        let bridge = config.bridge_name(&req.network_id);
        if let Some(other) = nets.values().find(|n| n.bridge == bridge) {
            return Err(Error::BridgeInUse { bridge, network: other.id.clone() }.into());
        }
        let net = network::setup(&self.nl, &req).await?;
        nets.insert(req.network_id.clone(), Arc::new(net));
        Ok(())
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        let net = self.networks.lock().await.remove(&req.network_id);
        let net = net.ok_or_else(|| Error::NetworkNotFound(req.network_id.clone()))?;
        network::teardown(&self.nl, &net).await?;
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
        if let Ok(net) = self.network(&req.network_id).await
            && let Ok(mut eps) = net.endpoints.lock()
        {
            eps.remove(&req.endpoint_id);
        }
        delete_veth(&self.nl, &req.endpoint_id).await?;
        Ok(())
    }

    async fn endpoint_oper_info(&self, req: EndpointOperInfoRequest) -> Result<EndpointOperInfoResponse> {
        let net = self.network(&req.network_id).await?;
        let ep = endpoint_of(&net, &req.endpoint_id)?;
        let mut resp = EndpointOperInfoResponse::default();
        if let Some(mac) = ep.mac {
            resp.value.insert(cnm_driverapi::label::MAC_ADDRESS.into(), mac.to_string().into());
        }
        Ok(resp)
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        let net = self.network(&req.network_id).await?;
        let ep = endpoint_of(&net, &req.endpoint_id)?;
        let peer = create_veth(&self.nl, &net, &req.endpoint_id, ep.mac.map(|m| m.octets()), &req.sandbox_key).await?;
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
        delete_veth(&self.nl, &req.endpoint_id).await?;
        Ok(())
    }
}
