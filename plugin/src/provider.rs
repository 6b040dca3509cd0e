//! `PluginProvider`: finds plugins by name on first use, activates each
//! once, and hands the controller their network and IPAM drivers.
//!
//! Lookup behaviour (configurable through [`PluginProvider::lookup_retry`]):
//! by default a name with no socket or spec file is answered at once with
//! "no such driver" — no retries. Docker instead retries the lookup for
//! ≈15 s ([`RetryPolicy::docker`]); a controller restoring its networks at
//! start must not wait that long for a plugin that is down (it restores the
//! network when the plugin is back, on the network's next use).
//!
//! The same policy applies to the `Plugin.Activate` handshake: a socket
//! left behind by a dead plugin (connection refused) fails at once by default.
//!
//! Caching: a plugin is activated once per provider, for its whole lifetime
//! (as in Docker: a plugin that restarts gets the same calls again, never a
//! second `Plugin.Activate`); a failed activation is forgotten (the next use
//! activates again, as Docker does). A failed role registration is retried
//! on the next use (Docker keeps it failed until the daemon restarts).

use crate::activation::Plugin;
use crate::client::{ClientConfig, RetryPolicy};
use crate::discovery::{Discovery, PluginSpec};
use crate::{Error, RemoteDriver, RemoteIpam, Result};
use async_trait::async_trait;
use cnm_driverapi::{Driver, DriverProvider};
use cnm_ipamapi::{Ipam, IpamProvider};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Supplies network and IPAM drivers served by plugins, found by name.
pub struct PluginProvider {
    discovery: Discovery,
    client: ClientConfig,
    lookup_retry: RetryPolicy,
    plugins: tokio::sync::Mutex<HashMap<String, Plugin>>,
}

impl Default for PluginProvider {
    fn default() -> Self {
        Self::new(Discovery::default())
    }
}

impl std::fmt::Debug for PluginProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginProvider").field("discovery", &self.discovery).field("client", &self.client).finish()
    }
}

impl PluginProvider {
    /// A provider looking in `discovery`'s directories, with the default
    /// client settings and no lookup retries.
    pub fn new(discovery: Discovery) -> Self {
        PluginProvider {
            discovery,
            client: ClientConfig::default(),
            lookup_retry: RetryPolicy::none(),
            plugins: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Sets how plugin clients talk to plugins (timeout, transport retries).
    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.client = config;
        self
    }

    /// Sets how long a name with no socket or spec file is looked for again
    /// (default: not at all; Docker: [`RetryPolicy::docker`]).
    pub fn lookup_retry(mut self, policy: RetryPolicy) -> Self {
        self.lookup_retry = policy;
        self
    }

    /// The directories searched.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// Looks `name` up, with the configured retries.
    pub async fn lookup(&self, name: &str) -> Result<Option<PluginSpec>> {
        let start = Instant::now();
        let mut delay = Duration::ZERO;
        loop {
            match self.discovery.lookup(name) {
                Ok(Some(spec)) => return Ok(Some(spec)),
                Ok(None) => {}
                // A name that cannot name a file names no plugin.
                Err(Error::InvalidName { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
            match self.lookup_retry.next(delay, start) {
                Some(d) => {
                    tracing::debug!(plugin = name, retry_in = ?d, "plugin not found; looking again");
                    tokio::time::sleep(d).await;
                    delay = d;
                }
                None => return Ok(None),
            }
        }
    }

    /// Runs `f` on the activated plugin `name` (activating it first if
    /// needed); `Ok(None)` when no plugin of that name exists.
    async fn with_plugin<T>(&self, name: &str, f: impl AsyncFnOnce(&mut Plugin) -> Result<T>) -> Result<Option<T>> {
        let mut plugins = self.plugins.lock().await;
        if !plugins.contains_key(name) {
            let Some(spec) = self.lookup(name).await? else { return Ok(None) };
            let plugin = Plugin::activate(&spec, self.client, self.lookup_retry).await?;
            plugins.insert(name.to_string(), plugin);
        }
        let Some(plugin) = plugins.get_mut(name) else { return Ok(None) };
        f(plugin).await.map(Some)
    }

    /// The network driver of plugin `name`.
    pub async fn remote_driver(&self, name: &str) -> Result<Option<Arc<RemoteDriver>>> {
        self.with_plugin(name, async |p: &mut Plugin| p.network_driver().await).await
    }

    /// The IPAM driver of plugin `name`.
    pub async fn remote_ipam(&self, name: &str) -> Result<Option<Arc<RemoteIpam>>> {
        self.with_plugin(name, async |p: &mut Plugin| p.ipam_driver().await).await
    }

    /// Forgets plugin `name`: the next use looks it up and activates it again.
    pub async fn forget(&self, name: &str) {
        self.plugins.lock().await.remove(name);
    }
}

#[async_trait]
impl DriverProvider for PluginProvider {
    async fn network_driver(&self, name: &str) -> cnm_driverapi::Result<Option<Arc<dyn Driver>>> {
        let d = self.remote_driver(name).await.map_err(cnm_driverapi::Error::from)?;
        Ok(d.map(|d| d as Arc<dyn Driver>))
    }

    async fn available(&self) -> Vec<String> {
        self.discovery.names()
    }
}

#[async_trait]
impl IpamProvider for PluginProvider {
    async fn ipam_driver(&self, name: &str) -> cnm_ipamapi::Result<Option<Arc<dyn Ipam>>> {
        let i = self.remote_ipam(name).await.map_err(cnm_ipamapi::Error::from)?;
        Ok(i.map(|i| i as Arc<dyn Ipam>))
    }

    async fn available(&self) -> Vec<String> {
        self.discovery.names()
    }
}
