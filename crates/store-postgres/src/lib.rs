//! PostgreSQL backend: for several Switchboard processes sharing one database. The store's SQL
//! runs on it through [`Postgres`], a [`Db`] driver over a sqlx pool.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Column, PgPool, Row, TypeInfo};
use switchboard_store::db::{Db, Param, Record, Tx, Value};
use switchboard_store::{Result, SqlStore, StoreError};

/// The store on a PostgreSQL database.
pub type PostgresStore = SqlStore<Postgres>;

/// The driver: one pool for reads and writes (PostgreSQL handles concurrent writers itself), and
/// a small one whose sessions commit without waiting for the log flush, for writes a crash may
/// lose harmlessly ([`Db::execute_returning_relaxed`]).
pub struct Postgres {
    pool: PgPool,
    relaxed: PgPool,
    announce: tokio::sync::mpsc::Sender<()>,
}

/// The fewest connections [`connect`] accepts: two for each pool.
pub const MIN_CONNECTIONS: u32 = 4;

/// Connects to `url`, retrying for up to `connect_timeout` while the database is not yet
/// reachable, then applies pending migrations (under PostgreSQL's advisory lock, so several
/// servers starting at once migrate once).
///
/// The process opens at most `max_connections` (at least [`MIN_CONNECTIONS`]): a fifth of them,
/// and at least two, for relaxed writes; the rest for everything else, the connection that
/// listens for other processes' jobs among them.
pub async fn connect(url: &str, connect_timeout: Duration, max_connections: u32) -> Result<PostgresStore> {
    let max_connections = max_connections.max(MIN_CONNECTIONS);
    let relaxed_size = (max_connections / 5).max(2);
    let options: PgConnectOptions = url.parse().map_err(store_error)?;
    let deadline = Instant::now() + connect_timeout;
    let mut delay = Duration::from_millis(100);
    let pool = loop {
        let attempt = pool_options(max_connections - relaxed_size).connect_with(options.clone()).await;
        match attempt {
            Ok(pool) => break pool,
            Err(e) if Instant::now() + delay < deadline && is_transient(&e) => {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(store_error(e)),
        }
    };
    sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| StoreError::Migration(e.into()))?;
    let relaxed = pool_options(relaxed_size).connect_lazy_with(options.options([("synchronous_commit", "off")]));
    tracing::debug!("postgres store ready");
    let announce = announcer(pool.clone());
    Ok(SqlStore::new(Postgres { pool, relaxed, announce }))
}

/// At most one `NOTIFY` per this long: a woken worker claims jobs until none is left, so one
/// announcement covers a burst, and another process's idle workers start at most this much later.
const ANNOUNCE_SPACING: Duration = Duration::from_millis(5);

/// Announces enqueued jobs to every process's idle workers, one `NOTIFY` at a time and at most
/// one per [`ANNOUNCE_SPACING`]: enqueues that come meanwhile share the next, so under load it
/// costs a couple of hundred statements a second rather than one per job (every `NOTIFY` also
/// wakes each listening process), and an enqueue never waits for it. This process's own workers
/// are woken in-process at once.
fn announcer(pool: PgPool) -> tokio::sync::mpsc::Sender<()> {
    let (announce, mut asked) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while asked.recv().await.is_some() {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(JOBS_CHANNEL).execute(&pool).await {
                tracing::warn!(error = %e, "could not announce a new job; workers will find it by polling");
            }
            tokio::time::sleep(ANNOUNCE_SPACING).await;
        }
    });
    announce
}

/// A pool of up to `size` connections. A connection idle for a while is checked with a round trip
/// before it is handed out (the database may have restarted meanwhile); one in steady use is not:
/// checking every time cost a round trip per statement, a third of them under load. A connection
/// that breaks in use fails its statement (503) and is closed.
fn pool_options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= Duration::from_secs(2) {
                    use sqlx::Connection;
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03: the database system is starting up.
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

fn store_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(e.into())
        }
        other => StoreError::Database(other.into()),
    }
}

