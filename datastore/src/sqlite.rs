//! The embedded SQLite backend: the default for one host and for the lab.
//!
//! One database file, shared safely by several processes on a local filesystem: WAL journal,
//! `busy_timeout`, and `BEGIN IMMEDIATE` for every read-modify-write so writers queue instead of
//! failing. Each write is one transaction that bumps the global revision, writes the object and
//! appends to the change log, so a process killed mid-write leaves either all of it or none.
//! Watches follow the change log table by polling it.
//!
//! ```text
//! meta(name PK, value)                      'revision', 'compacted'
//! objects(path PK, kind, value, revision)   current state
//! changes(revision PK, kind, path, op, value)  history for watches (trimmed to HISTORY)
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use crate::{
    Backend, CALL_TIMEOUT, Change, ChangeOp, Error, Key, Kind, Result, Revision, Stored, Write,
};

/// How many changes are kept for watches to resume from.
pub const HISTORY: u64 = 100_000;
/// How often a watch polls the change log.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Reader connections per process: reads (and watches' polls) run on these, so they never
/// queue behind a write holding the writer connection (WAL lets readers and one writer run
/// at once).
const READERS: usize = 2;

struct Inner {
    /// The one connection that writes.
    conn: Mutex<Connection>,
    /// Opened on first use (a one-shot CNI call mostly writes and should not pay for them).
    readers: Vec<Mutex<Option<Connection>>>,
    next_reader: std::sync::atomic::AtomicUsize,
    path: PathBuf,
}

/// The SQLite backend.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Locks a connection. A panic in another call cannot have left a transaction open: rusqlite
/// rolls back a transaction dropped during unwinding.
fn relock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        endpoint: format!("sqlite:{}", path.display()),
        reason: e.to_string(),
    }
}

