//! `GET /networks`, `GET /networks/{id}`, `POST /networks/create`,
//! `DELETE /networks/{id}`, `POST /networks/prune`.

use super::extract::{IdParam, JsonBody, QueryMap};
use super::filters::{Filters, parse_until};
use super::{ApiState, lookup, network_config};
use crate::errors::{ApiError, ApiResult};
use crate::wire::network::{
    EndpointResource, Ipam, IpamConfig, IpamStatus, NetworkCreateRequest, NetworkCreateResponse, NetworkPruneResponse,
    NetworkResource, NetworkStatus, SubnetStatus,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cnm::{Network, PoolInfo};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

const LIST_FILTERS: &[&str] = &["name", "id", "driver", "label", "scope", "type", "dangling"];
const PRUNE_FILTERS: &[&str] = &["until", "label", "label!"];

/// `GET /networks`: every network, filtered.
pub async fn list(State(st): State<ApiState>, q: QueryMap) -> ApiResult<Json<Vec<NetworkResource>>> {
    let f = Filters::parse(q.0.get("filters").map(String::as_str), LIST_FILTERS)?;
    for t in f.values("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!("invalid filter: 'type'='{t}'")));
        }
    }
    for s in f.values("scope") {
        if !matches!(s.as_str(), "local" | "swarm" | "global") {
            return Err(ApiError::bad_request(format!("invalid filter: 'scope'='{s}'")));
        }
    }
    let dangling = f.bool("dangling")?;
    let mut out = Vec::new();
    for net in st.controller.networks().await {
        let r = resource(&st, &net, false).await?;
        let builtin = st.predefined(&r.name);
        let unused = dangling.is_some() && !builtin && net.endpoints().await.is_empty();
        // Docker matches names as regular expressions, ids as prefixes.
        let keep = f.any("name", |v| regex::Regex::new(v).is_ok_and(|re| re.is_match(&r.name)))
            && f.any("id", |v| r.id.starts_with(v))
            && f.any("driver", |v| r.driver == v)
            && f.any("scope", |v| v == "local")
            && f.any("type", |v| (v == "builtin") == builtin)
            && f.labels("label", &r.labels)
            && dangling.is_none_or(|d| d == unused);
        if keep {
            out.push(r);
        }
    }
    Ok(Json(out))
}

/// `GET /networks/{id}`: one network with the sandboxes joined to it.
pub async fn inspect(
    State(st): State<ApiState>,
    version: super::ApiVersion,
    IdParam(id): IdParam,
    q: QueryMap,
) -> ApiResult<Json<NetworkResource>> {
    q.flag("verbose")?;
    let scope = q.0.get("scope").filter(|s| !s.is_empty()).cloned();
    let net = lookup::network(&st.controller, &id).await?;
    if let Some(scope) = scope
        && (scope == "global") != net.info().await?.global
    {
        return Err(ApiError::not_found(format!("network {id} not found")));
    }
    let mut r = resource(&st, &net, true).await?;
    if version.at_least(1, 52) {
        r.status = Some(status(&net).await?);
    }
    Ok(Json(r))
}

/// What is allocated in each of `net`'s subnets, counted as dockerd's
/// IPAM status (API 1.52).
async fn status(net: &Network) -> ApiResult<NetworkStatus> {
    let info = net.info().await?;
    let mut subnets = BTreeMap::new();
    if info.config.ipam_driver == cnm::ipamapi::NULL_IPAM {
        return Ok(NetworkStatus::default());
    }
    let mut held: Vec<IpAddr> = Vec::new();
    for ep in net.endpoints().await {
        let e = ep.info().await?;
        held.extend(e.ipv4.iter().chain(&e.ipv6).map(|a| a.addr()));
    }
    for pool in info.ipv4.iter().chain(&info.ipv6) {
        subnets.insert(pool.subnet.to_string(), subnet_status(pool, &held));
    }
    Ok(NetworkStatus { ipam: IpamStatus { subnets } })
}

