//! The credential vault through the real binary (RELIABILITY B5): canary secrets never reach
//! responses, logs or the database files in any form; `switchboard vault rotate` re-encrypts
//! everything and the server still opens it; bad master keys stop the server at start.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::process::{serve, sigterm, wait_with_deadline, Served, BIN};

pub(crate) struct Client {
    http: reqwest::Client,
    served_url: String,
    token: String,
    /// Every response body seen, to search for canaries.
    pub(crate) seen: String,
}

impl Client {
    pub(crate) fn new(served: &Served) -> Client {
        Client {
            http: reqwest::Client::new(),
            served_url: served.url.clone(),
            token: served.token.clone(),
            seen: String::new(),
        }
    }

    pub(crate) async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = self.http.request(method, format!("{}{path}", self.served_url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        self.seen.push_str(&text);
        (status, text)
    }
}

/// The forms a leaked secret could take.
pub(crate) fn forms(secret: &str) -> [String; 3] {
    [
        secret.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        secret.bytes().map(|b| format!("{b:02x}")).collect(),
    ]
}

pub(crate) fn files_text(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    ["switchboard.db", "switchboard.db-wal", "switchboard.db-shm"]
        .iter()
        .filter_map(|name| std::fs::read(dir.join(name)).ok().map(|bytes| (name.to_string(), bytes)))
        .collect()
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// B5.29 and B5.35: canaries stored (twice over) for every credential the built-in catalog declares, used by
/// workflows and exports, pushed through error paths; then searched for (plain, base64, hex) in
/// every response, the trace-level logs and the SQLite files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_credentials_never_appear_in_responses_logs_or_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut served = serve(&data, &["--log-level", "trace", "--rate-limit-per-minute", "0"], &[]);
    let mut client = Client::new(&served);
    let (_, servers) = client.send(reqwest::Method::GET, "/api/v1/servers?limit=200", None).await;
    let servers: Value = serde_json::from_str(&servers).unwrap();
    let mut canaries = Vec::new();
    // Twice: the second round replaces every value, so old values could linger in the WAL too.
    for server in servers["items"].as_array().unwrap().iter().chain(servers["items"].as_array().unwrap()) {
        let slug = server["slug"].as_str().unwrap();
        let mut values = serde_json::Map::new();
        for spec in server["credentials"].as_array().unwrap() {
            let canary = format!("CANARY-{}", uuid::Uuid::new_v4());
            values.insert(spec["key"].as_str().unwrap().to_owned(), json!(canary));
            canaries.push(canary);
        }
        if values.is_empty() {
            continue;
        }
        let path = format!("/api/v1/credentials/{slug}");
        let (status, body) = client.send(reqwest::Method::PUT, &path, Some(json!({ "values": values }))).await;
        assert_eq!(status, StatusCode::OK, "{slug}: {body}");
    }
    assert!(canaries.len() >= 100, "{} canaries", canaries.len());

    // Errors that carry a value: an undeclared key, a control character, an internal address.
    let bad = format!("CANARY-{}", uuid::Uuid::new_v4());
    for body in [json!({"values": {"NOT_DECLARED": bad}}), json!({"values": {"NOTION_TOKEN": format!("{bad}\u{7}")}})] {
        let (status, _) = client.send(reqwest::Method::PUT, "/api/v1/credentials/notion", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    canaries.push(bad);
    // Workflows with credentials in the chat request, agents, exports without secrets.
    let chat = json!({"message": "monitor gmail for invoices and save them to notion",
                      "credentials": {"notion": {"NOTION_TOKEN": canaries[0]}}});
    let (status, reply) = client.send(reqwest::Method::POST, "/api/v1/chat", Some(chat)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["status"], "success", "every credential is set: {reply}");
    let agent = reply["agent_id"].as_str().unwrap();
    let (_, _) = client.send(reqwest::Method::GET, "/api/v1/credentials", None).await;
    let (_, _) = client.send(reqwest::Method::GET, "/api/v1/agents", None).await;
    for format in ["claude", "mcp-json", "fast-agent", "vscode"] {
        let path = format!("/api/v1/agents/{agent}/config?format={format}");
        let (status, _) = client.send(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, spec) = client.send(reqwest::Method::GET, "/openapi.json", None).await;
    assert!(spec.len() > 1000);
    let (status, metrics) = client.send(reqwest::Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("http_requests"), "{}", &metrics[..metrics.len().min(300)]);

    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));
    let logs = served.stderr.join().unwrap();
    assert!(logs.contains("credentials stored"), "the trace logs saw the credential writes");
    let files = files_text(&data);
    assert!(!files.is_empty());
    let mut searched = 0;
    for canary in &canaries {
        for form in forms(canary) {
            assert!(!client.seen.contains(&form), "a response holds a secret");
            assert!(!logs.contains(&form), "the logs hold a secret");
            for (name, bytes) in &files {
                assert!(!contains(bytes, &form), "{name} holds a secret in clear");
            }
            searched += 1;
        }
    }
    eprintln!("{} canaries, {searched} forms searched, 0 found", canaries.len());
}

fn rotate(data: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(BIN);
    command.args(["vault", "rotate", "--data-dir"]).arg(data).env_remove("SWITCHBOARD_DATABASE_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Stores two Gmail credentials and creates an agent using them; returns the values and the agent.
async fn store_two(served: &Served) -> ([String; 2], String) {
    let mut client = Client::new(served);
    let values = [format!("CANARY-{}", uuid::Uuid::new_v4()), format!("CANARY-{}", uuid::Uuid::new_v4())];
    let body = json!({"values": {"GOOGLE_OAUTH_CLIENT_ID": values[0], "GOOGLE_OAUTH_CLIENT_SECRET": values[1]}});
    let (status, _) = client.send(reqwest::Method::PUT, "/api/v1/credentials/gmail", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, reply) = client
        .send(
            reqwest::Method::POST,
            "/api/v1/chat",
            Some(json!({"message": "label the invoices in my gmail messages"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["status"], "success", "{reply}");
    (values, reply["agent_id"].as_str().unwrap().to_owned())
}

/// The stored values, read back through an export the owner asks secrets for.
async fn exported(served: &Served, agent: &str) -> (StatusCode, String) {
    let mut client = Client::new(served);
    client.send(reqwest::Method::GET, &format!("/api/v1/agents/{agent}/config?include_secrets=true"), None).await
}

async fn key_versions(data: &std::path::Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(data.join("switchboard.db")).unwrap();
    let mut stmt = conn.prepare("SELECT DISTINCT key_version FROM credentials").unwrap();
    let versions = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    versions
}

/// B5.33 with the embedded key file: rotation puts a new key in place and re-encrypts every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_file_re_encrypts_everything_and_the_server_still_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut served = serve(&data, &[], &[]);
    let (values, agent) = store_two(&served).await;
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));
    let key_file = data.join("vault_key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let before = key_versions(&data).await;
    assert_eq!(before.len(), 1);

    let printed = rotate(&data, &[]);
    assert!(printed.starts_with("re-encrypted 2 credentials under key "), "{printed}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(new_key.lines().count(), 1, "the old key is dropped once nothing needs it");
    let after = key_versions(&data).await;
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "0 rows remain under the old key");

    let mut served = serve(&data, &[], &[]);
    let (status, text) = exported(&served, &agent).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains(&values[0]) && text.contains(&values[1]));
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));
    assert!(rotate(&data, &[]).starts_with("re-encrypted 2 credentials"), "every rotation uses a fresh key");
}

/// B5.33 with configured keys: the old key stays readable while listed as previous; after the
/// rotation the new key alone opens everything, and the old one alone opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_configured_keys_keeps_every_credential_readable() {
    let (k1, k2) = ("k1-4f8a0c2e9b7d6a5f3e1c0b9a8d7e6f5a4", "k2-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut served = serve(&data, &[], &[("SWITCHBOARD_MASTER_KEY", k1)]);
    let (values, agent) = store_two(&served).await;
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));

