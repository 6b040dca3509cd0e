//! Remote endpoints of an overlay network: published in the cluster store
//! by the host they join on (attached to its lease), and programmed on
//! every other host's VXLAN device as a forwarding entry (MAC → host) and
//! a neighbour entry per address (IPv4 and IPv6 → MAC, answered locally by
//! the device's ARP and neighbour-discovery proxy).

use cnm_cluster::{Cluster, Event};
use cnm_osl::Netlink;
use cnm_osl::firewall::{Firewall, VxlanNetwork};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// An endpoint of an overlay network as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Peer {
    /// The endpoint's IPv4 address on the overlay, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 address on the overlay, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Its MAC.
    pub mac: [u8; 6],
    /// The underlay address of its host.
    pub host: Ipv4Addr,
}

/// The store key of endpoint `eid` of network `nid`.
pub(crate) fn key(nid: &str, eid: &str) -> String {
    format!("{}{eid}", prefix(nid))
}

/// The store prefix of network `nid`'s endpoints.
pub(crate) fn prefix(nid: &str) -> String {
    format!("overlay/peers/{nid}/")
}

/// This host's joined endpoints: endpoint id → (network id, peer record).
pub(crate) type Joined = std::sync::Arc<cnm_driverapi::Table<String, (String, Peer)>>;

/// Publishes this host's joined endpoints of network `nid` again (after the
/// store came back, or a new lease).
///
/// An endpoint that leaves while its record is on the way (a leave
/// withdraws after it is out of `joined`) is withdrawn again here, so a
/// late put never outlives the leave.
pub(crate) async fn republish(cluster: &Cluster, nid: &str, joined: &Joined) {
    let mine: Vec<(String, Peer)> =
        joined.lock().iter().filter(|(_, (n, _))| n == nid).map(|(e, (_, p))| (e.clone(), *p)).collect();
    for (eid, peer) in mine {
        let Ok(value) = serde_json::to_vec(&peer) else { continue };
        let key = key(nid, &eid);
        if let Err(e) = cluster.put_leased(&key, &value).await {
            tracing::warn!(endpoint = %eid, error = %cnm_driverapi::Chain(&e), "cannot publish an overlay endpoint again");
        }
        if !joined.contains(&eid)
            && let Err(e) = cluster.delete(&key).await
        {
            tracing::warn!(endpoint = %eid, error = %cnm_driverapi::Chain(&e), "cannot withdraw an overlay endpoint that left (its lease will)");
        }
    }
}

/// A network's VXLAN device on this host, and its filter by peer.
pub(crate) struct Device {
    /// A netlink socket in the network's namespace.
    pub nl: Netlink,
    /// The device's index there.
    pub index: u32,
    /// Its port and VNI, as the firewall filters them.
    pub filter: VxlanNetwork,
    /// The firewall accepting VXLAN from peers only (`None`: no filter).
    pub firewall: Option<Arc<dyn Firewall>>,
}

impl Device {
    /// Puts the network's filter back after cnm's table was removed
    /// behind its back (and made again, empty, by whoever repairs it):
    /// the peers are set again next.
    async fn refilter(&self, applied: &mut Option<BTreeSet<Ipv4Addr>>) {
        let Some(fw) = &self.firewall else { return };
        *applied = None;
        let put_back = async {
            fw.ensure_base().await?;
            fw.add_vxlan(self.filter).await
        };
        if let Err(e) = put_back.await {
            tracing::warn!(vni = self.filter.vni, error = %cnm_driverapi::Chain(&e), "cannot put an overlay network's VXLAN filter back");
        } else {
            tracing::info!(
                vni = self.filter.vni,
                "overlay network's VXLAN filter put back after the table was removed"
            );
        }
    }

    /// Makes the hosts of `peers` (other than this one) the only sources
    /// of the network's VXLAN, if they are not already (`applied`); a
    /// failure is logged and tried again within a second.
    async fn accept_from(&self, peers: &HashMap<String, Peer>, me: Ipv4Addr, applied: &mut Option<BTreeSet<Ipv4Addr>>) {
        let Some(fw) = &self.firewall else { return };
        let hosts: BTreeSet<Ipv4Addr> = peers.values().map(|p| p.host).filter(|h| *h != me).collect();
        if applied.as_ref() == Some(&hosts) {
            return;
        }
        let list: Vec<Ipv4Addr> = hosts.iter().copied().collect();
        match fw.set_vxlan_peers(self.filter, &list).await {
            Ok(()) => *applied = Some(hosts),
            Err(e) => {
                *applied = None;
                tracing::warn!(vni = self.filter.vni, error = %cnm_driverapi::Chain(&e), "cannot set the hosts an overlay network accepts VXLAN from");
            }
        }
    }
}

