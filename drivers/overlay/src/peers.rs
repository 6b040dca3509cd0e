//! Remote endpoints of an overlay network: published in the cluster store
//! by the host they join on (attached to its lease), and programmed on
//! every other host's VXLAN device as a forwarding entry (MAC → host) and
//! a neighbour entry (IP → MAC, answered locally by the device's ARP proxy).

use cnm_cluster::{Cluster, Event};
use cnm_osl::Netlink;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// An endpoint of an overlay network as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Peer {
    /// The endpoint's address on the overlay.
    pub ip: Ipv4Addr,
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
pub(crate) async fn republish(cluster: &Cluster, nid: &str, joined: &Joined) {
    let mine: Vec<(String, Peer)> =
        joined.lock().iter().filter(|(_, (n, _))| n == nid).map(|(e, (_, p))| (e.clone(), *p)).collect();
    for (eid, peer) in mine {
        let Ok(value) = serde_json::to_vec(&peer) else { continue };
        if let Err(e) = cluster.put_leased(&key(nid, &eid), &value).await {
            tracing::warn!(endpoint = %eid, error = %e, "cannot publish an overlay endpoint again");
        }
    }
}

/// Programs the network's remote endpoints on its VXLAN device (`vxlan`,
/// in the namespace of `nl`) as they come and go, until the store's watch
/// ends (the task is aborted with the network). After each (re)connection
/// this host's own endpoints are published again.
pub(crate) async fn follow(cluster: Cluster, nid: String, nl: Netlink, vxlan: u32, joined: Joined) {
    let me = cluster.advertise();
    let mut rx = cluster.watch(&prefix(&nid));
    let mut known: HashMap<String, Peer> = HashMap::new();
    while let Some(event) = rx.recv().await {
        let mut wanted = known.clone();
        match event {
            Event::Resync(kvs) => {
                wanted = kvs.iter().filter_map(|(k, v)| Some((k.clone(), serde_json::from_slice(v).ok()?))).collect();
                republish(&cluster, &nid, &joined).await;
            }
            Event::Put(k, v) => {
                if let Ok(p) = serde_json::from_slice(&v) {
                    wanted.insert(k, p);
                }
            }
            Event::Delete(k) => {
                wanted.remove(&k);
            }
        }
        for (k, p) in &known {
            if wanted.get(k) != Some(p) && p.host != me {
                remove(&nl, vxlan, p).await;
            }
        }
        for (k, p) in &wanted {
            if known.get(k) != Some(p) && p.host != me {
                add(&nl, vxlan, p).await;
            }
        }
        known = wanted;
    }
}

async fn add(nl: &Netlink, vxlan: u32, p: &Peer) {
    if let Err(e) = nl.fdb_replace(vxlan, p.mac, IpAddr::V4(p.host)).await {
        tracing::warn!(peer = %p.ip, host = %p.host, error = %e, "cannot program an overlay peer's forwarding entry");
    }
    if let Err(e) = nl.neigh_replace(vxlan, IpAddr::V4(p.ip), p.mac).await {
        tracing::warn!(peer = %p.ip, error = %e, "cannot program an overlay peer's neighbour entry");
    }
    tracing::debug!(peer = %p.ip, host = %p.host, "overlay peer added");
}

async fn remove(nl: &Netlink, vxlan: u32, p: &Peer) {
    if let Err(e) = nl.neigh_del(vxlan, IpAddr::V4(p.ip)).await {
        tracing::warn!(peer = %p.ip, error = %e, "cannot remove an overlay peer's neighbour entry");
    }
    if let Err(e) = nl.fdb_del(vxlan, p.mac, IpAddr::V4(p.host)).await {
        tracing::warn!(peer = %p.ip, error = %e, "cannot remove an overlay peer's forwarding entry");
    }
    tracing::debug!(peer = %p.ip, host = %p.host, "overlay peer removed");
}
