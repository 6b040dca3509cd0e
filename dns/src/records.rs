//! The names the resolver answers for: an immutable snapshot, rebuilt by the
//! control path on every change and swapped in whole, so queries never wait
//! for a writer.
//!
//! A name resolves only for sandboxes that share a network with its owner:
//! the snapshot keeps, per network, its names and the reverse (PTR) map,
//! and per sandbox the networks it is on.

use std::collections::HashMap;
use std::net::IpAddr;

/// One joined endpoint, as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The network's id.
    pub network_id: String,
    /// The network's name (`name.network` also resolves).
    pub network_name: String,
    /// The sandbox the endpoint is joined to.
    pub sandbox_id: String,
    /// The names of the endpoint: container name, host name, aliases.
    /// The first is the one PTR answers give.
    pub names: Vec<String>,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
}

/// The names of one network.
#[derive(Debug, Default)]
struct NetworkNames {
    /// The network's name, lower case.
    name: String,
    /// Lower-case name → addresses (several endpoints may share an alias).
    names: HashMap<String, Vec<IpAddr>>,
    /// Address → `primary-name.network`.
    ptr: HashMap<IpAddr, String>,
}

/// An immutable view of every name the resolver knows.
#[derive(Debug, Default)]
pub struct Records {
    networks: HashMap<String, NetworkNames>,
    /// Sandbox id → ids of its networks with DNS on.
    sandboxes: HashMap<String, Vec<String>>,
}

/// What a name lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name is internal: its addresses (possibly none of the asked family).
    Internal(Vec<IpAddr>),
    /// Not a name of the sandbox's networks.
    External,
}

impl Records {
    /// Builds a snapshot from the joined endpoints.
    pub fn new(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut r = Records::default();
        for e in entries {
            let net = r.networks.entry(e.network_id.clone()).or_default();
            net.name = e.network_name.to_ascii_lowercase();
            for name in &e.names {
                let key = normalize(name);
                if key.is_empty() {
                    continue;
                }
                let addrs = net.names.entry(key).or_default();
                for a in &e.addrs {
                    if !addrs.contains(a) {
                        addrs.push(*a);
                    }
                }
            }
            if let Some(primary) = e.names.first().map(|n| normalize(n)).filter(|n| !n.is_empty()) {
                for a in &e.addrs {
                    net.ptr.entry(*a).or_insert_with(|| format!("{primary}.{}", e.network_name.to_ascii_lowercase()));
                }
            }
            let nets = r.sandboxes.entry(e.sandbox_id).or_default();
            if !nets.contains(&e.network_id) {
                nets.push(e.network_id);
            }
        }
        r
    }

    /// Whether `sandbox` is on any network with DNS on.
    pub fn has_sandbox(&self, sandbox: &str) -> bool {
        self.sandboxes.contains_key(sandbox)
    }

    /// Looks `name` (any case, with or without the final dot) up for `sandbox`:
    /// as a name of one of its networks, or as `name.network`.
    pub fn lookup(&self, sandbox: &str, name: &str) -> Lookup {
        let Some(nets) = self.sandboxes.get(sandbox) else { return Lookup::External };
        // Most names come lower case without the final dot: no copy then.
        let key: std::borrow::Cow<'_, str> = if name.ends_with('.') || name.bytes().any(|b| b.is_ascii_uppercase()) {
            normalize(name).into()
        } else {
            name.into()
        };
        let key = key.as_ref();
        let mut found: Option<Vec<IpAddr>> = None;
        for net in nets.iter().filter_map(|id| self.networks.get(id)) {
            let hit = net.names.get(key).or_else(|| {
                let short = key.strip_suffix(&net.name)?.strip_suffix('.')?;
                net.names.get(short)
            });
            if let Some(addrs) = hit {
                let all = found.get_or_insert_with(Vec::new);
                for a in addrs {
                    if !all.contains(a) {
                        all.push(*a);
                    }
                }
            }
        }
        found.map_or(Lookup::External, Lookup::Internal)
    }

    /// The name of address `ip` on one of `sandbox`'s networks (`name.network`).
    pub fn reverse(&self, sandbox: &str, ip: IpAddr) -> Option<&str> {
        let nets = self.sandboxes.get(sandbox)?;
        nets.iter().filter_map(|id| self.networks.get(id)).find_map(|n| n.ptr.get(&ip)).map(String::as_str)
    }
}

/// Lower case, without the final dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(net: &str, sb: &str, names: &[&str], ip: &str) -> Entry {
        Entry {
            network_id: format!("id-{net}"),
            network_name: net.to_string(),
            sandbox_id: sb.to_string(),
            names: names.iter().map(|s| s.to_string()).collect(),
            addrs: vec![ip.parse().unwrap()],
        }
    }

    #[test]
    fn names_resolve_only_on_shared_networks() {
        let r = Records::new([
            entry("front", "a", &["web", "www"], "10.0.0.2"),
            entry("front", "b", &["db"], "10.0.0.3"),
            entry("back", "c", &["cache"], "10.1.0.2"),
        ]);
        assert_eq!(r.lookup("a", "DB."), Lookup::Internal(vec!["10.0.0.3".parse().unwrap()]));
        assert_eq!(r.lookup("a", "db.front"), Lookup::Internal(vec!["10.0.0.3".parse().unwrap()]));
        assert_eq!(r.lookup("a", "cache"), Lookup::External);
        assert_eq!(r.lookup("c", "www"), Lookup::External);
        assert_eq!(r.reverse("b", "10.0.0.2".parse().unwrap()), Some("web.front"));
        assert_eq!(r.reverse("c", "10.0.0.2".parse().unwrap()), None);
    }

    #[test]
    fn a_shared_alias_has_every_address() {
        let r = Records::new([
            entry("n", "a", &["a", "svc"], "10.0.0.2"),
            entry("n", "b", &["b", "svc"], "10.0.0.3"),
            entry("n", "c", &["c", "svc"], "10.0.0.4"),
        ]);
        let Lookup::Internal(mut addrs) = r.lookup("a", "svc") else { panic!("svc is internal") };
        addrs.sort();
        assert_eq!(addrs.len(), 3);
    }
}
