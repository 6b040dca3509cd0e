//! The embedded resolver's side of the controller ([`crate::Config::embedded_dns`]):
//! after every join, leave and restore, the records are rebuilt from the
//! state and swapped in whole, and the sandbox's DNS server is started or
//! stopped. A sandbox gets one when it is joined to a network with DNS on
//! (every network but the default one, unless its config turns DNS off),
//! and has a namespace of its own.

use crate::model::{JoinPhase, RemoteName};
use crate::state::State;
use crate::{Controller, Error, Result};
use cnm_dns::{Entry, Records, SandboxServer};
use std::net::IpAddr;

/// An endpoint's names, as the resolver serves them: the sandbox's
/// container name, its host name, the endpoint's name and its aliases.
fn endpoint_names(sb: &crate::model::SandboxRecord, ep: &crate::model::EndpointRecord) -> Vec<String> {
    let mut names = vec![sb.container_id.clone()];
    let cfg = &sb.config;
    let more = [cfg.hostname.clone(), ep.name.clone()].into_iter().chain(ep.config.aliases.iter().cloned());
    for n in more {
        if !n.is_empty() && !names.iter().any(|x| x.eq_ignore_ascii_case(&n)) {
            names.push(n);
        }
    }
    names
}

/// The records of every sandbox, from the state.
pub(crate) fn records(ctrl: &Controller, st: &State) -> Records {
    let default_name = ctrl.inner.config.default_network.as_ref().map(|d| d.name.as_str());
    let entries = st.endpoints.values().filter_map(|ep| {
        let join = ep.join.as_ref().filter(|j| j.phase == JoinPhase::Joined)?;
        let net = st.networks.get(&ep.network_id)?;
        if net.config.disable_dns || Some(net.name.as_str()) == default_name {
            return None;
        }
        let sb = st.sandboxes.get(&join.sandbox_id)?;
        if sb.rec.config.use_host_namespace {
            return None;
        }
        Some(Entry {
            network_id: net.id.clone(),
            network_name: net.name.clone(),
            sandbox_id: sb.rec.id.clone(),
            names: endpoint_names(&sb.rec, ep),
            addrs: ep.ipv4.iter().chain(ep.ipv6.iter()).map(|a| a.addr()).collect(),
        })
    });
    let remote = st.remote_names.iter().filter_map(|(key, r)| {
        let net = st.networks.get(&r.network_id).filter(|n| !n.config.disable_dns)?;
        Some(Entry {
            network_id: net.id.clone(),
            network_name: net.name.clone(),
            sandbox_id: format!("remote:{key}"),
            names: r.names.clone(),
            addrs: r.addrs.clone(),
        })
    });
    Records::new(entries.chain(remote).collect::<Vec<_>>())
}

impl Controller {
    /// The names and addresses endpoint `id` is known by on its network, if
    /// it is joined (what another host's resolver should answer for it).
    pub fn endpoint_names(&self, id: &str) -> Option<RemoteName> {
        let st = self.st();
        let ep = st.endpoints.get(id)?;
        let join = ep.join.as_ref().filter(|j| j.phase == JoinPhase::Joined)?;
        let sb = st.sandboxes.get(&join.sandbox_id)?;
        Some(RemoteName {
            network_id: ep.network_id.clone(),
            names: endpoint_names(&sb.rec, ep),
            addrs: ep.ipv4.iter().chain(ep.ipv6.iter()).map(|a| a.addr()).collect(),
        })
    }

    /// Sets (or with `None` removes) the names of an endpoint on another
    /// host under `key`; the resolver answers them at once.
    pub fn set_remote_names(&self, key: &str, name: Option<RemoteName>) {
        let mut st = self.st();
        match name {
            Some(n) => st.remote_names.insert(key.to_string(), n),
            None => st.remote_names.remove(key),
        };
        if let Some(dns) = &self.inner.dns {
            dns.resolver.update(records(self, &st));
        }
    }

