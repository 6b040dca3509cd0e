//! `RemoteDriver`: the `Driver` trait forwarded to a plugin's
//! `NetworkDriver.*` endpoints, with Docker's rules for each answer.

use crate::client::{ErrorField, PluginClient, decode_answer};
use crate::{Error, Result as CrateResult};
use async_trait::async_trait;
use cnm_driverapi::{
    AllocateNetworkRequest, AllocateNetworkResponse, Capability, CreateEndpointRequest, CreateEndpointResponse,
    CreateNetworkRequest, DeleteEndpointRequest, DeleteNetworkRequest, DiscoveryNotification, Driver,
    EndpointOperInfoRequest, EndpointOperInfoResponse, FreeNetworkRequest, GwAllocCheckRequest, GwAllocCheckResponse,
    JoinRequest, JoinResponse, LeaveRequest, ProgramExternalConnectivityRequest, Result,
    RevokeExternalConnectivityRequest, Scope,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The only discovery type the remote protocol forwards (node discovery).
pub const NODE_DISCOVERY: u32 = 1;

/// A network driver served by a remote plugin.
#[derive(Debug)]
pub struct RemoteDriver {
    client: Arc<PluginClient>,
    capability: Capability,
}

/// An empty answer: only its error field matters.
#[derive(serde::Deserialize)]
struct Empty {}

/// What `GetCapabilities` answers, before validation (Go reads plain strings).
#[derive(serde::Deserialize)]
struct RawCapability {
    #[serde(rename = "Scope", default)]
    scope: String,
    #[serde(rename = "ConnectivityScope", default)]
    connectivity_scope: String,
    /// Docker 28: the plugin answers `GwAllocCheck`.
    #[serde(rename = "GwAllocChecker", default)]
    gw_alloc_checker: bool,
}

fn parse_scope(what: &str, s: &str) -> std::result::Result<Scope, String> {
    match s {
        "local" => Ok(Scope::Local),
        "global" => Ok(Scope::Global),
        other => Err(format!("invalid {what} {other:?}: expected \"local\" or \"global\"")),
    }
}

impl RemoteDriver {
    /// Registers the plugin's network driver: `NetworkDriver.GetCapabilities`
    /// must answer a valid `Scope` (and `ConnectivityScope`, if any).
    pub async fn register(client: Arc<PluginClient>) -> CrateResult<RemoteDriver> {
        const M: &str = "NetworkDriver.GetCapabilities";
        let v = client.call_json::<()>(M, None, ErrorField::Err).await?;
        let raw: RawCapability = decode_answer(M, v)?;
        let invalid = |reason: String| Error::InvalidResponse { method: M.to_string(), reason };
        let data_scope = parse_scope("scope", &raw.scope).map_err(invalid)?;
        let connectivity_scope = match raw.connectivity_scope.as_str() {
            "" => None,
            s => Some(parse_scope("connectivity scope", s).map_err(invalid)?),
        };
        let capability = Capability {
            data_scope,
            connectivity_scope,
            host_namespace: false,
            gw_alloc_checker: raw.gw_alloc_checker,
        };
        Ok(RemoteDriver { client, capability })
    }

    /// The plugin's client.
    pub fn client(&self) -> &Arc<PluginClient> {
        &self.client
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(&self, method: &str, req: &Req) -> CrateResult<Resp> {
        let v = self.client.call_json(method, Some(req), ErrorField::Err).await?;
        decode_answer(method, v)
    }

    async fn call_empty<Req: Serialize>(&self, method: &str, req: &Req) -> Result<()> {
        self.call::<Req, Empty>(method, req).await?;
        Ok(())
    }

    /// A call for which a 404 answer means "not implemented", i.e. success.
    async fn call_optional<Req: Serialize>(&self, method: &str, req: &Req) -> Result<()> {
        match self.call::<Req, Empty>(method, req).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_implemented_status() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Driver for RemoteDriver {
    fn name(&self) -> &str {
        self.client.name()
    }

    fn capability(&self) -> Capability {
        self.capability
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<()> {
        self.call_empty("NetworkDriver.CreateNetwork", &req).await
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<()> {
        self.call_empty("NetworkDriver.DeleteNetwork", &req).await
    }

    async fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        let mut resp: CreateEndpointResponse = self.call("NetworkDriver.CreateEndpoint", &req).await?;
        // An interface with every field empty means "nothing to add".
        if resp.interface.as_ref().is_some_and(|i| i.is_empty()) {
            resp.interface = None;
        }
        Ok(resp)
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<()> {
        self.call_empty("NetworkDriver.DeleteEndpoint", &req).await
    }

    async fn endpoint_oper_info(&self, req: EndpointOperInfoRequest) -> Result<EndpointOperInfoResponse> {
        // Mandatory in Docker 20.10: a 404 is an error here.
        Ok(self.call("NetworkDriver.EndpointOperInfo", &req).await?)
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        Ok(self.call("NetworkDriver.Join", &req).await?)
    }

    async fn leave(&self, req: LeaveRequest) -> Result<()> {
        self.call_empty("NetworkDriver.Leave", &req).await
    }

    /// Asked only of a plugin that declared `GwAllocChecker`, as dockerd does.
    async fn gateway_allocation(&self, req: GwAllocCheckRequest) -> Result<GwAllocCheckResponse> {
        if !self.capability.gw_alloc_checker {
            return Ok(GwAllocCheckResponse::default());
        }
        Ok(self.call("NetworkDriver.GwAllocCheck", &req).await?)
    }

    async fn program_external_connectivity(&self, req: ProgramExternalConnectivityRequest) -> Result<()> {
        self.call_optional("NetworkDriver.ProgramExternalConnectivity", &req).await
    }

    async fn revoke_external_connectivity(&self, req: RevokeExternalConnectivityRequest) -> Result<()> {
        self.call_optional("NetworkDriver.RevokeExternalConnectivity", &req).await
    }

    async fn discover_new(&self, event: DiscoveryNotification) -> Result<()> {
        // Docker's proxy forwards node discovery only and drops other events.
        if event.discovery_type != NODE_DISCOVERY {
            return Ok(());
        }
        self.call_empty("NetworkDriver.DiscoverNew", &event).await
    }

    async fn discover_delete(&self, event: DiscoveryNotification) -> Result<()> {
        if event.discovery_type != NODE_DISCOVERY {
            return Ok(());
        }
        self.call_empty("NetworkDriver.DiscoverDelete", &event).await
    }

    async fn network_allocate(&self, req: AllocateNetworkRequest) -> Result<AllocateNetworkResponse> {
        Ok(self.call("NetworkDriver.AllocateNetwork", &req).await?)
    }

    async fn network_free(&self, req: FreeNetworkRequest) -> Result<()> {
        self.call_empty("NetworkDriver.FreeNetwork", &req).await
    }
}
