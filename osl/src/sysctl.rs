//! Sysctls of a namespace (`/proc/sys/net/...`), read and written from a thread inside it.

use crate::{Error, Namespace, Result};
use std::path::PathBuf;

fn sysctl_path(key: &str) -> Result<PathBuf> {
    if key.is_empty() || key.contains("..") || key.starts_with('/') {
        return Err(Error::Invalid(format!("invalid sysctl key {key:?}")));
    }
    Ok(PathBuf::from("/proc/sys").join(key))
}

impl Namespace {
    /// Writes a sysctl of this namespace; `key` is slash-separated (`net/ipv4/ip_forward`),
    /// so interface names with dots need no escaping.
    pub async fn sysctl_set(&self, key: &str, value: &str) -> Result<()> {
        let path = sysctl_path(key)?;
        let value = value.to_string();
        self.run(move || std::fs::write(&path, value.as_bytes()).map_err(|e| Error::io("write sysctl", path, e)))
            .await?
    }

    /// Reads a sysctl of this namespace (trimmed).
    pub async fn sysctl_get(&self, key: &str) -> Result<String> {
        let path = sysctl_path(key)?;
        self.run(move || {
            std::fs::read_to_string(&path).map(|s| s.trim().to_string()).map_err(|e| Error::io("read sysctl", path, e))
        })
        .await?
    }
}

impl Namespace {
    /// Sets several sysctls from one thread inside the namespace, each only
    /// if it differs; returns the ones it changed, with their old values.
    pub async fn sysctl_ensure(&self, settings: Vec<(String, String)>) -> Result<Vec<(String, String)>> {
        let paths = settings.iter().map(|(k, _)| sysctl_path(k)).collect::<Result<Vec<_>>>()?;
        self.run(move || {
            let mut changed = Vec::new();
            for ((key, value), path) in settings.into_iter().zip(paths) {
                let current = std::fs::read_to_string(&path).map_err(|e| Error::io("read sysctl", &path, e))?;
                if current.trim() != value {
                    std::fs::write(&path, value.as_bytes()).map_err(|e| Error::io("write sysctl", &path, e))?;
                    changed.push((key, current.trim().to_string()));
                }
            }
            Ok(changed)
        })
        .await?
    }
}
