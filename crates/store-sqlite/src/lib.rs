//! SQLite backend: the embedded default. One file in the data directory, WAL mode.
//!
//! Statements run inline, on the task that asks, through rusqlite: a page of rows is read in a
//! few microseconds from SQLite's cache, far less than handing the work to another thread and
//! back would cost. Writes go through one connection behind an async mutex, so concurrent writers
//! queue in-process, fairly, instead of sleeping in SQLite's busy handler; readers take pooled
//! connections, which WAL lets run beside the writer. Checkpoints — the only step that waits on
//! the disk — run on a thread of their own; writers wait (asynchronously) only while a long log
//! is truncated, which keeps it bounded under steady load.

mod checkpoint;
mod migrate;
mod value;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use rusqlite::{Connection, OpenFlags};
use switchboard_store::db::{Db, Param, Record, Tx};
use switchboard_store::{Result, SqlStore, StoreError};
use tokio::sync::OwnedMutexGuard;

pub use value::store_error;

/// The store on an SQLite database.
pub type SqliteStore = SqlStore<Sqlite>;

/// How long a statement waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes the write-ahead log file is cut back to when it starts over.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// Idle reader connections kept for reuse; more are opened when needed and closed after.
const IDLE_READERS: usize = 8;

/// The driver.
pub struct Sqlite {
    path: PathBuf,
    writer: checkpoint::Writer,
    readers: Mutex<Vec<Connection>>,
    closed: AtomicBool,
    checkpoints: checkpoint::Checkpointer,
}

/// Opens (creating if needed) the database file at `path` and applies pending migrations.
pub async fn open(path: &Path) -> Result<SqliteStore> {
    let mut writer = connect(path, true)?;
    migrate::run(&mut writer)?;
    // Checkpoints are the checkpointer's job, off the request path; a log that grew past this
    // is cut back to it when it starts over.
    writer.pragma_update(None, "wal_autocheckpoint", 0).map_err(store_error)?;
    writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(store_error)?;
    let writer = Arc::new(tokio::sync::Mutex::new(Some(writer)));
    let checkpoints = checkpoint::Checkpointer::start(connect(path, false)?, writer.clone());
    tracing::debug!(path = %path.display(), "sqlite store ready");
    Ok(SqlStore::new(Sqlite {
        path: path.to_owned(),
        writer,
        readers: Mutex::new(Vec::new()),
        closed: AtomicBool::new(false),
        checkpoints,
    }))
}

/// Opens a database from an `sqlite:` URL (`sqlite:PATH`, `sqlite://PATH`; a query string is
/// ignored) and applies pending migrations.
pub async fn open_url(url: &str) -> Result<SqliteStore> {
    let rest = url.strip_prefix("sqlite:").ok_or_else(|| config_error(format!("not an sqlite: URL: {url}")))?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(config_error("an SQLite URL must name a file (an in-memory database is not shared)".into()));
    }
    open(Path::new(path)).await
}

fn config_error(message: String) -> StoreError {
    StoreError::Database(message.into())
}

/// A connection with the settings every one of ours has.
fn connect(path: &Path, create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(store_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -512;",
    )
    .map_err(store_error)?;
    Ok(conn)
}

/// A reader connection, returned to the pool when dropped.
struct Reader<'a> {
    conn: Option<Connection>,
    pool: &'a Sqlite,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.pool.readers.lock().expect("reader pool lock");
            if idle.len() < IDLE_READERS && !self.pool.closed.load(Ordering::Acquire) {
                idle.push(conn);
            }
        }
    }
}

impl Sqlite {
    fn reader(&self) -> Result<Reader<'_>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let idle = self.readers.lock().expect("reader pool lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path, false)?,
        };
        Ok(Reader { conn: Some(conn), pool: self })
    }

    async fn writer(&self) -> Result<OwnedMutexGuard<Option<Connection>>> {
        let guard = self.writer.clone().lock_owned().await;
        if guard.is_none() {
            return Err(closed());
        }
        Ok(guard)
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the database is closed".into())
}

#[async_trait]
impl Db for Sqlite {
    type Tx = SqliteTx;

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// One writer connection already takes claims one at a time.
    fn skip_locked(&self) -> &'static str {
        ""
    }

    async fn fetch(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
        let reader = self.reader()?;
        value::fetch(&reader, sql, params)
    }

    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let writer = self.writer().await?;
        value::execute(writer.as_ref().expect("checked open"), sql, params)
    }

    async fn execute_returning(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
        let writer = self.writer().await?;
        value::fetch(writer.as_ref().expect("checked open"), sql, params)
    }

    async fn begin(&self) -> Result<SqliteTx> {
        let writer = self.writer().await?;
        writer.as_ref().expect("checked open").execute_batch("BEGIN IMMEDIATE").map_err(store_error)?;
        Ok(SqliteTx { writer, open: true })
    }

    async fn ping(&self) -> Result<()> {
        let reader = self.reader()?;
        value::fetch(&reader, "SELECT 1", &[]).map(drop)
    }

    /// Stops the checkpointer and closes every connection; the last one to close folds the
    /// write-ahead log back into the database file.
    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.checkpoints.stop();
        self.readers.lock().expect("reader pool lock").clear();
        if let Some(conn) = self.writer.lock().await.take() {
            if let Err((_, e)) = conn.close() {
                tracing::warn!(error = %e, "closing the SQLite database failed");
            }
        }
    }

    /// One process owns an SQLite database: its workers are woken in-process.
    async fn jobs_enqueued(&self) {}

    async fn job_wakeups(&self) -> Result<Option<BoxStream<'static, ()>>> {
        Ok(None)
    }
}

/// A write transaction on the writer connection, which it holds until it ends. Dropped without
/// a commit (an error, or the request went away), it rolls back.
pub struct SqliteTx {
    writer: OwnedMutexGuard<Option<Connection>>,
    open: bool,
}

impl SqliteTx {
    fn conn(&self) -> &Connection {
        self.writer.as_ref().expect("a transaction starts on an open writer")
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn fetch(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
        value::fetch(self.conn(), sql, params)
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        value::execute(self.conn(), sql, params)
    }

    async fn commit(mut self) -> Result<()> {
        self.conn().execute_batch("COMMIT").map_err(store_error)?;
        self.open = false;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // SQLite ends a transaction itself after some errors; only an open one needs rolling back.
        if self.open && !self.conn().is_autocommit() {
            if let Err(e) = self.conn().execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back an SQLite transaction failed");
            }
        }
    }
}
