//! `/_ping` (with the `API-Version` header the docker CLI negotiates
//! from), `/version`, `/info` with the fields clients read, and dockerd's
//! answer to swarm requests on a node outside any swarm.

use super::ApiState;
use crate::wire::system::{FirewallInfo, InfoResponse, Platform, Plugins, SwarmInfo, VersionResponse};
use crate::{API_VERSION, MIN_API_VERSION, VERSION};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// `GET` and `HEAD /_ping`: `OK`, with the headers Docker sends.
pub async fn ping() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
            (header::HeaderName::from_static("ostype"), "linux"),
            (header::HeaderName::from_static("docker-experimental"), "false"),
        ],
        "OK",
    )
}

/// `GET /version`.
pub async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        platform: Platform { name: "cnmd".into() },
        version: VERSION.into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        os: "linux".into(),
        arch: go_arch().into(),
        kernel_version: kernel_release(),
        git_commit: String::new(),
        go_version: String::new(),
    })
}

/// `GET /info`.
pub async fn info(State(st): State<ApiState>, version: super::ApiVersion) -> Json<InfoResponse> {
    let ctrl = &st.controller;
    let sandboxes = ctrl.sandboxes().await.len();
    Json(InfoResponse {
        id: engine_id(&st.facts.data_root),
        containers: sandboxes,
        containers_running: sandboxes,
        containers_paused: 0,
        containers_stopped: 0,
        images: 0,
        debug: tracing::enabled!(tracing::Level::DEBUG),
        swarm: SwarmInfo { local_node_state: "inactive".into(), ..Default::default() },
        name: read_trimmed("/proc/sys/kernel/hostname"),
        server_version: VERSION.into(),
        os_type: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        kernel_version: kernel_release(),
        docker_root_dir: st.facts.data_root.display().to_string(),
        exec_root: st.facts.exec_root.display().to_string(),
        networks: ctrl.networks().await.len(),
        sandboxes,
        plugins: Plugins { network: ctrl.available_drivers().await, ipam: ctrl.available_ipam_drivers().await },
        firewall: st.facts.firewall,
        // As dockerd: the field came with API 1.49.
        firewall_backend: (st.facts.firewall && version.at_least(1, 49))
            .then(|| FirewallInfo { driver: "nftables".into(), info: vec![["Table".into(), "inet cnm".into()]] }),
        repairs: ctrl.repairs().into_iter().map(|(d, what, n)| (format!("{d}: {what}"), n)).collect(),
        rollback_failures: ctrl.rollback_failures(),
    })
}

/// The daemon's identity in `data_root/engine-id`, made (a random UUID)
/// the first time it is asked for; empty if it can be neither read nor
/// made. Without a data root (an API served by a program of its own, a
/// test), one for the process's lifetime.
pub(crate) fn engine_id(data_root: &std::path::Path) -> String {
    static EPHEMERAL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if !data_root.is_absolute() {
        return EPHEMERAL.get_or_init(new_uuid).clone();
    }
    let path = data_root.join("engine-id");
    let known = std::fs::read_to_string(&path).map(|s| s.trim().to_string()).unwrap_or_default();
    if !known.is_empty() {
        return known;
    }
    let id = new_uuid();
    let tmp = data_root.join("engine-id.tmp");
    let kept = std::fs::create_dir_all(data_root)
        .and_then(|()| std::fs::write(&tmp, &id))
        .and_then(|()| std::fs::rename(&tmp, &path));
    match kept {
        Ok(()) => id,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %cnm::Chain(&e), "cannot keep the daemon's identity");
            String::new()
        }
    }
}

/// A random UUID (version 4 layout is not claimed: 128 random bits).
fn new_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// `GET /swarm` and `POST /swarm/leave`: 503, as dockerd answers on a node
/// that is not part of a swarm (clients probe for swarm mode this way).
pub async fn not_a_swarm() -> crate::errors::ApiError {
    crate::errors::ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "This node is not part of a swarm")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn kernel_release() -> String {
    read_trimmed("/proc/sys/kernel/osrelease")
}

/// The architecture as Go names it (Docker's `Arch`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
