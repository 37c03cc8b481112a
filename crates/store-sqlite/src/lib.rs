//! SQLite backend: the embedded default. One file in the data directory, WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use switchboard_store::{Result, StoreError};

/// The store on an SQLite database.
pub struct SqliteStore {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// One connection for every write, so concurrent writes queue here (fairly, without polling)
    /// instead of in SQLite's busy handler, which sleeps in steps of up to 100 ms.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        Self::connect(options).await
    }

    /// Opens a database from an `sqlite:` URL and applies pending migrations.
    pub async fn open_url(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url).map_err(StoreError::from)?.create_if_missing(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<SqliteStore> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&writer).await.map_err(StoreError::Migration)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        tracing::debug!("sqlite store ready");
        Ok(SqliteStore { pool, writer })
    }
}

switchboard_store::impl_sql_store!(SqliteStore, sqlx::Sqlite, "sqlite", "");

impl SqliteStore {
    /// One process owns an SQLite database: its workers are woken in-process.
    async fn jobs_enqueued(&self) {}

    async fn listen_for_jobs(&self) -> Result<Option<futures::stream::BoxStream<'static, ()>>> {
        Ok(None)
    }
}
