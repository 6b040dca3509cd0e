//! The daemon's configuration: a TOML file ([`file`]), command-line flags
//! ([`flags`]) that override it, and the resolved [`DaemonConfig`].

pub mod file;
pub mod flags;

use crate::listen::ListenAddr;
use cnm_ipams::PoolSpec;
use ipnet::IpNet;
use std::path::{Path, PathBuf};

/// The configuration file read when `--config` is not given (it may be absent).
pub const DEFAULT_CONFIG: &str = "/etc/cnm/cnmd.toml";
/// The default data root.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/cnm";
/// The default exec root.
pub const DEFAULT_EXEC_ROOT: &str = "/run/cnm";
/// The socket's file name under the exec root (the default `-H`).
pub const SOCKET_NAME: &str = "cnmd.sock";

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {message}", path = .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is invalid.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The flag or key.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The default bridge network (Docker's `docker0` network named `bridge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBridge {
    /// The network's name.
    pub name: String,
    /// The bridge interface.
    pub interface: String,
    /// The bridge's address and subnet (`--bip`).
    pub bip: Option<IpNet>,
    /// The range sandboxes get addresses from (`--fixed-cidr`).
    pub fixed_cidr: Option<IpNet>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Persistent state (the store, sandbox files).
    pub data_root: PathBuf,
    /// Runtime state (namespaces, the socket).
    pub exec_root: PathBuf,
    /// Where to listen.
    pub hosts: Vec<ListenAddr>,
    /// Predefined local pools of the default IPAM; empty means Docker's.
    pub default_address_pools: Vec<PoolSpec>,
    /// The default network, if enabled.
    pub default_network: Option<DefaultBridge>,
    /// Whether the bridge driver programs the nftables firewall.
    pub firewall: bool,
    /// Whether sandboxes get the embedded DNS resolver.
    pub embedded_dns: bool,
    /// Where driver libraries are loaded from (feature `dylib`).
    pub driver_dir: Option<PathBuf>,
    /// Where Docker plugins are looked for instead of Docker's directories.
    pub plugin_dir: Option<PathBuf>,
    /// The cluster store (`etcd://HOST:PORT[,…]`), if the host is a cluster member.
    pub cluster_store: Option<String>,
    /// The cluster store's options (`kv.cacertfile`, …): the file's, each
    /// replaced by the flag of the same key.
    pub cluster_store_opts: std::collections::BTreeMap<String, String>,
    /// This host's underlay address (needed with a cluster store).
    pub advertise_addr: Option<std::net::Ipv4Addr>,
    /// The VXLAN UDP port.
    pub data_path_port: u16,
    /// The log filter (`info`, `debug`, or tracing directives).
    pub log_level: String,
    /// The log format.
    pub log_format: LogFormat,
    /// The namespace to work in as "host" (tests run the daemon in a scratch namespace).
    pub host_netns: Option<PathBuf>,
    /// The host's resolv.conf that sandbox files start from.
    pub host_resolv_conf: PathBuf,
}

/// The default roots of a rootless daemon: `$XDG_DATA_HOME/cnm` (or
/// `~/.local/share/cnm`) and `$XDG_RUNTIME_DIR/cnm` (or `/tmp/cnm-UID`).
fn rootless_roots() -> (PathBuf, PathBuf) {
    let env_dir = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    // Who runs cnmd outside its user namespace (it is uid 0 inside).
    let uid = cnm::rootless::entered().map_or_else(|| nix::unistd::getuid().as_raw(), |u| u.outer_uid);
    let data = env_dir("XDG_DATA_HOME")
        .or_else(|| env_dir("HOME").map(|h| h.join(".local/share")))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/cnm-{uid}")))
        .join("cnm");
    let exec = env_dir("XDG_RUNTIME_DIR").map_or_else(|| PathBuf::from(format!("/tmp/cnm-{uid}")), |d| d.join("cnm"));
    (data, exec)
}

