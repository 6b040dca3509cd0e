//! `cnmctl`: the command-line client, with flags mirroring `docker network`.
//! Each command prints a table (or JSON with `--format json`); a failure is
//! one line on stderr and a non-zero exit.

pub mod exec;
pub mod network;
pub mod oci_hook;
pub mod sandbox;
pub mod table;
pub mod template;

use crate::client::{Client, ClientError};
use crate::listen::ListenAddr;
use clap::{Parser, Subcommand, ValueEnum};

/// The default daemon address.
pub const DEFAULT_HOST: &str = "unix:///run/cnm/cnmd.sock";

/// Control the cnm daemon: networks and sandboxes.
#[derive(Debug, Parser)]
#[command(name = "cnmctl", version)]
pub struct Cli {
    /// Daemon address: unix:///path or tcp://host:port
    #[arg(short = 'H', long = "host", env = "CNM_HOST", default_value = DEFAULT_HOST, global = true)]
    pub host: String,
    /// Talk TLS to a tcp:// daemon, checking its certificate against --tlscacert and presenting --tlscert
    #[arg(long, global = true)]
    pub tlsverify: bool,
    /// The CA that signs the daemon's certificate
    #[arg(long, value_name = "FILE", global = true)]
    pub tlscacert: Option<std::path::PathBuf>,
    /// This client's certificate
    #[arg(long, value_name = "FILE", global = true)]
    pub tlscert: Option<std::path::PathBuf>,
    /// This client's key
    #[arg(long, value_name = "FILE", global = true)]
    pub tlskey: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage sandboxes
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// OCI runtime hook: connect a runc container to its annotated networks (state on stdin)
    OciHook(oci_hook::HookArgs),
    /// Show the client and daemon versions
    Version(FormatArg),
    /// Show daemon information
    Info(FormatArg),
}

/// Output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    #[default]
    Table,
    /// JSON, as the API answers.
    Json,
}

/// The `--format` flag.
#[derive(Debug, Clone, clap::Args)]
pub struct FormatArg {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A flag's value is invalid.
    #[error("{0}")]
    Usage(String),
    /// Running a command in a sandbox failed.
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(String),
}

/// What is left to do once the API calls are done.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing: exit with this status.
    Exit(i32),
    /// Replace this process with a command inside a sandbox.
    Exec(exec::ExecPlan),
}

/// Runs a parsed command line against the daemon.
pub async fn run(cli: Cli) -> Result<Outcome, CliError> {
    let addr: ListenAddr = cli.host.parse().map_err(|e: crate::listen::ListenError| CliError::Usage(e.to_string()))?;
    let client = if cli.tlsverify {
        let need = |f: &Option<std::path::PathBuf>, name: &str| {
            f.clone().ok_or_else(|| CliError::Usage(format!("--tlsverify needs {name}")))
        };
        let files = crate::tls::TlsFiles {
            ca: need(&cli.tlscacert, "--tlscacert")?,
            cert: need(&cli.tlscert, "--tlscert")?,
            key: need(&cli.tlskey, "--tlskey")?,
        };
        Client::with_tls(addr, files.client_config().map_err(|e| CliError::Usage(cnm::chain(&e)))?)
    } else {
        Client::new(addr)
    };
    match cli.command {
        Command::Network(c) => network::run(&client, c).await.map(|()| Outcome::Exit(0)),
        Command::Sandbox(c) => sandbox::run(&client, c).await,
        Command::OciHook(a) => oci_hook::run(&client, a).await.map(|()| Outcome::Exit(0)),
        Command::Version(f) => {
            let v: crate::wire::system::VersionResponse = client.get("/version").await?;
            match f.format {
                Format::Json => print_json(&v)?,
                Format::Table => {
                    println!("Client:\n Version:\t{}\n API version:\t{}", crate::VERSION, crate::API_VERSION);
                    println!(
                        "Server: {}\n Version:\t{}\n API version:\t{} (minimum {})",
                        v.platform.name, v.version, v.api_version, v.min_api_version
                    );
                    println!(" OS/Arch:\t{}/{}\n Kernel:\t{}", v.os, v.arch, v.kernel_version);
                }
            }
            Ok(Outcome::Exit(0))
        }
        Command::Info(f) => {
            let i: crate::wire::system::InfoResponse = client.get("/info").await?;
            match f.format {
                Format::Json => print_json(&i)?,
                Format::Table => {
                    println!(
                        "Server version:\t{}\nNetworks:\t{}\nSandboxes:\t{}",
                        i.server_version, i.networks, i.sandboxes
                    );
                    println!(
                        "Network drivers:\t{}\nIPAM drivers:\t{}",
                        i.plugins.network.join(" "),
                        i.plugins.ipam.join(" ")
                    );
                    println!(
                        "Firewall:\t{}\nData root:\t{}\nExec root:\t{}",
                        i.firewall, i.docker_root_dir, i.exec_root
                    );
                    println!("Kernel:\t{}\nArchitecture:\t{}", i.kernel_version, i.architecture);
                    for (what, n) in &i.repairs {
                        println!("Repaired ({what}):\t{n}");
                    }
                    if i.rollback_failures > 0 {
                        println!("Rollback steps failed:\t{} (see cnmd's log)", i.rollback_failures);
                    }
                }
            }
            Ok(Outcome::Exit(0))
        }
    }
}

/// Prints a value as indented JSON.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::Output(e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// Parses `KEY=VALUE` pairs into a map.
pub fn key_values(flag: &str, items: &[String]) -> Result<std::collections::BTreeMap<String, String>, CliError> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::Usage(format!("invalid {flag} {kv:?}: expected KEY=VALUE"))),
        })
        .collect()
}
