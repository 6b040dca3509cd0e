//! Docker's remote plugin protocol, both ways.
//!
//! **Client**: [`PluginProvider`] finds plugins by name (sockets in
//! `/run/docker/plugins`, `.spec`/`.json` files in `/etc/docker/plugins`
//! and `/usr/lib/docker/plugins`), activates them (`Plugin.Activate`),
//! registers their roles and hands the controller a [`RemoteDriver`]
//! (`impl Driver`) and/or a [`RemoteIpam`] (`impl Ipam`) that forward every
//! call over HTTP with exactly the requests Docker Engine 20.10 sends, and
//! read answers as Docker does. Register it with
//! `ControllerBuilder::driver_provider` and `::ipam_provider`.
//!
//! **Server**: [`serve`], [`serve_ipam`], [`serve_plugin`] (or
//! [`PluginServer`]) expose any `Arc<dyn Driver>` / `Arc<dyn Ipam>` as a v1
//! plugin that Docker Engine (or our client) can use.
//!
//! Deliberate differences from Docker (each documented where it lives):
//! a per-attempt timeout (Docker has none, see [`ClientConfig`]); lookups
//! of an absent plugin answer at once unless configured otherwise (Docker
//! retries ≈15 s, see [`PluginProvider`]); a retried request keeps its body;
//! a plugin that restarts is activated again; failed registrations are
//! retried on next use; TLS (`https://`) plugin addresses are not supported.

mod activation;
mod client;
pub mod decode;
mod discovery;
mod driver;
pub mod encode;
mod error;
mod ipam;
mod provider;
mod server;

pub use activation::{ACTIVATE, IPAM_DRIVER, Manifest, NETWORK_DRIVER, Plugin, activate};
pub use client::{ACCEPT, Answer, ClientConfig, ErrorField, InProcess, PluginClient, RetryPolicy, USER_AGENT};
pub use discovery::{DEFAULT_SOCKET_DIR, DEFAULT_SPEC_DIRS, Discovery, PluginAddress, PluginSpec, check_name};
pub use driver::{NODE_DISCOVERY, RemoteDriver};
pub use error::{ERROR_KIND_HEADER, Error, Result, kind_for_status, kind_from_name, kind_name, status_for_kind};
pub use ipam::RemoteIpam;
pub use provider::PluginProvider;
pub use server::{CONTENT_TYPE, Listener, MAX_REQUEST, PluginServer, Reply, serve, serve_ipam, serve_plugin};

/// The driver's type name in Docker (`remote`); plugins register under their own names.
pub const NAME: &str = "remote";
