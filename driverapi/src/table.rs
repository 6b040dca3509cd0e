//! A driver's table of records (networks, endpoints, published ports),
//! shared between its calls: a map behind a lock that a panicking holder
//! cannot spoil. Every access recovers the map from a poisoned lock, so a
//! record is never silently dropped or reported missing because some other
//! call panicked.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// A map of records keyed by `K` (usually an id), safe to share between
/// calls; see the module's header.
#[derive(Debug)]
pub struct Table<K, V> {
    map: Mutex<HashMap<K, V>>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table { map: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V> Table<K, V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map, held until the guard is dropped (keep that short; never
    /// across an `.await`).
    pub fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `value` under `key`; the value it replaces, if any.
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        self.lock().insert(key, value)
    }

    /// Forgets `key`; its value, if it had one.
    pub fn remove<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.lock().remove(key)
    }

    /// Whether `key` has a value.
    pub fn contains<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.lock().contains_key(key)
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the table has no record.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl<K: Eq + Hash, V: Clone> Table<K, V> {
    /// A copy of the value under `key`.
    pub fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.lock().get(key).cloned()
    }

    /// The values, copied.
    pub fn values(&self) -> Vec<V> {
        self.lock().values().cloned().collect()
    }
}

impl<K: Eq + Hash + Clone, V> Table<K, V> {
    /// The keys, copied.
    pub fn keys(&self) -> Vec<K> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn a_panic_while_holding_the_table_loses_no_record() {
        let table: std::sync::Arc<Table<String, u32>> = Default::default();
        table.insert("kept".into(), 1);
        let t = table.clone();
        let panicked = std::thread::spawn(move || {
            let mut map = t.lock();
            map.insert("also kept".into(), 2);
            panic!("a call fails while holding the table");
        })
        .join();
        assert!(panicked.is_err());
        assert!(table.map.is_poisoned(), "the lock is poisoned, as a panicking holder leaves it");
        assert_eq!(table.get("kept"), Some(1));
        assert_eq!(table.get("also kept"), Some(2));
        assert_eq!(table.insert("new".into(), 3), None);
        assert_eq!(table.len(), 3);
        assert_eq!(table.remove("kept"), Some(1));
        let mut keys = table.keys();
        keys.sort();
        assert_eq!(keys, ["also kept", "new"]);
    }
}
