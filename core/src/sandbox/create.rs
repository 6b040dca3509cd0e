//! `Controller::new_sandbox`: record the intent, create the namespace (or
//! share the host's), bring up loopback, write the files, confirm.

use super::{Sandbox, SandboxConfig, files};
use crate::model::{Phase, SandboxRecord};
use crate::state::SandboxState;
use crate::store::Table;
use crate::{Controller, Error, Result};
use cnm_osl::{Namespace, Netlink};
use std::collections::HashMap;

/// The file the host namespace is mounted at for host-namespace sandboxes.
pub(crate) const HOST_SANDBOX_KEY: &str = "default";

impl Controller {
    /// Creates the sandbox of container `container_id`.
    ///
    /// Errors: [`Error::SandboxExists`] if the container has one already.
    pub async fn new_sandbox(&self, container_id: &str, config: SandboxConfig) -> Result<Sandbox> {
        if container_id.is_empty() {
            return Err(Error::InvalidParameter("a sandbox needs a container id".into()));
        }
        super::check_file_value("container id", container_id, false)?;
        config.validate()?;
        let taken = |ctrl: &Controller| ctrl.st().sandboxes.values().any(|s| s.rec.container_id == container_id);
        if taken(self) {
            return Err(Error::SandboxExists(container_id.to_string()));
        }
        // The container id is held from here until the sandbox is inserted (or the creation fails).
        let Some(_reserved) = crate::locks::Reservation::take(&self.inner.creating_sandboxes, container_id) else {
            return Err(Error::SandboxExists(container_id.to_string()));
        };
        if taken(self) {
            return Err(Error::SandboxExists(container_id.to_string()));
        }
        if config.use_host_namespace && config.netns.is_some() {
            return Err(Error::InvalidParameter(
                "a sandbox either shares the host's namespace or uses an existing one, not both".into(),
            ));
        }
        let id = crate::id::new_id();
        let netns_dir = self.inner.config.netns_dir();
        let key = match &config.netns {
            Some(path) => path.clone(),
            None if config.use_host_namespace => netns_dir.join(HOST_SANDBOX_KEY),
            None => netns_dir.join(cnm_driverapi::id::short(&id, 12)),
        };
        let netns_inode = match &config.netns {
            Some(path) => {
                Some(Namespace::open(path).map_err(|e| Error::os("open the runtime's network namespace", e))?.inode())
            }
            None => None,
        };
        let mut rec = SandboxRecord {
            id: id.clone(),
            container_id: container_id.to_string(),
            key,
            config,
            phase: Phase::Creating,
            netns_inode,
        };
        self.inner.store.put(Table::Sandboxes, &id, &rec).await?;
        crate::kill::point("sandbox.create.intent");

        let netlink = match self.setup_sandbox_namespace(&rec).await {
            Ok(nl) => nl,
            Err(e) => {
                self.cleanup_sandbox_namespace(&rec);
                self.inner.store.delete(Table::Sandboxes, &id).await?;
                return Err(e);
            }
        };
        crate::kill::point("sandbox.create.namespace");
        rec.phase = Phase::Ready;
        // Written before the sandbox is visible: no endpoint is joined yet.
        let inputs = files::inputs_of(&rec.config, std::iter::empty());
        if let Err(e) = files::write(&self.inner.config, &id, &inputs) {
            self.cleanup_sandbox_namespace(&rec);
            self.remove_sandbox_dir(&id);
            self.inner.store.delete(Table::Sandboxes, &id).await?;
            return Err(e);
        }
        if let Err(e) = self.inner.store.put(Table::Sandboxes, &id, &rec).await {
            self.cleanup_sandbox_namespace(&rec);
            self.remove_sandbox_dir(&id);
            return Err(e);
        }
        let state =
            SandboxState { rec: rec.clone(), netlink: Some(netlink), ifindex: HashMap::new(), errors: Vec::new() };
        self.st().sandboxes.insert(id.clone(), state);
        Ok(Sandbox::handle(self, &rec))
    }

    /// Creates (or, for a host sandbox, mounts) the namespace at the record's
    /// key and brings its loopback up; returns its netlink handle.
    pub(crate) async fn setup_sandbox_namespace(&self, rec: &SandboxRecord) -> Result<Netlink> {
        if rec.config.use_host_namespace {
            self.inner.host.namespace().mount_at(&rec.key).await.map_err(|e| Error::os("mount host namespace", e))?;
            return Ok(self.inner.host.clone());
        }
        let nl = if rec.config.netns.is_some() {
            // A runtime's namespace: used as it is, if it is still the one adopted.
            let ns = Namespace::open(&rec.key).map_err(|e| Error::os("open the runtime's network namespace", e))?;
            if rec.netns_inode.is_some_and(|ino| ino != ns.inode()) {
                return Err(Error::InvalidParameter(format!(
                    "{} is another network namespace than the one the sandbox was created on",
                    rec.key.display()
                )));
            }
            Netlink::connect(&ns, self.inner.config.netlink_deadline)
                .await
                .map_err(|e| Error::os("open sandbox netlink", e))?
        } else {
            let (_, nl) = Netlink::create_namespace(&rec.key, self.inner.config.netlink_deadline)
                .await
                .map_err(|e| Error::os("create sandbox namespace", e))?;
            nl
        };
        // The loopback device of a new namespace is always index 1.
        nl.link_set_up(1).await.map_err(|e| Error::os("bring loopback up", e))?;
        Ok(nl)
    }

    /// Removes a sandbox's namespace mount (for a host sandbox, only when no
    /// other host sandbox uses it). Failures are logged.
    pub(crate) fn cleanup_sandbox_namespace(&self, rec: &SandboxRecord) {
        if rec.config.netns.is_some() {
            // The runtime's: never removed by cnm.
            return;
        }
        if rec.config.use_host_namespace
            && self.st().sandboxes.values().any(|s| s.rec.id != rec.id && s.rec.config.use_host_namespace)
        {
            return;
        }
        if let Err(e) = Namespace::remove(&rec.key) {
            tracing::warn!(key = %rec.key.display(), error = %crate::Chain(&e), "failed to remove sandbox namespace");
        }
    }

    /// Removes a sandbox's directory (its `hosts` and `resolv.conf`) in a
    /// rollback; one that is not there is fine.
    pub(crate) fn remove_sandbox_dir(&self, id: &str) {
        match std::fs::remove_dir_all(files::sandbox_dir(&self.inner.config, id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                self.rollback_failed("remove the sandbox's directory", id, &e)
            }
            _ => {}
        }
    }
}
