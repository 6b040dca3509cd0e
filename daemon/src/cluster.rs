//! Cluster membership: the global networks this host creates are published
//! in the cluster store, and the store's networks are followed — adopted
//! when another host creates one, forgotten when one is removed.
//!
//! Keys (under the cluster's prefix): `networks/<id>` holds a network as
//! [`cnm::GlobalNetwork`]; the overlay driver keeps `overlay/peers/<id>/…`
//! (every host's endpoints, on that host's lease) and `overlay/vni/…`.

use crate::errors::{ApiError, ApiResult};
use cnm::{Controller, RemoteName};
use cnm_cluster::{Cluster, Event};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// An endpoint's names as published for the other hosts' resolvers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NameRecord {
    /// The host that publishes it.
    host: Ipv4Addr,
    #[serde(flatten)]
    name: RemoteName,
}

/// This host's membership of a cluster.
#[derive(Debug, Clone)]
pub struct Membership {
    cluster: Cluster,
}

fn key(id: &str) -> String {
    format!("networks/{id}")
}

fn unavailable(e: cnm_cluster::Error) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        format!("global networks cannot change now: {}", cnm::Chain(&e)),
    )
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

    /// Publishes the names of endpoint `eid` (joined here) for the other
    /// hosts' resolvers, if its network is global; on this host's lease.
    pub async fn publish_names(&self, ctrl: &Controller, eid: &str) {
        let Some(name) = ctrl.endpoint_names(eid) else { return };
        if !matches!(ctrl.global_network(&name.network_id), Ok(Some(_))) {
            return;
        }
        let key = format!("names/{}/{eid}", name.network_id);
        let record = NameRecord { host: self.cluster.advertise(), name };
        let Ok(value) = serde_json::to_vec(&record) else { return };
        if let Err(e) = self.cluster.put_leased(&key, &value).await {
            tracing::warn!(endpoint = eid, error = %cnm::Chain(&e), "cannot publish an endpoint's names");
        }
    }

    /// Withdraws the names of endpoint `eid` of network `nid` (a no-op for local networks).
    pub async fn withdraw_names(&self, nid: &str, eid: &str) {
        if let Err(e) = self.cluster.delete(&format!("names/{nid}/{eid}")).await {
            tracing::warn!(endpoint = eid, error = %cnm::Chain(&e), "cannot withdraw an endpoint's names (its lease will)");
        }
    }

    /// Publishes the names of every endpoint of a global network joined here.
    async fn publish_all_names(&self, ctrl: &Controller) {
        for sb in ctrl.sandboxes().await {
            for ep in sb.endpoints().await {
                self.publish_names(ctrl, ep.id()).await;
            }
        }
    }

    /// Withdraws network `id` from the store (after its removal here).
    pub async fn withdraw(&self, id: &str) {
        if let Err(e) = self.cluster.delete(&key(id)).await {
            tracing::warn!(network = id, error = %cnm::Chain(&e), "cannot withdraw a removed global network");
        }
    }

    /// Follows the store's networks, and the other hosts' endpoint names,
    /// for the daemon's lifetime.
    pub fn follow(&self, ctrl: Controller) {
        self.follow_names(ctrl.clone());
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

impl Membership {
    /// Feeds the other hosts' endpoint names to the resolver; after each
    /// (re)connection, publishes this host's own again.
    fn follow_names(&self, ctrl: Controller) {
        let mut rx = self.cluster.watch("names/");
        let me = self.clone();
        tokio::spawn(async move {
            let mine = me.cluster.advertise();
            let remote = |v: &[u8]| serde_json::from_slice::<NameRecord>(v).ok().filter(|r| r.host != mine);
            while let Some(event) = rx.recv().await {
                match event {
                    Event::Resync(kvs) => {
                        let all = kvs.iter().filter_map(|(k, v)| Some((k.clone(), remote(v)?.name))).collect();
                        ctrl.replace_remote_names(all);
                        me.publish_all_names(&ctrl).await;
                    }
                    Event::Put(k, v) => {
                        if let Some(r) = remote(&v) {
                            ctrl.set_remote_names(&k, Some(r.name));
                        }
                    }
                    Event::Delete(k) => ctrl.set_remote_names(&k, None),
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
                tracing::warn!(network = name, error = %cnm::Chain(&e), "cannot adopt a global network");
            }
        }
        Err(e) => tracing::warn!(error = %cnm::Chain(&e), "a global network in the store cannot be read"),
    }
}

async fn forget(ctrl: &Controller, id: &str) {
    if let Err(e) = ctrl.forget_network(id).await {
        tracing::warn!(network = id, error = %cnm::Chain(&e), "cannot forget a removed global network");
    }
}
