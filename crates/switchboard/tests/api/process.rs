//! The `switchboard` binary itself: what `serve` and `token` print, refusing weak secrets,
//! giving up on an unreachable database, draining requests on SIGTERM (RELIABILITY B11.66–67),
//! and keeping tokens and message contents out of the logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A `switchboard serve` child process with its printed URL and token.
pub struct Served {
    pub child: Child,
    pub url: String,
    pub token: String,
    pub stderr: std::thread::JoinHandle<String>,
}

pub fn serve(data_dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_remove("SWITCHBOARD_JWT_SECRET")
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    // Drain stderr from the start: at trace level the server logs more before it prints its
    // address than a pipe holds, and would block on a full pipe.
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("serve prints its address").unwrap();
    let url = first.rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let second = lines.next().expect("serve prints a token").unwrap();
    let token = second.rsplit(' ').next().unwrap().to_owned();
    std::thread::spawn(move || for _ in lines {});
    Served { child, url, token, stderr }
}

impl Served {
    /// GET as the local user, the answer as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let client = reqwest::Client::new();
        client.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.unwrap().json().await.unwrap()
    }
}

pub fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serve_prints_a_working_token_for_the_local_user_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(&dir.path().join("data"), &[], &[]);
    let me = served.get("/api/v1/me").await;
    assert_eq!(me["subject"], "local");
    assert_eq!(me["is_admin"], true);
    sigterm(&served.child);
    assert!(wait_with_deadline(&mut served.child, Duration::from_secs(10)).success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/jwt_secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the generated secret is private");
    }
}

#[tokio::test]
async fn the_token_command_prints_only_a_token_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = Command::new(BIN)
        .args(["token", "--user", "alice", "--ttl", "2h", "--data-dir"])
        .arg(&data)
        .env_remove("SWITCHBOARD_JWT_SECRET")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "nothing but the token on stdout");
    assert_eq!(lines[0].split('.').count(), 3);

    let mut served = serve(&data, &[], &[]);
    let me: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/me", served.url))
        .bearer_auth(lines[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["subject"], "alice", "token and server share the data directory's secret");
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));
}

/// B5.34 (start-up half): weak or sample secrets stop the process at once with a clear message.
#[test]
fn weak_or_sample_secrets_are_refused_at_start() {
    for secret in ["short", "changeme", "your-super-secret-jwt-token-with-at-least-32-characters-long"] {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let output = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("SWITCHBOARD_JWT_SECRET", secret)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{secret} must be refused");
        assert!(started.elapsed() < Duration::from_secs(2), "refused within 2 s");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("JWT secret"), "clear message: {stderr}");
        assert!(!stderr.contains(secret) || secret == "short", "the secret itself is not echoed");
    }
}

/// B11.66: the database is down at start: retry, then exit non-zero within the configured time.
#[test]
fn an_unreachable_database_at_start_means_a_clear_non_zero_exit_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--db-connect-timeout-secs", "2", "--data-dir"])
        .arg(dir.path())
        .arg("--database-url")
        .arg("postgres://sb:pw-canary-8c1f@127.0.0.1:1/nowhere")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(!output.status.success());
    assert!(elapsed >= Duration::from_millis(1500), "it retried for the configured time ({elapsed:?})");
    assert!(elapsed < Duration::from_secs(12), "and then gave up ({elapsed:?})");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "names the database: {stderr}");
    assert!(!stderr.contains("pw-canary-8c1f"), "never prints the password: {stderr}");
}

/// B11.67: SIGTERM with 100 requests in flight: every one is answered, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_100_requests_in_flight_drops_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(&dir.path().join("data"), &["--rate-limit-per-minute", "0"], &[]);
    let address = served.url.trim_start_matches("http://").to_owned();
    let body = json!({"message": "in flight"}).to_string();
    let (head, tail) = body.split_at(body.len() / 2);

    // 100 requests whose bodies are only half sent: the server is handling all of them.
    let mut streams = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let request = format!(
            "POST /api/v1/chat HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
            served.token,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&served.child);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut answered = 0;
    for mut stream in streams {
        stream.write_all(tail.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        answered += 1;
    }
    assert_eq!(answered, 100);
    let status = tokio::task::spawn_blocking(move || wait_with_deadline(&mut served.child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success());
}

/// Neither bearer tokens nor message contents reach the logs, even at trace level; every tool
/// call is logged with its user, tool, duration and outcome, but not its arguments.
#[tokio::test]
async fn logs_carry_neither_tokens_nor_message_contents() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(&dir.path().join("data"), &["--log-level", "trace", "--log-format", "json"], &[]);
    let client = reqwest::Client::new();
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4());
    let response = client
        .post(format!("{}/api/v1/chat", served.url))
        .bearer_auth(&served.token)
        .json(&json!({"message": canary}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let title = format!("CANARY-{}", uuid::Uuid::new_v4());
    let added = client
        .post(format!("{}/api/v1/chat", served.url))
        .bearer_auth(&served.token)
        .json(&json!({"message": format!("add a task called {title}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    let me: Value = client
        .get(format!("{}/api/v1/me", served.url))
        .bearer_auth(&served.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused =
        client.get(format!("{}/api/v1/me", served.url)).bearer_auth(format!("{}x", served.token)).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));
    let logs = served.stderr.join().unwrap();
    assert!(
        logs.contains("\"answered\"") || logs.contains("answered"),
        "requests were logged: {}",
        &logs[..logs.len().min(500)]
    );
    assert!(!logs.contains(&canary), "message content in logs");
    assert!(!logs.contains(&title), "tool arguments in logs");
    let calls: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "tool call")
        .collect();
    assert_eq!(calls.len(), 1, "one tool call logged");
    let call = &calls[0];
    assert_eq!(call["tool"], "add_task");
    assert_eq!(call["is_error"], false);
    assert!(call["duration_ms"].is_number());
    let spans = call["spans"].as_array().unwrap();
    assert!(spans.iter().any(|s| s["user"] == me["id"]), "the call names its user: {call}");
    let signature = served.token.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "token in logs");
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).expect("--log-format json writes one JSON object per line");
    }
}

/// `switchboard mcp tasks --user NAME`: an MCP client launches it as a child process and manages
/// that user's tasks over stdio, against the same database the server uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tasks_server_over_stdio_manages_the_same_tasks_as_the_api() {
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;
    use rmcp::ServiceExt;

    let app = crate::helpers::spawn_app(&crate::helpers::Backend::Sqlite).await;
    let mut command = tokio::process::Command::new(BIN);
    command.args(["mcp", "tasks", "--user", "alice", "--data-dir"]).arg(&app.settings.data_dir);
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.expect("stdio MCP server starts");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 5);
    let args = json!({"title": "from stdio"}).as_object().cloned().unwrap();
    let added = client.call_tool(CallToolRequestParams::new("add_task").with_arguments(args)).await.unwrap();
    assert_eq!(added.is_error, Some(false));
    client.cancel().await.unwrap();

    let listed: Value = app.get("/api/v1/tasks", &app.token_for("alice")).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["title"], "from stdio");
    let other: Value = app.get("/api/v1/tasks", &app.token_for("bob")).await.json().await.unwrap();
    assert!(other["items"].as_array().unwrap().is_empty());
}
