//! Where the daemon listens (`-H`): `unix:///path` (the default; the socket
//! is made mode 0660) or, only when asked, `tcp://host:port`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address (unauthenticated: only on explicit request).
    Tcp(String),
}

/// Why a listen address cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address is not `unix://PATH` or `tcp://HOST:PORT`.
    #[error("invalid listen address {0:?}: expected unix:///path/to/socket or tcp://host:port")]
    Invalid(String),
    /// Another process answers on the socket.
    #[error("another daemon is already listening on {0}")]
    InUse(PathBuf),
    /// Something that is not a socket is at the socket's path.
    #[error("{0} exists and is not a socket: refusing to replace it")]
    NotASocket(PathBuf),
    /// Binding failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl FromStr for ListenAddr {
    type Err = ListenError;

    fn from_str(s: &str) -> Result<Self, ListenError> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() || !p.starts_with('/') {
                return Err(ListenError::Invalid(s.to_string()));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            let a = if a.starts_with(':') { format!("127.0.0.1{a}") } else { a.to_string() };
            if !a.contains(':') {
                return Err(ListenError::Invalid(s.to_string()));
            }
            return Ok(ListenAddr::Tcp(a));
        }
        if s.starts_with('/') {
            return Ok(ListenAddr::Unix(PathBuf::from(s)));
        }
        Err(ListenError::Invalid(s.to_string()))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// A unix socket, removed by [`Listener::cleanup`].
    Unix {
        /// The listener.
        listener: tokio::net::UnixListener,
        /// The socket's path.
        path: PathBuf,
    },
    /// A TCP listener without TLS (`--insecure-tcp`).
    Tcp {
        /// The listener.
        listener: tokio::net::TcpListener,
        /// The host part of its address as given (`0.0.0.0`, a name, …):
        /// the one name besides IP addresses and `localhost` that requests
        /// may carry in `Host`.
        host: String,
    },
    /// A TCP listener serving TLS with client certificates.
    Tls(crate::tls::TlsListener),
}

impl Listener {
    /// Binds `addr`. A unix socket replaces a stale socket file (refused if
    /// a daemon answers on it, or if the path is not a socket) and is made mode 0660.
    pub async fn bind(addr: &ListenAddr) -> Result<Listener, ListenError> {
        Self::bind_with(addr, None).await
    }

    /// [`Listener::bind`], serving a TCP address over TLS with `tls` when given.
    pub async fn bind_with(
        addr: &ListenAddr,
        tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Result<Listener, ListenError> {
        let bind_err = |source| ListenError::Bind { addr: addr.to_string(), source };
        match addr {
            ListenAddr::Unix(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if !meta.file_type().is_socket() {
                        return Err(ListenError::NotASocket(path.clone()));
                    }
                    if tokio::net::UnixStream::connect(path).await.is_ok() {
                        return Err(ListenError::InUse(path.clone()));
                    }
                    std::fs::remove_file(path).map_err(bind_err)?;
                }
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(bind_err)?;
                }
                let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
                Ok(Listener::Unix { listener, path: path.clone() })
            }
            ListenAddr::Tcp(a) => {
                let listener = tokio::net::TcpListener::bind(a).await.map_err(bind_err)?;
                match tls {
                    Some(config) => {
                        Ok(Listener::Tls(crate::tls::TlsListener::new(listener, config).map_err(bind_err)?))
                    }
                    None => {
                        tracing::warn!(address = %a, "listening on TCP without TLS: anyone who can connect controls the host's networking");
                        let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
                        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
                        Ok(Listener::Tcp { listener, host })
                    }
                }
            }
        }
    }

    /// The path of a unix socket.
    pub fn socket_path(&self) -> Option<&Path> {
        match self {
            Listener::Unix { path, .. } => Some(path),
            Listener::Tcp { .. } | Listener::Tls(_) => None,
        }
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp { listener, .. } => listener.local_addr().ok(),
            Listener::Tls(l) => l.local_addr().ok(),
            Listener::Unix { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "unix:///run/cnm/cnmd.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/run/cnm/cnmd.sock".into())
        );
        assert_eq!("tcp://0.0.0.0:2375".parse::<ListenAddr>().unwrap(), ListenAddr::Tcp("0.0.0.0:2375".into()));
        assert_eq!("tcp://:2375".parse::<ListenAddr>().unwrap(), ListenAddr::Tcp("127.0.0.1:2375".into()));
        for bad in ["unix://relative", "http://x:1", "tcp://host", "fd://"] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_file_at_the_socket_path_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cnmd.sock");
        std::fs::write(&path, "precious").unwrap();
        let Err(e) = Listener::bind(&ListenAddr::Unix(path.clone())).await else { panic!("a file was replaced") };
        assert!(matches!(e, ListenError::NotASocket(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious", "not deleted");
    }
}
