//! `cnmd`'s command-line flags (every one optional: unset flags leave the
//! file's value or the default).

use super::file::PoolEntry;
use super::{ConfigError, LogFormat};
use clap::Parser;
use ipnet::IpNet;
use std::path::PathBuf;

/// The cnm daemon: container networking with a Docker-compatible network API.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "cnmd", version)]
pub struct Flags {
    /// Configuration file [default: /etc/cnm/cnmd.toml, if present]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Persistent state directory [default: /var/lib/cnm]
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Runtime state directory: namespaces, the socket [default: /run/cnm]
    #[arg(long, value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Where to listen: unix:///path or tcp://host:port (repeatable) [default: unix://<exec-root>/cnmd.sock]
    #[arg(short = 'H', long = "host", value_name = "ADDR")]
    pub hosts: Vec<String>,
    /// A range of predefined pools, base=CIDR,size=N (repeatable; replaces Docker's defaults)
    #[arg(long = "default-address-pool", value_name = "base=CIDR,size=N")]
    pub default_address_pools: Vec<String>,
    /// Create the default bridge network [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub default_network: Option<bool>,
    /// Name of the default network [default: bridge]
    #[arg(long, value_name = "NAME")]
    pub default_network_name: Option<String>,
    /// Bridge interface of the default network; "none" disables it [default: cnm0]
    #[arg(short = 'b', long, value_name = "IFACE")]
    pub bridge: Option<String>,
    /// Address and subnet of the default bridge, e.g. 172.30.0.1/16
    #[arg(long, value_name = "CIDR")]
    pub bip: Option<IpNet>,
    /// Range of the default network's subnet that sandboxes get addresses from
    #[arg(long, value_name = "CIDR")]
    pub fixed_cidr: Option<IpNet>,
    /// Program the nftables firewall (NAT, isolation, published ports) [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub firewall: Option<bool>,
    /// Run the embedded DNS resolver (127.0.0.11 in sandboxes on user-defined networks) [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub embedded_dns: Option<bool>,
    /// Load driver libraries (*.so exporting the cnm driver ABI) from this directory
    #[arg(long, value_name = "DIR")]
    pub driver_dir: Option<PathBuf>,
    /// Listen on tcp:// addresses without TLS: anyone who can connect controls the host's networking
    #[arg(long)]
    pub insecure_tcp: bool,
    /// Not root: run in a user namespace of cnmd's own (its networks are private to it; slirp4netns,
    /// when installed, gives them a way out and forwards published ports from the host)
    /// [data root ~/.local/share/cnm, exec root $XDG_RUNTIME_DIR/cnm or /tmp/cnm-UID]
    #[arg(long)]
    pub rootless: bool,
    /// Serve tcp:// addresses over TLS and accept only clients with a certificate signed by --tlscacert
    #[arg(long)]
    pub tlsverify: bool,
    /// The CA that signs client certificates (with --tlsverify)
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// The daemon's certificate (with --tlsverify)
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// The daemon's key (with --tlsverify)
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Find Docker plugins (sockets, .spec and .json files) in this directory instead of Docker's; with --docker-plugins, serve them there [default: /run/docker/plugins]
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Serve the drivers and IPAM to Docker Engine as network plugins (cnm-bridge, cnm-macvlan, cnm-overlay, cnm) in the plugin directory, instead of the API
    #[arg(long)]
    pub docker_plugins: bool,
    /// Run as Docker's managed (v2) plugin: serve one driver (bridge, macvlan or overlay) and the IPAM on one socket, cnm.sock, in the plugin directory (implies --docker-plugins)
    #[arg(long, value_name = "DRIVER")]
    pub managed_plugin: Option<String>,
    /// Join a cluster: its shared state in etcd (global networks, the overlay driver)
    #[arg(long, value_name = "etcd://HOST:PORT[,HOST:PORT]")]
    pub cluster_store: Option<String>,
    /// An option of the cluster store, repeatable: kv.cacertfile, kv.certfile, kv.keyfile (TLS), kv.username, kv.passwordfile
    #[arg(long = "cluster-store-opt", value_name = "KEY=VALUE")]
    pub cluster_store_opts: Vec<String>,
    /// This host's address on the underlay, which other hosts reach it at
    #[arg(long, value_name = "IP")]
    pub advertise_addr: Option<std::net::Ipv4Addr>,
    /// The UDP port of overlay (VXLAN) traffic [default: 4789]
    #[arg(long, value_name = "PORT")]
    pub data_path_port: Option<u16>,
    /// Log level or tracing directives, e.g. info, debug, cnm=trace [default: info]
    #[arg(short = 'l', long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format [default: human]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Work in this network namespace as the host (for tests)
    #[arg(long, value_name = "PATH", hide = true)]
    pub host_netns: Option<PathBuf>,
    /// The host's resolv.conf that sandbox files are derived from [default: /etc/resolv.conf]
    #[arg(long, value_name = "FILE", hide = true)]
    pub host_resolv_conf: Option<PathBuf>,
}

/// Parses Docker's pool syntax: `base=10.10.0.0/16,size=24`.
pub fn parse_pool(s: &str) -> Result<PoolEntry, ConfigError> {
    let bad = |m: String| ConfigError::Invalid { field: "default-address-pool", message: m };
    let (mut base, mut size) = (None, None);
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("base", v)) => base = Some(v.parse::<IpNet>().map_err(|e| bad(format!("{s:?}: base {v:?}: {e}")))?),
            Some(("size", v)) => size = Some(v.parse::<u8>().map_err(|e| bad(format!("{s:?}: size {v:?}: {e}")))?),
            _ => return Err(bad(format!("{s:?}: expected base=CIDR,size=N"))),
        }
    }
    match (base, size) {
        (Some(base), Some(size)) => Ok(PoolEntry { base, size }),
        _ => Err(bad(format!("{s:?}: both base and size are required"))),
    }
}
