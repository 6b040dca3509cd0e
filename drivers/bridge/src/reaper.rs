//! Deleting links without waiting for the kernel. A deleted network's
//! bridge, or a leaving endpoint's veth pair, is taken out of service at
//! once in one request — marked with an alias, moved to cnm's "reap" link
//! group, and (a veth) taken down — and the caller goes on. The kernel's
//! unregister costs 20 to 40 ms of RCU grace periods per delete request,
//! with RTNL held, so every other link operation on the host waits
//! meanwhile; instead, a background task deletes the whole group in one
//! request a short while later (one grace period for the batch). Creating
//! a link of a pending name flushes the batch at once and waits for it; a
//! link left marked by a process that died is deleted when the next driver
//! starts.

use crate::Error;
use cnm_osl::Netlink;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Whether `addr` is an IPv6 link-local address (fe80::/10).
fn is_link_local(addr: std::net::IpAddr) -> bool {
    matches!(addr, std::net::IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

/// The alias of a link being deleted.
pub(crate) const REAP_ALIAS: &str = "cnm:deleting";

/// The link group of links being deleted ("cnm" in ASCII).
pub(crate) const REAP_GROUP: u32 = 0x0063_6e6d;

/// How long retired links wait to be deleted together.
const BATCH_DELAY: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Pending {
    /// Retired link names, with the batch number that will delete them.
    names: HashMap<String, u64>,
    /// The batch being filled.
    batch: u64,
    /// Flush without waiting for the delay.
    urgent: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    /// The last batch deleted.
    done: watch::Sender<u64>,
}

/// Links being deleted, and the task that deletes them.
pub(crate) struct Reaper {
    shared: Arc<Shared>,
    task: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
    /// The host's netlink, known from the first reap.
    nl: std::sync::OnceLock<Netlink>,
    swept: tokio::sync::OnceCell<()>,
}

impl Default for Reaper {
    fn default() -> Self {
        let shared = Shared {
            pending: Mutex::new(Pending { batch: 1, ..Default::default() }),
            wake: Notify::new(),
            done: watch::channel(0).0,
        };
        Reaper {
            shared: Arc::new(shared),
            task: std::sync::OnceLock::new(),
            nl: std::sync::OnceLock::new(),
            swept: tokio::sync::OnceCell::new(),
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(t) = self.task.get() {
            t.abort();
        }
        // A last batch, if a runtime can still run it; otherwise the links
        // stay marked and the next start deletes them.
        let pending = !self.shared.pending().names.is_empty();
        if let (true, Some(nl), Ok(rt)) = (pending, self.nl.get(), tokio::runtime::Handle::try_current()) {
            let nl = nl.clone();
            rt.spawn(async move { nl.link_del_group(REAP_GROUP).await });
        }
    }
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Deletes the reap group in batches until the reaper goes away.
async fn run(shared: Arc<Shared>, nl: Netlink) {
    loop {
        shared.wake.notified().await;
        // Let more links join the batch, unless someone needs it now (a
        // wake-up for another retired link does not end the wait).
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while !shared.pending().urgent {
            if tokio::time::timeout_at(deadline, shared.wake.notified()).await.is_err() {
                break;
            }
        }
        let batch = {
            let mut p = shared.pending();
            if p.names.is_empty() {
                continue;
            }
            p.urgent = false;
            p.batch += 1;
            p.batch - 1
        };
        match nl.link_del_group(REAP_GROUP).await {
            Ok(()) => tracing::debug!(batch, "deleted retired links"),
            Err(e) => {
                tracing::warn!(error = %cnm_driverapi::Chain(&e), "background delete failed; retried at next start")
            }
        }
        shared.pending().names.retain(|_, b| *b > batch);
        shared.done.send_replace(batch);
        if !shared.pending().names.is_empty() {
            shared.wake.notify_one();
        }
    }
}

impl Reaper {
    /// Takes the link down, marks it, and deletes it in the background.
    pub async fn reap(&self, nl: &Netlink, name: &str, index: u32) -> Result<(), Error> {
        let marked = nl.link_retire_to_group(index, REAP_ALIAS, REAP_GROUP).await;
        self.enqueue_marked(nl, name, marked, "take {name} down")
    }

    /// As [`Reaper::reap`] for a bridge without ports: its addresses (and so
    /// its routes) are removed first, at once, so that its subnet is free for
    /// the next network (the default IPAM avoids the host's networks); IPv6
    /// link-local ones stay, as they claim nothing. Without ports the bridge
    /// has no carrier and carries nothing: it is left up ([`Reaper::reap_idle`]).
    pub async fn reap_bridge(&self, nl: &Netlink, name: &str, index: u32) -> Result<(), Error> {
        let addrs = match nl.addr_list(Some(index)).await {
            Ok(addrs) => addrs,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(Error::os(format!("list the addresses of {name}"), e)),
        };
        for a in addrs.into_iter().filter(|a| !is_link_local(a.net.addr())) {
            match nl.addr_del(index, a.net).await {
                Err(e) if !e.is_not_found() => return Err(Error::os(format!("remove {} from {name}", a.net), e)),
                _ => {}
            }
        }
        self.reap_idle(nl, name, index).await
    }

    /// As [`Reaper::reap`] for a link that carries nothing and that no
    /// sandbox can bring back (a bridge without ports or addresses): marked
    /// but left up, as taking a link down makes the kernel wait for a grace
    /// period (half a millisecond here) with RTNL held. Not for a veth: its
    /// sandbox end, raised again by a container, would give it a carrier.
    pub async fn reap_idle(&self, nl: &Netlink, name: &str, index: u32) -> Result<(), Error> {
        let marked = nl.link_mark_to_group(index, REAP_ALIAS, REAP_GROUP).await;
        self.enqueue_marked(nl, name, marked, "mark {name} for deletion")
    }

    /// Queues link `name` once marking it succeeded; a link already gone
    /// needs nothing; another failure is `what` (with `{name}` in it) failing.
    fn enqueue_marked(&self, nl: &Netlink, name: &str, marked: cnm_osl::Result<()>, what: &str) -> Result<(), Error> {
        match marked {
            Ok(()) => self.enqueue(nl, name),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Error::os(what.replace("{name}", name), e)),
        }
        Ok(())
    }

    /// Puts a marked link into the batch being filled and wakes the task
    /// that deletes batches (started by the first link).
    fn enqueue(&self, nl: &Netlink, name: &str) {
        let _ = self.nl.set(nl.clone());
        self.task.get_or_init(|| tokio::spawn(run(self.shared.clone(), nl.clone())));
        {
            let mut p = self.shared.pending();
            let batch = p.batch;
            p.names.insert(name.to_string(), batch);
        }
        self.shared.wake.notify_one();
    }

    /// Whether a deletion of `name` is under way.
    pub fn is_pending(&self, name: &str) -> bool {
        self.shared.pending().names.contains_key(name)
    }

    /// Deletes the pending batch now and waits until the deletion of batch `upto` is done.
    async fn flush(&self, upto: u64) {
        let mut done = self.shared.done.subscribe();
        self.shared.pending().urgent = true;
        self.shared.wake.notify_one();
        let _ = done.wait_for(|d| *d >= upto).await;
    }

    /// Waits until a pending deletion of `name`, if any, is done.
    pub async fn wait(&self, name: &str) {
        let batch = self.shared.pending().names.get(name).copied();
        if let Some(b) = batch {
            self.flush(b).await;
        }
    }

    /// Waits for every pending deletion.
    pub async fn wait_all(&self) {
        let last = self.shared.pending().names.values().copied().max();
        if let Some(b) = last {
            self.flush(b).await;
        }
    }

    /// Once per driver: deletes links a previous process left marked.
    pub async fn sweep(&self, nl: &Netlink) -> Result<(), Error> {
        self.swept
            .get_or_try_init(|| async {
                let links = nl.link_list().await.map_err(|e| Error::os("list links", e))?;
                for l in links.into_iter().filter(|l| l.alias.as_deref() == Some(REAP_ALIAS)) {
                    tracing::info!(link = %l.name, "deleting a link left by an interrupted delete");
                    match nl.link_del(l.index).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(Error::os(format!("delete {}", l.name), e)),
                    }
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_ipv6_link_local_addresses_stay_on_a_retired_bridge() {
        for kept in ["fe80::1", "febf::1"] {
            assert!(super::is_link_local(kept.parse().unwrap()), "{kept}");
        }
        for removed in ["172.18.0.1", "fd00::1", "2001:db8::1", "fec0::1"] {
            assert!(!super::is_link_local(removed.parse().unwrap()), "{removed}");
        }
    }
}