/// Programs the network's remote endpoints on its VXLAN device as they
/// come and go, and lets VXLAN in from their hosts alone, until the
/// store's watch ends (the task is aborted with the network). After each
/// (re)connection this host's own endpoints are published again.
pub(crate) async fn follow(cluster: Cluster, nid: String, device: Device, joined: Joined, pools: Vec<IpNet>) {
    let (nl, vxlan) = (&device.nl, device.index);
    let mut applied: Option<BTreeSet<Ipv4Addr>> = None;
    let me = cluster.advertise();
    let mut rx = cluster.watch(&prefix(&nid));
    let mut known: HashMap<String, Peer> = HashMap::new();
    // cnm's table removed behind our back: the filter is put back.
    let mut removed = device.firewall.as_ref().and_then(|fw| fw.table_removed());
    let table_removed = async |removed: &mut Option<tokio::sync::watch::Receiver<u64>>| match removed {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    };
    // A failed setting of the peers is tried again every second.
    let mut retry = tokio::time::interval(std::time::Duration::from_secs(1));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A key becomes forwarding and neighbour entries only once it is checked.
    let read = |k: &str, v: &[u8]| -> Option<Peer> {
        let peer = match serde_json::from_slice::<Peer>(v) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(key = k, error = %cnm_driverapi::Chain(&e), "an overlay peer record cannot be read: ignored");
                return None;
            }
        };
        let local = joined.values();
        let local: Vec<Peer> = local.into_iter().filter(|(n, _)| *n == nid).map(|(_, p)| p).collect();
        match check(&peer, &pools, &local, me) {
            Ok(()) => Some(peer),
            Err(why) => {
                tracing::warn!(key = k, peer = ?peer.addresses(), host = %peer.host, why, "a bad overlay peer record: ignored");
                None
            }
        }
    };
    loop {
        let event = tokio::select! {
            event = rx.recv() => match event {
                Some(event) => event,
                None => return,
            },
            still = table_removed(&mut removed) => {
                if !still {
                    removed = None;
                    continue;
                }
                device.refilter(&mut applied).await;
                device.accept_from(&known, me, &mut applied).await;
                continue;
            }
            _ = retry.tick(), if applied.is_none() && device.firewall.is_some() => {
                device.accept_from(&known, me, &mut applied).await;
                continue;
            }
        };
        let mut wanted = known.clone();
        match event {
            Event::Resync(kvs) => {
                wanted = kvs.iter().filter_map(|(k, v)| Some((k.clone(), read(k, v)?))).collect();
                republish(&cluster, &nid, &joined).await;
            }
            Event::Put(k, v) => match read(&k, &v) {
                Some(p) => {
                    wanted.insert(k, p);
                }
                None => {
                    wanted.remove(&k);
                }
            },
            Event::Delete(k) => {
                wanted.remove(&k);
            }
            // This host's keys went with its old lease.
            Event::LeaseGranted => {
                republish(&cluster, &nid, &joined).await;
                continue;
            }
        }
        // A new host's VXLAN is let in before its entries are programmed;
        // a gone host's is shut out with its last entry.
        device.accept_from(&wanted, me, &mut applied).await;
        for (k, p) in &known {
            if wanted.get(k) != Some(p) && p.host != me {
                remove(nl, vxlan, p).await;
            }
        }
        for (k, p) in &wanted {
            if known.get(k) != Some(p) && p.host != me {
                add(nl, vxlan, p).await;
            }
        }
        known = wanted;
    }
}

/// Why a peer record from the store must not be programmed, if it must
/// not: whoever can write the store could otherwise send the network's
/// broadcasts (a broadcast or multicast MAC) or another endpoint's traffic
/// (an address of this host's endpoints, or outside the network) to a host
/// of their choosing.
pub(crate) fn check(p: &Peer, pools: &[IpNet], local: &[Peer], me: Ipv4Addr) -> Result<(), &'static str> {
    if p.mac[0] & 1 == 1 || p.mac == [0; 6] {
        return Err("a multicast, broadcast or zero MAC");
    }
    let addresses = p.addresses();
    if addresses.is_empty() {
        return Err("no address");
    }
    let inside = |a: &IpAddr| pools.iter().any(|net| net.contains(a) && *a != net.network());
    if !addresses.iter().all(inside) {
        return Err("an address outside the network's pools");
    }
    let h = p.host;
    if h.is_unspecified() || h.is_loopback() || h.is_multicast() || h.is_broadcast() {
        return Err("a host address that is no host");
    }
    let shares = |l: &Peer| l.mac == p.mac || l.addresses().iter().any(|a| addresses.contains(a));
    if p.host != me && local.iter().any(shares) {
        return Err("the address or MAC of an endpoint of this host");
    }
    Ok(())
}

