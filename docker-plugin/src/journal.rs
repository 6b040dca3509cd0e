//! The journal: what Docker told the plugins, on disk before it is acted
//! on. Docker replays nothing to a plugin that restarts, so every network,
//! endpoint, join, published port, pool and address it asked for is a
//! record here (JSON in one redb table, keyed by kind and id), written
//! durably before the driver acts (an intent) and marked done after.

use crate::{Error, Result};
use redb::{ReadableDatabase, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const RECORDS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("records");

/// The plugin host's journal (cheap to clone: every clone is the same database).
#[derive(Clone)]
pub struct Journal {
    db: Arc<redb::Database>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path`; one left by a killed process is repaired.
    pub fn open(path: &Path) -> Result<Self> {
        let path = Arc::new(path.to_path_buf());
        let fail = |op: &'static str| {
            let path = path.clone();
            move |e: redb::Error| Error::Journal { path: path.to_path_buf(), op, source: Box::new(e) }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail("create its directory")(e.into()))?;
        }
        let db = redb::Database::create(path.as_path()).map_err(|e| fail("open")(e.into()))?;
        let txn = db.begin_write().map_err(|e| fail("begin")(e.into()))?;
        txn.open_table(RECORDS).map_err(|e| fail("open table")(e.into()))?;
        txn.commit().map_err(|e| fail("commit")(e.into()))?;
        Ok(Journal { db: Arc::new(db), path })
    }

    fn fail(&self, op: &'static str) -> impl Fn(redb::Error) -> Error + '_ {
        move |e| Error::Journal { path: self.path.to_path_buf(), op, source: Box::new(e) }
    }

    /// Writes record `key` durably (on a blocking thread).
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Record { key: key.to_string(), source: e })?;
        self.write(key, Some(bytes)).await
    }

    /// Removes record `key` durably (absent is fine).
    pub async fn remove(&self, key: &str) -> Result<()> {
        self.write(key, None).await
    }

    async fn write(&self, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        let journal = self.clone();
        let owned = key.to_string();
        tokio::task::spawn_blocking(move || journal.write_now(&owned, value.as_deref()))
            .await
            .map_err(|source| Error::Unfinished { key: key.to_string(), source })?
    }

    fn write_now(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.fail("begin")(e.into()))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.fail("open table")(e.into()))?;
            match value {
                Some(v) => table.insert(key, v).map(drop),
                None => table.remove(key).map(drop),
            }
            .map_err(|e| self.fail("write")(e.into()))?;
        }
        txn.commit().map_err(|e| self.fail("commit")(e.into()))
    }

    /// Record `key`, if there is one.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let txn = self.db.begin_read().map_err(|e| self.fail("begin")(e.into()))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.fail("open table")(e.into()))?;
        let Some(v) = table.get(key).map_err(|e| self.fail("read")(e.into()))? else { return Ok(None) };
        serde_json::from_slice(v.value()).map(Some).map_err(|e| Error::Record { key: key.to_string(), source: e })
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn load<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        let txn = self.db.begin_read().map_err(|e| self.fail("begin")(e.into()))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.fail("open table")(e.into()))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| self.fail("read")(e.into()))? {
            let (k, v) = item.map_err(|e| self.fail("read")(e.into()))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let value =
                serde_json::from_slice(v.value()).map_err(|e| Error::Record { key: key.to_string(), source: e })?;
            out.push((key.to_string(), value));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_survive_a_reopen_and_load_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let j = Journal::open(&path).unwrap();
        j.put("net/a/1", &1u32).await.unwrap();
        j.put("net/a/2", &2u32).await.unwrap();
        j.put("net/b/1", &3u32).await.unwrap();
        j.put("ep/a/1", &4u32).await.unwrap();
        j.remove("net/a/2").await.unwrap();
        j.remove("absent").await.unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        let got: Vec<(String, u32)> = j.load("net/a/").unwrap();
        assert_eq!(got, vec![("net/a/1".to_string(), 1)]);
        assert_eq!(j.load::<u32>("net/").unwrap().len(), 2);
        j.put("bad", &"text").await.unwrap();
        assert!(matches!(j.load::<u32>("bad"), Err(Error::Record { .. })), "a bad record is an error naming it");
    }
}
