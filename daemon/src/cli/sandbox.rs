//! `cnmctl sandbox …`: create, ls, inspect, rm, exec.

use super::table::{self, short};
use super::{CliError, Format, Outcome, print_json};
use crate::client::{Client, encode};
use crate::wire::ports::{parse_expose, parse_publish};
use crate::wire::sandbox::{SandboxCreateRequest, SandboxCreateResponse, SandboxResource};
use clap::{Args, Subcommand};

/// Sandbox commands.
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Create a sandbox (a network namespace with its hosts and resolv.conf)
    Create(CreateArgs),
    /// List sandboxes
    #[command(alias = "list")]
    Ls(super::FormatArg),
    /// Show sandboxes in detail
    Inspect {
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Sandboxes (names or ids)
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
    /// Remove sandboxes (each leaves its networks first)
    #[command(alias = "remove")]
    Rm {
        /// Sandboxes (names or ids)
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
    /// Run a command in a sandbox's network namespace (root, on the daemon's host)
    Exec {
        /// The sandbox
        sandbox: String,
        /// The command and its arguments (`--` before them is optional)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

/// `sandbox create` flags (as `docker run`'s).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Host name
    #[arg(long)]
    pub hostname: Option<String>,
    /// Domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// DNS server (repeatable)
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domain (repeatable)
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// Resolver option (repeatable)
    #[arg(long)]
    pub dns_option: Vec<String>,
    /// Extra /etc/hosts entry, NAME:IP (repeatable)
    #[arg(long)]
    pub add_host: Vec<String>,
    /// Publish a port, [IP:][HOSTPORT[-END]:]PORT[/PROTO] (repeatable)
    #[arg(short, long)]
    pub publish: Vec<String>,
    /// Expose a port or range, PORT[-END][/PROTO] (repeatable)
    #[arg(long)]
    pub expose: Vec<String>,
    /// Share the host's network namespace (for the host network)
    #[arg(long)]
    pub host_namespace: bool,
    /// Use an existing network namespace, e.g. a runtime's /proc/PID/ns/net (never removed)
    #[arg(long, value_name = "PATH")]
    pub netns: Option<String>,
    /// The sandbox's name
    pub name: String,
}

/// Runs a sandbox command.
pub async fn run(client: &Client, cmd: SandboxCommand) -> Result<Outcome, CliError> {
    match cmd {
        SandboxCommand::Create(a) => {
            let req = create_request(a)?;
            let r: SandboxCreateResponse = client.post("/sandboxes", &req).await?;
            println!("{}", r.id);
        }
        SandboxCommand::Ls(f) => {
            let sbs: Vec<SandboxResource> = client.get("/sandboxes").await?;
            match f.format {
                Format::Json => print_json(&sbs)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = sbs
                        .iter()
                        .map(|s| {
                            let nets: Vec<String> = s.networks.keys().cloned().collect();
                            let addrs: Vec<String> = s
                                .networks
                                .values()
                                .filter(|e| !e.ip_address.is_empty())
                                .map(|e| e.ip_address.clone())
                                .collect();
                            vec![short(&s.id), s.name.clone(), nets.join(","), addrs.join(","), ports(&s.ports)]
                        })
                        .collect();
                    table::print(&["SANDBOX ID", "NAME", "NETWORKS", "ADDRESSES", "PORTS"], &rows);
                }
            }
        }
        SandboxCommand::Inspect { format, sandboxes } => {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            for s in &sandboxes {
                match client.get::<SandboxResource>(&format!("/sandboxes/{}", encode(s))).await {
                    Ok(r) => out.push(r),
                    Err(e) => errors.push(cnm::chain(&e)),
                }
            }
            match format {
                Format::Json => print_json(&out)?,
                Format::Table => {
                    for s in &out {
                        println!("Name:\t{}\nId:\t{}\nKey:\t{}\nHostname:\t{}", s.name, s.id, s.key, s.hostname);
                        let rows: Vec<Vec<String>> = s
                            .networks
                            .iter()
                            .map(|(n, e)| {
                                vec![
                                    n.clone(),
                                    e.interface.clone(),
                                    format!("{}/{}", e.ip_address, e.ip_prefix_len),
                                    e.mac_address.clone(),
                                ]
                            })
                            .collect();
                        table::print(&["NETWORK", "INTERFACE", "IPV4", "MAC"], &rows);
                        println!();
                    }
                }
            }
            super::network::failures(errors, sandboxes.len(), "sandboxes could not be inspected")?;
        }
        SandboxCommand::Rm { sandboxes } => {
            let mut errors = Vec::new();
            for s in &sandboxes {
                match client.delete(&format!("/sandboxes/{}", encode(s))).await {
                    Ok(()) => println!("{s}"),
                    Err(e) => errors.push(cnm::chain(&e)),
                }
            }
            super::network::failures(errors, sandboxes.len(), "sandboxes could not be removed")?;
        }
        SandboxCommand::Exec { sandbox, command } => {
            let s: SandboxResource = client.get(&format!("/sandboxes/{}", encode(&sandbox))).await?;
            return Ok(Outcome::Exec(super::exec::ExecPlan {
                netns: s.key.into(),
                hosts: s.hosts_path.into(),
                resolv_conf: s.resolv_conf_path.into(),
                daemon_pid: client.daemon_pid(),
                command,
            }));
        }
    }
    Ok(Outcome::Exit(0))
}

/// The create request of `sandbox create` flags.
pub fn create_request(a: CreateArgs) -> Result<SandboxCreateRequest, CliError> {
    let mut req = SandboxCreateRequest {
        name: a.name,
        hostname: a.hostname.unwrap_or_default(),
        domainname: a.domainname.unwrap_or_default(),
        dns: a.dns,
        dns_search: a.dns_search,
        dns_options: a.dns_option,
        extra_hosts: a.add_host,
        host_namespace: a.host_namespace,
        netns: a
            .netns
            .map(|p| {
                // Relative to where cnmctl runs, as a user would mean it.
                let p = std::path::PathBuf::from(p);
                if p.is_relative() { std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p) } else { p }
            })
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    for e in &a.expose {
        for key in parse_expose(e).map_err(CliError::Usage)? {
            req.exposed_ports.insert(key, serde_json::json!({}));
        }
    }
    for p in &a.publish {
        let (key, binding) = parse_publish(p).map_err(CliError::Usage)?;
        req.port_bindings.entry(key).or_default().push(binding);
    }
    Ok(req)
}

/// Published ports as `docker ps` shows them: `0.0.0.0:8080->80/tcp`.
fn ports(map: &crate::wire::ports::PortMap) -> String {
    let mut out = Vec::new();
    for (port, bindings) in map {
        for b in bindings {
            let ip = if b.host_ip.is_empty() { "0.0.0.0" } else { b.host_ip.as_str() };
            let ip = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
            out.push(format!("{ip}:{}->{port}", b.host_port));
        }
    }
    out.join(", ")
}