/// One subnet's [`SubnetStatus`]: `held` are the endpoints' addresses.
fn subnet_status(pool: &PoolInfo, held: &[IpAddr]) -> SubnetStatus {
    let subnet = pool.subnet;
    let mut used: std::collections::BTreeSet<IpAddr> = std::collections::BTreeSet::new();
    match subnet {
        ipnet::IpNet::V4(n) if n.prefix_len() < 31 => {
            used.insert(IpAddr::V4(n.network()));
            used.insert(IpAddr::V4(n.broadcast()));
        }
        ipnet::IpNet::V4(_) => {}
        // The subnet-router anycast address.
        ipnet::IpNet::V6(n) => {
            used.insert(IpAddr::V6(n.network()));
        }
    }
    used.extend(pool.gateway.map(|g| g.addr()));
    used.extend(pool.aux_addresses.values().map(|a| a.addr()));
    used.extend(held.iter().copied().filter(|a| subnet.contains(a)));
    let range = pool.ip_range.unwrap_or(subnet);
    let host_bits = u32::from(range.max_prefix_len() - range.prefix_len());
    let size: u128 = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
    let in_range = used.iter().filter(|a| range.contains(*a)).count() as u128;
    let cap = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
    SubnetStatus { ips_in_use: cap(used.len() as u128), dynamic_ips_available: cap(size.saturating_sub(in_range)) }
}

/// `POST /networks/create`.
pub async fn create(
    State(st): State<ApiState>,
    version: super::ApiVersion,
    JsonBody(mut req): JsonBody<NetworkCreateRequest>,
) -> ApiResult<(StatusCode, Json<NetworkCreateResponse>)> {
    if !version.at_least(1, 48) {
        // As dockerd: the field came with API 1.48.
        req.enable_ipv4 = None;
    }
    let (driver, mut cfg) = network_config::network_config(&req)?;
    if let Some(from) = cfg.config_from.clone() {
        let sets_options = req.options.as_ref().is_some_and(|o| !o.is_empty());
        take_config(&st.controller, &from, sets_options, &mut cfg).await?;
    }
    if driver == "overlay" && !st.controller.config().cluster {
        return Err(ApiError::forbidden(
            "the overlay driver needs a cluster store: start cnmd with --cluster-store etcd://HOST:PORT --advertise-addr IP",
        ));
    }
    let ctrl = st.controller.clone();
    let net = st.inflight.run(async move { Ok(ctrl.new_network(&driver, &req.name, cfg).await?) }).await?;
    st.events.network("create", &net, None);
    Ok((StatusCode::CREATED, Json(NetworkCreateResponse { id: net.id().to_string(), warning: String::new() })))
}

/// `--config-from NAME`: the pools, IPAM driver and options, labels, driver
/// options (cnm's own `cnm.network.enable_dns` among them, `false` too) and
/// IPv6 flag of configuration-only network `from`, as libnetwork's
/// `applyConfigurationTo`. The request may set none of them itself (nor any
/// option, `sets_options`): 403 with dockerd's messages.
async fn take_config(
    ctrl: &cnm::Controller,
    from: &str,
    sets_options: bool,
    cfg: &mut cnm::NetworkConfig,
) -> ApiResult<()> {
    let own_ipam = cfg.ipam_driver != cnm::NetworkConfig::default().ipam_driver;
    if own_ipam
        || !cfg.enable_ipv4
        || cfg.enable_ipv6
        || !cfg.labels.is_empty()
        || !cfg.ipam_options.is_empty()
        || !cfg.ipv4.is_empty()
        || !cfg.ipv6.is_empty()
    {
        return Err(ApiError::forbidden(
            "user specified configurations are not supported if the node takes config from another network",
        ));
    }
    if sets_options {
        return Err(ApiError::forbidden(
            "network driver options are not supported if the network depends on a configuration network",
        ));
    }
    // As dockerd's, the source is looked up by name among configuration networks only.
    let missing = || ApiError::not_found(format!("configuration network {from:?} not found"));
    let source = match ctrl.network_by_name(from).await {
        Ok(n) => n.info().await?,
        Err(_) => return Err(missing()),
    };
    if !source.config.config_only {
        return Err(missing());
    }
    let s = source.config;
    cfg.ipam_driver = s.ipam_driver;
    cfg.ipam_options = s.ipam_options;
    cfg.ipv4 = s.ipv4;
    cfg.ipv6 = s.ipv6;
    cfg.enable_ipv4 = s.enable_ipv4;
    cfg.enable_ipv6 = s.enable_ipv6;
    cfg.labels = s.labels;
    cfg.driver_options = s.driver_options;
    cfg.disable_dns = s.disable_dns;
    Ok(())
}