    // Before the rotation the new key reads the old rows through the previous-keys list.
    let mut served = serve(&data, &[], &[("SWITCHBOARD_MASTER_KEY", k2), ("SWITCHBOARD_PREVIOUS_MASTER_KEYS", k1)]);
    assert!(exported(&served, &agent).await.1.contains(&values[0]));
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));

    let printed = rotate(&data, &[("SWITCHBOARD_MASTER_KEY", k2), ("SWITCHBOARD_PREVIOUS_MASTER_KEYS", k1)]);
    assert!(printed.starts_with("re-encrypted 2 credentials"), "{printed}");
    let mut served = serve(&data, &[], &[("SWITCHBOARD_MASTER_KEY", k2)]);
    let (status, text) = exported(&served, &agent).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(&values[0]) && text.contains(&values[1]));
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));

    let mut served = serve(&data, &[], &[("SWITCHBOARD_MASTER_KEY", k1)]);
    let (status, text) = exported(&served, &agent).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "the retired key opens nothing");
    assert!(!text.contains(&values[0]) && !text.contains(k1));
    sigterm(&served.child);
    wait_with_deadline(&mut served.child, Duration::from_secs(10));
}

/// B5.34: a short, sample or malformed master key stops the server within 2 s with a clear message.
#[test]
fn bad_master_keys_stop_the_server_at_start() {
    let cases: [(&str, Option<&str>, Option<&str>); 5] = [
        ("short", Some("too-short-key"), None),
        ("sample", Some("changeme-changeme-changeme-changeme-changeme"), None),
        ("repeated", Some(&"x".repeat(48)), None),
        ("previous", Some("k1-4f8a0c2e9b7d6a5f3e1c0b9a8d7e6f5a4"), Some("short")),
        ("file", None, None),
    ];
    for (name, key, previous) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        if name == "file" {
            std::fs::write(data.join("vault_key"), "not-a-key\n").unwrap();
        }
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env_remove("SWITCHBOARD_DATABASE_URL");
        if let Some(key) = key {
            command.env("SWITCHBOARD_MASTER_KEY", key);
        }
        if let Some(previous) = previous {
            command.env("SWITCHBOARD_PREVIOUS_MASTER_KEYS", previous);
        }
        let started = Instant::now();
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{name} must be refused");
        assert!(started.elapsed() < Duration::from_secs(2), "{name}: refused within 2 s");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("key"), "{name}: clear message: {stderr}");
        if let Some(key) = key.filter(|k| k.len() > 20) {
            assert!(!stderr.contains(key), "{name}: the key itself is not echoed");
        }
    }
}

