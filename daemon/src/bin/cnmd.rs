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
    raise_open_files_limit();
    // Before the runtime starts: only a single-threaded process may enter a user namespace.
    if let Err(e) = enter_rootless(&flags) {
        eprintln!("cnmd: {}", cnmd::errors::report(e.as_ref()));
        std::process::exit(1);
    }
    if let Err(e) = run(flags) {
        eprintln!("cnmd: {}", cnmd::errors::report(e.as_ref()));
        std::process::exit(1);
    }
}

/// Not root: `--rootless` enters a user namespace of cnmd's own (with
/// slirp4netns as the way out when it is installed); without it, cnmd says
/// in one line what to do instead of failing on its first privileged step.
fn enter_rootless(flags: &Flags) -> anyhow::Result<()> {
    if cnm::rootless::is_root() {
        return Ok(());
    }
    if !flags.rootless {
        anyhow::bail!(
            "cnmd needs root (uid {} is not): run it as root, or with --rootless for a user namespace of its own",
            nix::unistd::getuid()
        );
    }
    let (way_out, why_none) = match cnm::rootless::available_way_out() {
        Ok(w) => (w, None),
        Err(why) => (cnm::rootless::WayOut::None, Some(why)),
    };
    let userns = cnm::rootless::enter_with(way_out).context("enter a user namespace (--rootless)")?;
    ROOTLESS.set((userns.outer_uid, way_out, why_none)).ok();
    Ok(())
}

/// Who `--rootless` runs as outside its user namespace, its way out, and
/// why it has none (logged once logging is up).
static ROOTLESS: std::sync::OnceLock<(u32, cnm::rootless::WayOut, Option<String>)> = std::sync::OnceLock::new();

#[tokio::main]
async fn run(flags: Flags) -> anyhow::Result<()> {
    let cfg = DaemonConfig::load(&flags)?;
    cnmd::logging::init(&cfg.log_level, cfg.log_format)?;
    tracing::info!(version = cnmd::VERSION, data_root = %cfg.data_root.display(), exec_root = %cfg.exec_root.display(), "starting");
    match ROOTLESS.get() {
        Some((uid, _, Some(why))) => {
            tracing::warn!(
                uid,
                "rootless without a way out: sandboxes reach only each other and the host cannot reach published ports ({why})"
            )
        }
        Some((uid, way_out, None)) => tracing::info!(uid, ?way_out, "rootless"),
        None => {}
    }

    let tls = if flags.tlsverify {
        let need = |f: &Option<std::path::PathBuf>, name: &str| {
            f.clone().ok_or_else(|| anyhow::anyhow!("--tlsverify needs {name}"))
        };
        let files = cnmd::tls::TlsFiles {
            ca: need(&flags.tlscacert, "--tlscacert")?,
            cert: need(&flags.tlscert, "--tlscert")?,
            key: need(&flags.tlskey, "--tlskey")?,
        };
        Some(files.server_config()?)
    } else {
        None
    };
    if tls.is_none()
        && !flags.insecure_tcp
        && let Some(tcp) = cfg.hosts.iter().find(|h| matches!(h, cnmd::listen::ListenAddr::Tcp(_)))
    {
        anyhow::bail!(
            "-H {tcp}: the API on TCP needs TLS with client certificates (--tlsverify --tlscacert --tlscert --tlskey); \
             use a unix socket, or pass --insecure-tcp if every host that can connect may control this host's networking"
        );
    }
    // Bind first: a second daemon on the same socket fails before touching
    // the store. Serving Docker plugins, cnmd has no API of its own.
    let mut listeners = Vec::new();
    let plugins_only = flags.docker_plugins || flags.managed_plugin.is_some();
    for h in cfg.hosts.iter().filter(|_| !plugins_only) {
        listeners.push(Listener::bind_with(h, tls.clone()).await?);
    }
    let sockets: Vec<_> = listeners.iter().filter_map(|l| l.socket_path().map(|p| p.to_path_buf())).collect();

    #[allow(unused_mut)]
    let mut driver_options = cnmd::drivers::driver_options(&cfg);
    #[cfg(feature = "overlay")]
    if let (Some(store), Some(advertise)) = (&cfg.cluster_store, cfg.advertise_addr) {
        let config = cnm_cluster::ClusterConfig::parse(store, advertise)?.with_options(&cfg.cluster_store_opts)?;
        let secured = (config.tls.is_some(), config.credentials.is_some());
        let cluster = cnm_cluster::Cluster::connect(config).await.context("join the cluster")?;
        let overlay = cnm_driver_overlay::OverlayConfig {
            netns_dir: cfg.exec_root.join("overlay"),
            port: cfg.data_path_port,
            ..Default::default()
        };
        driver_options.cluster = Some((cluster.clone(), overlay));
        tracing::info!(store, %advertise, tls = secured.0, user = secured.1, "cluster member");
        if !secured.0 {
            tracing::warn!(
                store,
                "the cluster store is reached without TLS: whoever reaches it can change the cluster's networks (see SECURITY.md)"
            );
        }
    }
    #[cfg(not(feature = "overlay"))]
    if cfg.cluster_store.is_some() {
        anyhow::bail!("--cluster-store: this cnmd was built without the overlay feature");
    }
    if plugins_only {
        return docker_plugins(&cfg, driver_options, flags.managed_plugin.as_deref()).await;
    }
    let builder =
        register_builtin_drivers(cnm::Controller::builder(cnmd::drivers::controller_config(&cfg)), driver_options);
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

    let shutdown = shutdown_signal()?;
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

/// `--docker-plugins`: serves the drivers and IPAM to Docker Engine until
/// SIGTERM or SIGINT (see [`cnmd::docker_plugins`]).
#[cfg(feature = "docker-plugins")]
async fn docker_plugins(
    cfg: &DaemonConfig,
    options: cnmd::drivers::DriverOptions,
    managed: Option<&str>,
) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    cnmd::docker_plugins::serve(cfg, options, managed, shutdown).await?;
    tracing::info!("stopped; Docker's networks and containers stay in place");
    Ok(())
}

#[cfg(not(feature = "docker-plugins"))]
async fn docker_plugins(_: &DaemonConfig, _: cnmd::drivers::DriverOptions, _: Option<&str>) -> anyhow::Result<()> {
    anyhow::bail!("--docker-plugins: this cnmd was built without the docker-plugins feature")
}

/// Completes at the first SIGTERM or SIGINT (the handlers are installed now).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Raises the soft limit of open files to the hard one (as dockerd's unit
/// does with `LimitNOFILE`): every sandbox holds a netlink socket and its
/// DNS server's sockets, and a default soft limit of 1024 runs out at a few
/// hundred sandboxes.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        eprintln!("cnmd: cannot raise the open files limit from {soft} to {hard}: {e}");
    }
}
