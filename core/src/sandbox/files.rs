//! The sandbox's `/etc/hosts` and `resolv.conf`, written under the data
//! directory and rewritten in place (bind mounts keep seeing the same file)
//! as endpoints join and leave.

use crate::state::State;
use crate::{Config, Error, Result, SandboxConfig};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The directory of a sandbox's files.
pub(crate) fn sandbox_dir(config: &Config, id: &str) -> PathBuf {
    config.data_dir.join("sandboxes").join(id)
}

/// The `/etc/hosts` of a sandbox: the standard entries, the user's extra
/// hosts, then one line per address of a joined endpoint.
pub fn hosts_content(cfg: &SandboxConfig, own: &[(IpAddr, Vec<String>)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for h in &cfg.extra_hosts {
        let _ = writeln!(s, "{}\t{}", h.ip, h.name);
    }
    for (ip, names) in own {
        if !names.is_empty() {
            let _ = writeln!(s, "{ip}\t{}", names.join(" "));
        }
    }
    s
}

/// The parts of a `resolv.conf` that matter here.
struct ResolvConf {
    servers: Vec<IpAddr>,
    search: Vec<String>,
    options: Vec<String>,
}

fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut rc = ResolvConf { servers: Vec::new(), search: Vec::new(), options: Vec::new() };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.split('%').next()?.parse::<IpAddr>().ok()) {
                    rc.servers.push(ip);
                }
            }
            Some("search") | Some("domain") => rc.search = words.map(str::to_string).collect(),
            Some("options") => rc.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    rc
}

/// Docker's fallback when the host has no usable nameserver.
fn fallback_servers(ipv6: bool) -> Vec<IpAddr> {
    let mut servers = vec![IpAddr::from([8, 8, 8, 8]), IpAddr::from([8, 8, 4, 4])];
    if ipv6 {
        servers.push(IpAddr::from([0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888]));
        servers.push(IpAddr::from([0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844]));
    }
    servers
}

/// The servers the embedded resolver of a sandbox forwards to: the user's
/// (`dns`), else the host's, loopback ones included (the resolver reaches
/// them from the host's namespace), else Docker's fallback.
pub(crate) fn upstreams(host: &str, cfg: &SandboxConfig) -> Vec<IpAddr> {
    if !cfg.dns.is_empty() {
        return cfg.dns.clone();
    }
    let servers = parse_resolv_conf(host).servers;
    if servers.is_empty() { fallback_servers(false) } else { servers }
}

/// The `resolv.conf` of a sandbox, derived from the host's: loopback
/// nameservers dropped (they mean nothing inside the sandbox), IPv6 ones kept
/// only when the sandbox has IPv6; the user's servers, search domains and
/// options replace the host's; `ndots:0` unless the user set `ndots`.
/// With the embedded resolver (`embedded`), the only nameserver is
/// 127.0.0.11, and the servers it forwards to are listed in a comment.
pub fn resolv_conf_content(host: &str, cfg: &SandboxConfig, ipv6: bool, embedded: bool) -> String {
    let ResolvConf { mut servers, mut search, mut options } = parse_resolv_conf(host);
    servers.retain(|ip| !ip.is_loopback() && (ipv6 || ip.is_ipv4()));
    if !cfg.dns.is_empty() {
        servers = cfg.dns.clone();
    }
    if servers.is_empty() {
        servers = fallback_servers(ipv6);
    }
    if !cfg.dns_search.is_empty() {
        search = cfg.dns_search.iter().filter(|d| d.as_str() != ".").cloned().collect();
    }
    if !cfg.dns_options.is_empty() {
        options = cfg.dns_options.clone();
    }
    if !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".to_string());
    }
    let mut s = String::new();
    if embedded {
        let _ = writeln!(s, "nameserver {}", cnm_dns::RESOLVER_ADDR.ip());
    } else {
        for ip in &servers {
            let _ = writeln!(s, "nameserver {ip}");
        }
    }
    if !search.is_empty() {
        let _ = writeln!(s, "search {}", search.join(" "));
    }
    let _ = writeln!(s, "options {}", options.join(" "));
    if embedded {
        let ups: Vec<String> = upstreams(host, cfg).iter().map(IpAddr::to_string).collect();
        let _ = writeln!(s, "# Upstream servers of the embedded resolver: {}", ups.join(" "));
    }
    s
}