/// B5.29, database half on both backends: after credentials are stored, replaced and used by a
/// workflow, neither a `pg_dump` of the PostgreSQL database nor the SQLite files hold any value
/// in clear, base64 or hex.
async fn stored_credentials_are_only_ciphertext_in_the_database(backend: crate::helpers::Backend) {
    let app = crate::helpers::spawn_app(&backend).await;
    let token = app.token_for("alice");
    let mut canaries = Vec::new();
    for round in 0..2 {
        let values: Vec<String> = (0..3).map(|i| format!("CANARY-{round}-{i}-{}", uuid::Uuid::new_v4())).collect();
        canaries.extend(values.iter().cloned());
        for (server, body) in [
            (
                "gmail",
                json!({"values": {"GOOGLE_OAUTH_CLIENT_ID": values[0], "GOOGLE_OAUTH_CLIENT_SECRET": values[1]}}),
            ),
            ("notion", json!({"values": {"NOTION_TOKEN": values[2]}})),
        ] {
            let response = app
                .client
                .put(app.url(&format!("/api/v1/credentials/{server}")))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    let reply = app.chat(&token, "monitor gmail for invoices and save them to notion", None).await;
    assert_eq!(reply["status"], "success");
    let dump: Vec<u8> = match &app.settings.database_url {
        Some(url) => {
            let output = Command::new("pg_dump").arg(url.expose()).output().expect("pg_dump runs");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            assert!(contains(&output.stdout, "credentials"), "the dump holds the credentials table");
            output.stdout
        }
        None => files_text(&app.settings.data_dir).into_iter().flat_map(|(_, bytes)| bytes).collect(),
    };
    assert!(!dump.is_empty());
    for canary in &canaries {
        for form in forms(canary) {
            assert!(!contains(&dump, &form), "the database holds a credential in clear");
        }
    }
    assert_eq!(app.count_rows("credentials").await, 3);
}

crate::on_both_backends!(stored_credentials_are_only_ciphertext_in_the_database);
