//! The job queue on Redis Streams (`job_queue = redis`), against the machine's real Redis: jobs
//! run once each and their entries are acknowledged, retries wait in Redis, a job enqueued while
//! Redis is away runs once it is back, and a worker killed mid-job leaves its entry to another.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::{DatabaseUrl, JobQueue};

use crate::helpers::{fresh_postgres_database, redis_url, Backend};
use crate::jobs::{enqueue, queue_app, queue_once, wait_for};
use crate::model_server::{ModelServer, Reply};
use crate::operations::Relay;
use crate::process::{serve, sigterm, wait_with_deadline, BIN};

/// A key prefix of this test's own, so tests sharing the machine's Redis never meet.
fn fresh_prefix() -> String {
    format!("sbtest-{}", uuid::Uuid::new_v4().simple())
}

fn on_redis(url: &str, prefix: &str) -> impl FnOnce(&mut switchboard::Settings) {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    move |s| {
        s.redis_url = Some(DatabaseUrl::new(url));
        s.redis_prefix = prefix;
        s.job_queue = JobQueue::Redis;
        s.job_poll_ms = 200;
    }
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// The stream's entries, and its group's pending entries.
async fn stream_figures(url: &str, prefix: &str) -> (u64, u64) {
    let mut r = redis(url).await;
    let length: u64 = r.xlen(format!("{prefix}:jobs")).await.unwrap();
    let pending: redis::streams::StreamPendingReply = r.xpending(format!("{prefix}:jobs"), "workers").await.unwrap();
    (length, pending.count() as u64)
}

async fn forget(url: &str, prefix: &str) {
    let mut r = redis(url).await;
    let keys: Vec<String> = r.keys(format!("{prefix}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = r.del(keys).await.unwrap();
    }
}

async fn replies_of(app: &crate::helpers::TestApp, token: &str, job: &Value) -> usize {
    let conversation = job["input"]["conversation_id"].as_str().unwrap();
    let messages: Value =
        app.get(&format!("/api/v1/conversations/{conversation}/messages"), token).await.json().await.unwrap();
    messages["items"].as_array().unwrap().iter().filter(|m| m["role"] == "assistant").count()
}

async fn jobs_run_through_redis_streams_once_each(backend: Backend) {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix();
    let (_model, app) = queue_app(&backend, vec![Reply::text("done")], |s| {
        on_redis(&url, &prefix)(s);
        s.workers = 3;
    })
    .await;
    let token = app.token_for("alice");
    let mut jobs = Vec::new();
    for i in 0..20 {
        jobs.push(enqueue(&app, &token, json!({ "message": format!("job {i}") })).await);
    }
    for job in &jobs {
        let done = wait_for(&app, &token, job, |j| j["status"] == "completed" || j["status"] == "failed").await;
        assert_eq!((done["status"].as_str(), done["attempts"].as_i64()), (Some("completed"), Some(1)), "{done}");
        assert_eq!(replies_of(&app, &token, &done).await, 1, "{done}");
    }
    // Every entry was acknowledged and removed once its job finished.
    let started = Instant::now();
    while stream_figures(&url, &prefix).await != (0, 0) {
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", stream_figures(&url, &prefix).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queue = queue_once(&app, |q| q["completed"] == 20).await;
    assert_eq!(queue["backend"], "redis", "{queue}");
    assert_eq!(queue["streams"], json!({"waiting": 0, "pending": 0, "delayed": 0}), "{queue}");
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["queue"], "redis");
    forget(&url, &prefix).await;
}

/// A retry waits out its backoff in Redis's delayed set, then runs.
async fn a_failed_attempt_waits_in_redis_then_runs_again(backend: Backend) {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix();
    let replies = vec![Reply::status(500, "{}"), Reply::text("second time lucky")];
    let (_model, app) = queue_app(&backend, replies, |s| {
        on_redis(&url, &prefix)(s);
        s.job_retry_backoff_ms = 600;
    })
    .await;
    let token = app.token_for("alice");
    let job = enqueue(&app, &token, json!({"message": "try twice"})).await;
    let waiting = wait_for(&app, &token, &job, |j| j["status"] == "queued" && j["attempts"] == 1).await;
    assert!(waiting["error"].as_str().unwrap().contains("unavailable"), "{waiting}");
    let delayed: u64 = redis(&url).await.zcard(format!("{prefix}:jobs:delayed")).await.unwrap();
    assert_eq!(delayed, 1, "the retry waits in the delayed set");
    let done = wait_for(&app, &token, &job, |j| j["status"] == "completed").await;
    assert_eq!(done["attempts"], 2);
    assert_eq!(done["result"]["message"]["content"], "second time lucky");
    forget(&url, &prefix).await;
}

crate::on_both_backends!(jobs_run_through_redis_streams_once_each, a_failed_attempt_waits_in_redis_then_runs_again);

/// Redis goes away: enqueuing still works (the job is safe in the database), readiness says the
/// queue is down, and once Redis is back the sweep hands the job over and it runs, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_while_redis_is_away_runs_once_redis_is_back() {
    let Some(url) = redis_url() else { return };
    let host_port = url.trim_start_matches("redis://").split('/').next().unwrap().to_owned();
    let mut relay = Relay::start(host_port.clone()).await;
    let relayed = url.replace(&host_port, &format!("127.0.0.1:{}", relay.port));
    let prefix = fresh_prefix();
    let (_model, app) = queue_app(&Backend::Sqlite, vec![Reply::text("done")], on_redis(&relayed, &prefix)).await;
    let token = app.token_for("alice");
    let first = enqueue(&app, &token, json!({"message": "before"})).await;
    wait_for(&app, &token, &first, |j| j["status"] == "completed").await;

    relay.cut().await;
    let job = enqueue(&app, &token, json!({"message": "while redis is away"})).await;
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "the queue's Redis is down");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let meanwhile: Value = app.get(&format!("/api/v1/jobs/{job}"), &token).await.json().await.unwrap();
    assert_eq!(meanwhile["status"], "queued", "{meanwhile}");

    relay.restore().await;
    let done = wait_for(&app, &token, &job, |j| j["status"] == "completed").await;
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(replies_of(&app, &token, &done).await, 1);
    assert_eq!(app.client.get(app.url("/ready")).send().await.unwrap().status(), StatusCode::OK);
    forget(&url, &prefix).await;
}

