//! `cnmctl network …`: create, ls, inspect, rm, prune, connect, disconnect.

use super::table::{self, short};
use super::{CliError, Format, key_values, print_json};
use crate::client::{Client, encode};
use crate::wire::network::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse, NetworkResource,
};
use clap::{Args, Subcommand};
use ipnet::IpNet;
use std::net::IpAddr;

/// Network commands.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(super::FormatArg),
    /// Show networks in detail
    Inspect {
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Networks (names or ids)
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks
    #[command(alias = "remove")]
    Rm {
        /// Networks (names or ids)
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every network no sandbox uses
    Prune,
    /// Connect a sandbox to a network
    Connect(ConnectArgs),
    /// Disconnect a sandbox from a network
    Disconnect {
        /// Remove a stale endpoint even if the sandbox is gone
        #[arg(short, long)]
        force: bool,
        /// The network
        network: String,
        /// The sandbox
        sandbox: String,
    },
}

/// `network create` flags (as `docker network create`).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form (repeatable)
    #[arg(long)]
    pub subnet: Vec<IpNet>,
    /// Gateway of the subnet given in the same position (repeatable)
    #[arg(long)]
    pub gateway: Vec<IpAddr>,
    /// Range of the subnet in the same position that addresses come from (repeatable)
    #[arg(long)]
    pub ip_range: Vec<IpNet>,
    /// Reserved address, NAME=IP (repeatable)
    #[arg(long)]
    pub aux_address: Vec<String>,
    /// Enable IPv6
    #[arg(long)]
    pub ipv6: bool,
    /// No external connectivity
    #[arg(long)]
    pub internal: bool,
    /// Driver option, KEY=VALUE (repeatable)
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Label, KEY=VALUE (repeatable)
    #[arg(long)]
    pub label: Vec<String>,
    /// IPAM driver
    #[arg(long, default_value = "default")]
    pub ipam_driver: String,
    /// IPAM driver option, KEY=VALUE (repeatable)
    #[arg(long)]
    pub ipam_opt: Vec<String>,
    /// Create a configuration-only network (pools and options for --config-from)
    #[arg(long)]
    pub config_only: bool,
    /// Take the pools and options from this configuration-only network
    #[arg(long, value_name = "NAME")]
    pub config_from: Option<String>,
    /// The network's name
    pub name: String,
}

/// `network connect` flags.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Static IPv4 address
    #[arg(long)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Static IPv6 address
    #[arg(long)]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// A link-local address for the interface, besides its own (repeatable)
    #[arg(long = "link-local-ip", value_name = "IP")]
    pub link_local_ip: Vec<IpAddr>,
    /// Extra name on the network (repeatable)
    #[arg(long)]
    pub alias: Vec<String>,
    /// MAC address of the sandbox's interface on this network
    #[arg(long)]
    pub mac_address: Option<String>,
    /// The network
    pub network: String,
    /// The sandbox
    pub sandbox: String,
}

