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

/// br_netfilter's switches that pass bridged frames to the IP, IPv6 and ARP hooks.
const BRIDGE_NETFILTER_CALLS: [&str; 3] = [
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
];

impl Namespace {
    /// Stops br_netfilter from passing this namespace's bridged frames to
    /// the IP, IPv6 and ARP hooks (the switches are per namespace and on in
    /// a new one once the module is loaded). For a namespace whose bridges
    /// no rule filters, this saves a pass through netfilter per frame.
    /// Returns whether the module was loaded (without it there is nothing to
    /// turn off).
    pub async fn bridge_netfilter_off(&self) -> Result<bool> {
        // The module, once loaded, has its switches in every namespace: where
        // the calling thread's has none, it is not loaded, and there is no
        // need to enter `self` (a thread and two setns) to find that out.
        if !std::path::Path::new("/proc/sys/net/bridge").exists() {
            return Ok(false);
        }
        self.run(|| {
            let mut loaded = false;
            for key in BRIDGE_NETFILTER_CALLS {
                let path = PathBuf::from("/proc/sys").join(key);
                match std::fs::read_to_string(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("read sysctl", path, e)),
                    Ok(v) if v.trim() == "0" => loaded = true,
                    Ok(_) => {
                        loaded = true;
                        std::fs::write(&path, b"0").map_err(|e| Error::io("write sysctl", &path, e))?;
                    }
                }
            }
            Ok(loaded)
        })
        .await?
    }
}
