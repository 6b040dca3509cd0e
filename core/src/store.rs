//! The embedded store (redb): one table per object kind, JSON values, one
//! durable transaction per write so an intent is on disk before the kernel
//! or a driver is touched. A durable commit waits for fsync, so writes run
//! on tokio's blocking threads, never on an async worker.

use crate::{Error, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// The tables of the store.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Table {
    Networks,
    Endpoints,
    Sandboxes,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Networks => TableDefinition::new("networks"),
            Table::Endpoints => TableDefinition::new("endpoints"),
            Table::Sandboxes => TableDefinition::new("sandboxes"),
        }
    }
}

/// The controller's store (cheap to clone; every clone is the same database).
#[derive(Clone)]
pub(crate) struct Store {
    db: std::sync::Arc<redb::Database>,
}

fn err(op: &str) -> impl Fn(&dyn std::fmt::Display) -> Error + '_ {
    move |e| Error::Store(format!("{op}: {e}"))
}

impl Store {
    /// Opens (or creates) the store at `path`; a store left by a killed process is repaired.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        }
        let db = redb::Database::create(path).map_err(|e| err("open")(&e))?;
        let store = Store { db: std::sync::Arc::new(db) };
        // Create the tables once, so readers never meet a missing table.
        let txn = store.db.begin_write().map_err(|e| err("begin")(&e))?;
        for t in [Table::Networks, Table::Endpoints, Table::Sandboxes] {
            txn.open_table(t.def()).map_err(|e| err("open table")(&e))?;
        }
        txn.commit().map_err(|e| err("commit")(&e))?;
        Ok(store)
    }

    /// Writes one record durably (on a blocking thread).
    pub async fn put<T: Serialize>(&self, table: Table, id: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| err("encode")(&e))?;
        let (store, id) = (self.clone(), id.to_string());
        tokio::task::spawn_blocking(move || store.put_bytes(table, &id, &bytes))
            .await
            .map_err(|e| Error::Store(format!("write task failed: {e}")))?
    }

    /// Removes one record durably (on a blocking thread; absent records are fine).
    pub async fn delete(&self, table: Table, id: &str) -> Result<()> {
        let (store, id) = (self.clone(), id.to_string());
        tokio::task::spawn_blocking(move || store.delete_now(table, &id))
            .await
            .map_err(|e| Error::Store(format!("write task failed: {e}")))?
    }

    fn put_bytes(&self, table: Table, id: &str, bytes: &[u8]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| err("begin")(&e))?;
        {
            let mut t = txn.open_table(table.def()).map_err(|e| err("open table")(&e))?;
            t.insert(id, bytes).map_err(|e| err("insert")(&e))?;
        }
        txn.commit().map_err(|e| err("commit")(&e))
    }

    fn delete_now(&self, table: Table, id: &str) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| err("begin")(&e))?;
        {
            let mut t = txn.open_table(table.def()).map_err(|e| err("open table")(&e))?;
            t.remove(id).map_err(|e| err("remove")(&e))?;
        }
        txn.commit().map_err(|e| err("commit")(&e))
    }

    /// Every record of a table.
    pub fn load<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>> {
        let txn = self.db.begin_read().map_err(|e| err("begin read")(&e))?;
        let t = txn.open_table(table.def()).map_err(|e| err("open table")(&e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| err("iterate")(&e))? {
            let (k, v) = row.map_err(|e| err("read")(&e))?;
            let rec = serde_json::from_slice(v.value())
                .map_err(|e| Error::Store(format!("decode record {}: {e}", k.value())))?;
            out.push(rec);
        }
        Ok(out)
    }
}
