//! The HTTP handlers: Docker's network API, the native sandbox resources and
//! the system endpoints, over one shared [`ApiState`].

pub mod connect;
pub mod events;
pub mod extract;
pub mod filters;
pub mod lookup;
pub mod network_config;
pub mod networks;
pub mod sandbox_config;
pub mod sandboxes;
pub mod system;

use crate::errors::{ApiError, ApiResult};
use axum::http::StatusCode;
use cnm::Controller;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The API version a request was made at (its `/vX.Y` prefix; the newest
/// without one), for handlers whose answer depends on it, as dockerd's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    /// The newest version served ([`crate::API_VERSION`]).
    pub const MAX: ApiVersion = ApiVersion(1, 52);

    /// Whether the request's version is `major.minor` or newer.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= ApiVersion(major, minor)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ApiVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ApiVersion>().copied().unwrap_or(ApiVersion::MAX))
    }
}

/// What every handler shares: the controller and the in-flight tracker.
#[derive(Clone)]
pub struct ApiState {
    /// The controller.
    pub controller: Controller,
    /// Operations under way (waited for at shutdown).
    pub inflight: Inflight,
    /// Facts reported by `/info`.
    pub facts: Arc<DaemonFacts>,
    /// Connects and disconnects of one sandbox to one network, one at a time.
    pub attachments: Arc<connect::AttachLocks>,
    /// What happened, for `GET /events`.
    pub events: Arc<events::Events>,
}

/// Facts about the daemon that `/info` reports.
#[derive(Debug, Clone, Default)]
pub struct DaemonFacts {
    /// The data root.
    pub data_root: PathBuf,
    /// The exec root.
    pub exec_root: PathBuf,
    /// Whether the bridge firewall is on.
    pub firewall: bool,
}

impl ApiState {
    /// State over `controller`.
    pub fn new(controller: Controller, facts: DaemonFacts) -> Self {
        ApiState {
            controller,
            inflight: Inflight::new(),
            facts: Arc::new(facts),
            attachments: Arc::default(),
            events: Arc::default(),
        }
    }

    /// The default network's name, if one is configured (it cannot be removed or pruned).
    pub fn default_network(&self) -> Option<&str> {
        self.controller.config().default_network.as_ref().map(|d| d.name.as_str())
    }

    /// Whether `name` is a pre-defined network (the default one, `host`,
    /// `none`): listed as built in, never removed or pruned.
    pub fn predefined(&self, name: &str) -> bool {
        self.default_network() == Some(name) || PREDEFINED.iter().any(|(n, _)| *n == name)
    }
}

/// Docker's pre-defined networks besides the default bridge: (name, driver).
pub const PREDEFINED: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// Creates the pre-defined `host` and `none` networks if their drivers are
/// compiled in and they do not exist yet (null IPAM: they have no addresses).
pub async fn predefined_networks(ctrl: &Controller) {
    for (name, driver) in PREDEFINED {
        if ctrl.network_by_name(name).await.is_ok() || !ctrl.drivers().iter().any(|d| d == driver) {
            continue;
        }
        let cfg = cnm::NetworkConfig { ipam_driver: "null".to_string(), ..Default::default() };
        if let Err(e) = ctrl.new_network(driver, name, cfg).await {
            tracing::warn!(network = name, error = %cnm::Chain(&e), "cannot create a pre-defined network");
        }
    }
}

/// Tracks the operations under way. Each runs in its own task, so a client
/// that hangs up does not cancel a controller operation half-way; shutdown
/// waits for all of them.
#[derive(Clone)]
pub struct Inflight(Arc<Semaphore>);

const MAX_INFLIGHT: u32 = 1 << 20;

impl Default for Inflight {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflight {
    /// An empty tracker.
    pub fn new() -> Self {
        Inflight(Arc::new(Semaphore::new(MAX_INFLIGHT as usize)))
    }

    /// Runs `op` to completion in its own task, even if the caller goes away.
    pub async fn run<T, F>(&self, op: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: Future<Output = ApiResult<T>> + Send + 'static,
    {
        let permit = self
            .0
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down"))?;
        tokio::spawn(async move {
            let out = op.await;
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::internal(format!("the operation's task failed: {e}")))?
    }

    /// Refuses new operations and waits until those under way have finished.
    pub async fn drain(&self) {
        if let Ok(all) = self.0.acquire_many(MAX_INFLIGHT).await {
            all.forget();
        }
        self.0.close();
    }
}

/// Removes what an interrupted request can leave behind: through this API an
/// endpoint exists only while it joins a sandbox, so an endpoint that joins
/// none (a connect cut short by a crash, rolled back by the controller's
/// restore) is deleted, releasing its addresses. Failures are logged.
pub async fn reconcile(ctrl: &Controller) {
    for net in ctrl.networks().await {
        for ep in net.endpoints().await {
            let joined = match ep.info().await {
                Ok(i) => i.sandbox_id.is_some(),
                Err(_) => continue,
            };
            if joined {
                continue;
            }
            match ep.delete().await {
                Ok(()) => {
                    tracing::info!(network = %net.name(), endpoint = %ep.name(), "removed an endpoint left by an interrupted connect")
                }
                Err(e) => {
                    tracing::warn!(network = %net.name(), endpoint = %ep.name(), error = %cnm::Chain(&e), "cannot remove a stale endpoint")
                }
            }
        }
    }
}
