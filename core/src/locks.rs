//! How operations are serialized without a controller-wide lock.
//!
//! * The in-memory [`State`](crate::state::State) sits behind a plain
//!   mutex that is only ever held for a few map look-ups or inserts — never
//!   across an `.await`, so never across driver, IPAM, plugin, netlink or
//!   store I/O. Readers (`networks()`, inspect, list) take it for that long
//!   and never wait for an operation in flight.
//! * Operations on one object are serialized by that object's async lock
//!   ([`ObjectLocks`]): a network's lock for endpoint create/delete and
//!   network delete; a network's lock *then* a sandbox's lock for join and
//!   leave. Sandbox deletion takes the locks of every network it has
//!   endpoints on (sorted by id), then its own. The one order — networks by
//!   id, then at most one sandbox — means no two operations can wait for
//!   each other. Operations on different networks and sandboxes run in
//!   parallel.
//! * Creation has no object to lock yet: the new name (network) or
//!   container id (sandbox) is reserved in the state until the object is
//!   inserted or the creation fails ([`Reservation`]).
//!
//! What an object lock protects: the object's record and its join state.
//! While an endpoint is joined to a sandbox, its join can only change under
//! that sandbox's lock, so a join or leave may read and reprogram the other
//! endpoints of its sandbox (the gateway role) holding just its own locks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// An async lock per object id, created on first use and dropped with the object.
#[derive(Default)]
pub(crate) struct ObjectLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// A held object lock.
pub(crate) type ObjectGuard = OwnedMutexGuard<()>;

impl ObjectLocks {
    fn entry(&self, id: &str) -> Arc<AsyncMutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    /// Waits for the lock of object `id`.
    pub async fn lock(&self, id: &str) -> ObjectGuard {
        self.entry(id).lock_owned().await
    }

    /// Waits for the locks of all `ids`, in sorted order (the lock order).
    pub async fn lock_all(&self, ids: &[String]) -> Vec<ObjectGuard> {
        let mut sorted: Vec<&String> = ids.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut guards = Vec::with_capacity(sorted.len());
        for id in sorted {
            guards.push(self.lock(id).await);
        }
        guards
    }

    /// Forgets the lock of a deleted object (a waiter still holding it finds
    /// the object gone).
    pub fn forget(&self, id: &str) {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// A name (or container id) reserved while its object is being created;
/// released when dropped.
pub(crate) struct Reservation {
    set: Arc<Mutex<std::collections::HashSet<String>>>,
    key: String,
}

impl Reservation {
    /// Reserves `key` in `set`; `None` if it is reserved already.
    pub fn take(set: &Arc<Mutex<std::collections::HashSet<String>>>, key: &str) -> Option<Reservation> {
        let mut s = set.lock().unwrap_or_else(|p| p.into_inner());
        s.insert(key.to_string()).then(|| Reservation { set: set.clone(), key: key.to_string() })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_is_exclusive_until_dropped() {
        let set = Arc::default();
        let first = Reservation::take(&set, "n1").expect("free");
        assert!(Reservation::take(&set, "n1").is_none());
        drop(first);
        assert!(Reservation::take(&set, "n1").is_some());
    }

    #[tokio::test]
    async fn lock_all_takes_each_lock_once_in_order() {
        let locks = ObjectLocks::default();
        let ids = vec!["b".to_string(), "a".to_string(), "b".to_string()];
        let guards = locks.lock_all(&ids).await;
        assert_eq!(guards.len(), 2);
        assert!(locks.entry("a").try_lock().is_err() && locks.entry("b").try_lock().is_err());
        drop(guards);
        assert!(locks.entry("a").try_lock().is_ok());
    }
}
