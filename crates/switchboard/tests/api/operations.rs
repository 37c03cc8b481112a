//! Health, readiness, metrics, OpenAPI, request ids, restarts and database faults
//! (RELIABILITY B11.66 for migrations).

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use switchboard::config::DatabaseUrl;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::helpers::{fresh_postgres_database, spawn_app, spawn_app_with, Backend};

async fn health_ready_metrics_and_docs_answer(backend: Backend) {
    let app = spawn_app(&backend).await;
    let health: Value = app.client.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], if matches!(backend, Backend::Sqlite) { "sqlite" } else { "postgres" });

    app.chat(&app.token_for("alice"), "count me", None).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"http_requests_total{method="POST",route="/api/v1/chat",status="200"} 1"#), "{metrics}");
    assert!(metrics.contains("http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/chat\""));

    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("openapi"), "the docs page renders the spec");
}

async fn the_openapi_document_lists_every_route_and_its_schemas(backend: Backend) {
    let app = spawn_app(&backend).await;
    let spec: Value = app.openapi().await;
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/api/v1/me",
        "/api/v1/auth/logout",
        "/api/v1/chat",
        "/api/v1/chat/stream",
        "/api/v1/conversations",
        "/api/v1/conversations/{id}",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/admin/users",
        "/api/auth/google",
        "/api/v1/auth/providers",
        "/api/v1/auth/providers/{provider}/token",
        "/api/chat",
        "/api/chat/history",
        "/api/sessions/{id}/messages",
        "/api/v1/tasks",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/complete",
        "/api/v1/tasks",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/complete",
        "/api/v1/servers",
        "/api/v1/servers/search",
        "/api/v1/servers/{name}",
        "/api/v1/admin/catalog/import",
        "/api/v1/admin/catalog/export",
        "/api/v1/admin/catalog/{slug}",
        "/api/v1/credentials",
        "/api/v1/credentials/{server}",
        "/api/v1/agents",
        "/api/v1/agents/{id}",
        "/api/v1/agents/{id}/config",
        "/api/v1/agents/{id}/run",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/cancel",
        "/api/v1/jobs/{id}/events",
        "/api/v1/admin/queue",
        "/run",
        "/result/{job_id}",
        "/jobs",
        "/api/v1/connections",
        "/api/v1/connections/{server}",
        "/api/v1/connections/{server}/scopes",
        "/api/v1/oauth/callback",
        "/auth/scopes",
        "/auth/login",
        "/auth/callback",
        "/auth/status",
        "/auth/logout",
        "/me",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    assert_eq!(paths.len(), 52, "a route was added without being listed here: {:?}", paths.keys().collect::<Vec<_>>());
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for schema in [
        "ChatRequest",
        "ChatReply",
        "Conversation",
        "Message",
        "ErrorBody",
        "ConversationList",
        "Task",
        "AddTask",
        "UpdateTask",
    ] {
        assert!(schemas.contains_key(schema), "{schema}");
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(&backend).await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&generated).unwrap().get_version_num(), 4);
    let response = app.client.get(app.url("/api/v1/me")).header("x-request-id", "trace-abc_123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc_123", "a sane client id is kept, even on errors");
    let response =
        app.client.get(app.url("/health")).header("x-request-id", "bad id with spaces").send().await.unwrap();
    assert_ne!(response.headers()["x-request-id"], "bad id with spaces");
}

async fn data_survives_a_restart_on_the_same_data_directory(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let id = app.chat(&token, "remember me", None).await["conversation_id"].as_str().unwrap().to_owned();
    let app = app.restart().await;
    let detail: Value = app.get(&format!("/api/v1/conversations/{id}"), &token).await.json().await.unwrap();
    assert_eq!(detail["title"], "remember me");
    assert_eq!(detail["messages"].as_array().unwrap().len(), 2);
}

/// B11.66: a second start applies no migration again.
async fn migrations_run_once_and_a_second_start_is_a_no_op(backend: Backend) {
    let app = spawn_app(&backend).await;
    let applied = app.count_rows("_sqlx_migrations").await;
    assert!(applied >= 1);
    let app = app.restart().await;
    assert_eq!(app.count_rows("_sqlx_migrations").await, applied);
    let app = app.restart().await;
    assert_eq!(app.count_rows("_sqlx_migrations").await, applied);
}