fn write_in_place(path: &Path, content: &str) -> Result<()> {
    std::fs::write(path, content).map_err(|e| Error::io("write", path, e))
}

/// What a sandbox's files are made of, taken from the state.
pub(crate) struct FileInputs {
    cfg: SandboxConfig,
    own: Vec<(IpAddr, Vec<String>)>,
    ipv6: bool,
    /// The sandbox's embedded DNS server runs.
    pub embedded_dns: bool,
}

/// The inputs of sandbox `id`'s files (`None`: no such sandbox).
pub(crate) fn inputs(st: &State, id: &str) -> Option<FileInputs> {
    let sb = st.sandboxes.get(id)?;
    let joined = st.endpoints.values().filter(|e| e.join.as_ref().is_some_and(|j| j.sandbox_id == id));
    Some(inputs_of(&sb.rec.config, joined))
}

/// The inputs of the files of a sandbox with configuration `cfg` and these joined endpoints.
pub(crate) fn inputs_of<'a>(
    cfg: &SandboxConfig,
    joined: impl Iterator<Item = &'a crate::model::EndpointRecord>,
) -> FileInputs {
    let mut own = Vec::new();
    let mut ipv6 = false;
    for ep in joined {
        let mut names = Vec::new();
        if !cfg.hostname.is_empty() {
            if !cfg.domainname.is_empty() {
                names.push(format!("{}.{}", cfg.hostname, cfg.domainname));
            }
            names.push(cfg.hostname.clone());
        }
        names.extend(ep.config.aliases.iter().cloned());
        for a in ep.ipv4.iter().chain(ep.ipv6.iter()) {
            ipv6 |= a.addr().is_ipv6();
            own.push((a.addr(), names.clone()));
        }
    }
    own.sort_by_key(|(ip, _)| *ip);
    FileInputs { cfg: cfg.clone(), own, ipv6, embedded_dns: false }
}