    /// Replaces every remote name at once (after the cluster store came back).
    pub fn replace_remote_names(&self, all: Vec<(String, RemoteName)>) {
        let mut st = self.st();
        st.remote_names = all.into_iter().collect();
        if let Some(dns) = &self.inner.dns {
            dns.resolver.update(records(self, &st));
        }
    }
}

impl Controller {
    /// Whether sandbox `id` has a running DNS server.
    pub(crate) fn dns_running(&self, id: &str) -> bool {
        self.inner.dns.as_ref().is_some_and(|d| d.servers.lock().unwrap_or_else(|p| p.into_inner()).contains_key(id))
    }

    /// Rebuilds the records and starts or stops sandbox `id`'s server to
    /// match. The caller holds the sandbox's lock.
    pub(crate) async fn refresh_dns(&self, id: &str) -> Result<()> {
        let Some(dns) = &self.inner.dns else { return Ok(()) };
        let (records, key) = {
            let st = self.st();
            (records(self, &st), st.sandboxes.get(id).map(|s| s.rec.key.clone()))
        };
        let wanted = records.has_sandbox(id) && key.is_some();
        dns.resolver.update(records);
        let running = self.dns_running(id);
        let external = self.has_external_access(id);
        if wanted && !running {
            let Some(key) = key else { return Ok(()) };
            let ns = cnm_osl::Namespace::open(&key).map_err(|e| Error::os("open sandbox namespace", e))?;
            let upstreams = self.dns_upstreams(id);
            let server = SandboxServer::start(dns.resolver.clone(), id, &ns, self.host_namespace(), &upstreams)
                .await
                .map_err(|e| Error::Dns { sandbox: id.to_string(), source: e })?;
            server.set_forwarding(external);
            tracing::debug!(sandbox = %id, ?upstreams, forwarding = external, "DNS server started");
            dns.servers.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), server);
        } else if !wanted && running {
            self.stop_dns(id);
        } else if let Some(server) = dns.servers.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            server.set_forwarding(external);
        }
        Ok(())
    }

    /// Stops sandbox `id`'s DNS server, if it has one.
    pub(crate) fn stop_dns(&self, id: &str) {
        if let Some(dns) = &self.inner.dns {
            let server = dns.servers.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            drop(server);
        }
    }

    /// Whether sandbox `id` is joined to a network that is not internal:
    /// only then does its resolver forward names it does not know (a
    /// sandbox on internal networks alone must not reach any resolver
    /// outside, from its namespace or the host's).
    fn has_external_access(&self, id: &str) -> bool {
        let st = self.st();
        st.endpoints.values().any(|ep| {
            ep.join.as_ref().is_some_and(|j| j.sandbox_id == id && j.phase == JoinPhase::Joined)
                && st.networks.get(&ep.network_id).is_some_and(|n| !n.config.internal)
        })
    }

    /// Whether sandbox `id`'s resolver forwards names it does not know, if it runs one.
    pub fn dns_forwarding_of(&self, id: &str) -> Option<bool> {
        let dns = self.inner.dns.as_ref()?;
        dns.servers.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|s| s.forwarding())
    }

    /// The servers sandbox `id` forwards to: its own (`dns`), or the host's,
    /// loopback ones included (they are queried from the host's namespace).
    fn dns_upstreams(&self, id: &str) -> Vec<IpAddr> {
        let cfg = self.st().sandboxes.get(id).map(|s| s.rec.config.clone()).unwrap_or_default();
        let host = std::fs::read_to_string(&self.inner.config.host_resolv_conf).unwrap_or_default();
        crate::sandbox::files::upstreams(&host, &cfg)
    }

    /// The upstream servers sandbox `id`'s DNS server forwards to, if it runs one.
    pub fn dns_upstreams_of(&self, id: &str) -> Option<Vec<IpAddr>> {
        let dns = self.inner.dns.as_ref()?;
        dns.servers.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|s| s.upstreams())
    }

    /// Rewrites sandbox `id`'s DNS state, then its files.
    pub(crate) async fn refresh_sandbox(&self, id: &str) -> Result<()> {
        let dns = self.refresh_dns(id).await;
        let files = self.refresh_files(id);
        dns.and(files)
    }
}
