//! The spool's SQLite store: one table of entries in arrival order, a writer thread that
//! commits appends in groups, and a second connection for reads and deletes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection};
use tokio::sync::oneshot;

/// How long a connection waits for the other one's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most appends committed in one transaction.
const MAX_GROUP: usize = 512;

/// Why the spool could not take or give back a request.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Taking the request would pass `spool.max_bytes`.
    #[error("the spool is full")]
    Full,
    /// The spool directory could not be created.
    #[error("cannot create the spool directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("spool database error")]
    Database(#[from] rusqlite::Error),
    /// The writer thread is gone.
    #[error("the spool writer stopped")]
    Closed,
    /// The commit that held this request failed (the error is logged by the writer).
    #[error("the spool write failed")]
    WriteFailed,
}

/// One spooled request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path_and_query: String,
    pub headers: Vec<u8>,
    pub content_type: Vec<u8>,
    pub body: Vec<u8>,
    pub event_id: Option<String>,
    pub created_ms: u64,
}

impl Entry {
    /// The bytes it counts against `spool.max_bytes`.
    pub(super) fn size(&self) -> u64 {
        (self.path_and_query.len() + self.headers.len() + self.content_type.len() + self.body.len())
            as u64
    }
}

/// Sizes of what is spooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub bytes: u64,
    pub entries: u64,
    pub oldest_ms: Option<u64>,
}

type Append = (Entry, oneshot::Sender<Result<(), SpoolError>>);

/// The store; clones share it.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Append>>,
    reader: Mutex<Connection>,
    max_bytes: u64,
    /// Bytes committed plus bytes reserved by appends in flight.
    bytes: AtomicU64,
    entries: AtomicU64,
    /// 0 when empty.
    oldest_ms: AtomicU64,
}

