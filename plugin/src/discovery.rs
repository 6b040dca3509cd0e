//! Plugin discovery: how a plugin name becomes an address, as Docker's v1
//! plugin registry does it.
//!
//! Order (first hit wins): `SOCKDIR/NAME.sock`, `SOCKDIR/NAME/NAME.sock`
//! (each must be a unix socket), then for each spec directory in turn
//! `NAME.spec`, `NAME/NAME.spec`, `NAME.json`, `NAME/NAME.json` (existence
//! is enough). `.spec` holds a URL; `.json` an object with `Addr` (and
//! `TLSConfig`). A socket therefore shadows any spec file of the same name.

use crate::{Error, Result};
use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Docker's socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/run/docker/plugins";
/// Docker's spec directories, in lookup order.
pub const DEFAULT_SPEC_DIRS: [&str; 2] = ["/etc/docker/plugins", "/usr/lib/docker/plugins"];

/// Where a plugin listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginAddress {
    /// A unix socket path.
    Unix(PathBuf),
    /// Plain HTTP over TCP to `host:port` (`tcp://` and `http://` URLs).
    Tcp(String),
}

impl PluginAddress {
    /// Parses a plugin URL: `unix:///path`, `tcp://host:port` or `http://host:port`.
    ///
    /// `https://` is refused: TLS plugins are not supported (see the crate docs).
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("unknown protocol in {url:?}: expected unix://, tcp:// or http://"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "unix" if rest.starts_with('/') => Ok(PluginAddress::Unix(PathBuf::from(rest))),
            "unix" => Err(format!("unix socket path must be absolute in {url:?}")),
            "tcp" | "http" => {
                let hostport = rest.trim_end_matches('/');
                if hostport.is_empty() || hostport.contains('/') || !hostport.contains(':') {
                    return Err(format!("expected host:port in {url:?}"));
                }
                Ok(PluginAddress::Tcp(hostport.to_string()))
            }
            "https" => Err(format!("TLS plugin addresses are not supported: {url:?}")),
            other => Err(format!("unknown protocol {other:?} in {url:?}")),
        }
    }

    /// The value of the `Host` header Docker sends: empty for unix sockets, `host:port` for TCP.
    pub fn host_header(&self) -> &str {
        match self {
            PluginAddress::Unix(_) => "",
            PluginAddress::Tcp(h) => h,
        }
    }
}

impl fmt::Display for PluginAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginAddress::Unix(p) => write!(f, "unix://{}", p.display()),
            PluginAddress::Tcp(h) => write!(f, "tcp://{h}"),
        }
    }
}

/// A plugin found on disk: its name, address and the file that told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The plugin name (from the file name, never from file contents).
    pub name: String,
    /// Where it listens.
    pub address: PluginAddress,
    /// The socket or spec file it was found through.
    pub source: PathBuf,
}

impl PluginSpec {
    /// The spec of plugin `name` from the text of its spec file at `path`: a
    /// `.json` file holds `{"Addr": …}` (a `TLSConfig` is refused), any other
    /// file the address itself (`unix://…`, `tcp://…`, `http://…`).
    pub fn parse(name: &str, path: &Path, text: &str) -> Result<PluginSpec> {
        let invalid = |reason: String| Error::InvalidSpec { name: name.to_string(), path: path.to_path_buf(), reason };
        let url = if path.extension().is_some_and(|e| e == "json") {
            let spec: JsonSpec = crate::decode::from_slice(text.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            if spec.tls.as_ref().is_some_and(|t| !t.is_null()) {
                return Err(invalid(
                    "the spec asks for TLS (TLSConfig), which cnm does not support: refusing to talk to the plugin in plaintext"
                        .into(),
                ));
            }
            spec.addr
        } else {
            text.to_string()
        };
        let address = PluginAddress::parse(&url).map_err(invalid)?;
        Ok(PluginSpec { name: name.to_string(), address, source: path.to_path_buf() })
    }
}

/// Where plugins are looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Directories of plugin sockets (Docker: `/run/docker/plugins`).
    pub socket_dirs: Vec<PathBuf>,
    /// Directories of `.spec`/`.json` files, in lookup order.
    pub spec_dirs: Vec<PathBuf>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            socket_dirs: vec![PathBuf::from(DEFAULT_SOCKET_DIR)],
            spec_dirs: DEFAULT_SPEC_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// The JSON spec file's fields we use (`Name` is ignored, as Docker does).
#[derive(serde::Deserialize)]
struct JsonSpec {
    #[serde(rename = "Addr", default)]
    addr: String,
    /// TLS settings: a spec that has them is refused (never sent in plaintext).
    #[serde(rename = "TLSConfig", default)]
    tls: Option<serde_json::Value>,
}

fn is_socket(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Checks that a plugin name can name a file under the plugin directories.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.contains('\0') || name.starts_with('.') {
        return Err(Error::InvalidName { name: name.to_string() });
    }
    Ok(())
}

impl Discovery {
    /// A discovery rooted in one directory, used for both sockets and spec files (tests, embedding).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Discovery { socket_dirs: vec![dir.clone()], spec_dirs: vec![dir] }
    }

