//! The nftables backend, entirely over nf_tables netlink: the table's fixed
//! part from `ruleset.rs`, the elements of every network and port change
//! from `elements.rs`, each operation one atomic batch sent from a socket
//! opened inside the host namespace.

use super::elements::{self, Element, ElementOp, key};
use super::nfnl::Pool;
use super::{Firewall, GatewayMode, NetworkRules, PortMapping, RoutedPort, TABLE, VxlanNetwork, ruleset};
use crate::{Error, Namespace, Result};
use async_trait::async_trait;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// nftables: the table `inet cnm`, its sets, maps, chains and rules, and
/// their elements, all over netlink.
#[derive(Debug, Clone)]
pub struct NftFirewall {
    sockets: Arc<Pool>,
    /// iptables' `FORWARD` chains, when another firewall uses them.
    foreign: super::iptables::ForeignForward,
    ns: Namespace,
    /// How many times cnm's table was deleted by someone else (see [`Firewall::table_removed`]).
    removed: Arc<tokio::sync::watch::Sender<u64>>,
    /// The watch of deletions: started by the first `ensure_base`, stopped with the last clone.
    watch: Arc<std::sync::Mutex<Option<WatchStop>>>,
}

/// Stops the deletion watch's thread when dropped.
#[derive(Debug)]
struct WatchStop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for WatchStop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl NftFirewall {
    /// A firewall working in namespace `ns` (the controller's host).
    pub fn new(ns: Namespace) -> Self {
        let foreign = super::iptables::ForeignForward::new(ns.clone());
        NftFirewall {
            sockets: Arc::new(Pool::new(ns.clone(), crate::DEFAULT_DEADLINE)),
            foreign,
            ns,
            removed: Arc::new(tokio::sync::watch::channel(0).0),
            watch: Arc::default(),
        }
    }

    /// Starts (once) a thread that counts deletions of cnm's table, from
    /// nf_tables' notifications.
    async fn watch_deletions(&self) -> Result<()> {
        if self.watch.lock().map(|w| w.is_some()).unwrap_or(true) {
            return Ok(());
        }
        // A short receive timeout: the thread notices a stop within it.
        let mut sock = super::nfnl::Socket::open(&self.ns, std::time::Duration::from_millis(500)).await?;
        sock.subscribe(super::nfnl::NFNLGRP_NFTABLES)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let Ok(mut w) = self.watch.lock() else { return Ok(()) };
            if w.is_some() {
                return Ok(());
            }
            *w = Some(WatchStop(stop.clone()));
        }
        let removed = self.removed.clone();
        std::thread::Builder::new()
            .name("cnm-nft-watch".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match sock.notifications() {
                        Ok(messages) => {
                            let ours = messages.iter().any(|(ty, family, attrs)| {
                                *ty == super::nfnl::NFT_MSG_DELTABLE_TYPE
                                    && *family == super::nfnl::NFPROTO_INET
                                    && super::nfnl::attrs(attrs)
                                        .any(|(t, v)| t == 1 && super::nfnl::attr_str(v) == TABLE)
                            });
                            if ours {
                                removed.send_modify(|n| *n += 1);
                            }
                        }
                        Err(Error::Timeout { .. }) => {}
                        // Notifications came faster than they were read: some were lost, go on.
                        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOBUFS) => {}
                        Err(e) => {
                            tracing::warn!(error = %crate::Chain(&e), "stopped watching the firewall table");
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::io("start the firewall watch", "", e))?;
        Ok(())
    }

    /// The elements of one of the table's sets or maps, as the kernel holds
    /// them: key, range end and value bytes (diagnostics, tests, and
    /// comparing the kernel with what should be there).
    pub async fn elements(&self, set: &str) -> Result<Vec<super::SetElement>> {
        let set = set.to_string();
        let listed = self.sockets.run(move |sock| elements::list(sock, TABLE, &set)).await?;
        Ok(listed.into_iter().map(|e| super::SetElement { key: e.key, key_end: e.key_end, data: e.data }).collect())
    }

