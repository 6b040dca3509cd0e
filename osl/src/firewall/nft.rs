//! The first firewall backend: nftables text scripts fed to `nft -f -`
//! (Debian package `nftables`), each one atomic transaction, run from a
//! thread inside the host namespace.

use super::{Firewall, NetworkRules, PortMapping};
use crate::{Error, Namespace, Result};
use async_trait::async_trait;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// The table cnm owns.
pub const TABLE: &str = "cnm";

/// nftables through the `nft` command.
#[derive(Debug, Clone)]
pub struct NftFirewall {
    ns: Namespace,
}

impl NftFirewall {
    /// A firewall working in namespace `ns` (the controller's host).
    pub fn new(ns: Namespace) -> Self {
        NftFirewall { ns }
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
        ("masq4", "type ipv4_addr; flags interval;"),
        ("masq6", "type ipv6_addr; flags interval;"),
    ] {
        let _ = writeln!(s, "add set {t} {set} {{ {ty} }}");
    }
    for (map, key, value) in [
        ("ports4", "inet_proto . ipv4_addr . inet_service", "ipv4_addr . inet_service"),
        ("ports4_any", "inet_proto . inet_service", "ipv4_addr . inet_service"),
        ("ports6", "inet_proto . ipv6_addr . inet_service", "ipv6_addr . inet_service"),
        ("ports6_any", "inet_proto . inet_service", "ipv6_addr . inet_service"),
    ] {
        let _ = writeln!(s, "add map {t} {map} {{ type {key} : {value}; flags interval; }}");
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
        for (family, map) in [("ip", "ports4"), ("ip", "ports4_any"), ("ip6", "ports6"), ("ip6", "ports6_any")] {
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
        "ip saddr @masq4 oifname != @bridges masquerade",
        "ip6 saddr @masq6 oifname != @bridges masquerade",
    ] {
        let _ = writeln!(s, "add rule {t} postrouting {rule}");
    }
    s
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', ""))
}

/// `add element` lines for a network (with `delete`, the same elements removed).
fn network_elements(net: &NetworkRules) -> Vec<(&'static str, String)> {
    let br = quote(&net.bridge);
    let mut v = vec![("bridges", br.clone())];
    v.extend(net.subnets_v4.iter().map(|s| ("hairpin4", format!("{br} . {}", s.trunc()))));
    v.extend(net.subnets_v6.iter().map(|s| ("hairpin6", format!("{br} . {}", s.trunc()))));
    if net.internal {
        v.push(("internal", br.clone()));
    }
    if net.icc {
        v.push(("icc_same", format!("{br} . {br}")));
    }
    if net.masquerade && !net.internal {
        v.extend(net.subnets_v4.iter().map(|s| ("masq4", s.trunc().to_string())));
        v.extend(net.subnets_v6.iter().map(|s| ("masq6", s.trunc().to_string())));
    }
    v
}

/// Adds elements, or removes them: removal first adds them (a no-op if they
/// exist) so that deleting never fails on an element that is already gone.
fn elements_script(elements: &[(&str, String)], remove: bool) -> String {
    let mut s = String::new();
    for (set, e) in elements {
        let _ = writeln!(s, "add element inet {TABLE} {set} {{ {e} }}");
    }
    if remove {
        for (set, e) in elements {
            let _ = writeln!(s, "delete element inet {TABLE} {set} {{ {e} }}");
        }
    }
    s
}

fn port_element(p: &PortMapping) -> (&'static str, String, String) {
    let ports = if p.host_port_end > p.host_port {
        format!("{}-{}", p.host_port, p.host_port_end)
    } else {
        p.host_port.to_string()
    };
    let v6 = p.container_ip.is_ipv6();
    let map = match (v6, p.host_ip.is_some()) {
        (false, true) => "ports4",
        (false, false) => "ports4_any",
        (true, true) => "ports6",
        (true, false) => "ports6_any",
    };
    let key = match p.host_ip {
        Some(ip) => format!("{} . {} . {ports}", p.proto.name(), ip),
        None => format!("{} . {ports}", p.proto.name()),
    };
    let value = format!("{} . {}", p.container_ip, p.container_port);
    (map, key, value)
}

fn ports_script(ports: &[PortMapping], remove: bool) -> String {
    let mut s = String::new();
    // One `add element` per map with every element: one message, one transaction.
    for map in ["ports4", "ports4_any", "ports6", "ports6_any"] {
        let elems: Vec<(String, String)> =
            ports.iter().map(port_element).filter(|(m, _, _)| *m == map).map(|(_, k, v)| (k, v)).collect();
        if elems.is_empty() {
            continue;
        }
        let adds: Vec<String> = elems.iter().map(|(k, v)| format!("{k} : {v}")).collect();
        let _ = writeln!(s, "add element inet {TABLE} {map} {{ {} }}", adds.join(", "));
        if remove {
            let keys: Vec<&str> = elems.iter().map(|(k, _)| k.as_str()).collect();
            let _ = writeln!(s, "delete element inet {TABLE} {map} {{ {} }}", keys.join(", "));
        }
    }
    s
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
        self.run("add network", elements_script(&network_elements(net), false)).await
    }

    async fn remove_network(&self, net: &NetworkRules) -> Result<()> {
        self.run("remove network", elements_script(&network_elements(net), true)).await
    }

    async fn add_ports(&self, ports: &[PortMapping]) -> Result<()> {
        for p in ports {
            check_mapping(p)?;
        }
        self.run("publish ports", ports_script(ports, false)).await
    }

    async fn remove_ports(&self, ports: &[PortMapping]) -> Result<()> {
        self.run("unpublish ports", ports_script(ports, true)).await
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
        let s = elements_script(&network_elements(&net), false);
        assert!(s.contains("add element inet cnm bridges { \"br-1\" }"));
        assert!(s.contains("add element inet cnm masq4 { 172.18.0.0/16 }"));
        assert!(!s.contains("icc_same"), "ICC off: no icc element");
        let internal = NetworkRules { internal: true, icc: true, ..net };
        let s = elements_script(&network_elements(&internal), true);
        assert!(s.contains("delete element inet cnm internal { \"br-1\" }"));
        assert!(!s.contains("masq4"), "internal networks are never masqueraded");
    }

    #[test]
    fn ports_go_into_one_element_command_per_map() {
        let p = |port: u16, host_ip: Option<IpAddr>| PortMapping {
            proto: Proto::Udp,
            host_ip,
            host_port: port,
            host_port_end: port,
            container_ip: "172.18.0.2".parse().unwrap(),
            container_port: 53,
        };
        let s = ports_script(&[p(8053, None), p(8054, None), p(9000, Some("127.0.0.1".parse().unwrap()))], true);
        assert!(s.contains(
            "add element inet cnm ports4_any { udp . 8053 : 172.18.0.2 . 53, udp . 8054 : 172.18.0.2 . 53 }"
        ));
        assert!(s.contains("delete element inet cnm ports4_any { udp . 8053, udp . 8054 }"));
        assert!(s.contains("add element inet cnm ports4 { udp . 127.0.0.1 . 9000 : 172.18.0.2 . 53 }"));
    }
}
