//! Drivers and IPAMs from shared libraries: a `cdylib` that exports the
//! driver ABI ([`cnm_driverapi::abi`]; `cnm-driver-sdk`'s `export_plugin!`
//! writes it) is opened with libloading, its version checked, started once,
//! and then spoken to exactly as a remote plugin is — the same JSON
//! messages, statuses and error kinds, through the remote driver's client
//! ([`cnm_driver_remote::PluginClient::in_process`]), so a library's
//! answers are read by the same rules as Docker's plugins' (a malformed
//! answer is a clear error naming the call). Each call runs on a thread of
//! the library's own ([`workers`]), never on the async workers, and is
//! bounded by the client's deadline as a plugin call is: a call that hangs
//! fails as a timeout and holds one thread, not the daemon.

mod ffi;
mod workers;

pub use ffi::OpenError;

use bytes::Bytes;
use cnm_driver_remote::{Answer, ClientConfig, InProcess, Plugin, PluginAddress, PluginClient, RetryPolicy};
use cnm_driverapi::abi::{LibraryConfig, LibraryInfo};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a library could not be loaded or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not loadable, or built for another ABI version.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Its start function failed.
    #[error("{path}: the library failed to start: {message}", path = .path.display())]
    Init {
        /// The library.
        path: PathBuf,
        /// What it said.
        message: String,
    },
    /// Activation or registration through the plugin protocol failed.
    #[error("{path}", path = .path.display())]
    Plugin {
        /// The library.
        path: PathBuf,
        /// The protocol's error.
        #[source]
        source: cnm_driver_remote::Error,
    },
    /// The driver directory cannot be read.
    #[error("cannot read the driver directory {dir}", dir = .dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A started driver library.
#[derive(Clone)]
pub struct DriverLibrary {
    path: PathBuf,
    name: String,
    lib: Arc<ffi::Library>,
}

impl std::fmt::Debug for DriverLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverLibrary").field("path", &self.path).field("name", &self.name).finish()
    }
}

impl DriverLibrary {
    /// Opens the library at `path`, checks its ABI version and starts it with `config`.
    pub fn open(path: &Path, config: &LibraryConfig) -> Result<DriverLibrary, Error> {
        let lib = ffi::Library::open(path)?;
        let cfg = serde_json::to_vec(config).unwrap_or_default();
        let (ok, answer) = lib.init(&cfg);
        let message = || String::from_utf8_lossy(&answer).into_owned();
        if !ok {
            return Err(Error::Init { path: path.to_path_buf(), message: message() });
        }
        let info: LibraryInfo = serde_json::from_slice(&answer).map_err(|e| Error::Init {
            path: path.to_path_buf(),
            message: format!("its start answer is not the expected JSON ({e}): {}", message()),
        })?;
        if info.name.is_empty() {
            return Err(Error::Init { path: path.to_path_buf(), message: "it gave no name".into() });
        }
        Ok(DriverLibrary { path: path.to_path_buf(), name: info.name, lib: Arc::new(lib) })
    }

    /// The name it registers its driver and/or IPAM under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it exports protocol call `method` (`NetworkDriver.Join`, …).
    pub fn exports(&self, method: &str) -> bool {
        self.lib.exports(method)
    }

    /// A plugin client that calls the library (no HTTP).
    pub fn client(&self, config: ClientConfig) -> Arc<PluginClient> {
        let exchange = Arc::new(Exchange { lib: self.lib.clone(), workers: workers::Workers::default() });
        Arc::new(PluginClient::in_process(&self.name, PluginAddress::Unix(self.path.clone()), exchange, config))
    }

    /// Activates the library as a plugin and registers its roles: its
    /// network driver and/or IPAM, as `RemoteDriver` / `RemoteIpam`.
    pub async fn activate(&self, config: ClientConfig) -> Result<Plugin, Error> {
        Plugin::activate_client(self.client(config), RetryPolicy::none())
            .await
            .map_err(|source| Error::Plugin { path: self.path.clone(), source })
    }
}

/// The libraries of a driver directory: its `*.so` files, in name order.
pub fn libraries_in(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let err = |source| Error::Dir { dir: dir.to_path_buf(), source };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "so") && p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Calls into the library on its threads.
struct Exchange {
    lib: Arc<ffi::Library>,
    workers: workers::Workers,
}

impl InProcess for Exchange {
    fn exchange(
        &self,
        method: &str,
        body: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Answer, String>> + Send>> {
        let lib = self.lib.clone();
        let method = method.to_string();
        let call = self.workers.run(move || lib.call(&method, &body));
        Box::pin(async move {
            let done = call
                .map_err(|e| format!("cannot start a thread for the library call: {e}"))?
                .await
                .map_err(|_| "the library call did not complete".to_string())?;
            Ok(match done {
                Some((status, body, kind)) => Answer {
                    status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                    body: Bytes::from(body),
                    kind: std::str::from_utf8(&kind).ok().and_then(cnm_driver_remote::kind_from_name),
                },
                // Not exported: not implemented, as Go's NotFound answer says it.
                None => Answer {
                    status: http::StatusCode::NOT_FOUND,
                    body: Bytes::from_static(b"404 page not found\n"),
                    kind: None,
                },
            })
        })
    }
}
