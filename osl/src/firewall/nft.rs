//! The first firewall backend: nftables text scripts fed to `nft -f -`
//! (Debian package `nftables`), each one atomic transaction, run from a
//! thread inside the host namespace.

use super::elements::{Element, ElementOp, ElementSocket, key};
use super::{Firewall, NetworkRules, PortMapping};
use crate::{Error, Namespace, Result};
use async_trait::async_trait;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// The table cnm owns.
pub const TABLE: &str = "cnm";

/// nftables: the table created with the `nft` command, its elements (every
/// network and port change) over netlink.
#[derive(Debug, Clone)]
pub struct NftFirewall {
    ns: Namespace,
    socket: Arc<tokio::sync::OnceCell<Arc<ElementSocket>>>,
}

impl NftFirewall {
    /// A firewall working in namespace `ns` (the controller's host).
    pub fn new(ns: Namespace) -> Self {
        NftFirewall { ns, socket: Arc::new(tokio::sync::OnceCell::new()) }
    }

    /// Applies element operations as one batch, off the async threads.
    async fn apply(&self, ops: Vec<ElementOp>) -> Result<()> {
        let sock = self
            .socket
            .get_or_try_init(|| async {
                ElementSocket::open(&self.ns, TABLE, crate::DEFAULT_DEADLINE).await.map(Arc::new)
            })
            .await?
            .clone();
        tokio::task::spawn_blocking(move || sock.apply(&ops))
            .await
            .map_err(|_| Error::Invalid("the nf_tables batch task panicked".into()))?
    }

    async fn run(&self, what: &'static str, script: String) -> Result<()> {
        if script.is_empty() {
            return Ok(());
        }
        self.ns.run(move || run_nft(what, &script)).await?
    }
}

fn run_nft(what: &'static str, script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Unsupported("the nft command is missing (install the nftables package)".into())
            } else {
                Error::io("run nft", "nft", e)
            }
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| Error::io("write to nft", "nft", e))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::io("wait for nft", "nft", e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().find(|l| l.contains("Error")).unwrap_or(stderr.trim());
    Err(Error::Netlink { op: format!("nft: {what}"), errno: None, message: first.to_string() })
}

/// The table, sets, maps and chains, and the constant rules.
pub(crate) fn base_script() -> String {
    let t = format!("inet {TABLE}");
    let mut s = String::new();
    let _ = writeln!(s, "add table {t}");
    for (set, ty) in [
        ("bridges", "type ifname;"),
        ("internal", "type ifname;"),
        ("icc_same", "type ifname . ifname;"),
        ("hairpin4", "type ifname . ipv4_addr; flags interval;"),
        ("hairpin6", "type ifname . ipv6_addr; flags interval;"),
        ("masq", "type ifname;"),
    ] {
        let _ = writeln!(s, "add set {t} {set} {{ {ty} }}");
    }
    // Single ports in hash maps (constant-time updates at any size); ranges
    // of host ports, one element each, in interval maps.
    for (map, key, value, flags) in [
        ("ports4", "inet_proto . ipv4_addr . inet_service", "ipv4_addr . inet_service", ""),
        ("ports4_any", "inet_proto . inet_service", "ipv4_addr . inet_service", ""),
        ("ports6", "inet_proto . ipv6_addr . inet_service", "ipv6_addr . inet_service", ""),
        ("ports6_any", "inet_proto . inet_service", "ipv6_addr . inet_service", ""),
        ("ranges4", "inet_proto . ipv4_addr . inet_service", "ipv4_addr . inet_service", " flags interval;"),
        ("ranges4_any", "inet_proto . inet_service", "ipv4_addr . inet_service", " flags interval;"),
        ("ranges6", "inet_proto . ipv6_addr . inet_service", "ipv6_addr . inet_service", " flags interval;"),
        ("ranges6_any", "inet_proto . inet_service", "ipv6_addr . inet_service", " flags interval;"),
    ] {
        let _ = writeln!(s, "add map {t} {map} {{ type {key} : {value};{flags} }}");
    }
    // The user chain: created once, never flushed.
    let _ = writeln!(s, "add chain {t} user");
    for (chain, spec) in [
        ("forward", "type filter hook forward priority filter; policy accept;"),
        ("prerouting", "type nat hook prerouting priority dstnat; policy accept;"),
        ("output", "type nat hook output priority -100; policy accept;"),
        ("postrouting", "type nat hook postrouting priority srcnat; policy accept;"),
    ] {
        let _ = writeln!(s, "add chain {t} {chain} {{ {spec} }}");
        let _ = writeln!(s, "flush chain {t} {chain}");
    }
    for rule in [
        "jump user",
        // Traffic within a network that allows ICC: routed through the host,
        // or bridged when br_netfilter makes bridged frames pass this hook.
        "iifname . oifname @icc_same accept",
        // Internal networks: nothing in or out.
        "iifname @internal drop",
        "oifname @internal drop",
        "oifname @bridges ct state established,related accept",
        // Published ports, from anywhere (hairpin included).
        "oifname @bridges ct status dnat accept",
        // Isolation between networks, and ICC off within one.
        "iifname @bridges oifname @bridges drop",
        // Nothing unsolicited from outside reaches a container.
        "oifname @bridges drop",
    ] {
        let _ = writeln!(s, "add rule {t} forward {rule}");
    }
    for chain in ["prerouting", "output"] {
        for (family, map) in [
            ("ip", "ports4"),
            ("ip", "ports4_any"),
            ("ip", "ranges4"),
            ("ip", "ranges4_any"),
            ("ip6", "ports6"),
            ("ip6", "ports6_any"),
            ("ip6", "ranges6"),
            ("ip6", "ranges6_any"),
        ] {
            let key = if map.ends_with("_any") {
                "meta l4proto . th dport".to_string()
            } else {
                format!("meta l4proto . {family} daddr . th dport")
            };
            let _ = writeln!(
                s,
                "add rule {t} {chain} meta l4proto {{ tcp, udp, sctp }} fib daddr type local dnat {family} to {key} map @{map}"
            );
        }
    }
    for rule in [
        // The host reaching a published port through localhost (route_localnet on the bridge).
        "oifname @bridges ip saddr 127.0.0.0/8 masquerade",
        // A container reaching a published port of its own network through
        // the host (by output bridge and source subnet: with br_netfilter,
        // bridged packets have no input device here).
        "oifname . ip saddr @hairpin4 ct status dnat masquerade",
        "oifname . ip6 saddr @hairpin6 ct status dnat masquerade",
        // Outbound IPv4 from networks that masquerade (as Docker, IPv6 is routed).
        "meta nfproto ipv4 iifname @masq oifname != @bridges masquerade",
    ] {
        let _ = writeln!(s, "add rule {t} postrouting {rule}");
    }
    s
}