    /// Looks `name` up once. `Ok(None)` when no file exists for it; an error
    /// for an invalid name or an unusable spec file.
    pub fn lookup(&self, name: &str) -> Result<Option<PluginSpec>> {
        check_name(name)?;
        for dir in &self.socket_dirs {
            for p in [dir.join(format!("{name}.sock")), dir.join(name).join(format!("{name}.sock"))] {
                if is_socket(&p) {
                    return Ok(Some(PluginSpec {
                        name: name.to_string(),
                        address: PluginAddress::Unix(p.clone()),
                        source: p,
                    }));
                }
            }
        }
        for dir in &self.spec_dirs {
            let candidates = [
                dir.join(format!("{name}.spec")),
                dir.join(name).join(format!("{name}.spec")),
                dir.join(format!("{name}.json")),
                dir.join(name).join(format!("{name}.json")),
            ];
            for p in candidates {
                if p.exists() {
                    return self.read_spec(name, &p).map(Some);
                }
            }
        }
        Ok(None)
    }

    fn read_spec(&self, name: &str, path: &Path) -> Result<PluginSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::InvalidSpec {
            name: name.to_string(),
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        PluginSpec::parse(name, path, &text)
    }

    /// The names of every plugin found in the directories (no activation), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let read = |dir: &Path| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok()).map(|e| (e.file_name().to_string_lossy().to_string(), e.path())).collect()
                })
                .unwrap_or_default()
        };
        for dir in &self.socket_dirs {
            for (file, path) in read(dir) {
                if let Some(n) = file.strip_suffix(".sock")
                    && is_socket(&path)
                {
                    names.push(n.to_string());
                } else if path.is_dir() && is_socket(&path.join(format!("{file}.sock"))) {
                    names.push(file);
                }
            }
        }
        for dir in &self.spec_dirs {
            for (file, path) in read(dir) {
                if let Some(n) = file.strip_suffix(".spec").or_else(|| file.strip_suffix(".json")) {
                    names.push(n.to_string());
                } else if path.is_dir()
                    && (path.join(format!("{file}.spec")).exists() || path.join(format!("{file}.json")).exists())
                {
                    names.push(file);
                }
            }
        }
        names.retain(|n| check_name(n).is_ok());
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(PluginAddress::parse(" unix:///run/p.sock\n"), Ok(PluginAddress::Unix("/run/p.sock".into())));
        assert_eq!(PluginAddress::parse("tcp://127.0.0.1:8080"), Ok(PluginAddress::Tcp("127.0.0.1:8080".into())));
        assert_eq!(PluginAddress::parse("http://localhost:1/"), Ok(PluginAddress::Tcp("localhost:1".into())));
        assert!(PluginAddress::parse("127.0.0.1:8080").unwrap_err().contains("unknown protocol"));
        assert!(PluginAddress::parse("https://h:1").is_err());
        assert!(PluginAddress::parse("unix://relative").is_err());
        assert_eq!(PluginAddress::Tcp("h:1".into()).host_header(), "h:1");
        assert_eq!(PluginAddress::Unix("/x".into()).host_header(), "");
    }

    #[test]
    fn names_that_escape_the_directory_are_refused() {
        let d = Discovery::in_dir("/nonexistent");
        for bad in ["", "../etc", "a/b", ".hidden"] {
            assert!(matches!(d.lookup(bad), Err(Error::InvalidName { .. })), "{bad:?}");
        }
        assert_eq!(d.lookup("absent").unwrap(), None);
    }
}
