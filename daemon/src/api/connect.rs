//! `POST /networks/{id}/connect` and `/disconnect`: a sandbox joins a
//! network through an endpoint named after the sandbox, and leaves it.

use super::extract::{IdParam, JsonBody};
use super::{ApiState, lookup, network_config};
use crate::errors::{ApiError, ApiResult};
use crate::wire::network::{NetworkConnectRequest, NetworkDisconnectRequest};
use axum::extract::State;
use axum::http::StatusCode;
use cnm::{Endpoint, JoinOptions, Network, Sandbox};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One lock per (network, sandbox) pair: a connect checks for an existing
/// endpoint, creates one and joins it, and a second connect of the same pair
/// must see the first's result rather than take its endpoint for a leftover.
#[derive(Default)]
pub struct AttachLocks {
    locks: Mutex<HashMap<PairKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// A (network id, sandbox id) pair.
type PairKey = (String, String);

impl AttachLocks {
    /// Runs `op` holding the lock of (`network`, `sandbox`).
    async fn with<T>(&self, network: &str, sandbox: &str, op: impl Future<Output = T>) -> T {
        let key = (network.to_string(), sandbox.to_string());
        let lock = self.locks.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default().clone();
        let out = {
            let _held = lock.lock().await;
            op.await
        };
        drop(lock);
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&key);
        }
        out
    }
}

/// `POST /networks/{id}/connect`.
pub async fn connect(
    State(st): State<ApiState>,
    IdParam(id): IdParam,
    JsonBody(req): JsonBody<NetworkConnectRequest>,
) -> ApiResult<StatusCode> {
    let (cfg, priority) = network_config::endpoint_config(req.endpoint_config.as_ref())?;
    let net = lookup::network(&st.controller, &id).await?;
    let sb = lookup::sandbox(&st.controller, &req.container).await?;
    let attachments = st.attachments.clone();
    let joined_sb = sb.clone();
    let event_net = net.clone();
    st.inflight
        .run(async move {
            let (nid, sid) = (net.id().to_string(), sb.id().to_string());
            attachments.with(&nid, &sid, connect_locked(net, sb, cfg, priority)).await
        })
        .await?;
    st.events.network("connect", &event_net, Some(joined_sb.id()));
    Ok(StatusCode::OK)
}

/// The work of a connect, holding the pair's lock.
async fn connect_locked(net: Network, sb: Sandbox, cfg: cnm::EndpointConfig, priority: i32) -> ApiResult<()> {
    if joined_endpoint(&net, &sb).await.is_some() {
        return Err(ApiError::forbidden(format!(
            "sandbox {} is already connected to network {}",
            sb.container_id(),
            net.name()
        )));
    }
    // An endpoint of this name that is not joined is a leftover of an
    // interrupted connect: replace it.
    if let Ok(stale) = net.endpoint(sb.container_id()).await
        && stale.info().await.is_ok_and(|i| i.sandbox_id.is_none())
    {
        stale.delete().await?;
    }
    // As dockerd: the sandbox's exposed ports and bindings, and its DNS
    // servers, travel with every endpoint's CreateEndpoint (the driver may
    // program them at join).
    let mut cfg = cfg;
    let sandbox = sb.info().await?.config;
    if cfg.exposed_ports.is_empty() && cfg.port_bindings.is_empty() {
        cfg.exposed_ports = sandbox.exposed_ports;
        cfg.port_bindings = sandbox.port_bindings;
    }
    if cfg.dns_servers.is_empty() {
        cfg.dns_servers = sandbox.dns.iter().map(|ip| ip.to_string()).collect();
    }
    net.connect(sb.container_id(), cfg, &sb, JoinOptions { priority }).await.map_err(|e| match e {
        cnm::Error::EndpointNameExists { .. } => ApiError::forbidden(e.to_string()),
        e => e.into(),
    })?;
    refresh_driver_info(&sb).await;
    tracing::info!(network = %net.name(), sandbox = %sb.container_id(), "connected");
    Ok(())
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(
    State(st): State<ApiState>,
    IdParam(id): IdParam,
    JsonBody(req): JsonBody<NetworkDisconnectRequest>,
) -> ApiResult<StatusCode> {
    let net = lookup::network(&st.controller, &id).await?;
    let sb = match lookup::sandbox(&st.controller, &req.container).await {
        Ok(sb) => Some(sb),
        Err(e) if !req.force => return Err(e),
        Err(_) => None,
    };
    let attachments = st.attachments.clone();
    let event_net = net.clone();
    let event_key = sb.as_ref().map_or_else(|| req.container.clone(), |s| s.id().to_string());
    st.inflight
        .run(async move {
            let nid = net.id().to_string();
            let key = sb.as_ref().map_or_else(|| req.container.clone(), |s| s.id().to_string());
            attachments.with(&nid, &key, disconnect_locked(net, sb, req)).await
        })
        .await?;
    st.events.network("disconnect", &event_net, Some(&event_key));
    Ok(StatusCode::OK)
}

/// The work of a disconnect, holding the pair's lock.
async fn disconnect_locked(net: Network, sb: Option<Sandbox>, req: NetworkDisconnectRequest) -> ApiResult<()> {
    let Some(sb) = sb else {
        // Forced, and the sandbox is gone: remove a stale endpoint of that name.
        let ep = net.endpoint(&req.container).await.map_err(|_| {
            ApiError::not_found(format!("sandbox {} not found on network {}", req.container, net.name()))
        })?;
        return Ok(ep.delete().await?);
    };
    let ep = joined_endpoint(&net, &sb).await.ok_or_else(|| {
        ApiError::not_found(format!("sandbox {} is not connected to network {}", sb.container_id(), net.name()))
    })?;
    ep.leave_and_delete(&sb).await?;
    refresh_driver_info(&sb).await;
    tracing::info!(network = %net.name(), sandbox = %sb.container_id(), "disconnected");
    Ok(())
}

/// As dockerd after a connect or disconnect: asks the driver of each of the
/// sandbox's endpoints for its operational data (`EndpointOperInfo`: the
/// ports it published, its MAC), which inspect then shows. A failure there
/// is not the connect's.
async fn refresh_driver_info(sb: &Sandbox) {
    for ep in sb.endpoints().await {
        if let Err(e) = ep.driver_info().await {
            tracing::debug!(endpoint = %ep.name(), error = %cnm::Chain(&e), "EndpointOperInfo");
        }
    }
}

/// The endpoint joining `sb` to `net`, if any.
async fn joined_endpoint(net: &Network, sb: &Sandbox) -> Option<Endpoint> {
    sb.endpoints().await.into_iter().find(|e| e.network_id() == net.id())
}