/// A network's set elements.
fn network_elements(net: &NetworkRules) -> Vec<(&'static str, Element)> {
    let plain = |k: Vec<u8>| Element { key: k, key_end: None, data: None };
    let br = key::ifname(&net.bridge);
    let mut v = vec![("bridges", plain(br.clone()))];
    for s in &net.subnets_v4 {
        let (lo, hi) = (IpAddr::V4(s.network()), IpAddr::V4(s.broadcast()));
        let e = Element {
            key: key::concat(&[br.clone(), key::addr(lo)]),
            key_end: Some(key::concat(&[br.clone(), key::addr(hi)])),
            data: None,
        };
        v.push(("hairpin4", e));
    }
    for s in &net.subnets_v6 {
        let (lo, hi) = (IpAddr::V6(s.network()), IpAddr::V6(s.broadcast()));
        let e = Element {
            key: key::concat(&[br.clone(), key::addr(lo)]),
            key_end: Some(key::concat(&[br.clone(), key::addr(hi)])),
            data: None,
        };
        v.push(("hairpin6", e));
    }
    if net.internal {
        v.push(("internal", plain(br.clone())));
    }
    if net.icc {
        v.push(("icc_same", plain(key::concat(&[br.clone(), br.clone()]))));
    }
    if net.masquerade && !net.internal {
        v.push(("masq", plain(br)));
    }
    v
}

/// A port mapping's map and element.
fn port_element(p: &PortMapping) -> (&'static str, Element) {
    let proto = key::proto(match p.proto {
        super::Proto::Tcp => 6,
        super::Proto::Udp => 17,
        super::Proto::Sctp => 132,
    });
    let with_port = |port: u16| match p.host_ip {
        Some(ip) => key::concat(&[proto.clone(), key::addr(ip), key::port(port)]),
        None => key::concat(&[proto.clone(), key::port(port)]),
    };
    let range = p.host_port_end > p.host_port;
    let map = match (p.container_ip.is_ipv6(), p.host_ip.is_some(), range) {
        (false, true, false) => "ports4",
        (false, false, false) => "ports4_any",
        (true, true, false) => "ports6",
        (true, false, false) => "ports6_any",
        (false, true, true) => "ranges4",
        (false, false, true) => "ranges4_any",
        (true, true, true) => "ranges6",
        (true, false, true) => "ranges6_any",
    };
    let e = Element {
        key: with_port(p.host_port),
        key_end: range.then(|| with_port(p.host_port_end)),
        data: Some(key::concat(&[key::addr(p.container_ip), key::port(p.container_port)])),
    };
    (map, e)
}

