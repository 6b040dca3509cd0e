//! `/_ping` (with the `API-Version` header the docker CLI negotiates
//! from), `/version` and a minimal `/info`.

use super::ApiState;
use crate::wire::system::{InfoResponse, Platform, Plugins, VersionResponse};
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
pub async fn info(State(st): State<ApiState>) -> Json<InfoResponse> {
    let ctrl = &st.controller;
    Json(InfoResponse {
        name: read_trimmed("/proc/sys/kernel/hostname"),
        server_version: VERSION.into(),
        os_type: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        kernel_version: kernel_release(),
        docker_root_dir: st.facts.data_root.display().to_string(),
        exec_root: st.facts.exec_root.display().to_string(),
        networks: ctrl.networks().await.len(),
        sandboxes: ctrl.sandboxes().await.len(),
        plugins: Plugins { network: ctrl.available_drivers().await, ipam: ctrl.available_ipam_drivers().await },
        firewall: st.facts.firewall,
        repairs: ctrl.repairs().into_iter().map(|(d, what, n)| (format!("{d}: {what}"), n)).collect(),
        rollback_failures: ctrl.rollback_failures(),
    })
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
