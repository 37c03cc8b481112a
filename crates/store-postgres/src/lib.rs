//! PostgreSQL backend: for several Switchboard processes sharing one database.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use switchboard_store::{Result, StoreError};

/// The store on a PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
    /// The same pool: PostgreSQL handles concurrent writers itself.
    writer: PgPool,
}

impl PostgresStore {
    /// Connects to `url`, retrying for up to `connect_timeout` while the database is not yet
    /// reachable, then applies pending migrations (under PostgreSQL's advisory lock, so several
    /// servers starting at once migrate once).
    pub async fn connect(url: &str, connect_timeout: Duration) -> Result<PostgresStore> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::from)?;
        let deadline = Instant::now() + connect_timeout;
        let mut delay = Duration::from_millis(100);
        let pool = loop {
            let attempt = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if Instant::now() + delay < deadline && is_transient(&e) => {
                    tracing::warn!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        };
        sqlx::migrate!("./migrations").run(&pool).await.map_err(StoreError::Migration)?;
        tracing::debug!("postgres store ready");
        Ok(PostgresStore { writer: pool.clone(), pool })
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03: the database system is starting up.
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

switchboard_store::impl_sql_store!(PostgresStore, sqlx::Postgres, "postgres", "FOR UPDATE SKIP LOCKED");

/// The channel enqueues are announced on.
const JOBS_CHANNEL: &str = "switchboard_jobs";

impl PostgresStore {
    /// Wakes idle workers of every process at once.
    async fn jobs_enqueued(&self) {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(JOBS_CHANNEL).execute(&self.pool).await {
            tracing::warn!(error = %e, "could not announce a new job; workers will find it by polling");
        }
    }

    /// LISTEN on the jobs channel; the listener reconnects by itself after a database restart.
    async fn listen_for_jobs(&self) -> Result<Option<futures::stream::BoxStream<'static, ()>>> {
        use futures::StreamExt;
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(JOBS_CHANNEL).await?;
        Ok(Some(listener.into_stream().map(|_| ()).boxed()))
    }
}