/// Groups elements by set into operations; a removal first adds them (a
/// no-op for existing ones) so that deleting never fails on a missing one.
fn ops(elements: Vec<(&'static str, Element)>, remove: bool) -> Vec<ElementOp> {
    let mut by_set: Vec<(&'static str, Vec<Element>)> = Vec::new();
    for (set, e) in elements {
        match by_set.iter_mut().find(|(s, _)| *s == set) {
            Some((_, v)) => v.push(e),
            None => by_set.push((set, vec![e])),
        }
    }
    let mut out: Vec<ElementOp> =
        by_set.iter().map(|(set, els)| ElementOp { set, elements: els.clone(), delete: false }).collect();
    if remove {
        out.extend(by_set.into_iter().map(|(set, elements)| ElementOp { set, elements, delete: true }));
    }
    out
}

/// Checks that a host address can go into the maps (not a mapped or zone-scoped form).
pub(crate) fn check_mapping(p: &PortMapping) -> Result<()> {
    if let Some(ip) = p.host_ip
        && ip.is_ipv6() != p.container_ip.is_ipv6()
    {
        return Err(Error::Invalid(format!(
            "port mapping {p:?}: host address {ip} and container address {} are of different families",
            p.container_ip
        )));
    }
    if p.host_ip.is_some_and(|ip: IpAddr| ip.is_unspecified()) {
        return Err(Error::Invalid("an unspecified host address means every address: use None".into()));
    }
    Ok(())
}

#[async_trait]
impl Firewall for NftFirewall {
    async fn ensure_base(&self) -> Result<()> {
        self.run("create table", base_script()).await
    }

    async fn add_network(&self, net: &NetworkRules) -> Result<()> {
        self.apply(ops(network_elements(net), false)).await
    }

    async fn remove_network(&self, net: &NetworkRules) -> Result<()> {
        self.apply(ops(network_elements(net), true)).await
    }

    async fn add_ports(&self, ports: &[PortMapping]) -> Result<()> {
        for p in ports {
            check_mapping(p)?;
        }
        self.apply(ops(ports.iter().map(port_element).collect(), false)).await
    }

    async fn remove_ports(&self, ports: &[PortMapping]) -> Result<()> {
        self.apply(ops(ports.iter().map(port_element).collect(), true)).await
    }

    async fn remove_all(&self) -> Result<()> {
        self.run("remove table", format!("add table inet {TABLE}\ndelete table inet {TABLE}\n")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Proto;

    #[test]
    fn base_has_constant_rules_and_keeps_the_user_chain() {
        let s = base_script();
        assert!(s.contains("add chain inet cnm user\n"));
        assert!(!s.contains("flush chain inet cnm user"));
        assert!(s.lines().next().is_some_and(|l| l == "add table inet cnm"));
    }

    #[test]
    fn network_elements_follow_the_options() {
        let net = NetworkRules {
            bridge: "br-1".into(),
            subnets_v4: vec!["172.18.0.0/16".parse().unwrap()],
            subnets_v6: vec![],
            masquerade: true,
            internal: false,
            icc: false,
        };
        let sets: Vec<&str> = network_elements(&net).into_iter().map(|(s, _)| s).collect();
        assert_eq!(sets, vec!["bridges", "hairpin4", "masq"], "ICC off: no icc element");
        let hairpin = network_elements(&net).remove(1).1;
        assert_eq!(&hairpin.key[16..], &[172, 18, 0, 0]);
        assert_eq!(&hairpin.key_end.unwrap()[16..], &[172, 18, 255, 255]);
        let internal = NetworkRules { internal: true, icc: true, ..net };
        let sets: Vec<&str> = network_elements(&internal).into_iter().map(|(s, _)| s).collect();
        assert_eq!(
            sets,
            vec!["bridges", "hairpin4", "internal", "icc_same"],
            "internal networks are never masqueraded"
        );
        let removal = ops(network_elements(&internal), true);
        assert_eq!(removal.len(), 8, "each set added then deleted");
        assert!(removal[..4].iter().all(|o| !o.delete) && removal[4..].iter().all(|o| o.delete));
    }

    #[test]
    fn port_elements_pick_the_map_by_family_and_address() {
        let p = PortMapping {
            proto: Proto::Udp,
            host_ip: None,
            host_port: 8053,
            host_port_end: 8053,
            container_ip: "172.18.0.2".parse().unwrap(),
            container_port: 53,
        };
        let (map, e) = port_element(&p);
        assert_eq!(map, "ports4_any");
        assert_eq!(e.key, vec![17, 0, 0, 0, 0x1f, 0x75, 0, 0]);
        assert_eq!(e.key_end, None);
        assert_eq!(e.data.unwrap(), vec![172, 18, 0, 2, 0, 53, 0, 0]);
        let range = PortMapping { host_ip: Some("127.0.0.1".parse().unwrap()), host_port_end: 8060, ..p };
        let (map, e) = port_element(&range);
        assert_eq!(map, "ranges4");
        assert_eq!(e.key_end.unwrap(), vec![17, 0, 0, 0, 127, 0, 0, 1, 0x1f, 0x7c, 0, 0]);
    }
}
