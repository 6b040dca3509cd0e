//! `cnmd`: reads its configuration, starts the controller (restoring the
//! store), serves the API until SIGTERM or SIGINT, then exits leaving
//! networks and sandboxes in place for the next start.

use anyhow::Context;
use clap::Parser;
use cnmd::api::{ApiState, DaemonFacts};
use cnmd::config::DaemonConfig;
use cnmd::config::flags::Flags;
use cnmd::drivers::register_builtin_drivers;
use cnmd::listen::Listener;
use tokio::signal::unix::{SignalKind, signal};

fn main() {
    let flags = Flags::parse();
    if let Err(e) = run(flags) {
        eprintln!("cnmd: {}", cnmd::errors::report(e.as_ref()));
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run(flags: Flags) -> anyhow::Result<()> {
    let cfg = DaemonConfig::load(&flags)?;
    cnmd::logging::init(&cfg.log_level, cfg.log_format)?;
    tracing::info!(version = cnmd::VERSION, data_root = %cfg.data_root.display(), exec_root = %cfg.exec_root.display(), "starting");

    // Bind first: a second daemon on the same socket fails before touching the store.
    let mut listeners = Vec::new();
    for h in &cfg.hosts {
        listeners.push(Listener::bind(h).await?);
    }
    let sockets: Vec<_> = listeners.iter().filter_map(|l| l.socket_path().map(|p| p.to_path_buf())).collect();

    let builder = register_builtin_drivers(cnm::Controller::builder(cfg.controller_config()), cfg.driver_options());
    #[cfg(feature = "dylib")]
    let builder = match &cfg.driver_dir {
        Some(dir) => cnmd::drivers::load_driver_dir(builder, dir, cfg.host_netns.as_deref())
            .await
            .context("load the driver libraries")?,
        None => builder,
    };
    #[cfg(not(feature = "dylib"))]
    if let Some(dir) = &cfg.driver_dir {
        anyhow::bail!("--driver-dir {}: this cnmd was built without the dylib feature", dir.display());
    }
    let controller = builder.build().await.context("start the controller")?;
    cnmd::api::reconcile(&controller).await;
    cnmd::api::predefined_networks(&controller).await;
    let facts =
        DaemonFacts { data_root: cfg.data_root.clone(), exec_root: cfg.exec_root.clone(), firewall: cfg.firewall };
    let state = ApiState::new(controller, facts);
    let inflight = state.inflight.clone();
    let app = cnmd::server::router(state);

    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    for h in &cfg.hosts {
        tracing::info!(address = %h, "API listening");
    }
    cnmd::server::serve(listeners, app, inflight, shutdown).await;
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
    tracing::info!("stopped; networks and sandboxes stay in place");
    Ok(())
}
