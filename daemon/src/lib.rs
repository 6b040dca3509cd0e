//! `cnmd`, the cnm daemon, and `cnmctl`, its command-line client.
//!
//! The daemon owns one [`cnm::Controller`] and serves the network part of
//! Docker's Engine API (so the `docker` CLI works against it unmodified),
//! plus native `/sandboxes` resources for what Docker keeps in containers.
//! The binaries are thin: `src/bin/cnmd.rs` wires [`config`], [`drivers`],
//! [`listen`] and [`server`] together; `src/bin/cnmctl.rs` runs [`cli`].

pub mod api;
pub mod cli;
pub mod client;
pub mod cni;
pub mod config;
#[cfg(feature = "docker-plugins")]
pub mod docker_plugins;
pub mod drivers;
pub mod errors;
pub mod listen;
pub mod logging;
pub mod server;
pub mod tls;
pub mod wire;

/// The newest Docker Engine API version the daemon speaks (answered in
/// `API-Version`; Docker 29's).
pub const API_VERSION: &str = "1.52";
/// The oldest API version accepted in a `/vX.Y` path prefix.
pub const MIN_API_VERSION: &str = "1.24";
/// The daemon's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
