//! `spawn_app()`: the real server, started the way `switchboard serve` starts it, on a random
//! port, against SQLite in a temporary directory or a fresh PostgreSQL database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::Connection;
use switchboard::app::Parts;
use switchboard::config::DatabaseUrl;
use switchboard::{Application, Settings};
use switchboard_api::auth::{NewToken, TokenSigner};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The HS256 secret of every test server.
pub const TEST_SECRET: &str = "test-secret-4f9a1c2e8b7d6a5f3e2d1c0b9a8f7e6d";

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The URL of a PostgreSQL server where test databases may be created.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL from `SWITCHBOARD_TEST_POSTGRES_URL`. Without it the PostgreSQL half is skipped
    /// on a developer machine and fails in CI, where it must never be skipped silently.
    #[allow(clippy::disallowed_methods)] // tests read their own environment
    pub fn postgres() -> Option<Backend> {
        match std::env::var("SWITCHBOARD_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ if std::env::var_os("CI").is_some() => {
                panic!("SWITCHBOARD_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests")
            }
            _ => {
                eprintln!("SWITCHBOARD_TEST_POSTGRES_URL is not set: skipping the PostgreSQL half of this test");
                None
            }
        }
    }
}

/// Redis from `SWITCHBOARD_TEST_REDIS_URL`: skipped on a developer machine without it, failing in CI.
#[allow(clippy::disallowed_methods)] // tests read their own environment
pub fn redis_url() -> Option<String> {
    match std::env::var("SWITCHBOARD_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("SWITCHBOARD_TEST_REDIS_URL is not set: CI must run the Redis tests")
        }
        _ => {
            eprintln!("SWITCHBOARD_TEST_REDIS_URL is not set: skipping this Redis test");
            None
        }
    }
}

/// Runs each named `async fn scenario(backend: Backend)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$scenario($crate::helpers::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if let Some(backend) = $crate::helpers::Backend::postgres() {
                    super::$scenario(backend).await
                }
            }
        }
    )*};
}

/// A running test server.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub local_token: String,
    pub settings: Settings,
    _data_dir: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Test defaults: a random port, the fixed test secret, no rate limit (tests that need one set it).
pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |_| {}, Parts::default()).await
}

pub async fn spawn_app_with(backend: &Backend, configure: impl FnOnce(&mut Settings), parts: Parts) -> TestApp {
    let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.path().join("data"),
        jwt_secret: Some(SecretString::from(TEST_SECRET)),
        rate_limit_per_minute: 0,
        jwks_refresh_secs: 0,
        shutdown_grace_secs: 5,
        ..Settings::default()
    };
    if let Backend::Postgres(server) = backend {
        settings.database_url = Some(DatabaseUrl::new(fresh_postgres_database(server).await));
    }
    configure(&mut settings);
    start(settings, data_dir, parts).await
}

async fn start(settings: Settings, data_dir: Arc<tempfile::TempDir>, parts: Parts) -> TestApp {
    let app = Application::build_with(settings.clone(), parts).await.expect("the server starts");
    let address = format!("http://{}", app.address());
    let local_token = app.local_token().to_owned();
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        local_token,
        settings,
        _data_dir: data_dir,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    /// A token for `subject`, signed with the test secret (so the user is created on first use).
    pub fn token_for(&self, subject: &str) -> String {
        TokenSigner::new(&SecretString::from(TEST_SECRET))
            .mint(NewToken::for_subject(subject, Duration::from_secs(3600)))
            .0
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The served OpenAPI document.
    pub async fn openapi(&self) -> Value {
        self.client.get(self.url("/openapi.json")).send().await.unwrap().json().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.client.delete(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    /// Sends a chat message and returns the reply, asserting it succeeded.
    pub async fn chat(&self, token: &str, message: &str, conversation: Option<&str>) -> Value {
        let mut body = json!({ "message": message });
        if let Some(id) = conversation {
            body["conversation_id"] = json!(id);
        }
        let response = self.post_json("/api/v1/chat", token, &body).await;
        assert_eq!(response.status(), StatusCode::OK, "chat failed: {}", response.text().await.unwrap_or_default());
        response.json().await.unwrap()
    }

    /// Stops the server gracefully and waits until it has closed the database.
    pub async fn stop(mut self) -> (Settings, Arc<tempfile::TempDir>) {
        self.shutdown_and_wait().await;
        (self.settings.clone(), self._data_dir.clone())
    }

    async fn shutdown_and_wait(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task").expect("server stopped cleanly");
        }
    }

    /// Starts a new server on the same data directory and database.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// Like [`restart`](Self::restart), with some settings changed.
    pub async fn restart_with(self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let (mut settings, data_dir) = self.stop().await;
        settings.addr = "127.0.0.1:0".parse().unwrap();
        configure(&mut settings);
        start(settings, data_dir, Parts::default()).await
    }

    /// Runs one SQL statement straight on the database (to play corruption and the like).
    pub async fn execute(&self, sql: &str) {
        match &self.settings.database_url {
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url.expose()).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            None => {
                rusqlite::Connection::open(self.db_path()).unwrap().execute_batch(sql).unwrap();
            }
        }
    }

    /// Rows in `table`, read straight from the database (not through the API).
    /// Imports catalog entries (a plain list) as the administrator; the import must succeed.
    pub async fn import_catalog(&self, entries: &Value) {
        let response = self
            .client
            .post(self.url("/api/v1/admin/catalog/import?file=test.json"))
            .bearer_auth(&self.local_token)
            .json(entries)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{}", response.text().await.unwrap());
    }

    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.settings.database_url {
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url.expose()).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
            }
            None => rusqlite::Connection::open(self.db_path()).unwrap().query_row(&sql, [], |r| r.get(0)).unwrap(),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.settings.data_dir.join("switchboard.db")
    }
}

/// Creates an empty database on the PostgreSQL server at `server_url` and returns its URL.
/// Databases left by earlier runs (over two hours old) are dropped on the way.
pub async fn fresh_postgres_database(server_url: &str) -> String {
    let mut admin =
        sqlx::PgConnection::connect(server_url).await.expect("PostgreSQL reachable at SWITCHBOARD_TEST_POSTGRES_URL");
    let now = chrono::Utc::now().timestamp();
    let old: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'sbt\\_%'")
        .fetch_all(&mut admin)
        .await
        .unwrap();
    for name in old {
        let stamp = name.split('_').nth(1).and_then(|s| s.parse::<i64>().ok()).unwrap_or(now);
        if now - stamp > 7200 {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin).await;
        }
    }
    let name = format!("sbt_{}_{}", now, uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.expect("create test database");
    with_database(server_url, &name)
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The JSON error code of a response.
pub async fn error_code(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("error responses are JSON");
    (status, body["error"]["code"].as_str().expect("error.code").to_owned())
}

/// Path of a test fixture.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}
