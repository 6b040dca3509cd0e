//! Finding networks and sandboxes the way Docker finds networks and
//! containers: full id, then name, then a unique id prefix.

use crate::errors::ApiError;
use cnm::{Controller, Network, Sandbox};

/// The network with this id, name or unique id prefix.
pub async fn network(ctrl: &Controller, key: &str) -> Result<Network, ApiError> {
    if key.len() == 64
        && let Ok(n) = ctrl.network_by_id(key).await
    {
        return Ok(n);
    }
    if let Ok(n) = ctrl.network_by_name(key).await {
        return Ok(n);
    }
    ctrl.network_by_id(key).await.map_err(|_| ApiError::not_found(format!("network {key} not found")))
}

/// The sandbox with this id, name or unique id prefix.
pub async fn sandbox(ctrl: &Controller, key: &str) -> Result<Sandbox, ApiError> {
    if let Ok(s) = ctrl.sandbox(key).await {
        return Ok(s);
    }
    let mut found = ctrl.sandboxes().await.into_iter().filter(|s| !key.is_empty() && s.id().starts_with(key));
    match (found.next(), found.next()) {
        (Some(s), None) => Ok(s),
        _ => Err(ApiError::not_found(format!("sandbox {key} not found"))),
    }
}
