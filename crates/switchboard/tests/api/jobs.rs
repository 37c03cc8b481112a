//! Background jobs: enqueue, follow (with replay), cancel, retry and fail, isolation between
//! users, many workers without duplicates, and the original specification's `/run` routes.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::LlmProvider;

use crate::helpers::{error_code, spawn_app_with, Backend, TestApp};
use crate::model_server::{app_with_model, ModelServer, Reply};

/// A server whose jobs are answered by a model playing `replies`, with no client-side retries (the
/// queue's own retries are under test); `configure` sets the queue.
pub async fn queue_app(
    backend: &Backend,
    replies: Vec<Reply>,
    configure: impl FnOnce(&mut switchboard::Settings),
) -> (ModelServer, TestApp) {
    let model = ModelServer::start(replies).await;
    let app = app_with_model(backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |s| {
        s.llm_max_retries = 0;
        configure(s);
    })
    .await;
    (model, app)
}

pub async fn enqueue(app: &TestApp, token: &str, body: Value) -> String {
    let response = app.post_json("/api/v1/jobs", token, &body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap());
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["status"], "queued");
    created["job_id"].as_str().unwrap().to_owned()
}

/// Polls the job until `done` says so (at most 20 s).
pub async fn wait_for(app: &TestApp, token: &str, job: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let current: Value = app.get(&format!("/api/v1/jobs/{job}"), token).await.json().await.unwrap();
        if done(&current) {
            return current;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the job never got there: {current}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The operators' view of the queue once `settled` says so (the finished totals trail the jobs by
/// up to 100 ms; at most 5 s).
pub async fn queue_once(app: &TestApp, settled: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let queue: Value = app.get("/api/v1/admin/queue", &app.local_token).await.json().await.unwrap();
        if settled(&queue) {
            return queue;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the queue never got there: {queue}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn finished(job: &Value) -> bool {
    matches!(job["status"].as_str(), Some("completed" | "failed" | "cancelled"))
}

/// The job's events as (id, name, data), read to the end of the stream.
async fn events(app: &TestApp, token: &str, job: &str, query: &str) -> Vec<(i64, String, Value)> {
    let response = app.get(&format!("/api/v1/jobs/{job}/events{query}"), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
            Some((field("id: ")?.parse().ok()?, field("event: ")?, serde_json::from_str(&field("data: ")?).ok()?))
        })
        .collect()
}

async fn a_chat_job_runs_in_the_background_and_its_events_replay_to_a_late_subscriber(backend: Backend) {
    let app = spawn_app_with(&backend, |_| {}, Default::default()).await;
    let token = app.token_for("alice");
    let job = enqueue(&app, &token, json!({"message": "add a task called background milk"})).await;
    let done = wait_for(&app, &token, &job, finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["kind"], "chat");
    assert_eq!(done["attempts"], 1);
    assert!(done["result"]["message"]["content"].as_str().unwrap().contains("Added task #1 background milk"));
    assert!(done["started_at"].is_string() && done["completed_at"].is_string());
    for key in ["input_tokens", "output_tokens", "total_tokens"] {
        assert!(done[key].is_i64(), "{key}");
    }
    // The task exists and the conversation holds both messages.
    let tasks: Value = app.get("/api/v1/tasks", &token).await.json().await.unwrap();
    assert_eq!(tasks["items"][0]["title"], "background milk");
    let conversation = done["input"]["conversation_id"].as_str().unwrap();
    let messages: Value =
        app.get(&format!("/api/v1/conversations/{conversation}/messages"), &token).await.json().await.unwrap();
    assert_eq!(messages["items"].as_array().unwrap().len(), 2);
    // The reply (stored by the worker, ahead of the outcome) names its job.
    let reply = &messages["items"][1];
    assert_eq!((reply["role"].as_str(), reply["metadata"]["job_id"].as_str()), (Some("assistant"), Some(job.as_str())));
    assert_eq!(reply["content"], done["result"]["message"]["content"]);

    // Subscribing after the end replays everything, numbered, ending with the final status.
    let all = events(&app, &token, &job, "").await;
    let names: Vec<&str> = all.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["status", "status", "tool_call", "tool_result", "delta", "result", "status"], "{all:?}");
    assert_eq!(all[0].2["status"], "queued");
    assert_eq!(all[1].2["status"], "running");
    assert_eq!(all.last().unwrap().2["status"], "completed");
    assert!(all.windows(2).all(|w| w[1].0 == w[0].0 + 1));
    let tail = events(&app, &token, &job, "?after=5").await;
    assert_eq!(tail.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(), [6, 7]);

    let list: Value = app.get("/api/v1/jobs?status=completed", &token).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let none: Value = app.get("/api/v1/jobs?status=failed", &token).await.json().await.unwrap();
    assert_eq!(none["items"], json!([]));
    let (status, code) = error_code(app.get("/api/v1/jobs?status=lost", &token).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_status"));
}

/// Progress is held for a moment and written in one go, yet a subscriber following a running job
/// sees it while the job runs, not only at its end.
async fn a_live_subscriber_sees_progress_while_the_job_runs(backend: Backend) {
    let (_model, app) = queue_app(
        &backend,
        vec![
            Reply::tools(&[("add_task", json!({"title": "slow milk"}))]),
            Reply::After(Duration::from_secs(3), Box::new(Reply::text("Added slow milk."))),
        ],
        |_| {},
    )
    .await;
    let token = app.token_for("alice");
    let job = enqueue(&app, &token, json!({"message": "add a task called slow milk"})).await;
    let mut stream = app.get(&format!("/api/v1/jobs/{job}/events"), &token).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("event: tool_result") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk()).await.expect("the tool's result in time");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("the stream is open")));
    }
    // The model has not answered yet: the job is still running.
    let now: Value = app.get(&format!("/api/v1/jobs/{job}"), &token).await.json().await.unwrap();
    assert_eq!(now["status"], "running", "{now}");
    seen.push_str(&stream.text().await.unwrap());
    let names: Vec<&str> = seen.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names, ["status", "status", "tool_call", "tool_result", "delta", "result", "status"], "{seen}");
    assert!(seen.contains(r#""status":"completed""#), "{seen}");
}

async fn bad_job_requests_are_refused_and_store_nothing(backend: Backend) {
    let app = spawn_app_with(&backend, |s| s.workers = 0, Default::default()).await;
    let token = app.token_for("alice");
    for (body, status, code) in [
        (json!({}), StatusCode::BAD_REQUEST, "invalid_job"),
        (
            json!({"message": "x", "agent_id": "01a20314-e984-711a-ac49-72e521f5fa53", "input": "y"}),
            StatusCode::BAD_REQUEST,
            "invalid_job",
        ),
        (json!({"agent_id": "01a20314-e984-711a-ac49-72e521f5fa53", "input": "y"}), StatusCode::NOT_FOUND, "not_found"),
        (json!({"message": ""}), StatusCode::BAD_REQUEST, "empty_message"),
        (json!({"message": "x", "user_id": "someone"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ] {
        let (got, got_code) = error_code(app.post_json("/api/v1/jobs", &token, &body).await).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{body}");
    }
    assert_eq!(app.count_rows("jobs").await, 0);
    assert_eq!(app.count_rows("messages").await, 0);
}

async fn a_queued_job_is_cancelled_at_once_and_a_running_one_within_a_second(backend: Backend) {
    // A model that takes 20 s to answer keeps the first job running.
    let too_late = Reply::After(Duration::from_secs(20), Box::new(Reply::text("too late")));
    let (model, app) = queue_app(&backend, vec![too_late], |s| s.workers = 1).await;
    let token = app.token_for("alice");
    let running = enqueue(&app, &token, json!({"message": "think hard"})).await;
    wait_for(&app, &token, &running, |j| j["status"] == "running").await;
    // The only worker is busy: the second job waits in the queue.
    let queued = enqueue(&app, &token, json!({"message": "and this"})).await;
    let cancelled: Value =
        app.post_json(&format!("/api/v1/jobs/{queued}/cancel"), &token, &json!({})).await.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["completed_at"].is_string());

    let asked = Instant::now();
    let response: Value =
        app.post_json(&format!("/api/v1/jobs/{running}/cancel"), &token, &json!({})).await.json().await.unwrap();
    assert_eq!(response["cancel_requested"], true);
    let done = wait_for(&app, &token, &running, finished).await;
    let took = asked.elapsed();
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(took < Duration::from_secs(1), "stopped in {took:?}");
    assert_eq!(done["error"], "cancelled by its owner");
    let last = events(&app, &token, &running, "").await.pop().unwrap();
    assert_eq!((last.1.as_str(), last.2["status"].as_str()), ("status", Some("cancelled")));
    // Cancelling a finished job changes nothing.
    let again: Value =
        app.post_json(&format!("/api/v1/jobs/{running}/cancel"), &token, &json!({})).await.json().await.unwrap();
    assert_eq!(again["status"], "cancelled");
    assert_eq!(model.received().len(), 1, "the cancelled queued job never reached the model");
    let queue = queue_once(&app, |q| q["cancelled"] == 2).await;
    assert_eq!(
        (&queue["queued"], &queue["running"], &queue["completed"]),
        (&json!(0), &json!(0), &json!(0)),
        "{queue}"
    );
}

async fn a_job_whose_model_is_down_retries_then_fails_and_the_queue_keeps_serving(backend: Backend) {
    let (model, app) = queue_app(
        &backend,
        vec![
            Reply::status(503, r#"{"error":{"message":"overloaded"}}"#),
            Reply::status(503, r#"{"error":{"message":"overloaded"}}"#),
            Reply::text("back again"),
        ],
        |s| {
            s.workers = 1;
            s.job_max_attempts = 2;
            s.job_retry_backoff_ms = 50;
        },
    )
    .await;
    let token = app.token_for("alice");
    let failing = enqueue(&app, &token, json!({"message": "first"})).await;
    let failed = wait_for(&app, &token, &failing, finished).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 2);
    assert!(failed["error"].as_str().unwrap().contains("llm_unavailable"), "{failed}");
    let history = events(&app, &token, &failing, "").await;
    let statuses: Vec<&str> =
        history.iter().filter(|(_, n, _)| n == "status").map(|(_, _, d)| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["queued", "running", "queued", "running", "failed"]);

    let next = enqueue(&app, &token, json!({"message": "second"})).await;
    let done = wait_for(&app, &token, &next, finished).await;
    assert_eq!(done["status"], "completed", "{done} {:?}", model.received().len());
    assert_eq!(done["result"]["message"]["content"], "back again");
    assert_eq!(done["total_tokens"], 18);
    // The operators' view counts each status, and the failure as one of the last hour.
    let queue = queue_once(&app, |q| q["completed"] == 1 && q["failed"] == 1).await;
    let counts: Vec<&Value> = ["queued", "running", "completed", "failed", "cancelled", "failed_last_hour"]
        .iter()
        .map(|k| &queue[k])
        .collect();
    assert_eq!(counts, [&json!(0), &json!(0), &json!(1), &json!(1), &json!(0), &json!(1)], "{queue}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchboard_jobs_failed_last_hour 1"), "{metrics}");
}

async fn another_users_jobs_and_their_events_are_invisible(backend: Backend) {
    // B2.15
    let app = spawn_app_with(&backend, |_| {}, Default::default()).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let job = enqueue(&app, &alice, json!({"message": "add a task called private"})).await;
    wait_for(&app, &alice, &job, finished).await;
    for path in [format!("/api/v1/jobs/{job}"), format!("/api/v1/jobs/{job}/events"), format!("/result/{job}")] {
        let response = app.get(&path, &bob).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!response.text().await.unwrap().contains("private"));
    }
    let cancel = app.post_json(&format!("/api/v1/jobs/{job}/cancel"), &bob, &json!({})).await;
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);
    let list: Value = app.get("/api/v1/jobs", &bob).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
    let compat: Value = app.get("/jobs", &bob).await.json().await.unwrap();
    assert_eq!(compat["jobs"], json!([]));
    let job_now: Value = app.get(&format!("/api/v1/jobs/{job}"), &alice).await.json().await.unwrap();
    assert_eq!(job_now["status"], "completed", "Bob's cancel changed nothing");
}

/// B9.52 (scaled): 400 jobs, 8 workers: each claimed once (attempts 1: no two workers ever held
/// one), each run once (400 tasks, 800 messages).
async fn many_workers_run_every_job_exactly_once(backend: Backend) {
    let app = spawn_app_with(&backend, |s| s.workers = 8, Default::default()).await;
    let token = app.token_for("alice");
    let mut jobs = Vec::new();
    for i in 0..400 {
        jobs.push(enqueue(&app, &token, json!({"message": format!("add a task called parallel {i}")})).await);
    }
    for job in &jobs {
        let done = wait_for(&app, &token, job, finished).await;
        assert_eq!((done["status"].as_str(), done["attempts"].as_i64()), (Some("completed"), Some(1)), "{done}");
    }
    assert_eq!(app.count_rows("tasks").await, 400, "each job ran once");
    assert_eq!(app.count_rows("messages").await, 800);
    let queue = queue_once(&app, |q| q["completed"] == 400).await;
    assert_eq!((&queue["queued"], &queue["running"], &queue["failed"]), (&json!(0), &json!(0), &json!(0)), "{queue}");
    assert_eq!(queue["workers"].as_array().unwrap().len(), 1, "one process, eight slots: {queue}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchboard_jobs{status=\"completed\"} 400"), "{metrics}");
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["queue"], ready["database"]);
}

