//! `/version` and `/info`, as far as the docker CLI needs them.

use serde::{Deserialize, Serialize};

/// `GET /version` (Docker's `Version` type, the fields that apply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionResponse {
    /// The server's platform.
    pub platform: Platform,
    /// The daemon's version.
    pub version: String,
    /// The API version spoken.
    pub api_version: String,
    /// The oldest API version accepted.
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    /// Always `linux`.
    pub os: String,
    /// The machine architecture.
    pub arch: String,
    /// The kernel release.
    pub kernel_version: String,
    /// Source revision (empty).
    #[serde(default)]
    pub git_commit: String,
    /// The Go version field, here the Rust toolchain (empty).
    #[serde(default)]
    pub go_version: String,
}

/// The server's platform name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Platform {
    /// `cnmd`.
    pub name: String,
}

/// `GET /info`: a minimal subset of Docker's, plus cnm's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InfoResponse {
    /// The daemon's identity: made at its first start and kept in the data
    /// root (`engine-id`), as dockerd's.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Number of containers: cnm's sandboxes.
    #[serde(default)]
    pub containers: usize,
    /// Sandboxes are always running.
    #[serde(default)]
    pub containers_running: usize,
    /// Always 0.
    #[serde(default)]
    pub containers_paused: usize,
    /// Always 0.
    #[serde(default)]
    pub containers_stopped: usize,
    /// Always 0: cnmd keeps no images.
    #[serde(default)]
    pub images: usize,
    /// Whether debug logging is on.
    #[serde(default)]
    pub debug: bool,
    /// Swarm mode: never on (clients read `LocalNodeState`).
    #[serde(default)]
    pub swarm: SwarmInfo,
    /// The host name.
    pub name: String,
    /// The daemon's version.
    pub server_version: String,
    /// Always `linux`.
    #[serde(rename = "OSType")]
    pub os_type: String,
    /// The machine architecture.
    pub architecture: String,
    /// The kernel release.
    pub kernel_version: String,
    /// The data root.
    pub docker_root_dir: String,
    /// The exec root (namespaces, socket).
    pub exec_root: String,
    /// Number of networks.
    pub networks: usize,
    /// Number of sandboxes.
    pub sandboxes: usize,
    /// The drivers and plugins available.
    pub plugins: Plugins,
    /// Whether the bridge firewall is on.
    pub firewall: bool,
    /// The firewall backend, as dockerd's (API 1.52): cnm's own nftables
    /// table; absent when the firewall is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_backend: Option<FirewallInfo>,
    /// What was put back after someone removed it behind the daemon's back,
    /// as `driver: what` → times.
    #[serde(default)]
    pub repairs: std::collections::BTreeMap<String, u64>,
    /// Rollback steps (undoing a failed or interrupted operation) that
    /// failed since the daemon started; each is also in the log.
    #[serde(default)]
    pub rollback_failures: u64,
}

/// `/info`'s `FirewallBackend`: the backend's name and label/value pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FirewallInfo {
    /// The backend: `nftables`.
    pub driver: String,
    /// Label/value pairs about it (not a stable format, as dockerd says).
    #[serde(default)]
    pub info: Vec<[String; 2]>,
}

/// The swarm part of `/info`, as dockerd reports it on a node outside any swarm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmInfo {
    /// Always `inactive`.
    #[serde(default)]
    pub local_node_state: String,
    /// Always empty.
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    /// Always empty.
    #[serde(default)]
    pub node_addr: String,
    /// Always false.
    #[serde(default)]
    pub control_available: bool,
    /// Always empty.
    #[serde(default)]
    pub error: String,
}

/// The plugins (drivers) by kind, as Docker's `Plugins` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Plugins {
    /// Network drivers.
    pub network: Vec<String>,
    /// IPAM drivers (cnm's addition).
    #[serde(rename = "IPAM", default)]
    pub ipam: Vec<String>,
}