fn query<'q>(sql: &'q str, params: &[Param<'q>]) -> Query<'q, sqlx::Postgres, PgArguments> {
    params.iter().fold(sqlx::query(sql), |q, p| match *p {
        Param::Int(v) => q.bind(v),
        Param::Bool(v) => q.bind(v),
        Param::Text(v) => q.bind(v),
        Param::Blob(v) => q.bind(v),
        Param::Id(v) => q.bind(v),
        Param::Time(v) => q.bind(v),
        Param::Date(v) => q.bind(v),
        Param::Json(v) => q.bind(v.map(sqlx::types::Json)),
    })
}

fn value(row: &PgRow, i: usize) -> std::result::Result<Value, sqlx::Error> {
    fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
        row: &'r PgRow,
        i: usize,
        wrap: impl FnOnce(T) -> Value,
    ) -> std::result::Result<Value, sqlx::Error> {
        Ok(row.try_get::<Option<T>, _>(i)?.map_or(Value::Null, wrap))
    }
    let type_name = row.column(i).type_info().name().to_owned();
    match type_name.as_str() {
        "INT8" => get(row, i, Value::Int),
        "INT4" => get(row, i, |n: i32| Value::Int(n.into())),
        "INT2" => get(row, i, |n: i16| Value::Int(n.into())),
        "BOOL" => get(row, i, Value::Bool),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => get(row, i, Value::Text),
        "BYTEA" => get(row, i, Value::Blob),
        "UUID" => get(row, i, Value::Id),
        "TIMESTAMPTZ" => get(row, i, Value::Time),
        "DATE" => get(row, i, Value::Date),
        "FLOAT8" => get(row, i, Value::Real),
        "JSONB" | "JSON" => get(row, i, |j: sqlx::types::Json<serde_json::Value>| Value::Json(j.0)),
        other => Err(sqlx::Error::Decode(format!("column {i}: unsupported type {other}").into())),
    }
}

fn records(rows: Vec<PgRow>) -> Result<Vec<Record>> {
    rows.iter()
        .map(|row| (0..row.len()).map(|i| value(row, i)).collect::<std::result::Result<Vec<_>, _>>().map(Record::new))
        .collect::<std::result::Result<_, _>>()
        .map_err(store_error)
}

/// The channel enqueues are announced on.
const JOBS_CHANNEL: &str = "switchboard_jobs";

#[async_trait]
impl Db for Postgres {
    type Tx = PgTx;

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn skip_locked(&self) -> &'static str {
        "FOR UPDATE SKIP LOCKED"
    }

    fn writes_in_with(&self) -> bool {
        true
    }

    async fn fetch(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
        records(query(sql, params).fetch_all(&self.pool).await.map_err(store_error)?)
    }

    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        Ok(query(sql, params).execute(&self.pool).await.map_err(store_error)?.rows_affected())
    }

    async fn execute_returning(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
        self.fetch(sql, params).await
    }

    /// Asynchronous commit (the relaxed pool's sessions): the commit returns without waiting for
    /// the log flush; a crash may lose it, never corrupts anything.
    async fn execute_returning_relaxed(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
        records(query(sql, params).fetch_all(&self.relaxed).await.map_err(store_error)?)
    }

    async fn begin(&self) -> Result<PgTx> {
        Ok(PgTx(self.pool.begin().await.map_err(store_error)?))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }

    async fn close(&self) {
        self.relaxed.close().await;
        self.pool.close().await;
    }

    /// Wakes idle workers of every process at once.
    async fn jobs_enqueued(&self) {
        // Full: an announcement is already waiting to go, and covers this job too.
        let _ = self.announce.try_send(());
    }

    /// LISTEN on the jobs channel; the listener reconnects by itself after a database restart.
    async fn job_wakeups(&self) -> Result<Option<BoxStream<'static, ()>>> {
        use futures::StreamExt;
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await.map_err(store_error)?;
        listener.listen(JOBS_CHANNEL).await.map_err(store_error)?;
        Ok(Some(listener.into_stream().map(|_| ()).boxed()))
    }
}

/// A transaction on one pooled connection; sqlx rolls it back if it is dropped uncommitted.
pub struct PgTx(sqlx::Transaction<'static, sqlx::Postgres>);

#[async_trait]
impl Tx for PgTx {
    async fn fetch(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
        records(query(sql, params).fetch_all(&mut *self.0).await.map_err(store_error)?)
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        Ok(query(sql, params).execute(&mut *self.0).await.map_err(store_error)?.rows_affected())
    }

    async fn commit(self) -> Result<()> {
        self.0.commit().await.map_err(store_error)
    }
}