/// How SQLite syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a committed write survives a power cut (the default: IPAM's
    /// allocations must never be lost once handed out).
    #[default]
    Full,
    /// `synchronous=NORMAL`: in WAL mode a power cut may lose the last commits (never corrupts).
    Normal,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path`, with `synchronous=FULL`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteBackend> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens with a chosen durability (`sqlite:PATH?synchronous=normal`).
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<SqliteBackend> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path).map_err(|e| unavailable(&path, e))?;
        // SQLite's default busy handler sleeps in steps of up to 100 ms, which wastes most of
        // the time when several processes take turns writing; retry every ~0.5 ms instead,
        // giving up after about CALL_TIMEOUT.
        conn.busy_handler(Some(busy_wait))
            .map_err(|e| unavailable(&path, e))?;
        // journal_mode returns a row; query it rather than execute.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| unavailable(&path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(target: "datastore.sqlite", path = %path.display(), mode, "WAL not available");
        }
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous={sync};"))
            .map_err(|e| unavailable(&path, e))?;
        // The schema exists once any process created it: check with a read, so that opening
        // (once per CNI call) does not take the write lock every time.
        let ready: bool = conn
            .query_row(
                "SELECT count(*) = 4 FROM sqlite_master WHERE name IN \
                 ('meta', 'objects', 'objects_kind', 'changes_kind')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| unavailable(&path, e))?;
        if !ready {
            Self::create_schema(&conn).map_err(|e| unavailable(&path, e))?;
        }
        let readers = (0..READERS).map(|_| Mutex::new(None)).collect();
        Ok(SqliteBackend {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                readers,
                next_reader: Default::default(),
                path,
            }),
        })
    }

    /// Creates the tables and indexes (idempotent; one write transaction).
    fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
             CREATE TABLE IF NOT EXISTS objects (
                 path TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL,
                 revision INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS objects_kind ON objects(kind, path);
             CREATE TABLE IF NOT EXISTS changes (
                 revision INTEGER PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL,
                 op TEXT NOT NULL, value TEXT);
             CREATE INDEX IF NOT EXISTS changes_kind ON changes(kind, revision);
             COMMIT;",
        )
    }

    /// Runs `f` on the writer connection in a blocking thread, bounded by [`CALL_TIMEOUT`]
    /// plus a margin (SQLite's own busy timeout fires first).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run_on(false, f).await
    }

    /// Like [`Self::run`], on a reader connection (the first free one, else the next in turn).
    async fn run_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run_on(true, f).await
    }

    async fn run_on<T: Send + 'static>(
        &self,
        read: bool,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        let path = inner.path.clone();
        let task = tokio::task::spawn_blocking(move || {
            if !read {
                return f(&mut relock(&inner.conn));
            }
            let n = inner.readers.len();
            let start = inner
                .next_reader
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut slot = (0..n)
                .find_map(|i| inner.readers[(start + i) % n].try_lock().ok())
                .unwrap_or_else(|| {
                    inner.readers[start % n]
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                });
            if slot.is_none() {
                let mut r =
                    Connection::open(&inner.path).map_err(|e| unavailable(&inner.path, e))?;
                r.busy_handler(Some(busy_wait))
                    .map_err(|e| unavailable(&inner.path, e))?;
                *slot = Some(r);
            }
            match slot.as_mut() {
                Some(c) => f(c),
                None => Err(unavailable(&inner.path, "no reader connection")),
            }
        });
        match tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), task).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(Error::Internal(format!("sqlite task failed: {join}"))),
            Err(_) => Err(unavailable(&path, "timed out")),
        }
    }

    /// Runs a `SELECT path, value, revision` statement and parses the rows whose path `keep`
    /// accepts.
    fn query_stored(
        stmt: &mut rusqlite::CachedStatement<'_>,
        params: impl rusqlite::Params,
        keep: impl Fn(&str) -> bool,
        db: &Path,
    ) -> Result<Vec<Stored>> {
        let me = |e| Self::map_err(db, e);
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(me)?;
        let mut out = Vec::new();
        for row in rows {
            let (p, text, r) = row.map_err(me)?;
            if !keep(&p) {
                continue;
            }
            let key = Key::from_path(&p).ok_or_else(|| Error::Internal(format!("bad path {p}")))?;
            out.push(parse_stored(key, &text, r)?);
        }
        Ok(out)
    }

    fn map_err(path: &Path, e: rusqlite::Error) -> Error {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                unavailable(path, format!("database busy: {e}"))
            }
            _ => Error::Internal(format!("sqlite:{}: {e}", path.display())),
        }
    }

    /// One write transaction: `check` sees the current revision of the key (None when absent)
    /// and decides; then the write is applied and logged under a new global revision.
    async fn write(
        &self,
        key: &Key,
        value: Option<Value>,
        check: impl FnOnce(Option<Revision>) -> Result<&'static str> + Send + 'static,
    ) -> Result<Revision> {
        let path = self.inner.path.clone();
        let key = key.clone();
        self.run(move |conn| {
            let me = |e| Self::map_err(&path, e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(me)?;
            let op = check(Self::current(&tx, &key).map_err(me)?)?;
            let rev = Self::apply(&tx, &key, value.as_ref(), op).map_err(me)?;
            tx.commit().map_err(me)?;
            Ok(rev)
        })
        .await
    }

    /// The revision of the object at `key` (None when absent), inside a transaction.
    fn current(tx: &rusqlite::Transaction<'_>, key: &Key) -> rusqlite::Result<Option<Revision>> {
        let r: Option<i64> = tx
            .query_row(
                "SELECT revision FROM objects WHERE path = ?1",
                [&key.path()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(r.map(|r| r as Revision))
    }

    /// Writes (or deletes, when `value` is None) one object under a new global revision and
    /// logs it, inside a transaction whose checks passed.
    fn apply(
        tx: &rusqlite::Transaction<'_>,
        key: &Key,
        value: Option<&Value>,
        op: &str,
    ) -> rusqlite::Result<Revision> {
        let kp = key.path();
        let rev: i64 = tx.query_row(
            "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value",
            [],
            |r| r.get(0),
        )?;
        let text = value.map(Value::to_string);
        match &text {
            Some(t) => tx.execute(
                "INSERT INTO objects (path, kind, value, revision) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(path) DO UPDATE SET value = excluded.value, revision = excluded.revision",
                params![kp, key.kind.name(), t, rev],
            )?,
            None => tx.execute("DELETE FROM objects WHERE path = ?1", [&kp])?,
        };
        tx.execute(
            "INSERT INTO changes (revision, kind, path, op, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![rev, key.kind.name(), kp, op, text],
        )?;
        if (rev as u64).is_multiple_of(1000) && rev as u64 > HISTORY {
            let floor = rev - HISTORY as i64;
            tx.execute("DELETE FROM changes WHERE revision <= ?1", [floor])?;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'compacted'",
                [floor],
            )?;
        }
        Ok(rev as Revision)
    }

    /// Trims the change log up to `revision` (for tests of re-listing after compaction).
    pub async fn compact(&self, revision: Revision) -> Result<()> {
        let path = self.inner.path.clone();
        self.run(move |conn| {
            let me = |e| Self::map_err(&path, e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(me)?;
            tx.execute(
                "DELETE FROM changes WHERE revision <= ?1",
                [revision as i64],
            )
            .map_err(me)?;
            tx.execute(
                "UPDATE meta SET value = max(value, ?1) WHERE name = 'compacted'",
                [revision as i64],
            )
            .map_err(me)?;
            tx.commit().map_err(me)
        })
        .await
    }

    async fn changes_after(&self, kind: Kind, after: Revision) -> Result<Vec<Change>> {
        let path = self.inner.path.clone();
        self.run_read(move |conn| {
            let me = |e| Self::map_err(&path, e);
            let tx = conn.transaction().map_err(me)?;
            let compacted: i64 = tx
                .query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| {
                    r.get(0)
                })
                .map_err(me)?;
            if (after as i64) < compacted {
                return Err(Error::Compacted {
                    requested: after,
                    oldest: compacted as u64 + 1,
                });
            }
            let mut stmt = tx
                .prepare_cached(
                    "SELECT revision, path, op, value FROM changes
                     WHERE kind = ?1 AND revision > ?2 ORDER BY revision LIMIT 1000",
                )
                .map_err(me)?;
            let rows = stmt
                .query_map(params![kind.name(), after as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                })
                .map_err(me)?;
            let mut out = Vec::new();
            for row in rows {
                let (rev, p, op, value) = row.map_err(me)?;
                let key = Key::from_path(&p)
                    .ok_or_else(|| Error::Internal(format!("bad path {p} in change log")))?;
                let parse = |v: Option<String>| -> Result<Value> {
                    serde_json::from_str(v.as_deref().unwrap_or("null"))
                        .map_err(|e| Error::Internal(format!("{key}: stored JSON: {e}")))
                };
                let op = match op.as_str() {
                    "create" => ChangeOp::Created(parse(value)?),
                    "update" => ChangeOp::Modified(parse(value)?),
                    _ => ChangeOp::Deleted,
                };
                out.push(Change {
                    revision: rev as Revision,
                    key,
                    op,
                });
            }
            Ok(out)
        })
        .await
    }
}

/// Busy handler: called with the number of times it has run for this lock; true = try again.
fn busy_wait(attempt: i32) -> bool {
    const STEP: Duration = Duration::from_micros(500);
    let limit = (CALL_TIMEOUT.as_micros() / STEP.as_micros()) as i32;
    if attempt >= limit {
        return false;
    }
    std::thread::sleep(STEP);
    true
}

fn parse_stored(key: Key, text: &str, revision: i64) -> Result<Stored> {
    let value = serde_json::from_str(text)
        .map_err(|e| Error::Internal(format!("{key}: stored JSON: {e}")))?;
    Ok(Stored {
        key,
        value,
        revision: revision as Revision,
    })
}

#[async_trait]
impl Backend for SqliteBackend {
    fn endpoint(&self) -> String {
        format!("sqlite:{}", self.inner.path.display())
    }

    async fn get(&self, key: &Key) -> Result<Stored> {
        let path = self.inner.path.clone();
        let key = key.clone();
        self.run_read(move |conn| {
            let row: Option<(String, i64)> = conn
                .query_row(
                    "SELECT value, revision FROM objects WHERE path = ?1",
                    [key.path()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| Self::map_err(&path, e))?;
            match row {
                Some((text, rev)) => parse_stored(key, &text, rev),
                None => Err(Error::NotFound {
                    key: key.to_string(),
                }),
            }
        })
        .await
    }

    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Stored>, Revision)> {
        let path = self.inner.path.clone();
        let prefix = match namespace {
            Some(ns) if kind.namespaced() => format!("{}/{ns}/", kind.plural()),
            _ => format!("{}/", kind.plural()),
        };
        self.run_read(move |conn| {
            let me = |e| Self::map_err(&path, e);
            // One read transaction: the listing and the revision are from the same snapshot.
            let tx = conn.transaction().map_err(me)?;
            let rev: i64 = tx
                .query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| {
                    r.get(0)
                })
                .map_err(me)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT path, value, revision FROM objects WHERE kind = ?1 ORDER BY path",
                )
                .map_err(me)?;
            let out =
                Self::query_stored(&mut stmt, [kind.name()], |p| p.starts_with(&prefix), &path)?;
            Ok((out, rev as Revision))
        })
        .await
    }

    async fn create(&self, key: &Key, value: &Value) -> Result<Revision> {
        let k = key.to_string();
        self.write(key, Some(value.clone()), move |cur| match cur {
            Some(_) => Err(Error::AlreadyExists { key: k }),
            None => Ok("create"),
        })
        .await
    }

    async fn update(&self, key: &Key, value: &Value, expected: Revision) -> Result<Revision> {
        let k = key.to_string();
        self.write(key, Some(value.clone()), move |cur| match cur {
            None => Err(Error::NotFound { key: k }),
            Some(r) if r != expected => Err(Error::Conflict {
                key: k,
                expected,
                actual: Some(r),
            }),
            Some(_) => Ok("update"),
        })
        .await
    }

    async fn delete(&self, key: &Key, expected: Option<Revision>) -> Result<Revision> {
        let k = key.to_string();
        self.write(key, None, move |cur| match (cur, expected) {
            (None, _) => Err(Error::NotFound { key: k }),
            (Some(r), Some(e)) if r != e => Err(Error::Conflict {
                key: k,
                expected: e,
                actual: Some(r),
            }),
            _ => Ok("delete"),
        })
        .await
    }

    /// A range of the primary key: only the matching rows are read.
    async fn list_prefix(&self, kind: Kind, prefix: &str) -> Result<Vec<Stored>> {
        let path = self.inner.path.clone();
        let lo = format!("{}/{prefix}", kind.plural());
        // Names are ASCII; U+10FFFF sorts after every one of them.
        let hi = format!("{lo}\u{10ffff}");
        self.run_read(move |conn| {
            let me = |e| Self::map_err(&path, e);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT path, value, revision FROM objects
                     WHERE path >= ?1 AND path < ?2 AND kind = ?3 ORDER BY path",
                )
                .map_err(me)?;
            Self::query_stored(&mut stmt, params![lo, hi, kind.name()], |_| true, &path)
        })
        .await
    }

    fn transactions(&self) -> bool {
        true
    }

    /// Every write in one `BEGIN IMMEDIATE` transaction: one commit, one sync.
    async fn commit(&self, writes: &[Write]) -> Result<Vec<Revision>> {
        crate::txn::distinct_keys(writes)?;
        let path = self.inner.path.clone();
        let writes = writes.to_vec();
        self.run(move |conn| {
            let me = |e| Self::map_err(&path, e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(me)?;
            let mut ops = Vec::with_capacity(writes.len());
            for w in &writes {
                ops.push(w.check(Self::current(&tx, w.key()).map_err(me)?)?);
            }
            let mut revs = Vec::with_capacity(writes.len());
            for (w, op) in writes.iter().zip(ops) {
                revs.push(Self::apply(&tx, w.key(), w.value(), op).map_err(me)?);
            }
            tx.commit().map_err(me)?;
            Ok(revs)
        })
        .await
    }

    async fn changes(
        &self,
        kind: Kind,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change>>> {
        // Fail now, not in the stream, when the history is already gone.
        let first = self.changes_after(kind, after).await?;
        let this = self.clone();
        let stream = futures::stream::unfold(
            (this, after, Some(first)),
            move |(this, last, pending)| async move {
                let mut batch = match pending {
                    Some(b) => Ok(b),
                    None => this.changes_after(kind, last).await,
                };
                loop {
                    match batch {
                        Ok(b) if b.is_empty() => {
                            tokio::time::sleep(POLL_INTERVAL).await;
                            batch = this.changes_after(kind, last).await;
                        }
                        Ok(b) => {
                            let new_last = b.last().map(|c| c.revision).unwrap_or(last);
                            return Some((
                                b.into_iter().map(Ok).collect::<Vec<_>>(),
                                (this, new_last, None),
                            ));
                        }
                        // Hand the error to the watch, which resumes or re-lists; end afterwards.
                        Err(e) => return Some((vec![Err(e)], (this, Revision::MAX, None))),
                    }
                }
            },
        );
        Ok(Box::pin(futures::StreamExt::flat_map(
            stream,
            futures::stream::iter,
        )))
    }
}