    /// Applies element operations as one batch, off the async threads.
    async fn apply(&self, ops: Vec<ElementOp>) -> Result<()> {
        let batch = elements::batch(TABLE, &ops);
        if batch.is_empty() {
            return Ok(());
        }
        self.sockets.run(move |sock| sock.send(&batch)).await
    }

    /// The deletion of the elements of `set` that `stale` picks, if any.
    async fn removal(
        &self,
        set: &'static str,
        stale: impl Fn(&super::SetElement) -> bool,
    ) -> Result<Option<ElementOp>> {
        let elements: Vec<Element> = self
            .elements(set)
            .await?
            .into_iter()
            .filter(|e| stale(e))
            .map(|e| Element { key: e.key, key_end: e.key_end, data: e.data })
            .collect();
        Ok((!elements.is_empty()).then_some(ElementOp { set, elements, delete: true }))
    }

    /// Applies deletions in one transaction; returns how many elements went.
    async fn remove(&self, removals: Vec<ElementOp>) -> Result<usize> {
        let removed = removals.iter().map(|op| op.elements.len()).sum();
        self.apply(removals).await?;
        Ok(removed)
    }

    /// Adds (or removes) a network's elements, then (on the same socket,
    /// in the same turn) reads iptables-nft's `FORWARD` chains and whether
    /// cnm has bridges left (after a removal; after an addition it has).
    async fn change_network(
        &self,
        net: &NetworkRules,
        removal: bool,
    ) -> Result<(Vec<super::iptables::NftForward>, bool)> {
        let elements = if removal { every_network_element(net) } else { network_elements(net) };
        let batch = elements::batch(TABLE, &ops(elements, removal));
        self.sockets
            .run(move |sock| {
                if !batch.is_empty() {
                    sock.send(&batch)?;
                }
                let bridges = !removal || !elements::list(sock, TABLE, "bridges")?.is_empty();
                Ok((super::iptables::nft_forward_chains(sock), bridges))
            })
            .await
    }
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
    if !net.internal {
        let nat = |m: GatewayMode| matches!(m, GatewayMode::Nat | GatewayMode::NatUnprotected);
        if net.masquerade && nat(net.gateway_v4) {
            v.push(("masq", plain(br.clone())));
        }
        if net.masquerade && net.gateway_v6.is_some_and(nat) {
            v.push(("masq6", plain(br.clone())));
        }
        for (mode, open, routed) in [(Some(net.gateway_v4), "open4", "routed4"), (net.gateway_v6, "open6", "routed6")] {
            match mode {
                Some(GatewayMode::NatUnprotected) => v.push((open, plain(br.clone()))),
                Some(GatewayMode::Routed) => v.push((routed, plain(br.clone()))),
                _ => {}
            }
        }
    }
    v
}

/// Every element a network of bridge `net.bridge` may have, whatever its
/// options (a removal takes them all; absent ones are fine).
fn every_network_element(net: &NetworkRules) -> Vec<(&'static str, Element)> {
    let mut v = network_elements(&NetworkRules { internal: false, icc: true, ..net.clone() });
    let br = key::ifname(&net.bridge);
    for set in ["internal", "masq", "masq6", "open4", "open6", "routed4", "routed6"] {
        if !v.iter().any(|(s, _)| *s == set) {
            v.push((set, Element { key: br.clone(), key_end: None, data: None }));
        }
    }
    v
}

/// Every set whose elements belong to a network (keyed by its bridge first).
const NETWORK_SETS: [&str; 11] = [
    "bridges", "hairpin4", "hairpin6", "internal", "icc_same", "masq", "masq6", "open4", "open6", "routed4", "routed6",
];

/// The sets of routed networks' published ports (keyed by protocol, then
/// the container's address).
const ROUTED_PORT_SETS: [&str; 2] = ["routed_ports4", "routed_ports6"];

/// The container address of a `routed_ports4|6` element.
fn routed_target(e: &super::SetElement, set: &str) -> Option<IpAddr> {
    target_address(e.key.get(4..)?, set.ends_with('6'))
}

