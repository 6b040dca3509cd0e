//! `POST /networks/{id}/connect` and `/disconnect`: a sandbox joins a
//! network through an endpoint named after the sandbox, and leaves it.

use super::extract::{IdParam, JsonBody};
use super::{ApiState, lookup, network_config};
use crate::errors::{ApiError, ApiResult};
use crate::wire::network::{NetworkConnectRequest, NetworkDisconnectRequest};
use axum::extract::State;
use axum::http::StatusCode;
use cnm::{Endpoint, JoinOptions, Network, Sandbox};

/// `POST /networks/{id}/connect`.
pub async fn connect(
    State(st): State<ApiState>,
    IdParam(id): IdParam,
    JsonBody(req): JsonBody<NetworkConnectRequest>,
) -> ApiResult<StatusCode> {
    let (cfg, priority) = network_config::endpoint_config(req.endpoint_config.as_ref())?;
    let net = lookup::network(&st.controller, &id).await?;
    let sb = lookup::sandbox(&st.controller, &req.container).await?;
    st.inflight
        .run(async move {
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
            let ep = net.create_endpoint(sb.container_id(), cfg).await.map_err(|e| match e {
                cnm::Error::EndpointNameExists { .. } => ApiError::forbidden(e.to_string()),
                e => e.into(),
            })?;
            if let Err(e) = ep.join(&sb, JoinOptions { priority }).await {
                if let Err(del) = ep.delete().await {
                    tracing::warn!(endpoint = %ep.name(), error = %del, "cannot delete the endpoint of a failed join");
                }
                return Err(e.into());
            }
            tracing::info!(network = %net.name(), sandbox = %sb.container_id(), "connected");
            Ok(())
        })
        .await?;
    Ok(StatusCode::OK)
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
    st.inflight
        .run(async move {
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
            ep.leave(&sb).await?;
            ep.delete().await?;
            tracing::info!(network = %net.name(), sandbox = %sb.container_id(), "disconnected");
            Ok(())
        })
        .await?;
    Ok(StatusCode::OK)
}

/// The endpoint joining `sb` to `net`, if any.
async fn joined_endpoint(net: &Network, sb: &Sandbox) -> Option<Endpoint> {
    sb.endpoints().await.into_iter().find(|e| e.network_id() == net.id())
}
