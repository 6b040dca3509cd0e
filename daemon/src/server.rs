//! The HTTP server: the route table (also what the OpenAPI document is
//! checked against), the `/vX.Y` prefix, Docker's headers, and serving
//! listeners until shutdown.

use crate::api::{self, ApiState};
use crate::errors::ApiError;
use crate::listen::Listener;
use crate::{API_VERSION, MIN_API_VERSION, VERSION};
use axum::Router;
use axum::extract::RawPathParams;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, head, post};
use std::future::Future;
use std::time::Duration;

/// One route: method, path (axum syntax, `{id}`), handler.
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path without a version prefix.
    pub path: &'static str,
    handler: MethodRouter<ApiState>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<ApiState>) -> Route {
    Route { method, path, handler }
}

/// Every route the server serves (each also under `/vX.Y`).
pub fn routes() -> Vec<Route> {
    use api::{connect, events, networks, sandboxes, system};
    vec![
        route(Method::GET, "/_ping", get(system::ping)),
        route(Method::HEAD, "/_ping", head(system::ping)),
        route(Method::GET, "/version", get(system::version)),
        route(Method::GET, "/info", get(system::info)),
        route(Method::GET, "/events", get(events::events)),
        route(Method::GET, "/swarm", get(system::not_a_swarm)),
        route(Method::POST, "/swarm/leave", post(system::not_a_swarm)),
        route(Method::GET, "/networks", get(networks::list)),
        route(Method::POST, "/networks/create", post(networks::create)),
        route(Method::POST, "/networks/prune", post(networks::prune)),
        route(Method::GET, "/networks/{id}", get(networks::inspect)),
        route(Method::DELETE, "/networks/{id}", delete(networks::delete)),
        route(Method::POST, "/networks/{id}/connect", post(connect::connect)),
        route(Method::POST, "/networks/{id}/disconnect", post(connect::disconnect)),
        route(Method::POST, "/sandboxes", post(sandboxes::create)),
        route(Method::GET, "/sandboxes", get(sandboxes::list)),
        route(Method::GET, "/sandboxes/{id}", get(sandboxes::inspect)),
        route(Method::DELETE, "/sandboxes/{id}", delete(sandboxes::delete)),
    ]
}