/// A routed port's set and element.
fn routed_element(p: &RoutedPort) -> (&'static str, Element) {
    let proto = key::proto(match p.proto {
        super::Protocol::Tcp => 6,
        super::Protocol::Udp => 17,
        super::Protocol::Sctp => 132,
    });
    let set = if p.container_ip.is_ipv6() { "routed_ports6" } else { "routed_ports4" };
    let k = key::concat(&[proto, key::addr(p.container_ip), key::port(p.container_port)]);
    (set, Element { key: k, key_end: None, data: None })
}

/// Every map of published ports.
const PORT_MAPS: [&str; 8] =
    ["ports4", "ports4_any", "ports6", "ports6_any", "ranges4", "ranges4_any", "ranges6", "ranges6_any"];

/// The container address a port map element of `map` sends to.
fn target_in(e: &super::SetElement, map: &str) -> Option<IpAddr> {
    target_address(e.data.as_deref()?, map.contains('6'))
}

/// The container address a port map element's data starts with.
fn target_address(data: &[u8], v6: bool) -> Option<IpAddr> {
    if v6 {
        let b: [u8; 16] = data.get(..16)?.try_into().ok()?;
        Some(IpAddr::V6(b.into()))
    } else {
        let b: [u8; 4] = data.get(..4)?.try_into().ok()?;
        Some(IpAddr::V4(b.into()))
    }
}