/// A `switchboard worker` on Redis Streams killed (SIGKILL) in the middle of a job: its entry
/// stays pending, another worker takes it over once it has been idle for a lease, claims the job
/// when its lease ran out, and exactly one result is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_entry_is_taken_over_by_another_worker() {
    let Some(url) = redis_url() else { return };
    let Some(Backend::Postgres(server)) = Backend::postgres() else { return };
    let db = fresh_postgres_database(&server).await;
    let prefix = fresh_prefix();
    let model =
        ModelServer::start(vec![Reply::After(Duration::from_millis(1500), Box::new(Reply::text("the one answer")))])
            .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let queue =
        [("SWITCHBOARD_JOB_QUEUE", "redis"), ("SWITCHBOARD_REDIS_URL", &url), ("SWITCHBOARD_REDIS_PREFIX", &prefix)];
    let mut served = serve(&data, &["--workers", "0", "--rate-limit-per-minute", "0", "--database-url", &db], &queue);
    let worker = |data: &std::path::Path| {
        std::process::Command::new(BIN)
            .args(["worker", "--workers", "1", "--data-dir"])
            .arg(data)
            .args(["--database-url", &db])
            .envs(queue)
            .env("SWITCHBOARD_LLM_PROVIDER", "openai")
            .env("SWITCHBOARD_LLM_BASE_URL", &model.base_url)
            .env("SWITCHBOARD_LLM_API_KEY", "sk-test")
            .env("SWITCHBOARD_LLM_MAX_RETRIES", "0")
            .env("SWITCHBOARD_JOB_LEASE_SECS", "2")
            .env("SWITCHBOARD_JOB_POLL_MS", "200")
            .env_remove("SWITCHBOARD_DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/v1/jobs", served.url))
        .bearer_auth(&served.token)
        .json(&json!({"message": "answer slowly"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();

    let mut first = worker(&data);
    let started = Instant::now();
    while model.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "the first worker never started the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL, mid-answer
    first.wait().unwrap();
    assert_eq!(stream_figures(&url, &prefix).await.1, 1, "the dead worker's entry is pending");

    let mut second = worker(&data);
    let started = Instant::now();
    let done = loop {
        let current = served.get(&format!("/api/v1/jobs/{job}")).await;
        if current["status"] == "completed" {
            break current;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the job was lost: {current}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["result"]["message"]["content"], "the one answer");
    let conversation = done["input"]["conversation_id"].as_str().unwrap();
    let messages = served.get(&format!("/api/v1/conversations/{conversation}/messages")).await;
    assert_eq!(messages["items"].as_array().unwrap().len(), 2, "exactly one reply: {messages}");
    let started = Instant::now();
    while stream_figures(&url, &prefix).await != (0, 0) {
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", stream_figures(&url, &prefix).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    sigterm(&second);
    wait_with_deadline(&mut second, Duration::from_secs(10));
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));
    forget(&url, &prefix).await;
}