fn connect(path: &Path) -> Result<Connection, SpoolError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk (the WAL fsynced) before it returns.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl Store {
    /// Opens `<dir>/spool.sqlite`, creating it, and starts the writer thread.
    pub fn open(dir: &Path, max_bytes: usize) -> Result<Store, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|source| SpoolError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("spool.sqlite");
        let reader = connect(&path)?;
        reader.execute_batch(
            "CREATE TABLE IF NOT EXISTS entries (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                created_ms INTEGER NOT NULL,
                size INTEGER NOT NULL,
                path_and_query TEXT NOT NULL,
                headers BLOB NOT NULL,
                content_type BLOB NOT NULL,
                body BLOB NOT NULL,
                event_id TEXT
            );",
        )?;
        let (bytes, entries): (i64, i64) = reader.query_row(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM entries",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let writer_conn = connect(&path)?;
        let (tx, rx) = mpsc::channel::<Append>();
        let store = Store {
            inner: Arc::new(StoreInner {
                path,
                writer: Mutex::new(tx),
                reader: Mutex::new(reader),
                max_bytes: max_bytes as u64,
                bytes: AtomicU64::new(bytes.max(0) as u64),
                entries: AtomicU64::new(entries.max(0) as u64),
                oldest_ms: AtomicU64::new(0),
            }),
        };
        store.refresh_oldest()?;
        let shared = Arc::clone(&store.inner);
        std::thread::Builder::new()
            .name("scrubgate-spool".into())
            .spawn(move || write_loop(writer_conn, rx, &shared))
            .map_err(|_| SpoolError::Closed)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `entry` for the next group commit; `done` gets the outcome.
    pub fn append(
        &self,
        entry: Entry,
        done: oneshot::Sender<Result<(), SpoolError>>,
    ) -> Result<(), SpoolError> {
        let size = entry.size();
        let reserved =
            self.inner
                .bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bytes| {
                    (bytes + size <= self.inner.max_bytes).then_some(bytes + size)
                });
        if reserved.is_err() {
            return Err(SpoolError::Full);
        }
        let sent = self
            .inner
            .writer
            .lock()
            .map_err(|_| SpoolError::Closed)?
            .send((entry, done));
        if sent.is_err() {
            self.inner.bytes.fetch_sub(size, Ordering::AcqRel);
            return Err(SpoolError::Closed);
        }
        Ok(())
    }

    /// The oldest `limit` entries, with their ids.
    #[cfg(test)]
    pub fn oldest(&self, limit: usize) -> Result<Vec<(i64, Entry)>, SpoolError> {
        self.page(0, limit)
    }

    /// The oldest `limit` entries with an id above `after`, with their ids.
    pub fn page(&self, after: i64, limit: usize) -> Result<Vec<(i64, Entry)>, SpoolError> {
        let conn = self.inner.reader.lock().map_err(|_| SpoolError::Closed)?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, created_ms, path_and_query, headers, content_type, body, event_id
             FROM entries WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map([after, limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                Entry {
                    created_ms: row.get::<_, i64>(1)?.max(0) as u64,
                    path_and_query: row.get(2)?,
                    headers: row.get(3)?,
                    content_type: row.get(4)?,
                    body: row.get(5)?,
                    event_id: row.get(6)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes entries (delivered or refused) in one transaction: one commit (one
    /// `fsync`) for a whole batch of replayed entries, not one per entry.
    pub fn delete_many(&self, ids: &[i64]) -> Result<(), SpoolError> {
        if ids.is_empty() {
            return Ok(());
        }
        {
            let mut conn = self.inner.reader.lock().map_err(|_| SpoolError::Closed)?;
            // IMMEDIATE: the write lock is taken (waiting up to the busy timeout) before
            // the first read. A deferred transaction that reads and then writes fails at
            // once with SQLITE_BUSY when the writer thread commits in between, and the
            // delivered entries would stay to be sent again.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (mut freed, mut removed) = (0u64, 0u64);
            {
                let mut size_of = tx.prepare_cached("SELECT size FROM entries WHERE id = ?1")?;
                let mut delete = tx.prepare_cached("DELETE FROM entries WHERE id = ?1")?;
                for id in ids {
                    let size: Option<i64> = size_of.query_row([id], |row| row.get(0)).ok();
                    if let Some(size) = size {
                        delete.execute([id])?;
                        freed += size.max(0) as u64;
                        removed += 1;
                    }
                }
            }
            tx.commit()?;
            self.inner.bytes.fetch_sub(freed, Ordering::AcqRel);
            self.inner.entries.fetch_sub(removed, Ordering::AcqRel);
        }
        self.refresh_oldest()
    }

    /// Deletes the entries created before `cutoff_ms`; returns how many.
    pub fn expire(&self, cutoff_ms: u64) -> Result<u64, SpoolError> {
        let removed = {
            let conn = self.inner.reader.lock().map_err(|_| SpoolError::Closed)?;
            let (count, size): (i64, i64) = conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE created_ms < ?1",
                [cutoff_ms as i64],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if count > 0 {
                conn.execute(
                    "DELETE FROM entries WHERE created_ms < ?1",
                    [cutoff_ms as i64],
                )?;
                self.inner
                    .bytes
                    .fetch_sub(size.max(0) as u64, Ordering::AcqRel);
                self.inner.entries.fetch_sub(count as u64, Ordering::AcqRel);
            }
            count.max(0) as u64
        };
        self.refresh_oldest()?;
        Ok(removed)
    }

    /// What is spooled now.
    pub fn stats(&self) -> Stats {
        let oldest = self.inner.oldest_ms.load(Ordering::Acquire);
        Stats {
            bytes: self.inner.bytes.load(Ordering::Acquire),
            entries: self.inner.entries.load(Ordering::Acquire),
            oldest_ms: (oldest != 0).then_some(oldest),
        }
    }

    fn refresh_oldest(&self) -> Result<(), SpoolError> {
        let conn = self.inner.reader.lock().map_err(|_| SpoolError::Closed)?;
        let oldest: Option<i64> = conn
            .query_row(
                "SELECT created_ms FROM entries ORDER BY id LIMIT 1",
                [],
                |row| row.get(0),
            )
            .ok();
        self.inner
            .oldest_ms
            .store(oldest.map_or(0, |ms| ms.max(1) as u64), Ordering::Release);
        Ok(())
    }
}

/// The writer thread: every append waiting when a commit starts goes into it.
fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Append>, store: &StoreInner) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &group);
        match result {
            Ok(()) => {
                store
                    .entries
                    .fetch_add(group.len() as u64, Ordering::AcqRel);
                if let Some((first, _)) = group.first() {
                    let _ = store.oldest_ms.compare_exchange(
                        0,
                        first.created_ms.max(1),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
                for (_, done) in group {
                    let _ = done.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "spool write failed");
                for (entry, done) in group {
                    store.bytes.fetch_sub(entry.size(), Ordering::AcqRel);
                    let _ = done.send(Err(SpoolError::WriteFailed));
                }
            }
        }
    }
}

fn commit(conn: &mut Connection, group: &[Append]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO entries
             (created_ms, size, path_and_query, headers, content_type, body, event_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (entry, _) in group {
            insert.execute(params![
                entry.created_ms as i64,
                entry.size() as i64,
                entry.path_and_query,
                entry.headers,
                entry.content_type,
                entry.body,
                entry.event_id,
            ])?;
        }
    }
    tx.commit()
}