async fn the_original_run_routes_answer_in_their_own_shapes(backend: Backend) {
    let app = spawn_app_with(&backend, |_| {}, Default::default()).await;
    let token = app.token_for("alice");
    let response = app.post_json("/run", &token, &json!({"message": "add a task called compat job"})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["status"], "queued");
    assert!(accepted["message"].as_str().unwrap().contains("/result/"));
    let job = accepted["job_id"].as_str().unwrap();
    wait_for(&app, &token, job, finished).await;
    let result: Value = app.get(&format!("/result/{job}"), &token).await.json().await.unwrap();
    assert_eq!(result["status"], "completed");
    assert!(result["result"].as_str().unwrap().contains("compat job"));
    assert_eq!(result["error_message"], Value::Null);
    assert!(result["token_usage"]["total_tokens"].is_i64() && result["completed_at"].is_string());
    let list: Value = app.get("/jobs", &token).await.json().await.unwrap();
    assert_eq!(list["jobs"][0]["job_id"], job);
}

/// B9.54: three transient failures, then success on attempt 4, on the configured backoff.
async fn transient_failures_are_retried_on_the_backoff_schedule_until_success(backend: Backend) {
    let overloaded = || Reply::status(503, r#"{"error":{"message":"overloaded"}}"#);
    let (_model, app) =
        queue_app(&backend, vec![overloaded(), overloaded(), overloaded(), Reply::text("fourth time lucky")], |s| {
            s.workers = 1;
            s.job_max_attempts = 5;
            s.job_retry_backoff_ms = 100;
            s.job_poll_ms = 20;
        })
        .await;
    let token = app.token_for("alice");
    let job = enqueue(&app, &token, json!({"message": "try and try"})).await;
    let done = wait_for(&app, &token, &job, finished).await;
    assert_eq!((done["status"].as_str(), done["attempts"].as_i64()), (Some("completed"), Some(4)), "{done}");
    assert_eq!(done["result"]["message"]["content"], "fourth time lucky");
    let history = events(&app, &token, &job, "").await;
    let delays: Vec<u64> = history.iter().filter_map(|(_, _, d)| d["retry_in_ms"].as_u64()).collect();
    assert_eq!(delays, [100, 200, 400], "doubling from the configured 100 ms");
    // The job's own timestamps bound the whole run: the three waits really happened.
    let span = chrono::DateTime::parse_from_rfc3339(done["completed_at"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(done["started_at"].as_str().unwrap()).unwrap();
    assert!(span.num_milliseconds() >= 700, "the three waits (700 ms in all) happened: {span}");
}

/// B9.56: a job whose stored input cannot be run fails after one attempt, and the worker goes on.
async fn a_poison_job_fails_once_and_the_worker_keeps_running(backend: Backend) {
    let app = spawn_app_with(&backend, |s| s.workers = 0, Default::default()).await;
    let token = app.token_for("alice");
    let poison = enqueue(&app, &token, json!({"message": "add a task called never"})).await;
    app.execute("UPDATE jobs SET input = '{\"garbage\": true}'").await;
    let app = app.restart_with(|s| s.workers = 1).await;
    let failed = wait_for(&app, &token, &poison, finished).await;
    assert_eq!((failed["status"].as_str(), failed["attempts"].as_i64()), (Some("failed"), Some(1)), "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("incomplete"));
    let next = enqueue(&app, &token, json!({"message": "add a task called after the poison"})).await;
    assert_eq!(wait_for(&app, &token, &next, finished).await["status"], "completed");
}

/// B9.57: a job that runs longer than its lease is not run again while its worker renews it.
async fn a_job_longer_than_its_lease_is_not_run_twice(backend: Backend) {
    let (model, app) = queue_app(
        &backend,
        vec![Reply::After(Duration::from_millis(4500), Box::new(Reply::text("slow but once")))],
        |s| {
            s.workers = 2;
            s.job_lease_secs = 2;
            s.job_poll_ms = 50;
        },
    )
    .await;
    let token = app.token_for("alice");
    let job = enqueue(&app, &token, json!({"message": "take your time"})).await;
    let done = wait_for(&app, &token, &job, finished).await;
    assert_eq!((done["status"].as_str(), done["attempts"].as_i64()), (Some("completed"), Some(1)), "{done}");
    assert_eq!(model.received().len(), 1, "no second worker ran it");
}

/// B9.58: a graceful shutdown with a job in flight puts it back in the queue at once; the next
/// server runs it. Nothing is lost.
async fn a_job_interrupted_by_shutdown_goes_back_to_the_queue_and_runs_later(backend: Backend) {
    let (_model, app) = queue_app(
        &backend,
        vec![Reply::After(Duration::from_secs(2), Box::new(Reply::text("after the restart")))],
        |s| {
            s.workers = 1;
        },
    )
    .await;
    let token = app.token_for("alice");
    let job = enqueue(&app, &token, json!({"message": "survive a restart"})).await;
    wait_for(&app, &token, &job, |j| j["status"] == "running").await;
    let app = app.restart_with(|s| s.workers = 0).await;
    let parked: Value = app.get(&format!("/api/v1/jobs/{job}"), &token).await.json().await.unwrap();
    assert_eq!(parked["status"], "queued", "released at shutdown: {parked}");
    assert_eq!(parked["error"], "interrupted: its worker shut down");
    let app = app.restart_with(|s| s.workers = 1).await;
    let done = wait_for(&app, &token, &job, finished).await;
    assert_eq!((done["status"].as_str(), done["attempts"].as_i64()), (Some("completed"), Some(2)), "{done}");
    assert_eq!(done["result"]["message"]["content"], "after the restart");
}

/// B9.53: the message, its conversation and the job are stored in one transaction: a failure
/// while storing the job (injected by a database trigger) leaves none of them, every time.
async fn a_failed_enqueue_leaves_neither_message_nor_job(backend: Backend) {
    let app = spawn_app_with(&backend, |s| s.workers = 0, Default::default()).await;
    let token = app.token_for("alice");
    if app.settings.database_url.is_some() {
        app.execute(
            "CREATE FUNCTION refuse_job() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ LANGUAGE plpgsql",
        )
        .await;
        app.execute("CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_job()")
            .await;
    } else {
        app.execute("CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'injected'); END")
            .await;
    }
    let first = app.chat(&token, "an existing conversation", None).await;
    let conversation = first["conversation_id"].as_str().unwrap();
    let before = (app.count_rows("conversations").await, app.count_rows("messages").await);
    for i in 0..100 {
        let body = if i % 2 == 0 {
            json!({ "message": format!("new conversation {i}") })
        } else {
            json!({ "message": format!("same conversation {i}"), "conversation_id": conversation })
        };
        let response = app.post_json("/api/v1/jobs", &token, &body).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "trial {i}");
    }
    assert_eq!(
        (app.count_rows("conversations").await, app.count_rows("messages").await),
        before,
        "nothing half-stored"
    );
    assert_eq!((app.count_rows("jobs").await, app.count_rows("job_events").await), (0, 0));
    let drop = if app.settings.database_url.is_some() {
        "DROP TRIGGER refuse_jobs ON jobs"
    } else {
        "DROP TRIGGER refuse_jobs"
    };
    app.execute(drop).await;
    enqueue(&app, &token, json!({"message": "and now it works"})).await;
    assert_eq!((app.count_rows("jobs").await, app.count_rows("job_events").await), (1, 1));
}

/// A worker that stored the reply and died before recording the job as done: the next run finds
/// the reply, does not ask the model again and stores no second one.
async fn a_job_whose_reply_was_stored_is_not_answered_twice(backend: Backend) {
    let (model, app) = queue_app(&backend, vec![Reply::text("the only reply")], |s| s.workers = 1).await;
    let token = app.token_for("alice");
    let job = enqueue(&app, &token, json!({"message": "answer once"})).await;
    let done = wait_for(&app, &token, &job, finished).await;
    assert_eq!(done["status"], "completed");
    let app = app.restart_with(|s| s.workers = 0).await;
    // Play the crash: the job is running again under a lease that has run out.
    app.execute(
        "UPDATE jobs SET status = 'running', completed_at = NULL, lease_until = '2000-01-01T00:00:00Z', \
         worker = 'dead' WHERE status = 'completed'",
    )
    .await;
    let app = app.restart_with(|s| s.workers = 1).await;
    let again = wait_for(&app, &token, &job, finished).await;
    assert_eq!((again["status"].as_str(), again["attempts"].as_i64()), (Some("completed"), Some(2)), "{again}");
    assert_eq!(again["result"]["message"]["content"], "the only reply");
    assert_eq!(model.received().len(), 1, "the model was asked once");
    assert_eq!(app.count_rows("messages").await, 2, "one question, one reply");
}

async fn finished_jobs_past_their_retention_go_with_their_events_and_stay_counted(backend: Backend) {
    // One worker, jobs kept two seconds: the first job completes; the second holds the worker
    // for 20 s; the third waits behind it.
    let slow = Reply::After(Duration::from_secs(20), Box::new(Reply::text("too late")));
    let (_model, app) = queue_app(&backend, vec![Reply::text("done"), slow], |s| {
        s.workers = 1;
        s.job_retention_days = 2.0 / 86_400.0;
    })
    .await;
    let token = app.token_for("alice");
    let done = enqueue(&app, &token, json!({"message": "quick"})).await;
    wait_for(&app, &token, &done, finished).await;
    let running = enqueue(&app, &token, json!({"message": "slow"})).await;
    wait_for(&app, &token, &running, |j| j["status"] == "running").await;
    let queued = enqueue(&app, &token, json!({"message": "waits"})).await;

    let started = Instant::now();
    while app.get(&format!("/api/v1/jobs/{done}"), &token).await.status() != StatusCode::NOT_FOUND {
        assert!(started.elapsed() < Duration::from_secs(10), "the finished job was kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get(&format!("/api/v1/jobs/{done}/events"), &token).await.status(), StatusCode::NOT_FOUND);
    // Past their retention too, and swept meanwhile: unfinished jobs are kept however old.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (job, status) in [(&running, "running"), (&queued, "queued")] {
        let kept: Value = app.get(&format!("/api/v1/jobs/{job}"), &token).await.json().await.unwrap();
        assert_eq!(kept["status"], status, "{kept}");
    }
    // The deleted job's events went with it: what is left is the running job's `queued` and
    // `running` and the queued one's `queued`. Its conversation stays.
    assert_eq!(app.count_rows("job_events").await, 3);
    assert_eq!(app.count_rows("jobs").await, 2);
    assert_eq!(app.count_rows("messages").await, 4, "each question, and the first job's reply");
    // The totals still count it.
    let queue = queue_once(&app, |q| q["completed"] == 1).await;
    assert_eq!((&queue["queued"], &queue["running"]), (&json!(1), &json!(1)), "{queue}");
}

crate::on_both_backends!(
    finished_jobs_past_their_retention_go_with_their_events_and_stay_counted,
    a_live_subscriber_sees_progress_while_the_job_runs,
    a_job_whose_reply_was_stored_is_not_answered_twice,
    a_failed_enqueue_leaves_neither_message_nor_job,
    transient_failures_are_retried_on_the_backoff_schedule_until_success,
    a_poison_job_fails_once_and_the_worker_keeps_running,
    a_job_longer_than_its_lease_is_not_run_twice,
    a_job_interrupted_by_shutdown_goes_back_to_the_queue_and_runs_later,
    a_chat_job_runs_in_the_background_and_its_events_replay_to_a_late_subscriber,
    bad_job_requests_are_refused_and_store_nothing,
    a_queued_job_is_cancelled_at_once_and_a_running_one_within_a_second,
    a_job_whose_model_is_down_retries_then_fails_and_the_queue_keeps_serving,
    another_users_jobs_and_their_events_are_invisible,
    many_workers_run_every_job_exactly_once,
    the_original_run_routes_answer_in_their_own_shapes,
);
