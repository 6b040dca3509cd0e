//! The native sandbox resources: `POST /sandboxes`, `GET /sandboxes`,
//! `GET /sandboxes/{id}`, `DELETE /sandboxes/{id}`.

use super::extract::{IdParam, JsonBody};
use super::{ApiState, lookup, sandbox_config};
use crate::errors::{ApiError, ApiResult};
use crate::wire::ports::{map_from_bindings, port_key};
use crate::wire::sandbox::{SandboxCreateRequest, SandboxCreateResponse, SandboxEndpoint, SandboxResource};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cnm::Sandbox;
use std::collections::BTreeMap;

/// `POST /sandboxes`: a new network namespace with its files.
pub async fn create(
    State(st): State<ApiState>,
    JsonBody(req): JsonBody<SandboxCreateRequest>,
) -> ApiResult<(StatusCode, Json<SandboxCreateResponse>)> {
    let cfg = sandbox_config::sandbox_config(&req)?;
    let ctrl = st.controller.clone();
    let sb = st
        .inflight
        .run(async move {
            ctrl.new_sandbox(&req.name, cfg).await.map_err(|e| match e {
                cnm::Error::SandboxExists(n) => ApiError::conflict(format!("a sandbox named {n} already exists")),
                e => e.into(),
            })
        })
        .await?;
    tracing::info!(sandbox = %sb.container_id(), id = %cnm::driverapi::id::short(sb.id(), 12), "sandbox created");
    st.events.sandbox("create", &sb);
    Ok((StatusCode::CREATED, Json(SandboxCreateResponse { id: sb.id().to_string() })))
}

/// `GET /sandboxes`.
pub async fn list(State(st): State<ApiState>) -> ApiResult<Json<Vec<SandboxResource>>> {
    let mut out = Vec::new();
    for sb in st.controller.sandboxes().await {
        out.push(resource(&st, &sb).await?);
    }
    Ok(Json(out))
}

/// `GET /sandboxes/{id}`.
pub async fn inspect(State(st): State<ApiState>, IdParam(id): IdParam) -> ApiResult<Json<SandboxResource>> {
    let sb = lookup::sandbox(&st.controller, &id).await?;
    Ok(Json(resource(&st, &sb).await?))
}

/// `DELETE /sandboxes/{id}`: leaves every network, then removes the namespace.
pub async fn delete(State(st): State<ApiState>, IdParam(id): IdParam) -> ApiResult<StatusCode> {
    let sb = lookup::sandbox(&st.controller, &id).await?;
    // Its networks see it go, as dockerd reports a removed container's.
    let mut networks = Vec::new();
    for ep in sb.endpoints().await {
        if let Ok(net) = st.controller.network_by_id(ep.network_id()).await {
            networks.push(net);
        }
    }
    let gone = sb.clone();
    st.inflight.run(async move { Ok(sb.delete().await?) }).await?;
    for net in &networks {
        st.events.network("disconnect", net, Some(gone.id()));
    }
    st.events.sandbox("destroy", &gone);
    Ok(StatusCode::NO_CONTENT)
}

/// A sandbox in the API's shape.
pub async fn resource(st: &ApiState, sb: &Sandbox) -> ApiResult<SandboxResource> {
    let info = sb.info().await?;
    let cfg = &info.config;
    let mut networks = BTreeMap::new();
    let mut ports = info.published_ports.clone();
    for ep in sb.endpoints().await {
        let Ok(e) = ep.info().await else { continue };
        let mac = reported_mac(&e);
        for b in reported_ports(&e) {
            if !ports.contains(&b) {
                ports.push(b);
            }
        }
        let net_name = match st.controller.network_by_id(&e.network_id).await {
            Ok(n) => n.name().to_string(),
            Err(_) => e.network_id.clone(),
        };
        networks.insert(
            net_name,
            SandboxEndpoint {
                network_id: e.network_id,
                endpoint_id: e.id,
                interface: e.interface.unwrap_or_default(),
                gateway: e.gateway.map(|g| g.to_string()).unwrap_or_default(),
                ip_address: e.ipv4.map(|a| a.addr().to_string()).unwrap_or_default(),
                ip_prefix_len: e.ipv4.map(|a| a.prefix_len()).unwrap_or(0),
                ipv6_gateway: e.gateway_ipv6.map(|g| g.to_string()).unwrap_or_default(),
                global_ipv6_address: e.ipv6.map(|a| a.addr().to_string()).unwrap_or_default(),
                global_ipv6_prefix_len: e.ipv6.map(|a| a.prefix_len()).unwrap_or(0),
                mac_address: mac.map(|m| m.to_string()).unwrap_or_default(),
                aliases: e.config.aliases,
            },
        );
    }
    Ok(SandboxResource {
        id: info.id,
        name: info.container_id,
        key: info.key.display().to_string(),
        hostname: cfg.hostname.clone(),
        domainname: cfg.domainname.clone(),
        dns: cfg.dns.iter().map(|d| d.to_string()).collect(),
        dns_search: cfg.dns_search.clone(),
        dns_options: cfg.dns_options.clone(),
        extra_hosts: cfg.extra_hosts.iter().map(|h| format!("{}:{}", h.name, h.ip)).collect(),
        host_namespace: cfg.use_host_namespace,
        exposed_ports: cfg.exposed_ports.iter().map(port_key).collect(),
        port_bindings: map_from_bindings(&cfg.port_bindings),
        ports: map_from_bindings(&ports),
        networks,
        gateway_endpoint: info.gateway_endpoint,
        hosts_path: sb.hosts_path().display().to_string(),
        resolv_conf_path: sb.resolv_conf_path().display().to_string(),
        errors: info.errors.clone(),
    })
}

/// The endpoint's MAC as its driver last reported it (`EndpointOperInfo`,
/// as dockerd shows it), else the one it was given.
pub fn reported_mac(e: &cnm::EndpointInfo) -> Option<cnm::driverapi::MacAddress> {
    e.driver_info.get(cnm::driverapi::label::MAC_ADDRESS).and_then(cnm::driverapi::MacAddress::from_reported).or(e.mac)
}

/// The ports the endpoint's driver last reported as published (`EndpointOperInfo`'s port map).
pub fn reported_ports(e: &cnm::EndpointInfo) -> Vec<cnm::driverapi::PortBinding> {
    e.driver_info
        .get(cnm::driverapi::label::PORT_MAP)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}