async fn cors_allows_only_configured_origins(backend: Backend) {
    let preflight = |app: &crate::helpers::TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/conversations"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let same_origin_only = spawn_app(&backend).await;
    let response = preflight(&same_origin_only, "https://evil.example").await.unwrap();
    assert!(!response.headers().contains_key("access-control-allow-origin"), "default: no cross-origin access");

    let app =
        spawn_app_with(&backend, |s| s.cors_allowed_origins = vec!["https://app.example".into()], Default::default())
            .await;
    let allowed = preflight(&app, "https://app.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let refused = preflight(&app, "https://evil.example").await.unwrap();
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
}

crate::on_both_backends!(
    cors_allows_only_configured_origins,
    health_ready_metrics_and_docs_answer,
    the_openapi_document_lists_every_route_and_its_schemas,
    every_response_carries_a_request_id,
    data_survives_a_restart_on_the_same_data_directory,
    migrations_run_once_and_a_second_start_is_a_no_op,
);

/// A TCP relay between the server and PostgreSQL that the test can cut and restore, to play a
/// database that goes away and comes back.
pub struct Relay {
    pub port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Relay {
    pub async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Relay { port, upstream, tasks: Arc::new(Mutex::new(Vec::new())), acceptor: None };
        relay.accept(listener);
        relay
    }

    fn accept(&mut self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        self.acceptor = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().await.push(task);
            }
        }));
    }

    /// The database "goes down": open connections drop and new ones are refused.
    pub async fn cut(&mut self) {
        if let Some(a) = self.acceptor.take() {
            a.abort();
            let _ = a.await;
        }
        for task in self.tasks.lock().await.drain(..) {
            task.abort();
        }
    }

    /// The database "comes back" on the same address.
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.accept(listener);
    }
}

/// PostgreSQL goes away under a running server: `/ready` and requests answer 503 (not 500, no
/// hang), and everything works again once it is back, without restarting the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_the_server_recovers_when_it_returns() {
    let Some(Backend::Postgres(server)) = Backend::postgres() else {
        return;
    };
    let db_url = fresh_postgres_database(&server).await;
    let host_port =
        db_url.split('@').nth(1).unwrap_or(db_url.split("://").nth(1).unwrap()).split('/').next().unwrap().to_owned();
    let mut relay = Relay::start(host_port.clone()).await;
    let relayed = db_url.replace(&host_port, &format!("127.0.0.1:{}", relay.port));
    let app =
        spawn_app_with(&Backend::Sqlite, |s| s.database_url = Some(DatabaseUrl::new(relayed)), Default::default())
            .await;
    let token = app.token_for("alice");
    app.chat(&token, "before the outage", None).await;

    relay.cut().await;
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = app.get("/api/v1/conversations", &token).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable");

    relay.restore().await;
    let mut recovered = false;
    for _ in 0..50 {
        if app.get("/api/v1/conversations", &token).await.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the server recovers once the database is back");
    let list: Value = app.get("/api/v1/conversations", &token).await.json().await.unwrap();
    assert_eq!(list["items"][0]["title"], "before the outage");
    assert_eq!(app.client.get(app.url("/ready")).send().await.unwrap().status(), StatusCode::OK);
}

/// `db_max_connections` bounds what one server opens to PostgreSQL however many requests come at
/// once (the job listener included); the same burst under the default opens more than that bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_max_connections_bounds_the_connections_a_server_opens() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    for (limit, bounded) in [(20, false), (5, true)] {
        let app = spawn_app_with(&backend, |s| s.db_max_connections = limit, Default::default()).await;
        let token = app.token_for("alice");
        let burst =
            (0..64).map(|i| {
                let (app, token) = (&app, &token);
                async move {
                    app.post_json("/api/v1/chat", token, &serde_json::json!({"message": format!("hello {i}")})).await
                }
            });
        for response in futures::future::join_all(burst).await {
            assert_eq!(response.status(), StatusCode::OK, "every request of the burst is answered");
        }
        let url = app.settings.database_url.as_ref().expect("a PostgreSQL backend has a URL");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url.expose()).await.unwrap();
        let opened: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if bounded {
            assert!((1..=5).contains(&opened), "{opened} connections with db_max_connections = 5");
        } else {
            assert!(opened > 5, "the burst opened only {opened} connections under the default: it tests nothing");
        }
    }
}
