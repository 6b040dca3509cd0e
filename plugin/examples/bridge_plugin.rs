//! Serves cnm's bridge driver (and, with `--ipam`, cnm's default IPAM) as a
//! Docker v1 plugin on a unix socket, until SIGINT or SIGTERM.
//!
//! ```text
//! bridge_plugin [--socket /run/docker/plugins/cnm-bridge.sock] [--netns PATH] [--ipam]
//! docker network create -d cnm-bridge --subnet 10.99.0.0/24 mynet
//! ```
//!
//! `--netns` names the network namespace the bridges are made in (default:
//! the current one). Run as root. The socket is removed on exit; the
//! bridges of networks still in use are left for Docker to delete.

use anyhow::Context;
use cnm_driver_bridge::BridgeDriver;
use cnm_driver_remote::PluginServer;
use cnm_osl::{Namespace, Netlink};
use std::path::PathBuf;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut socket = PathBuf::from("/run/docker/plugins/cnm-bridge.sock");
    let mut netns = None;
    let mut ipam = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => socket = args.next().context("--socket needs a path")?.into(),
            "--netns" => netns = Some(PathBuf::from(args.next().context("--netns needs a path")?)),
            "--ipam" => ipam = true,
            other => anyhow::bail!(
                "unknown argument {other:?}; usage: bridge_plugin [--socket PATH] [--netns PATH] [--ipam]"
            ),
        }
    }
    let ns = match &netns {
        Some(p) => Namespace::open(p).with_context(|| format!("open namespace {}", p.display()))?,
        None => Namespace::current().context("open the current namespace")?,
    };
    let nl = Netlink::connect(&ns, cnm_osl::DEFAULT_DEADLINE).await.context("netlink")?;
    let mut server = PluginServer::new().with_driver(Arc::new(BridgeDriver::new(nl)));
    if ipam {
        server = server.with_ipam(Arc::new(cnm_ipams::DefaultIpam::new(Default::default())));
    }
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).with_context(|| format!("bind {}", socket.display()))?;
    println!("serving {:?} on {}", server.manifest().implements, socket.display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        r = server.serve(listener) => r.map_err(anyhow::Error::from),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    };
    let _ = std::fs::remove_file(&socket);
    result
}
