//! The embedded store (redb): one table per object kind, JSON values, and
//! every write durable before it returns, so an intent is on disk before
//! the kernel or a driver is touched. A durable commit waits for fsync, so
//! writes run on tokio's blocking threads, never on an async worker.
//!
//! Group commit: writes that arrive while a commit is under way wait for it
//! and then go together in the next transaction (one fsync for all, in the
//! order they arrived), so N operations at once cost far fewer than N
//! commits; a lone write costs one commit as before.

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
    queue: std::sync::Arc<std::sync::Mutex<Queue>>,
}

/// Writes waiting for the next commit, and whether a committer is at work.
#[derive(Default)]
struct Queue {
    pending: Vec<Write>,
    committing: bool,
    /// Transactions committed so far.
    commits: u64,
}

/// One waiting write: a record put (`Some`) or removed (`None`).
struct Write {
    table: Table,
    id: String,
    value: Option<Vec<u8>>,
    done: tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
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
        let store = Store { db: std::sync::Arc::new(db), queue: Default::default() };
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
        self.write(table, id, Some(bytes)).await
    }

    /// Removes one record durably (on a blocking thread; absent records are fine).
    pub async fn delete(&self, table: Table, id: &str) -> Result<()> {
        self.write(table, id, None).await
    }

    /// Queues a write and waits until a commit holding it is durable. The
    /// first writer of an idle store starts a committer on a blocking
    /// thread; it commits what is queued, then what queued meanwhile, until
    /// the queue is empty.
    async fn write(&self, table: Table, id: &str, value: Option<Vec<u8>>) -> Result<()> {
        let (done, result) = tokio::sync::oneshot::channel();
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            q.pending.push(Write { table, id: id.to_string(), value, done });
            !std::mem::replace(&mut q.committing, true)
        };
        if start {
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.commit_queued());
        }
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::Store(message)),
            Err(_) => Err(Error::Store("the write was dropped: its commit did not complete".into())),
        }
    }

    /// Commits queued writes, a transaction per turn, until none is left.
    /// Its handle on the database is gone before the last answers are
    /// sent: once every write has returned, a dropped controller's store
    /// can be opened again at once.
    fn commit_queued(self) {
        loop {
            let batch = {
                let mut q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                std::mem::take(&mut q.pending)
            };
            let result = self.commit(&batch).map_err(|e| match e {
                Error::Store(message) => message,
                other => other.to_string(),
            });
            let last = {
                let mut q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                q.commits += 1;
                q.committing = !q.pending.is_empty();
                !q.committing
            };
            let answer = |batch: Vec<Write>| {
                for w in batch {
                    let _ = w.done.send(result.clone());
                }
            };
            if last {
                drop(self);
                answer(batch);
                return;
            }
            answer(batch);
        }
    }

    /// One transaction with every write of `batch`, in order.
    fn commit(&self, batch: &[Write]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| err("begin")(&e))?;
        for w in batch {
            let mut t = txn.open_table(w.table.def()).map_err(|e| err("open table")(&e))?;
            match &w.value {
                Some(bytes) => t.insert(w.id.as_str(), bytes.as_slice()).map(|_| ()).map_err(|e| err("insert")(&e))?,
                None => t.remove(w.id.as_str()).map(|_| ()).map_err(|e| err("remove")(&e))?,
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_at_once_share_commits_and_all_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = Store::open(&path).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let store = store.clone();
            tasks.spawn(async move { store.put(Table::Endpoints, &format!("e{i}"), &i).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        store.delete(Table::Endpoints, "e7").await.unwrap();
        let commits = store.queue.lock().unwrap().commits;
        assert!(commits < 51, "51 writes at once took {commits} commits");
        drop(store);
        let reopened = Store::open(&path).unwrap();
        let mut got: Vec<u32> = reopened.load(Table::Endpoints).unwrap();
        got.sort();
        let want: Vec<u32> = (0..50).filter(|&i| i != 7).collect();
        assert_eq!(got, want);
    }
}
