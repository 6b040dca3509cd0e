//! Membership of a cluster: what a host does for its global networks
//! beyond creating them. A global network made here is published in the
//! cluster store (its creation fails as a whole if it cannot be); the
//! store's networks are followed (adopted when another host creates one,
//! forgotten when removed there); the names of endpoints joined here are
//! published for the other hosts' resolvers, and theirs are fed to this
//! host's.
//!
//! No network is removed while any host has an endpoint on it, without a
//! race: each endpoint of a global network is claimed in the store before
//! it gets an address (a key written only if the network's record still
//! exists, one transaction), and a removal first deletes the network's
//! record only if no claim exists (one transaction). Whichever comes
//! first wins; the other is refused. Claims live on the host's lease (a
//! dead host does not hold a network forever): a host cut off for longer
//! than the lease holds nothing back, and one whose claims are refused
//! when it is back (the network was removed meanwhile) logs it.
//!
//! Keys (under the cluster's prefix): `networks/<id>` holds a network as
//! [`GlobalNetwork`]; `endpoints/<id>/<endpoint>` a claim (the host's
//! address), and `names/<id>/<endpoint>` an endpoint's names, both on the
//! host's lease (published again with every new lease); the overlay driver
//! keeps `overlay/peers/<id>/…` (every host's joined endpoints).
//!
//! Everything store-related needs the `cluster` feature and a cluster
//! given to [`crate::ControllerBuilder::cluster`]; without them a global
//! network is this host's alone (and needs [`crate::Config::cluster`]).

use crate::model::NetworkRecord;
use crate::{Controller, Result};

/// How an interrupted operation on a global network ends at restart (see
/// [`Controller::cluster_settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// The network is kept, ready.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Forward,
    /// The network is removed here, its allocations released.
    Back,
}

#[cfg(feature = "cluster")]
pub(crate) use member::Membership;

impl Controller {
    /// What follows a join, once the locks are released: on a global
    /// network, the endpoint's names go to the store while the sandbox
    /// joins the gateway bridge if it has no default route (one waits on
    /// etcd, the other on the kernel). A failure of either is logged: the
    /// join stands.
    pub(crate) async fn after_join(&self, nid: &str, eid: &str, sb: &crate::Sandbox) {
        if !matches!(self.global_network(nid), Ok(Some(_))) {
            return;
        }
        let gateway = async {
            if let Err(e) = self.gateway_bridge_attach(sb).await {
                tracing::warn!(sandbox = %sb.container_id(), error = %crate::Chain(&e), "no default route through the gateway bridge");
            }
        };
        tokio::join!(self.cluster_publish_names(eid), gateway);
    }

    /// What follows a leave of network `nid`: a sandbox on no global
    /// network any more leaves the gateway bridge (a failure is logged).
    pub(crate) async fn after_leave(&self, nid: &str, sb: &crate::Sandbox) {
        if !matches!(self.global_network(nid), Ok(Some(_))) {
            return;
        }
        if let Err(e) = self.gateway_bridge_detach(sb).await {
            tracing::warn!(sandbox = %sb.container_id(), error = %crate::Chain(&e), "cannot leave the gateway bridge");
        }
    }

    /// Publishes network `rec` if it is global and the host is a member.
    pub(crate) async fn cluster_publish(&self, rec: &NetworkRecord) -> Result<()> {
        #[cfg(feature = "cluster")]
        if let Some(m) = &self.inner.membership
            && rec.global
        {
            return m.publish(rec).await;
        }
        let _ = rec;
        Ok(())
    }

    /// Withdraws network `rec` from the store (if it is global) before its
    /// removal here, only if no host (this one included) has an endpoint
    /// on it (one transaction); refused otherwise, naming the hosts.
    pub(crate) async fn cluster_withdraw(&self, rec: &NetworkRecord) -> Result<()> {
        #[cfg(feature = "cluster")]
        if let Some(m) = &self.inner.membership
            && rec.global
        {
            return m.withdraw(rec).await;
        }
        let _ = rec;
        Ok(())
    }

