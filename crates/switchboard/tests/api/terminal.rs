//! The terminal client against a real `switchboard serve`: `switchboard chat` driven with piped
//! input (streamed replies, tool lines, conversations, a workflow's credentials asked for one by
//! one), and `switchboard tasks …` for each task operation.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::process::{serve, sigterm, wait_with_deadline, BIN};

const CANARIES: [&str; 3] = ["CANARY-term-one-8d1f", "CANARY-term-two-2b7c", "CANARY-term-three-e40a"];

/// Runs the client with `args`, `input` on its standard input, against `url` (and no token:
/// the local user's, from the data directory, unless `args` give one).
fn client(url: &str, data_dir: &std::path::Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("SWITCHBOARD_URL", url)
        .env_remove("SWITCHBOARD_TOKEN")
        .env_remove("SWITCHBOARD_JWT_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test]
async fn the_terminal_chat_streams_replies_switches_conversations_and_asks_for_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut served = serve(&data, &[], &[]);
    let input = format!(
        "add a task called Terminal task\n/new\nmonitor gmail for invoices and save them to notion\n{}\n{}\n{}\n/list\n/switch 2\n/tasks\n/nonsense\n/quit\n",
        CANARIES[0], CANARIES[1], CANARIES[2]
    );
    let output = client(&served.url, &data, &["chat"], &input);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("signed in as Local user"), "{out}");
    // The offline assistant's tool call, compactly, then its reply.
    assert!(out.contains("  → add_task {\"title\":\"Terminal task\"}"), "{out}");
    assert!(out.contains("  ← add_task ok ("), "{out}");
    assert!(out.contains("switchboard: "), "{out}");
    // The workflow asks for each credential with its instructions, masked ones marked hidden.
    assert!(out.contains("The workflow needs 3 credential(s)"), "{out}");
    assert!(out.contains("NOTION_TOKEN (hidden): "), "{out}");
    assert!(out.contains("(agent created: "), "the workflow continued with the answers: {out}");
    for canary in CANARIES {
        assert!(!out.contains(canary), "a credential value was printed");
    }
    // Two conversations listed, the older one reopened with its tool call.
    assert!(out.contains(" 1. ") && out.contains(" 2. "), "{out}");
    assert!(out.contains("you: add a task called Terminal task"), "the reopened conversation: {out}");
    assert!(out.contains("#1 [ ] Terminal task"), "{out}");
    assert!(out.contains("unknown command /nonsense"), "{out}");

    let credentials = served.get("/api/v1/credentials").await;
    let set: usize = credentials["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["keys"].as_array().unwrap().iter())
        .filter(|k| k["set"] == true)
        .count();
    assert_eq!(set, 3, "every answer was stored: {credentials}");
    let agents = served.get("/api/v1/agents").await;
    assert_eq!(agents["items"].as_array().unwrap().len(), 1, "{agents}");
    sigterm(&served.child);
    assert!(wait_with_deadline(&mut served.child, Duration::from_secs(10)).success());
}

#[tokio::test]
async fn the_tasks_command_adds_lists_completes_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut served = serve(&data, &[], &[]);
    let run = |args: &[&str]| client(&served.url, &data, args, "");

    let added = run(&["tasks", "add", "Write the report", "--priority", "high", "--due", "2026-12-24"]);
    assert!(added.status.success(), "{}", text(&added));
    assert_eq!(String::from_utf8_lossy(&added.stdout).trim(), "added: #1 [ ] Write the report (high, due 2026-12-24)");
    assert!(run(&["tasks", "add", "Second"]).status.success());

    let listed = run(&["tasks", "list", "--json"]);
    let page: Value = serde_json::from_slice(&listed.stdout).expect("--json prints JSON only");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    let completed = run(&["tasks", "complete", "1"]);
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout).trim(),
        "completed: #1 [x] Write the report (high, due 2026-12-24)"
    );
    let updated = run(&["tasks", "update", "2", "--title", "Second, renamed", "--priority", "low"]);
    assert_eq!(String::from_utf8_lossy(&updated.stdout).trim(), "updated: #2 [ ] Second, renamed (low)");
    let pending = run(&["tasks", "list", "--status", "pending"]);
    assert_eq!(String::from_utf8_lossy(&pending.stdout).trim(), "#2 [ ] Second, renamed (low)");

    let deleted = run(&["tasks", "delete", "2"]);
    assert_eq!(String::from_utf8_lossy(&deleted.stdout).trim(), "deleted task 2");
    let tasks = served.get("/api/v1/tasks").await;
    assert_eq!(tasks["items"].as_array().unwrap().len(), 1, "{tasks}");

    // Bad input: a clear message and a failing exit status, nothing changed.
    let missing = run(&["tasks", "complete", "42"]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("HTTP 404"), "{}", text(&missing));
    let nothing = run(&["tasks", "update", "1"]);
    assert!(!nothing.status.success() && text(&nothing).contains("nothing to change"), "{}", text(&nothing));
    let bad_date = run(&["tasks", "add", "Dated", "--due", "next week"]);
    assert!(!bad_date.status.success() && text(&bad_date).contains("HTTP 422"), "{}", text(&bad_date));
    let wrong_token = client(&served.url, &data, &["tasks", "list", "--token", "not-a-token"], "");
    assert!(!wrong_token.status.success() && text(&wrong_token).contains("HTTP 401"), "{}", text(&wrong_token));
    let tasks = served.get("/api/v1/tasks").await;
    assert_eq!(tasks["items"].as_array().unwrap().len(), 1, "{tasks}");

    sigterm(&served.child);
    assert!(wait_with_deadline(&mut served.child, Duration::from_secs(10)).success());
}

#[test]
fn the_clients_find_no_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = client("http://127.0.0.1:9", &dir.path().join("data"), &["tasks", "list"], "");
    assert!(!output.status.success());
    assert!(text(&output).contains("cannot reach Switchboard at http://127.0.0.1:9"), "{}", text(&output));
}
