//! The TOML configuration file: the same settings as the flags, in kebab-case
//! (`data-root`, `[default-network]`, `[[default-address-pools]]`); unknown keys are refused.

use super::{ConfigError, LogFormat};
use ipnet::IpNet;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file's contents; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// `data-root`.
    pub data_root: Option<PathBuf>,
    /// `exec-root`.
    pub exec_root: Option<PathBuf>,
    /// `hosts = ["unix:///run/cnm/cnmd.sock"]`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `[[default-address-pools]]` with `base` and `size`.
    #[serde(default)]
    pub default_address_pools: Vec<PoolEntry>,
    /// `[default-network]`.
    #[serde(default)]
    pub default_network: DefaultNetworkSection,
    /// `firewall = true`.
    pub firewall: Option<bool>,
    /// `embedded-dns = true`.
    pub embedded_dns: Option<bool>,
    /// `driver-dir = "/usr/lib/cnm/drivers"`.
    pub driver_dir: Option<PathBuf>,
    /// `plugin-dir = "/run/cnm/plugins"` (instead of Docker's plugin directories).
    pub plugin_dir: Option<PathBuf>,
    /// `cluster-store = "etcd://10.0.0.1:2379"`.
    pub cluster_store: Option<String>,
    /// `[cluster-store-opts]` with `"kv.cacertfile" = "/etc/cnm/etcd-ca.pem"` and the other keys of `--cluster-store-opt`.
    #[serde(default)]
    pub cluster_store_opts: std::collections::BTreeMap<String, String>,
    /// `advertise-addr = "10.0.0.2"`.
    pub advertise_addr: Option<std::net::Ipv4Addr>,
    /// `data-path-port = 4789`.
    pub data_path_port: Option<u16>,
    /// `log-level = "info"`.
    pub log_level: Option<String>,
    /// `log-format = "human" | "json"`.
    pub log_format: Option<LogFormat>,
    /// `host-netns` (a namespace file to work in instead of the daemon's own).
    pub host_netns: Option<PathBuf>,
    /// `host-resolv-conf`.
    pub host_resolv_conf: Option<PathBuf>,
}

/// A predefined pool range.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    /// The range, e.g. `10.10.0.0/16`.
    pub base: IpNet,
    /// The prefix length of each pool carved from it.
    pub size: u8,
}

/// `[default-network]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DefaultNetworkSection {
    /// Whether the default network exists.
    pub enabled: Option<bool>,
    /// Its name (`bridge`).
    pub name: Option<String>,
    /// Its bridge interface (`cnm0`; `none` disables the network).
    pub bridge: Option<String>,
    /// The bridge's address and subnet.
    pub bip: Option<IpNet>,
    /// The range sandboxes get addresses from.
    pub fixed_cidr: Option<IpNet>,
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().lines().collect::<Vec<_>>().join(" "),
        })
    }
}
