//! Cluster membership: the global networks this host creates are published
//! in the cluster store, and the store's networks are followed — adopted
//! when another host creates one, forgotten when one is removed.
//!
//! Keys (under the cluster's prefix): `networks/<id>` holds a network as
//! [`cnm::GlobalNetwork`]; the overlay driver keeps `overlay/peers/<id>/…`
//! (every host's endpoints, on that host's lease) and `overlay/vni/…`.

use crate::errors::{ApiError, ApiResult};
use cnm::Controller;
use cnm_cluster::{Cluster, Event};
use std::collections::BTreeSet;

/// This host's membership of a cluster.
#[derive(Debug, Clone)]
pub struct Membership {
    cluster: Cluster,
}

fn key(id: &str) -> String {
    format!("networks/{id}")
}

fn unavailable(e: cnm_cluster::Error) -> ApiError {
    ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("global networks cannot change now: {e}"))
}

impl Membership {
    /// Membership through `cluster`.
    pub fn new(cluster: Cluster) -> Self {
        Membership { cluster }
    }

    /// Publishes network `id` if it is global (after its creation here).
    pub async fn publish(&self, ctrl: &Controller, id: &str) -> ApiResult<()> {
        let Some(net) = ctrl.global_network(id)? else { return Ok(()) };
        let value = serde_json::to_vec(&net).map_err(|e| ApiError::internal(e.to_string()))?;
        self.cluster.create(&key(id), &value).await.map_err(unavailable)?;
        tracing::info!(network = net.name(), "global network published");
        Ok(())
    }

    /// Refuses to remove a global network while any host has endpoints on it.
    pub async fn check_removable(&self, ctrl: &Controller, id: &str, name: &str) -> ApiResult<()> {
        if ctrl.global_network(id)?.is_none() {
            return Ok(());
        }
        let (peers, _) = self.cluster.list(&format!("overlay/peers/{id}/")).await.map_err(unavailable)?;
        let hosts: BTreeSet<String> = peers
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<serde_json::Value>(v).ok())
            .filter_map(|v| v["host"].as_str().map(str::to_string))
            .collect();
        if !hosts.is_empty() {
            return Err(ApiError::forbidden(format!(
                "error while removing network: network {name} id {id} has active endpoints (on hosts {})",
                hosts.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(())
    }

    /// Withdraws network `id` from the store (after its removal here).
    pub async fn withdraw(&self, id: &str) {
        if let Err(e) = self.cluster.delete(&key(id)).await {
            tracing::warn!(network = id, error = %e, "cannot withdraw a removed global network");
        }
    }

    /// Follows the store's networks for the daemon's lifetime.
    pub fn follow(&self, ctrl: Controller) {
        let mut rx = self.cluster.watch("networks/");
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                match event {
                    Event::Resync(kvs) => {
                        let ids: BTreeSet<String> =
                            kvs.iter().filter_map(|(k, _)| k.strip_prefix("networks/").map(str::to_string)).collect();
                        for net in ctrl.networks().await {
                            let id = net.id().to_string();
                            if ctrl.global_network(&id).ok().flatten().is_some() && !ids.contains(&id) {
                                forget(&ctrl, &id).await;
                            }
                        }
                        for (_, v) in kvs {
                            adopt(&ctrl, &v).await;
                        }
                    }
                    Event::Put(_, v) => adopt(&ctrl, &v).await,
                    Event::Delete(k) => {
                        if let Some(id) = k.strip_prefix("networks/") {
                            forget(&ctrl, id).await;
                        }
                    }
                }
            }
        });
    }
}

async fn adopt(ctrl: &Controller, value: &[u8]) {
    match serde_json::from_slice::<cnm::GlobalNetwork>(value) {
        Ok(net) => {
            let name = net.name().to_string();
            if let Err(e) = ctrl.adopt_network(net).await {
                tracing::warn!(network = name, error = %e, "cannot adopt a global network");
            }
        }
        Err(e) => tracing::warn!(error = %e, "a global network in the store cannot be read"),
    }
}

async fn forget(ctrl: &Controller, id: &str) {
    if let Err(e) = ctrl.forget_network(id).await {
        tracing::warn!(network = id, error = %e, "cannot forget a removed global network");
    }
}