impl Peer {
    /// The endpoint's addresses, IPv4 first.
    pub(crate) fn addresses(&self) -> Vec<IpAddr> {
        self.ip.map(IpAddr::V4).into_iter().chain(self.ipv6.map(IpAddr::V6)).collect()
    }
}

async fn add(nl: &Netlink, vxlan: u32, p: &Peer) {
    let peer = p.addresses();
    if let Err(e) = nl.fdb_replace(vxlan, p.mac, IpAddr::V4(p.host)).await {
        tracing::warn!(?peer, host = %p.host, error = %cnm_driverapi::Chain(&e), "cannot program an overlay peer's forwarding entry");
    }
    for ip in &peer {
        if let Err(e) = nl.neigh_replace(vxlan, *ip, p.mac).await {
            tracing::warn!(peer = %ip, error = %cnm_driverapi::Chain(&e), "cannot program an overlay peer's neighbour entry");
        }
    }
    tracing::debug!(?peer, host = %p.host, "overlay peer added");
}

async fn remove(nl: &Netlink, vxlan: u32, p: &Peer) {
    let peer = p.addresses();
    for ip in &peer {
        if let Err(e) = nl.neigh_del(vxlan, *ip).await {
            tracing::warn!(peer = %ip, error = %cnm_driverapi::Chain(&e), "cannot remove an overlay peer's neighbour entry");
        }
    }
    if let Err(e) = nl.fdb_del(vxlan, p.mac, IpAddr::V4(p.host)).await {
        tracing::warn!(?peer, error = %cnm_driverapi::Chain(&e), "cannot remove an overlay peer's forwarding entry");
    }
    // br0 learnt the MAC behind vxlan0 from the peer's frames: forgotten
    // now, or an endpoint given the same address (and MAC) on this host
    // next would get nothing until the entry aged out (300 s).
    if let Err(e) = nl.fdb_forget_learned(vxlan, p.mac).await {
        tracing::warn!(?peer, error = %cnm_driverapi::Chain(&e), "cannot clear what the bridge learnt of an overlay peer");
    }
    tracing::debug!(?peer, host = %p.host, "overlay peer removed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_peer_records_are_refused() {
        let pools: Vec<IpNet> = vec!["10.0.9.0/24".parse().unwrap(), "fd00:9::/64".parse().unwrap()];
        let me: Ipv4Addr = "192.168.1.1".parse().unwrap();
        let ok = Peer {
            ip: Some("10.0.9.5".parse().unwrap()),
            ipv6: Some("fd00:9::5".parse().unwrap()),
            mac: [2, 0x42, 10, 0, 9, 5],
            host: "192.168.1.2".parse().unwrap(),
        };
        assert_eq!(check(&ok, &pools, &[], me), Ok(()));
        assert_eq!(check(&Peer { ip: None, ..ok }, &pools, &[], me), Ok(()), "IPv6 only");
        assert_eq!(check(&Peer { ipv6: None, ..ok }, &pools, &[], me), Ok(()), "IPv4 only");
        // A record of an older cnm (IPv4 only, no ipv6 field) is read.
        let old: Peer =
            serde_json::from_str(r#"{"ip":"10.0.9.5","mac":[2,66,10,0,9,5],"host":"192.168.1.2"}"#).unwrap();
        assert_eq!(old, Peer { ipv6: None, ..ok });
        let bad = [
            Peer { mac: [0xff; 6], ..ok },
            Peer { mac: [1, 0, 0x5e, 0, 0, 1], ..ok },
            Peer { mac: [0; 6], ..ok },
            Peer { ip: None, ipv6: None, ..ok },
            Peer { ip: Some("10.0.10.5".parse().unwrap()), ..ok },
            Peer { ip: Some("10.0.9.0".parse().unwrap()), ..ok },
            Peer { ipv6: Some("fd00:10::5".parse().unwrap()), ..ok },
            Peer { host: "127.0.0.1".parse().unwrap(), ..ok },
            Peer { host: "0.0.0.0".parse().unwrap(), ..ok },
            Peer { host: "224.0.0.1".parse().unwrap(), ..ok },
        ];
        for p in bad {
            assert!(check(&p, &pools, &[], me).is_err(), "{p:?}");
        }
        let local = Peer { host: me, ..ok };
        assert!(check(&ok, &pools, &[local], me).is_err(), "a local endpoint's address claimed by another host");
        let local6 = Peer { host: me, ip: None, mac: [2, 0, 0, 0, 0, 1], ..ok };
        assert!(check(&ok, &pools, &[local6], me).is_err(), "a local endpoint's IPv6 address claimed by another host");
        assert_eq!(check(&local, &pools, &[local], me), Ok(()), "this host's own record");
    }
}