/// Writes both files of sandbox `id` (no lock held: plain file I/O).
pub(crate) fn write(config: &Config, id: &str, inputs: &FileInputs) -> Result<()> {
    let dir = sandbox_dir(config, id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    write_in_place(&dir.join("hosts"), &hosts_content(&inputs.cfg, &inputs.own))?;
    let host = std::fs::read_to_string(&config.host_resolv_conf).unwrap_or_default();
    write_in_place(&dir.join("resolv.conf"), &resolv_conf_content(&host, &inputs.cfg, inputs.ipv6, inputs.embedded_dns))
}

impl crate::Controller {
    /// Rewrites both files of sandbox `id` from the current state.
    pub(crate) fn refresh_files(&self, id: &str) -> Result<()> {
        let Some(mut inputs) = inputs(&self.st(), id) else { return Ok(()) };
        inputs.embedded_dns = self.dns_running(id);
        write(&self.inner.config, id, &inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_and_adds_ndots() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver fd00::1\nsearch example.com\noptions edns0\n";
        let out = resolv_conf_content(host, &SandboxConfig::default(), false, false);
        assert_eq!(out, "nameserver 10.1.2.3\nsearch example.com\noptions edns0 ndots:0\n");
        let out6 = resolv_conf_content(host, &SandboxConfig::default(), true, false);
        assert!(out6.contains("nameserver fd00::1\n"));
    }

    #[test]
    fn resolv_conf_defaults_and_user_overrides() {
        let out = resolv_conf_content("nameserver 127.0.0.1\n", &SandboxConfig::default(), false, false);
        assert!(out.starts_with("nameserver 8.8.8.8\nnameserver 8.8.4.4\n"), "{out}");
        let cfg = SandboxConfig {
            dns: vec!["9.9.9.9".parse().unwrap()],
            dns_search: vec!["corp".into()],
            dns_options: vec!["ndots:3".into()],
            ..Default::default()
        };
        let out = resolv_conf_content("nameserver 10.0.0.1\nsearch a\n", &cfg, false, false);
        assert_eq!(out, "nameserver 9.9.9.9\nsearch corp\noptions ndots:3\n");
    }

    #[test]
    fn embedded_resolver_replaces_the_nameservers() {
        let host = "nameserver 127.0.0.53\nsearch example.com\n";
        let out = resolv_conf_content(host, &SandboxConfig::default(), false, true);
        assert_eq!(
            out,
            "nameserver 127.0.0.11\nsearch example.com\noptions ndots:0\n# Upstream servers of the embedded resolver: 127.0.0.53\n"
        );
        let cfg = SandboxConfig { dns: vec!["10.9.9.9".parse().unwrap()], ..Default::default() };
        assert_eq!(upstreams(host, &cfg), vec!["10.9.9.9".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn hosts_lists_extra_hosts_and_own_names() {
        let cfg = SandboxConfig {
            extra_hosts: vec![crate::ExtraHost { name: "db".into(), ip: "10.9.9.9".parse().unwrap() }],
            ..Default::default()
        };
        let out = hosts_content(&cfg, &[("172.18.0.2".parse().unwrap(), vec!["test.docker.io".into(), "test".into()])]);
        assert!(out.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(out.contains("10.9.9.9\tdb\n"));
        assert!(out.ends_with("172.18.0.2\ttest.docker.io test\n"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::ExtraHost;
    use proptest::prelude::*;

    /// Strings of every kind: mostly names, sometimes with white space and
    /// control characters anywhere.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            19 => "[a-z0-9.:-]{0,10}",
            1 => proptest::string::string_regex("[ -~\\t\\n\\r\\x00\\x0b\\x0c\\x1b\\u{85}\\u{2028}é]{0,12}").expect("regex"),
        ]
    }

    proptest! {
        /// Whatever the user and the host's resolv.conf say, a configuration
        /// that passes validation renders files whose lines are only the
        /// ones cnm writes: no value adds or splits a line.
        #[test]
        fn accepted_values_never_add_lines(
            hostname in text(),
            domainname in text(),
            search in proptest::collection::vec(text(), 0..3),
            options in proptest::collection::vec(text(), 0..3),
            extra in proptest::collection::vec(text(), 0..3),
            host in text(),
            embedded in any::<bool>(),
        ) {
            let cfg = SandboxConfig {
                hostname,
                domainname,
                dns_search: search,
                dns_options: options,
                extra_hosts: extra.into_iter().map(|name| ExtraHost { name, ip: "10.0.0.1".parse().unwrap() }).collect(),
                ..Default::default()
            };
            prop_assume!(cfg.validate().is_ok());
            let hosts = hosts_content(&cfg, &[]);
            prop_assert_eq!(hosts.lines().count(), 6 + cfg.extra_hosts.len());
            for line in hosts.lines() {
                prop_assert!(line.split_whitespace().count() >= 2, "a hosts line without a name: {:?}", line);
                prop_assert!(!line.chars().any(|c| c.is_control() && c != '\t'), "a control character: {:?}", line);
            }
            let rc = resolv_conf_content(&host, &cfg, false, embedded);
            for line in rc.lines() {
                let first = line.split_whitespace().next().unwrap_or_default();
                prop_assert!(
                    ["nameserver", "search", "options", "#"].contains(&first),
                    "a line cnm does not write: {:?}", line
                );
            }
            prop_assert_eq!(rc.lines().filter(|l| l.starts_with("options")).count(), 1);
        }
    }
}