/// A port mapping's map and element.
fn port_element(p: &PortMapping) -> (&'static str, Element) {
    let proto = key::proto(match p.proto {
        super::Protocol::Tcp => 6,
        super::Protocol::Udp => 17,
        super::Protocol::Sctp => 132,
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

/// The key of `net` in `vxlan_nets`: the port, then the VNI (24 bits in
/// network order), each padded to 4 bytes.
fn vxlan_key(net: VxlanNetwork) -> Vec<u8> {
    let vni = net.vni.to_be_bytes();
    key::concat(&[key::port(net.port), vec![vni[1], vni[2], vni[3], 0]])
}

/// The key of peer `addr` of `net` in `vxlan_peers`.
fn vxlan_peer_key(net: VxlanNetwork, addr: Ipv4Addr) -> Vec<u8> {
    key::concat(&[key::addr(IpAddr::V4(addr)), vxlan_key(net)])
}

/// The network of a `vxlan_peers` or `vxlan_nets` key (`peer`: the former).
fn vxlan_of(key: &[u8], peer: bool) -> Option<VxlanNetwork> {
    let k = if peer { key.get(4..)? } else { key };
    let port = u16::from_be_bytes([*k.first()?, *k.get(1)?]);
    let vni = u32::from_be_bytes([0, *k.get(4)?, *k.get(5)?, *k.get(6)?]);
    Some(VxlanNetwork { port, vni })
}

/// Plain elements of `keys`.
fn plain(keys: impl IntoIterator<Item = Vec<u8>>) -> Vec<Element> {
    keys.into_iter().map(|key| Element { key, key_end: None, data: None }).collect()
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
        self.sockets.run(ruleset::ensure).await?;
        self.watch_deletions().await
    }

    fn table_removed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.removed.subscribe())
    }

    async fn add_network(&self, net: &NetworkRules) -> Result<()> {
        let (chains, bridges) = self.change_network(net, false).await?;
        self.foreign.sync(chains, bridges).await
    }

    async fn remove_network(&self, net: &NetworkRules) -> Result<()> {
        // The bridge is going: its elements first; with the last one, the foreign rules.
        let (chains, bridges) = self.change_network(net, true).await?;
        self.foreign.sync(chains, bridges).await
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

    async fn set_routed_ports(&self, ports: &[RoutedPort], open: bool) -> Result<()> {
        self.apply(ops(ports.iter().map(routed_element).collect(), !open)).await
    }

    async fn retain(&self, bridges: &[String], subnets: &[ipnet::IpNet]) -> Result<usize> {
        let keep: Vec<Vec<u8>> = bridges.iter().map(|b| key::ifname(b)).collect();
        let mut removals = Vec::new();
        for set in NETWORK_SETS {
            removals.extend(self.removal(set, |e| !keep.iter().any(|k| e.key.starts_with(k))).await?);
        }
        for map in PORT_MAPS {
            let outside =
                |e: &super::SetElement| target_in(e, map).is_some_and(|a| !subnets.iter().any(|s| s.contains(&a)));
            removals.extend(self.removal(map, outside).await?);
        }
        for set in ROUTED_PORT_SETS {
            let outside =
                |e: &super::SetElement| routed_target(e, set).is_some_and(|a| !subnets.iter().any(|s| s.contains(&a)));
            removals.extend(self.removal(set, outside).await?);
        }
        self.remove(removals).await
    }

    async fn remove_ports_into(&self, subnets: &[ipnet::IpNet]) -> Result<usize> {
        let mut removals = Vec::new();
        for map in PORT_MAPS {
            let inside =
                |e: &super::SetElement| target_in(e, map).is_some_and(|a| subnets.iter().any(|s| s.contains(&a)));
            removals.extend(self.removal(map, inside).await?);
        }
        for set in ROUTED_PORT_SETS {
            let inside =
                |e: &super::SetElement| routed_target(e, set).is_some_and(|a| subnets.iter().any(|s| s.contains(&a)));
            removals.extend(self.removal(set, inside).await?);
        }
        self.remove(removals).await
    }

    async fn add_vxlan(&self, net: VxlanNetwork) -> Result<()> {
        self.apply(vec![ElementOp { set: "vxlan_nets", elements: plain([vxlan_key(net)]), delete: false }]).await
    }

    async fn set_vxlan_peers(&self, net: VxlanNetwork, peers: &[Ipv4Addr]) -> Result<()> {
        let want: Vec<Vec<u8>> = peers.iter().map(|a| vxlan_peer_key(net, *a)).collect();
        let stale =
            self.removal("vxlan_peers", |e| vxlan_of(&e.key, true) == Some(net) && !want.contains(&e.key)).await?;
        let mut ops = vec![ElementOp { set: "vxlan_peers", elements: plain(want.clone()), delete: false }];
        ops.extend(stale);
        ops.retain(|op| !op.elements.is_empty());
        self.apply(ops).await
    }

    async fn remove_vxlan(&self, net: VxlanNetwork) -> Result<()> {
        let mut ops = ops(vec![("vxlan_nets", plain([vxlan_key(net)]).remove(0))], true);
        ops.extend(self.removal("vxlan_peers", |e| vxlan_of(&e.key, true) == Some(net)).await?);
        self.apply(ops).await
    }

    async fn retain_vxlan(&self, keep: &[VxlanNetwork]) -> Result<usize> {
        let gone = |peer: bool| move |e: &super::SetElement| vxlan_of(&e.key, peer).is_some_and(|n| !keep.contains(&n));
        let mut removals = Vec::new();
        removals.extend(self.removal("vxlan_nets", gone(false)).await?);
        removals.extend(self.removal("vxlan_peers", gone(true)).await?);
        self.remove(removals).await
    }

    async fn remove_all(&self) -> Result<()> {
        let chains = self.sockets.run(|s| Ok(super::iptables::nft_forward_chains(s))).await?;
        let foreign = self.foreign.remove_all(chains).await;
        self.sockets.run(ruleset::remove).await.and(foreign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Protocol;

    #[test]
    fn network_elements_follow_the_options() {
        let net = NetworkRules {
            bridge: "br-1".into(),
            subnets_v4: vec!["172.18.0.0/16".parse().unwrap()],
            subnets_v6: vec![],
            masquerade: true,
            internal: false,
            icc: false,
            gateway_v4: GatewayMode::Nat,
            gateway_v6: None,
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
    fn vxlan_keys_read_back() {
        let net = VxlanNetwork { port: 4789, vni: 0x01_02_03 };
        assert_eq!(vxlan_key(net), vec![0x12, 0xb5, 0, 0, 1, 2, 3, 0]);
        let peer = vxlan_peer_key(net, "192.168.1.2".parse().unwrap());
        assert_eq!(&peer[..4], &[192, 168, 1, 2]);
        assert_eq!(vxlan_of(&peer, true), Some(net));
        assert_eq!(vxlan_of(&vxlan_key(net), false), Some(net));
        assert_eq!(vxlan_of(&[1, 2], false), None, "a short key is nobody's");
    }

    #[test]
    fn port_elements_pick_the_map_by_family_and_address() {
        let p = PortMapping {
            proto: Protocol::Udp,
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