    /// At restart, how an operation on global network `rec` that a crash
    /// cut short ends, by what the store says: a creation whose record was
    /// published goes on, one whose record was not is rolled back; a
    /// removal whose record is withdrawn (now, if no host claims an
    /// endpoint) goes on, one refused is undone. `None` when the store
    /// cannot tell (it is asked again at the next start).
    pub(crate) async fn cluster_settle(&self, rec: &NetworkRecord) -> Option<Settle> {
        #[cfg(feature = "cluster")]
        if let Some(m) = &self.inner.membership
            && rec.global
        {
            return m.settle(rec).await;
        }
        let _ = rec;
        Some(Settle::Back)
    }

    /// Claims a share of global network `nid` for endpoint `eid` (before it
    /// gets an address): refused if the network is gone from the cluster.
    pub(crate) async fn cluster_claim_endpoint(&self, nid: &str, eid: &str) -> Result<()> {
        #[cfg(feature = "cluster")]
        if let Some(m) = &self.inner.membership
            && matches!(self.global_network(nid), Ok(Some(_)))
        {
            m.claim_endpoint(nid, eid).await?;
            crate::kill::point("endpoint.create.claimed");
            return Ok(());
        }
        let _ = (nid, eid);
        Ok(())
    }

    /// Drops endpoint `eid`'s claim on network `nid` (it is deleted, or was
    /// not made); a failure is logged (the lease ends it).
    pub(crate) async fn cluster_release_endpoint(&self, nid: &str, eid: &str) {
        #[cfg(feature = "cluster")]
        if let Some(m) = &self.inner.membership {
            m.release_endpoint(nid, eid).await;
        }
        let _ = (nid, eid);
    }

    /// Publishes the names of endpoint `eid` (joined here) if its network is global.
    pub(crate) async fn cluster_publish_names(&self, eid: &str) {
        #[cfg(feature = "cluster")]
        if let Some(m) = &self.inner.membership {
            m.publish_names(self, eid).await;
        }
        let _ = eid;
    }

    /// Withdraws the names of endpoint `eid` of network `nid`.
    pub(crate) async fn cluster_withdraw_names(&self, nid: &str, eid: &str) {
        #[cfg(feature = "cluster")]
        if let Some(m) = &self.inner.membership
            && matches!(self.global_network(nid), Ok(Some(_)))
        {
            m.withdraw_names(nid, eid).await;
        }
        let _ = (nid, eid);
    }

    /// Starts following the store (at the end of the build).
    pub(crate) fn cluster_follow(&self) {
        #[cfg(feature = "cluster")]
        if let Some(m) = &self.inner.membership {
            m.follow(self);
        }
    }
}

#[cfg(feature = "cluster")]
mod member {
    use crate::model::NetworkRecord;
    use crate::network::GlobalNetwork;
    use crate::{Controller, Error, RemoteName, Result};
    use cnm_cluster::{Cluster, Event};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;
    use std::sync::Weak;