/// Runs a network command.
pub async fn run(client: &Client, cmd: NetworkCommand) -> Result<(), CliError> {
    match cmd {
        NetworkCommand::Create(a) => {
            let req = create_request(a)?;
            let r: NetworkCreateResponse = client.post("/networks/create", &req).await?;
            println!("{}", r.id);
        }
        NetworkCommand::Ls(f) => {
            let nets: Vec<NetworkResource> = client.get("/networks").await?;
            match f.format {
                Format::Json => print_json(&nets)?,
                Format::Table => table::print(
                    &["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                    &nets
                        .iter()
                        .map(|n| vec![short(&n.id), n.name.clone(), n.driver.clone(), n.scope.clone()])
                        .collect::<Vec<_>>(),
                ),
            }
        }
        NetworkCommand::Inspect { format, networks } => {
            let mut out = Vec::new();
            for n in &networks {
                out.push(client.get::<NetworkResource>(&format!("/networks/{}", encode(n))).await?);
            }
            match format {
                Format::Json => print_json(&out)?,
                Format::Table => {
                    for n in &out {
                        print_network(n);
                    }
                }
            }
        }
        NetworkCommand::Rm { networks } => {
            let mut failed = None;
            for n in &networks {
                match client.delete(&format!("/networks/{}", encode(n))).await {
                    Ok(()) => println!("{n}"),
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        NetworkCommand::Prune => {
            let r: NetworkPruneResponse = client.post("/networks/prune", &serde_json::json!({})).await?;
            if !r.networks_deleted.is_empty() {
                println!("Deleted Networks:");
                for n in r.networks_deleted {
                    println!("{n}");
                }
            }
        }
        NetworkCommand::Connect(a) => {
            let settings = EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: a.ip.map(|i| i.to_string()).unwrap_or_default(),
                    ipv6_address: a.ip6.map(|i| i.to_string()).unwrap_or_default(),
                    link_local_ips: a.link_local_ip.iter().map(|i| i.to_string()).collect(),
                }),
                aliases: a.alias,
                mac_address: a.mac_address.unwrap_or_default(),
                ..Default::default()
            };
            let req = NetworkConnectRequest { container: a.sandbox, endpoint_config: Some(settings) };
            client.post_unit(&format!("/networks/{}/connect", encode(&a.network)), &req).await?;
        }
        NetworkCommand::Disconnect { force, network, sandbox } => {
            let req = NetworkDisconnectRequest { container: sandbox, force };
            client.post_unit(&format!("/networks/{}/disconnect", encode(&network)), &req).await?;
        }
    }
    Ok(())
}

/// The create request of `network create` flags; gateways and ranges pair
/// with the subnet of the same family in the same position, as docker pairs them.
pub fn create_request(a: CreateArgs) -> Result<NetworkCreateRequest, CliError> {
    if a.subnet.is_empty() && (!a.gateway.is_empty() || !a.ip_range.is_empty() || !a.aux_address.is_empty()) {
        return Err(CliError::Usage("--gateway, --ip-range and --aux-address need a --subnet".into()));
    }
    let mut configs: Vec<IpamConfig> =
        a.subnet.iter().map(|s| IpamConfig { subnet: s.to_string(), ..Default::default() }).collect();
    let find = |configs: &mut Vec<IpamConfig>, ip: &IpAddr, what: &str| -> Result<usize, CliError> {
        configs
            .iter()
            .position(|c| c.subnet.parse::<IpNet>().is_ok_and(|n| n.contains(ip)))
            .ok_or_else(|| CliError::Usage(format!("no matching subnet for {what} {ip}")))
    };
    for g in &a.gateway {
        let i = find(&mut configs, g, "gateway")?;
        if !configs[i].gateway.is_empty() {
            return Err(CliError::Usage(format!("cannot have multiple gateways for subnet {}", configs[i].subnet)));
        }
        configs[i].gateway = g.to_string();
    }
    for r in &a.ip_range {
        let i = find(&mut configs, &r.addr(), "range")?;
        configs[i].ip_range = r.to_string();
    }
    for (name, ip) in key_values("--aux-address", &a.aux_address)? {
        let ip: IpAddr = ip.parse().map_err(|_| CliError::Usage(format!("invalid --aux-address {name}={ip}")))?;
        let i = find(&mut configs, &ip, "aux-address")?;
        configs[i].auxiliary_addresses.insert(name, ip.to_string());
    }
    Ok(NetworkCreateRequest {
        name: a.name,
        driver: a.driver,
        enable_ipv6: a.ipv6.then_some(true),
        ipam: Some(Ipam { driver: a.ipam_driver, config: configs, options: key_values("--ipam-opt", &a.ipam_opt)? }),
        internal: a.internal,
        options: Some(key_values("--opt", &a.opt)?),
        labels: Some(key_values("--label", &a.label)?),
        config_only: a.config_only,
        config_from: a.config_from.map(|network| crate::wire::network::ConfigReference { network }),
        ..Default::default()
    })
}

fn print_network(n: &NetworkResource) {
    println!(
        "Name:\t{}\nId:\t{}\nDriver:\t{}\nCreated:\t{}\nInternal:\t{}\nIPv6:\t{}",
        n.name, n.id, n.driver, n.created, n.internal, n.enable_ipv6
    );
    for c in &n.ipam.config {
        println!("Subnet:\t{}  gateway {}  range {}", c.subnet, or_dash(&c.gateway), or_dash(&c.ip_range));
    }
    for (k, v) in &n.options {
        println!("Option:\t{k}={v}");
    }
    for (k, v) in &n.labels {
        println!("Label:\t{k}={v}");
    }
    let rows: Vec<Vec<String>> = n
        .containers
        .values()
        .map(|c| {
            vec![
                c.name.clone(),
                short(&c.endpoint_id),
                c.mac_address.clone(),
                c.ipv4_address.clone(),
                c.ipv6_address.clone(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table::print(&["SANDBOX", "ENDPOINT", "MAC", "IPV4", "IPV6"], &rows);
    }
    println!();
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}
