//! Deleting links without waiting for the kernel: a deleted network's
//! bridge, or a leaving endpoint's veth pair, is taken down and marked at
//! once, and the kernel's unregister — 20 to 40 ms of RCU grace periods
//! here — completes in the background. Creating a link of the same name
//! waits for it; a link left marked by a process that died is deleted when
//! the next driver starts.

use crate::Error;
use cnm_osl::Netlink;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// The alias of a link being deleted.
pub(crate) const REAP_ALIAS: &str = "cnm:deleting";

/// Links being deleted, by name.
#[derive(Default)]
pub(crate) struct Reaper {
    pending: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
    swept: tokio::sync::OnceCell<()>,
}

impl Reaper {
    /// Takes the link down, marks it, and deletes it in the background.
    pub async fn reap(&self, nl: &Netlink, name: &str, index: u32) -> Result<(), Error> {
        match nl.link_retire(index, REAP_ALIAS).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(Error::os(format!("take {name} down"), e)),
        }
        let nl = nl.clone();
        let owned = name.to_string();
        let pending = self.pending.clone();
        let handle = tokio::spawn(async move {
            match nl.link_del(index).await {
                Ok(()) => tracing::debug!(link = %owned, "deleted"),
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(link = %owned, error = %e, "background delete failed; retried at next start"),
            }
            if let Ok(mut p) = pending.lock() {
                p.remove(&owned);
            }
        });
        if let Ok(mut p) = self.pending.lock() {
            p.insert(name.to_string(), handle);
        }
        Ok(())
    }

    /// Whether a deletion of `name` is under way.
    pub fn is_pending(&self, name: &str) -> bool {
        self.pending.lock().is_ok_and(|p| p.contains_key(name))
    }

    /// Waits until a pending deletion of `name`, if any, is done.
    pub async fn wait(&self, name: &str) {
        let handle = self.pending.lock().ok().and_then(|mut p| p.remove(name));
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Waits for every pending deletion.
    pub async fn wait_all(&self) {
        let handles: Vec<JoinHandle<()>> =
            self.pending.lock().map(|mut p| p.drain().map(|(_, h)| h).collect()).unwrap_or_default();
        for h in handles {
            let _ = h.await;
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
