//! The plugin host: each journaled driver and IPAM on a socket of its own
//! in the plugin directory (`<dir>/<name>.sock`, where Docker Engine
//! discovers plugins), after the journal was replayed, until shutdown;
//! the sockets are removed when it stops.

use crate::driver::{JournaledDriver, Replayed};
use crate::ipam::JournaledIpam;
use crate::journal::Journal;
use crate::{Error, Result};
use cnm_driver_remote::PluginServer;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Docker's plugin directory, where Docker Engine finds plugin sockets.
pub const DEFAULT_PLUGIN_DIR: &str = "/run/docker/plugins";

/// What the host serves: journaled drivers and IPAMs by plugin name.
pub struct PluginHost {
    dir: PathBuf,
    journal: Journal,
    drivers: Vec<Arc<JournaledDriver>>,
    ipams: Vec<Arc<JournaledIpam>>,
    /// Serve the (one) driver and the IPAM on this one socket, as a
    /// managed plugin does.
    one_socket: Option<String>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("dir", &self.dir)
            .field("drivers", &self.drivers.iter().map(|d| d.plugin().to_string()).collect::<Vec<_>>())
            .field("ipams", &self.ipams.iter().map(|i| i.plugin().to_string()).collect::<Vec<_>>())
            .finish()
    }
}

impl PluginHost {
    /// A host serving in `dir`, journaling in `journal`.
    pub fn new(dir: &Path, journal: Journal) -> Self {
        PluginHost { dir: dir.to_path_buf(), journal, drivers: Vec::new(), ipams: Vec::new(), one_socket: None }
    }

    /// Serves `driver` as network plugin `name`.
    pub fn driver(mut self, name: &str, driver: Arc<dyn cnm_driverapi::Driver>) -> Self {
        self.drivers.push(Arc::new(JournaledDriver::new(name, driver, self.journal.clone())));
        self
    }

    /// Serves `ipam` as IPAM plugin `name`.
    pub fn ipam(mut self, name: &str, ipam: Arc<dyn cnm_ipamapi::Ipam>) -> Self {
        self.ipams.push(Arc::new(JournaledIpam::new(name, ipam, self.journal.clone())));
        self
    }

    /// Serves the first driver and the first IPAM together on socket
    /// `<dir>/<name>` (a managed plugin has one socket, and Docker names
    /// both roles after the plugin).
    pub fn on_one_socket(mut self, name: &str) -> Self {
        self.one_socket = Some(name.to_string());
        self
    }

    /// The names served, network plugins first.
    pub fn names(&self) -> Vec<String> {
        self.drivers
            .iter()
            .map(|d| d.plugin().to_string())
            .chain(self.ipams.iter().map(|i| i.plugin().to_string()))
            .collect()
    }

    /// Replays the journal: IPAMs first (their pools back before a
    /// network's driver is told about it), then drivers.
    pub async fn restore(&self) -> Result<Replayed> {
        let mut total = Replayed::default();
        for i in &self.ipams {
            total.restored += i.restore().await?;
        }
        for d in &self.drivers {
            let r = d.restore().await?;
            total.restored += r.restored;
            total.undone += r.undone;
        }
        Ok(total)
    }

    /// Binds every plugin's socket (owner-only from the start: the
    /// protocol has no authentication), replays the journal (Docker's calls
    /// meanwhile wait in the sockets' backlogs), then serves until
    /// `shutdown` completes; removes the sockets when it returns. A socket
    /// another process still serves is an error, found before the journal
    /// is touched; a stale one is replaced.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::Socket {
            path: self.dir.clone(),
            op: "create the directory",
            source: e,
        })?;
        let plan: Vec<(String, PathBuf, PluginServer)> = match &self.one_socket {
            Some(socket) => {
                let mut server = PluginServer::new();
                if let Some(d) = self.drivers.first() {
                    server = server.with_driver(d.clone());
                }
                if let Some(i) = self.ipams.first() {
                    server = server.with_ipam(i.clone());
                }
                vec![(self.names().join("+"), self.dir.join(socket), server)]
            }
            None => self
                .drivers
                .iter()
                .map(|d| (d.plugin().to_string(), PluginServer::new().with_driver(d.clone())))
                .chain(self.ipams.iter().map(|i| (i.plugin().to_string(), PluginServer::new().with_ipam(i.clone()))))
                .map(|(name, server)| {
                    let path = self.dir.join(format!("{name}.sock"));
                    (name, path, server)
                })
                .collect(),
        };
        let mut bound = Sockets(Vec::new());
        let mut listening = Vec::new();
        for (name, path, server) in plan {
            let listener = bind(&path).await?;
            bound.0.push(path);
            listening.push((name, listener, server));
        }
        let replayed = self.restore().await?;
        tracing::info!(
            restored = replayed.restored,
            undone = replayed.undone,
            failed = replayed.failed,
            "journal replayed"
        );
        let mut servers = tokio::task::JoinSet::new();
        for (name, listener, server) in listening {
            servers.spawn(async move { server.serve(listener).await.map_err(|source| Error::Serve { name, source }) });
        }
        tracing::info!(dir = %self.dir.display(), plugins = ?self.names(), "serving Docker plugins");
        tokio::select! {
            () = shutdown => Ok(()),
            Some(done) = servers.join_next() => match done {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(Error::Stopped { source: e }),
            },
        }
    }
}

/// The bound sockets, removed when dropped.
struct Sockets(Vec<PathBuf>);

impl Drop for Sockets {
    fn drop(&mut self) {
        for p in &self.0 {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(socket = %p.display(), error = %e, "cannot remove a plugin socket"),
            }
        }
    }
}

/// Binds `path` owner-only: in a fresh directory of mode 0700 beside it,
/// restricted there, then renamed into place (no moment where another user
/// could connect).
async fn bind(path: &Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |op, source| Error::Socket { path: path.to_path_buf(), op, source };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(Error::InUse { path: path.to_path_buf() });
        }
        std::fs::remove_file(path).map_err(|e| fail("remove the stale socket", e))?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let private = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private).map_err(|e| fail("create a private directory", e))?;
    let staged = private.join(&name);
    let bound = (|| {
        let listener = tokio::net::UnixListener::bind(&staged).map_err(|e| fail("bind", e))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).map_err(|e| fail("restrict", e))?;
        std::fs::rename(&staged, path).map_err(|e| fail("move into place", e))?;
        Ok(listener)
    })();
    if let Err(e) = std::fs::remove_dir_all(&private) {
        tracing::warn!(dir = %private.display(), error = %e, "cannot remove a private directory");
    }
    bound
}