/// The application: every route, with and without a version prefix.
pub fn router(state: ApiState) -> Router {
    let mut app = Router::new();
    for r in routes() {
        app = app.route(r.path, r.handler.clone()).route(&format!("/{{version}}{}", r.path), r.handler);
    }
    app.fallback(|| async { ApiError::not_found("page not found") })
        .method_not_allowed_fallback(|| async { ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .layer(axum::middleware::from_fn(version_and_headers))
        .layer(axum::middleware::from_fn(browser_guard))
        .layer(DefaultBodyLimit::max(api::extract::BODY_LIMIT))
        .with_state(state)
}

/// Refuses a request that changes state when a web browser sent it: a
/// page on any site could otherwise make the browser post to the API (a
/// form needs no preflight, and `POST /networks/prune` needs no body).
/// Browsers mark every cross-origin POST with `Origin`, and every request
/// with `Sec-Fetch-Site`; API clients (the docker CLI, docker-py, cnmctl)
/// send neither.
async fn browser_guard(req: Request, next: Next) -> Response {
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let h = req.headers();
    let from_browser = h.contains_key("origin") || h.get("sec-fetch-site").is_some_and(|v| v.as_bytes() != b"none");
    if !reads && from_browser {
        return ApiError::new(StatusCode::FORBIDDEN, "requests from a web browser may not change anything")
            .into_response();
    }
    next.run(req).await
}

/// Whether `Host` names this daemon in a way a DNS-rebinding page cannot:
/// an IP address, `localhost`, or `listen_host` (the name `-H` gave).
/// No `Host` at all (HTTP/1.0) is fine: browsers always send one.
fn host_allowed(host: Option<&str>, listen_host: &str) -> bool {
    let Some(host) = host else { return true };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { host }),
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.eq_ignore_ascii_case(listen_host)
}

/// On TCP without TLS (`--insecure-tcp`): refuses requests whose `Host` is
/// a name other than the listen address's or `localhost`, so a web page
/// that rebinds its own domain to this address (DNS rebinding) gets nothing.
async fn host_guard(
    axum::extract::State(listen_host): axum::extract::State<std::sync::Arc<str>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req.headers().get(axum::http::header::HOST).and_then(|v| v.to_str().ok());
    if !host_allowed(host, &listen_host) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Host {:?} is not this daemon's address: use its IP address, localhost or {listen_host}",
                host.unwrap_or_default()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Checks a `/vX.Y` prefix as Docker does and adds Docker's headers to every answer.
async fn version_and_headers(
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let version = params.ok().and_then(|p| p.iter().find(|(k, _)| *k == "version").map(|(_, v)| v.to_string()));
    let mut req = req;
    let mut resp = match version.map(|v| check_version(&v)) {
        Some(Err(e)) => e.into_response(),
        Some(Ok(v)) => {
            req.extensions_mut().insert(v);
            next.run(req).await
        }
        // Unprefixed: the newest version.
        None => {
            req.extensions_mut().insert(crate::api::ApiVersion::MAX);
            next.run(req).await
        }
    };
    let h = resp.headers_mut();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("ostype", HeaderValue::from_static("linux"));
    if let Ok(v) = HeaderValue::from_str(&format!("cnmd/{VERSION} (linux)")) {
        h.insert("server", v);
    }
    resp
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A `vX.Y` path segment: unknown shapes are 404s (as Docker's router), versions out of range 400s.
fn check_version(segment: &str) -> Result<crate::api::ApiVersion, ApiError> {
    let v = segment.strip_prefix('v').and_then(parse_version).ok_or_else(|| ApiError::not_found("page not found"))?;
    let max = parse_version(API_VERSION).unwrap_or((1, 52));
    let min = parse_version(MIN_API_VERSION).unwrap_or((1, 24));
    let shown = &segment[1..];
    if v > max {
        return Err(ApiError::bad_request(format!(
            "client version {shown} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if v < min {
        return Err(ApiError::bad_request(format!(
            "client version {shown} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(crate::api::ApiVersion(v.0, v.1))
}

/// How long shutdown waits for connections and operations before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` on every listener until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish (connections and the
/// operations they started, for at most [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve<F>(listeners: Vec<Listener>, app: Router, inflight: api::Inflight, shutdown: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let mut rx = rx.clone();
        let app = app.clone();
        let stop = async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        match l {
            Listener::Unix { listener, .. } => {
                tasks.spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop).await })
            }
            Listener::Tcp { listener, host } => {
                let app =
                    app.layer(axum::middleware::from_fn_with_state(std::sync::Arc::<str>::from(host), host_guard));
                tasks.spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop).await })
            }
            Listener::Tls(listener) => {
                tasks.spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop).await })
            }
        };
    }
    shutdown.await;
    tracing::info!("shutting down: no new requests; finishing those in flight");
    let _ = tx.send(true);
    let drained = async {
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %cnm::Chain(&e), "listener failed");
            }
        }
        inflight.drain().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}: exiting anyway");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_checked_like_docker() {
        assert_eq!(check_version("v1.41").unwrap(), crate::api::ApiVersion(1, 41));
        assert!(check_version("v1.24").is_ok());
        assert!(check_version("v1.52").is_ok());
        assert_eq!(check_version("v1.53").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(check_version("v1.12").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(check_version("networks").unwrap_err().status, StatusCode::NOT_FOUND);
        assert_eq!(check_version("vx.y").unwrap_err().status, StatusCode::NOT_FOUND);
    }
}

#[cfg(test)]
mod guard_tests {
    use super::host_allowed;

    #[test]
    fn hosts_a_rebinding_page_could_send_are_refused() {
        for ok in [
            None,
            Some("127.0.0.1:2375"),
            Some("[::1]:2375"),
            Some("10.0.0.2"),
            Some("LOCALHOST:2375"),
            Some("cnm-host:2375"),
        ] {
            assert!(host_allowed(ok, "cnm-host"), "{ok:?}");
        }
        for bad in [Some("attacker.example:2375"), Some("attacker.example"), Some("localhost.attacker.example")] {
            assert!(!host_allowed(bad, "0.0.0.0"), "{bad:?}");
        }
    }
}
