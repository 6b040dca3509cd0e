//! Sandboxes: one container's network stack — a network namespace with its
//! interfaces and routes, plus its `/etc/hosts` and `resolv.conf`.

mod create;
mod delete;
pub(crate) mod dns;
pub use crate::model::RemoteName;
pub(crate) mod config;
pub(crate) mod files;
pub(crate) mod gateway;
pub(crate) mod gwbridge;
pub(crate) mod interface;
pub(crate) use config::check_file_value;
pub use config::{ExtraHost, SandboxConfig};

use crate::{Controller, Endpoint, Error, Result};
use cnm_driverapi::PortBinding;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A snapshot of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// The id.
    pub id: String,
    /// The container it belongs to.
    pub container_id: String,
    /// The path of its network namespace.
    pub key: PathBuf,
    /// The configuration it was created with.
    pub config: SandboxConfig,
    /// Ids of the endpoints joined to it, in join order of preference.
    pub endpoints: Vec<String>,
    /// The endpoint providing the default route, if any.
    pub gateway_endpoint: Option<String>,
    /// The ports published for the sandbox (with the host ports chosen).
    pub published_ports: Vec<PortBinding>,
    /// What could not be restored at the last start (a host port another
    /// program took meanwhile, say); empty when all is well.
    pub errors: Vec<String>,
}

/// A sandbox, as a handle on the controller.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub(crate) ctrl: Controller,
    pub(crate) id: String,
    pub(crate) container_id: String,
    pub(crate) key: PathBuf,
}

impl Sandbox {
    pub(crate) fn handle(ctrl: &Controller, rec: &crate::model::SandboxRecord) -> Self {
        Sandbox { ctrl: ctrl.clone(), id: rec.id.clone(), container_id: rec.container_id.clone(), key: rec.key.clone() }
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container id it was created for.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The path of the sandbox's network namespace.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The sandbox's `/etc/hosts` file.
    pub fn hosts_path(&self) -> PathBuf {
        files::sandbox_dir(self.ctrl.config(), &self.id).join("hosts")
    }

    /// The sandbox's `resolv.conf` file.
    pub fn resolv_conf_path(&self) -> PathBuf {
        files::sandbox_dir(self.ctrl.config(), &self.id).join("resolv.conf")
    }

    /// Opens the sandbox's network namespace.
    pub fn namespace(&self) -> Result<cnm_osl::Namespace> {
        cnm_osl::Namespace::open(&self.key).map_err(|e| Error::os("open sandbox namespace", e))
    }

    /// A snapshot of the sandbox.
    pub async fn info(&self) -> Result<SandboxInfo> {
        let st = self.ctrl.st();
        let sb = st.sandboxes.get(&self.id).ok_or_else(|| Error::SandboxNotFound(self.id.clone()))?;
        let ordered = gateway::ordered_endpoints(&st, &self.id);
        let gateway_endpoint = gateway::current(&st, &self.id);
        let published_ports = gateway_endpoint
            .as_ref()
            .and_then(|id| st.endpoints.get(id))
            .and_then(|e| e.join.as_ref())
            .map(|j| j.published.clone())
            .unwrap_or_default();
        Ok(SandboxInfo {
            id: sb.rec.id.clone(),
            container_id: sb.rec.container_id.clone(),
            key: sb.rec.key.clone(),
            config: sb.rec.config.clone(),
            endpoints: ordered.iter().map(|e| e.to_string()).collect(),
            gateway_endpoint,
            published_ports,
            errors: sb.errors.clone(),
        })
    }

    /// The endpoints joined to this sandbox.
    pub async fn endpoints(&self) -> Vec<Endpoint> {
        let st = self.ctrl.st();
        gateway::ordered_endpoints(&st, &self.id)
            .iter()
            .filter_map(|id| st.endpoints.get(*id))
            .map(|e| Endpoint::handle(&self.ctrl, e))
            .collect()
    }
}

impl Controller {
    /// Every sandbox.
    pub async fn sandboxes(&self) -> Vec<Sandbox> {
        let st = self.st();
        let mut v: Vec<Sandbox> = st.sandboxes.values().map(|s| Sandbox::handle(self, &s.rec)).collect();
        v.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        v
    }

    /// The sandbox with this id or container id.
    pub async fn sandbox(&self, id_or_container: &str) -> Result<Sandbox> {
        let st = self.st();
        st.sandboxes
            .values()
            .find(|s| s.rec.id == id_or_container || s.rec.container_id == id_or_container)
            .map(|s| Sandbox::handle(self, &s.rec))
            .ok_or_else(|| Error::SandboxNotFound(id_or_container.to_string()))
    }
}
