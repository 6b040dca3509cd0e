//! `cnmctl network …`: create, ls, inspect, rm, prune, connect, disconnect.

use super::table::{self, short};
use super::{CliError, key_values, print_json};
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
    Ls(LsArgs),
    /// Show networks in detail
    Inspect {
        /// `json` (the default), `table`, or a template such as '{{.IPAM.Driver}}'
        #[arg(short, long)]
        format: Option<String>,
        /// Networks (names or ids)
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks
    #[command(alias = "remove")]
    Rm {
        /// Do not fail for a network that does not exist
        #[arg(short, long)]
        force: bool,
        /// Networks (names or ids)
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every network no sandbox uses (asks first, unless --force)
    Prune {
        /// Do not ask
        #[arg(short, long)]
        force: bool,
        /// Only networks matching: label=K[=V], label!=K[=V], until=TIME (repeatable)
        #[arg(long)]
        filter: Vec<String>,
    },
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

/// `network ls` flags (as `docker network ls`).
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Only networks matching: name=, id=, driver=, label=K[=V], type=custom|builtin, scope= (repeatable)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Full ids
    #[arg(long)]
    pub no_trunc: bool,
    /// `table` (the default), `json`, or a template over ID, Name, Driver,
    /// Scope, IPv6, Internal, Labels, CreatedAt such as '{{.ID}}\t{{.Name}}'
    #[arg(long, default_value = "table")]
    pub format: String,
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
    /// Enable IPv6 (`--ipv6=false`: off)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ipv6: Option<bool>,
    /// Enable IPv4 (`--ipv4=false`: an IPv6-only network)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ipv4: Option<bool>,
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
    /// Endpoint driver option, KEY=VALUE (repeatable): com.docker.network.endpoint.ifname, ….sysctls
    #[arg(long)]
    pub driver_opt: Vec<String>,
    /// Priority of this network's gateway as the sandbox's default route (highest wins)
    #[arg(long)]
    pub gw_priority: Option<i32>,
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
        NetworkCommand::Ls(a) => {
            let path = match filters_query(&a.filter)? {
                Some(q) => format!("/networks?filters={q}"),
                None => "/networks".to_string(),
            };
            let nets: Vec<NetworkResource> = client.get(&path).await?;
            let id = |n: &NetworkResource| if a.no_trunc { n.id.clone() } else { short(&n.id) };
            if a.quiet {
                for n in &nets {
                    println!("{}", id(n));
                }
                return Ok(());
            }
            // A network as `docker network ls` formats it.
            let row = |n: &NetworkResource| {
                let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                serde_json::json!({
                    "ID": id(n), "Name": n.name, "Driver": n.driver, "Scope": n.scope,
                    "IPv6": n.enable_ipv6, "Internal": n.internal, "Labels": labels.join(","),
                    "CreatedAt": n.created,
                })
            };
            match a.format.as_str() {
                // One object per line, as docker's.
                "json" => {
                    for n in &nets {
                        println!("{}", row(n));
                    }
                }
                "table" => table::print(
                    &["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                    &nets
                        .iter()
                        .map(|n| vec![id(n), n.name.clone(), n.driver.clone(), n.scope.clone()])
                        .collect::<Vec<_>>(),
                ),
                template => match template.strip_prefix("table") {
                    // `table …`: a header of the fields' column names, and
                    // the rows' tab-separated cells aligned under it.
                    Some(t) if t.is_empty() || t.starts_with(char::is_whitespace) => {
                        let t = t.trim_start();
                        let names: serde_json::Map<String, serde_json::Value> = super::template::columns(t)?
                            .into_iter()
                            .map(|c| {
                                let header = match c.as_str() {
                                    "ID" => "NETWORK ID".to_string(),
                                    "CreatedAt" => "CREATED AT".to_string(),
                                    other => other.to_uppercase(),
                                };
                                (c, serde_json::Value::String(header))
                            })
                            .collect();
                        let header = super::template::render(t, &serde_json::Value::Object(names))?;
                        let header: Vec<&str> = header.split('\t').collect();
                        let mut rows = Vec::new();
                        for n in &nets {
                            let line = super::template::render(t, &row(n))?;
                            rows.push(line.split('\t').map(str::to_string).collect::<Vec<_>>());
                        }
                        table::print(&header, &rows);
                    }
                    _ => {
                        for n in &nets {
                            println!("{}", super::template::render(template, &row(n))?);
                        }
                    }
                },
            }
        }
        NetworkCommand::Inspect { format, networks } => {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            for n in &networks {
                match client.get::<serde_json::Value>(&format!("/networks/{}", encode(n))).await {
                    Ok(v) => out.push(v),
                    Err(e) => errors.push(cnm::chain(&e)),
                }
            }
            match format.as_deref().unwrap_or("json") {
                "json" => print_json(&out)?,
                "table" => {
                    for v in out {
                        let n: NetworkResource =
                            serde_json::from_value(v).map_err(|e| CliError::Output(e.to_string()))?;
                        print_network(&n);
                    }
                }
                template => {
                    for v in &out {
                        println!("{}", super::template::render(template, v)?);
                    }
                }
            }
            failures(errors, networks.len(), "networks could not be inspected")?;
        }
        NetworkCommand::Rm { force, networks } => {
            let mut errors = Vec::new();
            for n in &networks {
                match client.delete(&format!("/networks/{}", encode(n))).await {
                    Ok(()) => println!("{n}"),
                    Err(e) if force && e.status() == Some(hyper::StatusCode::NOT_FOUND) => {}
                    Err(e) => errors.push(cnm::chain(&e)),
                }
            }
            failures(errors, networks.len(), "networks could not be removed")?;
        }
        NetworkCommand::Prune { force, filter } => {
            if !force && !confirm("WARNING! This will remove all custom networks not used by at least one sandbox.")? {
                return Ok(());
            }
            let path = match filters_query(&filter)? {
                Some(q) => format!("/networks/prune?filters={q}"),
                None => "/networks/prune".to_string(),
            };
            let r: NetworkPruneResponse = client.post(&path, &serde_json::json!({})).await?;
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
                driver_opts: key_values("--driver-opt", &a.driver_opt)?,
                gw_priority: a.gw_priority.unwrap_or_default(),
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
        enable_ipv6: a.ipv6,
        enable_ipv4: a.ipv4,
        ipam: Some(Ipam { driver: a.ipam_driver, config: configs, options: key_values("--ipam-opt", &a.ipam_opt)? }),
        internal: a.internal,
        options: Some(key_values("--opt", &a.opt)?),
        labels: Some(key_values("--label", &a.label)?),
        config_only: a.config_only,
        config_from: a.config_from.map(|network| crate::wire::network::ConfigReference { network }),
        ..Default::default()
    })
}

/// `--filter k=v` flags as the API's `filters` parameter (URL-encoded JSON), if any.
pub fn filters_query(flags: &[String]) -> Result<Option<String>, CliError> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut map: std::collections::BTreeMap<String, std::collections::BTreeMap<String, bool>> = Default::default();
    for f in flags {
        let (k, v) = f
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| CliError::Usage(format!("invalid --filter {f:?}: expected KEY=VALUE")))?;
        // `label!=K` splits as `label!` and `K`.
        map.entry(k.to_string()).or_default().insert(v.to_string(), true);
    }
    let json = serde_json::to_string(&map).map_err(|e| CliError::Output(e.to_string()))?;
    Ok(Some(encode(&json)))
}

/// Fails (non-zero exit) if there was an error: one is the failure's
/// message; several are each printed on stderr, then counted.
pub fn failures(mut errors: Vec<String>, of: usize, what: &str) -> Result<(), CliError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(CliError::Usage(errors.remove(0))),
        n => {
            for e in &errors {
                eprintln!("Error: {e}");
            }
            Err(CliError::Usage(format!("{n} of {of} {what}")))
        }
    }
}

/// Asks `question` on the terminal; true on `y` or `yes`.
pub fn confirm(question: &str) -> Result<bool, CliError> {
    use std::io::Write as _;
    print!("{question}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush().map_err(|e| CliError::Output(e.to_string()))?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| CliError::Output(e.to_string()))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
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
