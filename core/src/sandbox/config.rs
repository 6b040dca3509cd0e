//! What users ask a sandbox to be: [`SandboxConfig`] (with its extra
//! `/etc/hosts` entries) and the checks of what goes into its files. Plain
//! data, below the records that keep it.

use cnm_driverapi::{PortBinding, TransportPort};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// A static `/etc/hosts` entry (`--add-host name:ip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    /// The host name.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

/// What a new sandbox should be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// The container's host name.
    pub hostname: String,
    /// The container's domain name.
    pub domainname: String,
    /// DNS servers; they replace the host's.
    pub dns: Vec<IpAddr>,
    /// DNS search domains; they replace the host's.
    pub dns_search: Vec<String>,
    /// Resolver options; they replace the host's.
    pub dns_options: Vec<String>,
    /// Extra `/etc/hosts` entries.
    pub extra_hosts: Vec<ExtraHost>,
    /// Share the host's namespace instead of getting one (for the `host` network).
    pub use_host_namespace: bool,
    /// An existing network namespace to use, made by a container runtime
    /// (`/proc/<pid>/ns/net`, or a bind mount of it): cnm moves interfaces
    /// in and out but never removes it. A controller that restarts after it
    /// is gone (the container exited) removes the sandbox and its endpoints.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// Exposed ports (`--expose`).
    pub exposed_ports: Vec<TransportPort>,
    /// Published ports (`-p`).
    pub port_bindings: Vec<PortBinding>,
    /// The container runtime holds the published host ports open itself
    /// (podman does, before it asks a CNI plugin): they are mapped without
    /// being reserved again, which would fail.
    #[serde(default)]
    pub host_ports_held: bool,
}

/// Refuses a value that goes into `/etc/hosts` or `resolv.conf` if it would
/// break the file's lines: control characters (a newline would add a line of
/// the caller's choosing) and, for names, white space.
pub(crate) fn check_file_value(field: &str, value: &str, spaces_allowed: bool) -> crate::Result<()> {
    if let Some(c) = value.chars().find(|c| c.is_control() || (!spaces_allowed && c.is_whitespace())) {
        return Err(crate::Error::InvalidParameter(format!(
            "invalid {field} {value:?}: {} is not allowed in /etc/hosts or resolv.conf",
            if c.is_control() { format!("control character {:?}", c) } else { "white space".to_string() }
        )));
    }
    Ok(())
}

impl SandboxConfig {
    /// Checks every value that goes into the sandbox's `/etc/hosts` and `resolv.conf`.
    pub fn validate(&self) -> crate::Result<()> {
        check_file_value("hostname", &self.hostname, false)?;
        check_file_value("domain name", &self.domainname, false)?;
        for s in &self.dns_search {
            check_file_value("search domain", s, false)?;
        }
        for o in &self.dns_options {
            check_file_value("DNS option", o, false)?;
        }
        for h in &self.extra_hosts {
            if h.name.is_empty() {
                return Err(crate::Error::InvalidParameter(format!("extra host {}: the name is empty", h.ip)));
            }
            check_file_value("extra host name", &h.name, false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod file_value_tests {
    use super::*;

    #[test]
    fn values_that_would_break_hosts_or_resolv_conf_are_refused() {
        let ok = SandboxConfig { hostname: "web-1".into(), dns_options: vec!["ndots:2".into()], ..Default::default() };
        assert!(ok.validate().is_ok());
        let cases = [
            SandboxConfig { hostname: "a\n10.0.0.1 bank".into(), ..Default::default() },
            SandboxConfig { domainname: "x\ry".into(), ..Default::default() },
            SandboxConfig { dns_search: vec!["a b".into()], ..Default::default() },
            SandboxConfig { dns_options: vec!["ndots:1\nnameserver 6.6.6.6".into()], ..Default::default() },
            SandboxConfig {
                extra_hosts: vec![ExtraHost { name: "h\0".into(), ip: "10.0.0.1".parse().unwrap() }],
                ..Default::default()
            },
        ];
        for c in cases {
            let e = c.validate().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidParameter, "{e}");
        }
    }
}