    /// An endpoint's claim on its network: the host it is on.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Claim {
        host: Ipv4Addr,
    }

    /// An endpoint's names as published for the other hosts' resolvers.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct NameRecord {
        /// The host that publishes it.
        host: Ipv4Addr,
        #[serde(flatten)]
        name: RemoteName,
    }

    /// This host's membership of a cluster.
    #[derive(Debug, Clone)]
    pub(crate) struct Membership {
        cluster: Cluster,
    }

    fn key(id: &str) -> String {
        format!("networks/{id}")
    }

    fn unavailable(op: &str, e: cnm_cluster::Error) -> Error {
        Error::ClusterStore { op: op.to_string(), source: Box::new(e) }
    }

    impl Membership {
        /// Membership through `cluster`.
        pub(crate) fn new(cluster: Cluster) -> Self {
            Membership { cluster }
        }

        pub(crate) async fn publish(&self, rec: &NetworkRecord) -> Result<()> {
            let net = GlobalNetwork::of(rec);
            let value = serde_json::to_vec(&net).map_err(|e| Error::Store(e.to_string()))?;
            self.cluster.create(&key(&rec.id), &value).await.map_err(|e| unavailable("publish the network", e))?;
            tracing::info!(network = net.name(), "global network published");
            Ok(())
        }

        pub(crate) async fn withdraw(&self, rec: &NetworkRecord) -> Result<()> {
            let (id, name) = (&rec.id, &rec.name);
            let claims = format!("endpoints/{id}/");
            let withdrawn = self
                .cluster
                .delete_if_none_under(&key(id), &claims)
                .await
                .map_err(|e| unavailable("withdraw the network", e))?;
            if withdrawn {
                tracing::info!(network = %name, "global network withdrawn from the cluster");
                return Ok(());
            }
            let (held, _) =
                self.cluster.list(&claims).await.map_err(|e| unavailable("list the network's endpoints", e))?;
            let hosts: BTreeSet<String> = held
                .iter()
                .filter_map(|(_, v)| serde_json::from_slice::<Claim>(v).ok())
                .map(|c| c.host.to_string())
                .collect();
            Err(Error::Forbidden(format!(
                "error while removing network: network {name} id {id} has active endpoints (on hosts {})",
                hosts.into_iter().collect::<Vec<_>>().join(", ")
            )))
        }

        pub(crate) async fn settle(&self, rec: &NetworkRecord) -> Option<super::Settle> {
            use super::Settle;
            let asked = match rec.phase {
                crate::model::Phase::Creating => self.cluster.get(&key(&rec.id)).await.map(|v| match v {
                    Some(_) => Settle::Forward,
                    None => Settle::Back,
                }),
                _ => {
                    let claims = format!("endpoints/{}/", rec.id);
                    self.cluster
                        .delete_if_none_under(&key(&rec.id), &claims)
                        .await
                        .map(|withdrawn| if withdrawn { Settle::Back } else { Settle::Forward })
                }
            };
            match asked {
                Ok(settled) => Some(settled),
                Err(e) => {
                    tracing::error!(network = %rec.name, phase = ?rec.phase, error = %crate::Chain(&e),
                        "the cluster store cannot tell how an interrupted operation on a global network ends; asked again at the next start");
                    None
                }
            }
        }

        pub(crate) async fn claim_endpoint(&self, nid: &str, eid: &str) -> Result<()> {
            let value = serde_json::to_vec(&Claim { host: self.cluster.advertise() })
                .map_err(|e| Error::Store(e.to_string()))?;
            let claimed = self
                .cluster
                .put_under_leased(&format!("endpoints/{nid}/{eid}"), &value, &key(nid))
                .await
                .map_err(|e| unavailable("claim an endpoint of the network", e))?;
            if !claimed {
                // Removed from the cluster meanwhile (this host forgets it next).
                return Err(Error::NetworkNotFound(nid.to_string()));
            }
            Ok(())
        }

        pub(crate) async fn release_endpoint(&self, nid: &str, eid: &str) {
            if let Err(e) = self.cluster.delete(&format!("endpoints/{nid}/{eid}")).await {
                tracing::warn!(endpoint = eid, error = %crate::Chain(&e), "cannot drop an endpoint's claim (its lease will)");
            }
        }

        /// Claims every endpoint of a global network here again (a new
        /// lease: the old one's claims are gone).
        async fn claim_all(&self, ctrl: &Controller) {
            let mine: Vec<(String, String)> = {
                let st = ctrl.st();
                st.endpoints
                    .values()
                    .filter(|e| e.phase == crate::model::Phase::Ready)
                    .filter(|e| st.networks.get(&e.network_id).is_some_and(|n| n.global))
                    .map(|e| (e.network_id.clone(), e.id.clone()))
                    .collect()
            };
            for (nid, eid) in mine {
                // Under the network's lock, and only if the endpoint is
                // still here: a claim never outlives its endpoint.
                let _lock = ctrl.inner.locks.lock(&nid).await;
                if !ctrl.st().endpoints.contains_key(&eid) {
                    continue;
                }
                if let Err(e) = self.claim_endpoint(&nid, &eid).await {
                    tracing::warn!(endpoint = %eid, network = %nid, error = %crate::Chain(&e), "cannot claim an endpoint again");
                }
            }
        }

        pub(crate) async fn publish_names(&self, ctrl: &Controller, eid: &str) {
            let Some(name) = ctrl.endpoint_names(eid) else { return };
            if !matches!(ctrl.global_network(&name.network_id), Ok(Some(_))) {
                return;
            }
            let key = format!("names/{}/{eid}", name.network_id);
            let record = NameRecord { host: self.cluster.advertise(), name };
            let Ok(value) = serde_json::to_vec(&record) else { return };
            if let Err(e) = self.cluster.put_leased(&key, &value).await {
                tracing::warn!(endpoint = eid, error = %crate::Chain(&e), "cannot publish an endpoint's names");
            }
        }

        pub(crate) async fn withdraw_names(&self, nid: &str, eid: &str) {
            if let Err(e) = self.cluster.delete(&format!("names/{nid}/{eid}")).await {
                tracing::warn!(endpoint = eid, error = %crate::Chain(&e), "cannot withdraw an endpoint's names (its lease will)");
            }
        }

        /// Publishes the names of every endpoint of a global network joined here.
        async fn publish_all_names(&self, ctrl: &Controller) {
            for sb in ctrl.sandboxes().await {
                for ep in sb.endpoints().await {
                    self.publish_names(ctrl, ep.id()).await;
                }
            }
        }

        /// Follows the store's networks, and the other hosts' endpoint
        /// names, while the controller lives.
        pub(crate) fn follow(&self, ctrl: &Controller) {
            self.follow_names(ctrl);
            let mut rx = self.cluster.watch("networks/");
            let weak = std::sync::Arc::downgrade(&ctrl.inner);
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    let Some(ctrl) = upgrade(&weak) else { return };
                    match event {
                        Event::Resync(kvs) => {
                            let ids: BTreeSet<String> = kvs
                                .iter()
                                .filter_map(|(k, _)| k.strip_prefix("networks/").map(str::to_string))
                                .collect();
                            for net in ctrl.networks().await {
                                let id = net.id().to_string();
                                if ctrl.global_network(&id).ok().flatten().is_some() && !ids.contains(&id) {
                                    forget(&ctrl, &id).await;
                                }
                            }
                            for (_, v) in kvs {
                                adopt(&ctrl, &v).await;
                            }
                        }
                        Event::Put(_, v) => adopt(&ctrl, &v).await,
                        Event::Delete(k) => {
                            if let Some(id) = k.strip_prefix("networks/") {
                                forget(&ctrl, id).await;
                            }
                        }
                        // Network records are on no lease.
                        Event::LeaseGranted => {}
                    }
                }
            });
        }

        /// Feeds the other hosts' endpoint names to the resolver; after each
        /// (re)connection and each new lease, publishes this host's own again.
        fn follow_names(&self, ctrl: &Controller) {
            let mut rx = self.cluster.watch("names/");
            let me = self.clone();
            let weak = std::sync::Arc::downgrade(&ctrl.inner);
            tokio::spawn(async move {
                let mine = me.cluster.advertise();
                let remote = |v: &[u8]| serde_json::from_slice::<NameRecord>(v).ok().filter(|r| r.host != mine);
                while let Some(event) = rx.recv().await {
                    let Some(ctrl) = upgrade(&weak) else { return };
                    match event {
                        Event::Resync(kvs) => {
                            let all = kvs.iter().filter_map(|(k, v)| Some((k.clone(), remote(v)?.name))).collect();
                            ctrl.replace_remote_names(all);
                            me.claim_all(&ctrl).await;
                            me.publish_all_names(&ctrl).await;
                        }
                        Event::Put(k, v) => {
                            if let Some(r) = remote(&v) {
                                ctrl.set_remote_names(&k, Some(r.name));
                            }
                        }
                        Event::Delete(k) => ctrl.set_remote_names(&k, None),
                        // This host's claims and names went with its old lease.
                        Event::LeaseGranted => {
                            me.claim_all(&ctrl).await;
                            me.publish_all_names(&ctrl).await;
                        }
                    }
                }
            });
        }
    }

    /// The controller, while it lives.
    fn upgrade(weak: &Weak<crate::controller::Inner>) -> Option<Controller> {
        weak.upgrade().map(|inner| Controller { inner })
    }

    async fn adopt(ctrl: &Controller, value: &[u8]) {
        match serde_json::from_slice::<GlobalNetwork>(value) {
            Ok(net) => {
                let name = net.name().to_string();
                if let Err(e) = ctrl.adopt_network(net).await {
                    tracing::warn!(network = name, error = %crate::Chain(&e), "cannot adopt a global network");
                }
            }
            Err(e) => tracing::warn!(error = %crate::Chain(&e), "a global network in the store cannot be read"),
        }
    }

    async fn forget(ctrl: &Controller, id: &str) {
        if let Err(e) = ctrl.forget_network(id).await {
            tracing::warn!(network = id, error = %crate::Chain(&e), "cannot forget a removed global network");
        }
    }
}
