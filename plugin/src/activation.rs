//! The `Plugin.Activate` handshake and the registration of each role the
//! plugin implements, in the order of its manifest (as Docker does):
//! `NetworkDriver` → `NetworkDriver.GetCapabilities`; `IpamDriver` →
//! `IpamDriver.GetCapabilities` (optional) then
//! `IpamDriver.GetDefaultAddressSpaces` (mandatory).

use crate::client::{ClientConfig, ErrorField, PluginClient, RetryPolicy, decode_answer, interpret};
use crate::discovery::PluginSpec;
use crate::{Error, RemoteDriver, RemoteIpam, Result};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// The handshake call.
pub const ACTIVATE: &str = "Plugin.Activate";
/// The network driver role.
pub const NETWORK_DRIVER: &str = "NetworkDriver";
/// The IPAM driver role.
pub const IPAM_DRIVER: &str = "IpamDriver";

/// The answer to `Plugin.Activate`: the subsystems the plugin implements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Manifest {
    /// Subsystem names, e.g. `["NetworkDriver", "IpamDriver"]`.
    #[serde(rename = "Implements", default, deserialize_with = "cnm_driverapi::wire::null_default")]
    pub implements: Vec<String>,
}

impl Manifest {
    /// Whether the plugin implements `role`.
    pub fn implements(&self, role: &str) -> bool {
        self.implements.iter().any(|r| r == role)
    }

    pub(crate) fn from_value(v: Value) -> Result<Self> {
        decode_answer(ACTIVATE, v)
    }
}

/// An activated plugin and the outcome of registering each role it implements.
#[derive(Debug)]
pub struct Plugin {
    /// The client every role of the plugin shares.
    pub client: Arc<PluginClient>,
    /// The plugin's manifest.
    pub manifest: Manifest,
    /// The network driver, if the plugin implements one and it registered.
    pub network: Option<Result<Arc<RemoteDriver>>>,
    /// The IPAM driver, if the plugin implements one and it registered.
    pub ipam: Option<Result<Arc<RemoteIpam>>>,
}

impl Plugin {
    /// Activates the plugin found at `spec` and registers its roles, in manifest order.
    ///
    /// A failing `Plugin.Activate` is an error; a failing registration is
    /// kept in [`Plugin::network`] / [`Plugin::ipam`] (the plugin is still activated).
    ///
    /// `retry` applies to the handshake only (the provider passes its lookup
    /// policy, so that a plugin whose socket is left over from a dead process
    /// fails at once instead of after Docker's ≈15 s).
    pub async fn activate(spec: &PluginSpec, config: ClientConfig, retry: RetryPolicy) -> Result<Plugin> {
        let client = Arc::new(PluginClient::new(&spec.name, spec.address.clone(), config));
        Plugin::activate_client(client, retry).await
    }

    /// Activates the plugin behind `client` (any transport, an in-process
    /// library included) and registers its roles, as [`Plugin::activate`].
    pub async fn activate_client(client: Arc<PluginClient>, retry: RetryPolicy) -> Result<Plugin> {
        let answer = client.call_with_retry(ACTIVATE, bytes::Bytes::new(), retry).await?;
        let manifest = Manifest::from_value(interpret(ACTIVATE, answer, ErrorField::Err)?)?;
        tracing::info!(plugin = %client.name(), address = %client.address(), implements = ?manifest.implements, "plugin activated");
        let mut plugin = Plugin { client, manifest, network: None, ipam: None };
        let roles = plugin.manifest.implements.clone();
        for role in roles {
            plugin.register(&role).await;
        }
        Ok(plugin)
    }

    /// Registers `role` (again, after a failure); other roles are ignored.
    pub async fn register(&mut self, role: &str) {
        match role {
            NETWORK_DRIVER => {
                let r = RemoteDriver::register(self.client.clone()).await.map(Arc::new);
                if let Err(e) = &r {
                    tracing::error!(plugin = %self.client.name(), error = %cnm_driverapi::Chain(&e), "network driver registration failed");
                }
                self.network = Some(r);
            }
            IPAM_DRIVER => {
                let r = RemoteIpam::register(self.client.clone()).await.map(Arc::new);
                if let Err(e) = &r {
                    tracing::error!(plugin = %self.client.name(), error = %cnm_driverapi::Chain(&e), "ipam driver registration failed");
                }
                self.ipam = Some(r);
            }
            _ => {}
        }
    }

    /// The network driver: registered now if an earlier registration failed.
    pub async fn network_driver(&mut self) -> Result<Arc<RemoteDriver>> {
        self.role(NETWORK_DRIVER).await?;
        match &self.network {
            Some(Ok(d)) => Ok(d.clone()),
            Some(Err(e)) => Err(copy_error(e)),
            None => Err(self.not_implemented(NETWORK_DRIVER)),
        }
    }

    /// The IPAM driver: registered now if an earlier registration failed.
    pub async fn ipam_driver(&mut self) -> Result<Arc<RemoteIpam>> {
        self.role(IPAM_DRIVER).await?;
        match &self.ipam {
            Some(Ok(d)) => Ok(d.clone()),
            Some(Err(e)) => Err(copy_error(e)),
            None => Err(self.not_implemented(IPAM_DRIVER)),
        }
    }

    async fn role(&mut self, role: &str) -> Result<()> {
        if !self.manifest.implements(role) {
            return Err(self.not_implemented(role));
        }
        let failed = match role {
            NETWORK_DRIVER => !matches!(self.network, Some(Ok(_))),
            _ => !matches!(self.ipam, Some(Ok(_))),
        };
        if failed {
            self.register(role).await;
        }
        Ok(())
    }

    fn not_implemented(&self, role: &str) -> Error {
        Error::RoleNotImplemented { name: self.client.name().to_string(), role: role.to_string() }
    }
}

/// A copy of a stored registration error (errors are not `Clone`).
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Status { method, status, message, kind } => {
            Error::Status { method: method.clone(), status: *status, message: message.clone(), kind: *kind }
        }
        Error::RoleNotImplemented { name, role } => {
            Error::RoleNotImplemented { name: name.clone(), role: role.clone() }
        }
        other => Error::InvalidResponse { method: "registration".into(), reason: other.to_string() },
    }
}

/// Sends `Plugin.Activate` (empty body) and decodes the manifest.
pub async fn activate(client: &PluginClient) -> Result<Manifest> {
    let v = client.call_json::<()>(ACTIVATE, None, ErrorField::Err).await?;
    Manifest::from_value(v)
}
