//! `RemoteIpam`: the `Ipam` trait forwarded to a plugin's `IpamDriver.*`
//! endpoints. Errors at status 200 come in the `Error` field (not `Err`).
//! Capabilities and default address spaces are learnt once, at registration.

use crate::client::{ErrorField, PluginClient, decode_answer};
use crate::{Error, Result as CrateResult};
use async_trait::async_trait;
use cnm_ipamapi::{
    AddressSpaces, Ipam, IpamCapability, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse, Result,
};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An IPAM driver served by a remote plugin.
#[derive(Debug)]
pub struct RemoteIpam {
    client: Arc<PluginClient>,
    capability: IpamCapability,
    spaces: AddressSpaces,
}

#[derive(Deserialize)]
struct Empty {}

#[derive(Deserialize)]
struct RawSpaces {
    #[serde(rename = "LocalDefaultAddressSpace", default)]
    local: String,
    #[serde(rename = "GlobalDefaultAddressSpace", default)]
    global: String,
}

#[derive(Deserialize)]
struct RawPool {
    #[serde(rename = "PoolID", default)]
    pool_id: String,
    #[serde(rename = "Pool", default)]
    pool: String,
    #[serde(rename = "Data", default, deserialize_with = "cnm_driverapi::wire::null_default")]
    data: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawAddress {
    #[serde(rename = "Address", default)]
    address: String,
    #[serde(rename = "Data", default, deserialize_with = "cnm_driverapi::wire::null_default")]
    data: BTreeMap<String, String>,
}

fn parse_cidr(method: &str, s: &str) -> CrateResult<IpNet> {
    s.trim().parse().map_err(|_| Error::InvalidResponse {
        method: method.to_string(),
        reason: format!("invalid CIDR address: {s}"),
    })
}

impl RemoteIpam {
    /// Registers the plugin's IPAM driver: `IpamDriver.GetCapabilities` (any
    /// error, 404 included, means "no capabilities"), then
    /// `IpamDriver.GetDefaultAddressSpaces` (mandatory).
    pub async fn register(client: Arc<PluginClient>) -> CrateResult<RemoteIpam> {
        const CAPS: &str = "IpamDriver.GetCapabilities";
        const SPACES: &str = "IpamDriver.GetDefaultAddressSpaces";
        let capability = match client.call_json::<()>(CAPS, None, ErrorField::Error).await {
            Ok(v) => decode_answer::<IpamCapability>(CAPS, v).unwrap_or_default(),
            Err(e) => {
                tracing::debug!(plugin = %client.name(), error = %cnm_driverapi::Chain(&e), "ipam plugin has no capabilities");
                IpamCapability::default()
            }
        };
        let v = client.call_json::<()>(SPACES, None, ErrorField::Error).await?;
        let raw: RawSpaces = decode_answer(SPACES, v)?;
        Ok(RemoteIpam { client, capability, spaces: AddressSpaces { local: raw.local, global: raw.global } })
    }

    /// The plugin's client.
    pub fn client(&self) -> &Arc<PluginClient> {
        &self.client
    }

    async fn call<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
    ) -> CrateResult<Resp> {
        let v = self.client.call_json(method, Some(req), ErrorField::Error).await?;
        decode_answer(method, v)
    }
}

#[async_trait]
impl Ipam for RemoteIpam {
    fn capability(&self) -> IpamCapability {
        self.capability
    }

    async fn default_address_spaces(&self) -> Result<AddressSpaces> {
        // Learnt at registration; Docker never asks again.
        Ok(self.spaces.clone())
    }

    async fn request_pool(&self, req: RequestPoolRequest) -> Result<RequestPoolResponse> {
        const M: &str = "IpamDriver.RequestPool";
        let raw: RawPool = self.call(M, &req).await?;
        let pool = parse_cidr(M, &raw.pool)?;
        Ok(RequestPoolResponse { pool_id: raw.pool_id, pool, data: raw.data })
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<()> {
        self.call::<_, Empty>("IpamDriver.ReleasePool", &req).await?;
        Ok(())
    }

    async fn request_address(&self, req: RequestAddressRequest) -> Result<RequestAddressResponse> {
        const M: &str = "IpamDriver.RequestAddress";
        let raw: RawAddress = self.call(M, &req).await?;
        if raw.address.trim().is_empty() {
            return Err(Error::InvalidResponse { method: M.to_string(), reason: "no address returned".into() }.into());
        }
        let address = parse_cidr(M, &raw.address)?;
        Ok(RequestAddressResponse { address, data: raw.data })
    }

    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<()> {
        self.call::<_, Empty>("IpamDriver.ReleaseAddress", &req).await?;
        Ok(())
    }
}