/// The name of a network that took its configuration from network `name`, if any.
async fn config_user(ctrl: &cnm::Controller, name: &str) -> Option<String> {
    for other in ctrl.networks().await {
        if let Ok(info) = other.info().await
            && info.config.config_from.as_deref() == Some(name)
        {
            return Some(info.name);
        }
    }
    None
}

/// `DELETE /networks/{id}`: refused for the default network, while sandboxes
/// are joined, and for a configuration-only network other networks use.
pub async fn delete(State(st): State<ApiState>, IdParam(id): IdParam) -> ApiResult<StatusCode> {
    let net = lookup::network(&st.controller, &id).await?;
    if st.predefined(net.name()) {
        return Err(ApiError::forbidden(format!("{} is a pre-defined network and cannot be removed", net.name())));
    }
    // Only a configuration network has users (a look at every other network).
    if net.info().await?.config.config_only
        && let Some(user) = config_user(&st.controller, net.name()).await
    {
        return Err(ApiError::forbidden(format!("configuration network {} is in use by network {user}", net.name())));
    }
    let gone = net.clone();
    st.inflight.run(async move { Ok(net.delete().await?) }).await?;
    st.events.network("destroy", &gone, None);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /networks/prune`: deletes every unused network except the default
/// one and the cluster's (global) networks.
pub async fn prune(State(st): State<ApiState>, q: QueryMap) -> ApiResult<Json<NetworkPruneResponse>> {
    let f = Filters::parse(q.0.get("filters").map(String::as_str), PRUNE_FILTERS)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let until = match f.values("until") {
        [] => None,
        [v] => Some(parse_until(v, now)?),
        _ => return Err(ApiError::bad_request("invalid filter 'until': only one value is allowed")),
    };
    let keep = st.clone();
    let ctrl = st.controller.clone();
    let deleted = st
        .inflight
        .run(async move {
            let mut deleted = Vec::new();
            for net in ctrl.networks().await {
                let info = net.info().await?;
                // Global networks are the cluster's: removed explicitly, never pruned by one host.
                let unused = info.endpoints.is_empty()
                    && !info.global
                    && !keep.predefined(net.name())
                    && (!info.config.config_only || config_user(&ctrl, net.name()).await.is_none());
                let selected = until.is_none_or(|u| info.created < u)
                    && f.labels("label", &info.config.labels)
                    && f.no_labels("label!", &info.config.labels);
                if unused && selected {
                    match net.delete().await {
                        Ok(()) => {
                            keep.events.network("destroy", &net, None);
                            deleted.push(info.name)
                        }
                        Err(e) => tracing::warn!(network = %info.name, error = %cnm::Chain(&e), "prune: cannot delete network"),
                    }
                }
            }
            Ok(deleted)
        })
        .await?;
    Ok(Json(NetworkPruneResponse { networks_deleted: deleted }))
}

/// A network in Docker's shape; `containers` lists the joined sandboxes.
pub async fn resource(st: &ApiState, net: &Network, containers: bool) -> ApiResult<NetworkResource> {
    let info = net.info().await?;
    // As dockerd shows a family's pools: the configuration as the user gave
    // it (no gateway they did not give); when they gave none, the pools the
    // IPAM chose, with their gateways.
    let family = |configured: &[cnm::IpamConfig], allocated: &[PoolInfo]| -> Vec<IpamConfig> {
        // A subnet asked by its size alone (`0.0.0.0/24`) shows as allocated.
        let sized = configured.iter().any(|c| c.subnet.is_some_and(|s| s.addr().is_unspecified()));
        let given: Vec<IpamConfig> = configured.iter().filter(|c| c.subnet.is_some()).map(configured_pool).collect();
        if (!given.is_empty() && !sized) || info.config.config_only {
            return given;
        }
        allocated
            .iter()
            .map(|p| IpamConfig {
                subnet: p.subnet.to_string(),
                gateway: p.gateway.map(|g| g.addr().to_string()).unwrap_or_default(),
                ..Default::default()
            })
            .collect()
    };
    let mut map = BTreeMap::new();
    if containers {
        let names: HashMap<String, String> = st
            .controller
            .sandboxes()
            .await
            .into_iter()
            .map(|s| (s.id().to_string(), s.container_id().to_string()))
            .collect();
        for ep in net.endpoints().await {
            let Ok(e) = ep.info().await else { continue };
            let Some(sid) = e.sandbox_id.clone() else { continue };
            let mac = super::sandboxes::reported_mac(&e);
            map.insert(
                sid.clone(),
                EndpointResource {
                    name: names.get(&sid).cloned().unwrap_or_default(),
                    endpoint_id: e.id,
                    mac_address: mac.map(|m| m.to_string()).unwrap_or_default(),
                    ipv4_address: e.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                    ipv6_address: e.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                },
            );
        }
    }
    Ok(NetworkResource {
        name: info.name,
        id: info.id,
        created: crate::wire::time::rfc3339_nanos(info.created, info.created_nanos),
        scope: if info.global { "global".into() } else { "local".into() },
        driver: info.driver,
        enable_ipv4: info.config.enable_ipv4,
        enable_ipv6: info.config.enable_ipv6,
        ipam: Ipam {
            driver: info.config.ipam_driver.clone(),
            config: family(&info.config.ipv4, &info.ipv4)
                .into_iter()
                .chain(family(&info.config.ipv6, &info.ipv6))
                .collect(),
            options: info.config.ipam_options.clone(),
        },
        internal: info.config.internal,
        attachable: info.config.attachable,
        ingress: false,
        config_from: crate::wire::network::ConfigReference {
            network: info.config.config_from.clone().unwrap_or_default(),
        },
        config_only: info.config.config_only,
        containers: map,
        options: info.config.driver_options,
        labels: info.config.labels,
        status: None,
    })
}

/// A pool as configured.
fn configured_pool(c: &cnm::IpamConfig) -> IpamConfig {
    IpamConfig {
        subnet: c.subnet.map(|s| s.to_string()).unwrap_or_default(),
        ip_range: c.ip_range.map(|s| s.to_string()).unwrap_or_default(),
        gateway: c.gateway.map(|s| s.to_string()).unwrap_or_default(),
        auxiliary_addresses: c.aux_addresses.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(subnet: &str, range: Option<&str>, gateway: Option<&str>, aux: &[&str]) -> PoolInfo {
        let net: ipnet::IpNet = subnet.parse().unwrap();
        let with_len = |a: &str| ipnet::IpNet::new(a.parse().unwrap(), net.prefix_len()).unwrap();
        PoolInfo {
            subnet: net,
            ip_range: range.map(|r| r.parse().unwrap()),
            gateway: gateway.map(with_len),
            aux_addresses: aux.iter().enumerate().map(|(i, a)| (format!("a{i}"), with_len(a))).collect(),
        }
    }

    /// The figures dockerd's own test of the IPAM status expects.
    #[test]
    fn subnet_status_counts_as_dockerd() {
        let v4 = pool("10.0.0.0/24", Some("10.0.0.128/31"), Some("10.0.0.1"), &["10.0.0.2", "10.0.0.128"]);
        let s = subnet_status(&v4, &[]);
        assert_eq!((s.ips_in_use, s.dynamic_ips_available), (5, 1));
        let v6 = pool("fd00:1::/64", Some("fd00:1::/120"), Some("fd00:1::1"), &["fd00:1::2", "fd00:1::1:0"]);
        let s = subnet_status(&v6, &[]);
        assert_eq!((s.ips_in_use, s.dynamic_ips_available), (4, 253));
        let big = pool("fd00:2::/56", None, None, &[]);
        let s = subnet_status(&big, &[]);
        assert_eq!((s.ips_in_use, s.dynamic_ips_available), (1, u64::MAX));
        // Endpoints count; an address outside the subnet does not.
        let s = subnet_status(&v4, &["10.0.0.129".parse().unwrap(), "10.9.9.9".parse().unwrap()]);
        assert_eq!((s.ips_in_use, s.dynamic_ips_available), (6, 0));
    }
}