impl DaemonConfig {
    /// Reads the config file (`--config`, or [`DEFAULT_CONFIG`] if present)
    /// and applies the flags over it.
    pub fn load(flags: &flags::Flags) -> Result<DaemonConfig, ConfigError> {
        let file = match &flags.config {
            Some(p) => file::ConfigFile::read(p)?,
            None if Path::new(DEFAULT_CONFIG).exists() => file::ConfigFile::read(Path::new(DEFAULT_CONFIG))?,
            None => file::ConfigFile::default(),
        };
        Self::resolve(flags, file)
    }

    /// Flags over file over defaults.
    pub fn resolve(flags: &flags::Flags, file: file::ConfigFile) -> Result<DaemonConfig, ConfigError> {
        let (default_data, default_exec) =
            if flags.rootless { rootless_roots() } else { (DEFAULT_DATA_ROOT.into(), DEFAULT_EXEC_ROOT.into()) };
        let data_root = flags.data_root.clone().or(file.data_root).unwrap_or(default_data);
        let exec_root = flags.exec_root.clone().or(file.exec_root).unwrap_or(default_exec);
        let host_strings = if !flags.hosts.is_empty() { flags.hosts.clone() } else { file.hosts };
        let hosts = if host_strings.is_empty() {
            vec![ListenAddr::Unix(exec_root.join(SOCKET_NAME))]
        } else {
            host_strings
                .iter()
                .map(|h| h.parse().map_err(|e: crate::listen::ListenError| invalid("host", e.to_string())))
                .collect::<Result<_, _>>()?
        };
        let pool_specs: Vec<file::PoolEntry> = if !flags.default_address_pools.is_empty() {
            flags.default_address_pools.iter().map(|s| flags::parse_pool(s)).collect::<Result<_, _>>()?
        } else {
            file.default_address_pools
        };
        let default_address_pools = pool_specs
            .into_iter()
            .map(|p| PoolSpec::new(p.base, p.size).map_err(|e| invalid("default-address-pool", e.to_string())))
            .collect::<Result<_, _>>()?;
        let net = file.default_network;
        let bridge_iface = flags.bridge.clone().or(net.bridge).unwrap_or_else(|| "cnm0".into());
        let enabled = flags.default_network.or(net.enabled).unwrap_or(true) && bridge_iface != "none";
        let default_network = enabled.then(|| DefaultBridge {
            name: flags.default_network_name.clone().or(net.name).unwrap_or_else(|| "bridge".into()),
            interface: bridge_iface,
            bip: flags.bip.or(net.bip),
            fixed_cidr: flags.fixed_cidr.or(net.fixed_cidr),
        });
        if let Some(d) = &default_network
            && let (Some(bip), Some(fixed)) = (d.bip, d.fixed_cidr)
            && !bip.trunc().contains(&fixed)
        {
            return Err(invalid("fixed-cidr", format!("{fixed} is not inside the bridge subnet {}", bip.trunc())));
        }
        let cluster_store = flags.cluster_store.clone().or(file.cluster_store);
        let advertise_addr = flags.advertise_addr.or(file.advertise_addr);
        let mut cluster_store_opts = file.cluster_store_opts;
        for opt in &flags.cluster_store_opts {
            let Some((k, v)) = opt.split_once('=') else {
                return Err(invalid("cluster-store-opt", format!("{opt:?}: expected KEY=VALUE")));
            };
            cluster_store_opts.insert(k.trim().to_string(), v.trim().to_string());
        }
        if !cluster_store_opts.is_empty() && cluster_store.is_none() {
            return Err(invalid("cluster-store-opt", "options of a cluster store, without --cluster-store"));
        }
        if let Some(store) = &cluster_store {
            if !store.starts_with("etcd://") {
                return Err(invalid("cluster-store", format!("{store:?}: expected etcd://HOST:PORT[,HOST:PORT…]")));
            }
            if advertise_addr.is_none() {
                return Err(invalid("advertise-addr", "a cluster store needs this host's underlay address"));
            }
        }
        Ok(DaemonConfig {
            data_root,
            exec_root,
            hosts,
            default_address_pools,
            default_network,
            firewall: flags.firewall.or(file.firewall).unwrap_or(true),
            embedded_dns: flags.embedded_dns.or(file.embedded_dns).unwrap_or(true),
            driver_dir: flags.driver_dir.clone().or(file.driver_dir),
            plugin_dir: flags.plugin_dir.clone().or(file.plugin_dir),
            cluster_store: cluster_store.clone(),
            cluster_store_opts,
            advertise_addr,
            data_path_port: flags.data_path_port.or(file.data_path_port).unwrap_or(4789),
            log_level: flags.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".into()),
            log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
            host_netns: flags.host_netns.clone().or(file.host_netns),
            host_resolv_conf: flags
                .host_resolv_conf
                .clone()
                .or(file.host_resolv_conf)
                .unwrap_or_else(|| "/etc/resolv.conf".into()),
        })
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn flags(args: &[&str]) -> flags::Flags {
        flags::Flags::try_parse_from(std::iter::once("cnmd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_follow_docker() {
        let c = DaemonConfig::resolve(&flags(&[]), Default::default()).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/var/lib/cnm"));
        assert_eq!(c.hosts, vec![ListenAddr::Unix("/run/cnm/cnmd.sock".into())]);
        assert!(c.firewall);
        assert_eq!(c.default_network.as_ref().unwrap().name, "bridge");
        assert!(c.default_address_pools.is_empty());
    }

    #[test]
    fn flags_override_the_file() {
        let file = file::ConfigFile::parse(
            r#"
            data-root = "/srv/cnm"
            exec-root = "/run/x"
            firewall = false
            log-level = "debug"
            [[default-address-pools]]
            base = "10.10.0.0/16"
            size = 24
            [default-network]
            name = "br"
            bip = "10.20.0.1/24"
            "#,
            Path::new("t.toml"),
        )
        .unwrap();
        let c = DaemonConfig::resolve(&flags(&["--exec-root", "/run/y", "--firewall", "true"]), file.clone()).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/srv/cnm"));
        assert_eq!(c.exec_root, PathBuf::from("/run/y"));
        assert_eq!(c.hosts, vec![ListenAddr::Unix("/run/y/cnmd.sock".into())]);
        assert!(c.firewall);
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.default_address_pools.len(), 1);
        assert_eq!(c.default_network.as_ref().unwrap().bip, Some("10.20.0.1/24".parse().unwrap()));
        let off = DaemonConfig::resolve(&flags(&["--default-network=false"]), file).unwrap();
        assert!(off.default_network.is_none());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(file::ConfigFile::parse("colour = 1", Path::new("t")).is_err());
        let bad_pool =
            flags::Flags::try_parse_from(["cnmd", "--default-address-pool", "base=10.0.0.0/8,size=4"]).unwrap();
        assert!(DaemonConfig::resolve(&bad_pool, Default::default()).is_err());
        assert!(DaemonConfig::resolve(&flags(&["-H", "http://x"]), Default::default()).is_err());
    }

    #[test]
    fn cluster_store_options_come_from_the_file_and_the_flags() {
        let file = file::ConfigFile::parse(
            r#"
            cluster-store = "etcd://10.0.0.1:2379"
            advertise-addr = "10.0.0.2"
            [cluster-store-opts]
            "kv.cacertfile" = "/etc/cnm/ca.pem"
            "kv.certfile" = "/etc/cnm/old.pem"
            "#,
            Path::new("t.toml"),
        )
        .unwrap();
        let c = DaemonConfig::resolve(&flags(&["--cluster-store-opt", "kv.certfile=/etc/cnm/host.pem"]), file).unwrap();
        assert_eq!(c.cluster_store_opts.get("kv.cacertfile").map(String::as_str), Some("/etc/cnm/ca.pem"));
        assert_eq!(c.cluster_store_opts.get("kv.certfile").map(String::as_str), Some("/etc/cnm/host.pem"));
        let e = DaemonConfig::resolve(&flags(&["--cluster-store-opt", "kv.cacertfile=/ca"]), Default::default());
        assert!(e.unwrap_err().to_string().contains("without --cluster-store"));
        let e = DaemonConfig::resolve(
            &flags(&["--cluster-store", "etcd://h:2379", "--advertise-addr", "10.0.0.2", "--cluster-store-opt", "x"]),
            Default::default(),
        );
        assert!(e.unwrap_err().to_string().contains("KEY=VALUE"));
    }
}
