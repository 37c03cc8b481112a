//! The client for external MCP servers, against a real third-party server
//! (`@modelcontextprotocol/server-everything`, from npm, over stdio) and against Switchboard's own
//! `/mcp` over Streamable HTTP: tool lists, calls, a controlled environment, crashes and timeouts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use switchboard_mcp::client::{namespaced, ClientError, ExternalServer, Launch, ServerConfig};

use crate::helpers::{spawn_app, Backend};

/// Where `.ci/run` installs the npm MCP servers; absent on a developer machine: skipped there,
/// failing in CI.
#[allow(clippy::disallowed_methods)] // tests read their own environment
pub fn everything_server() -> Option<PathBuf> {
    match std::env::var("SWITCHBOARD_TEST_MCP_SERVERS") {
        Ok(dir) => Some(PathBuf::from(dir).join("node_modules/.bin/mcp-server-everything")),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("SWITCHBOARD_TEST_MCP_SERVERS is not set: CI must test against real MCP servers")
        }
        Err(_) => {
            eprintln!("SWITCHBOARD_TEST_MCP_SERVERS is not set: skipping the third-party MCP server tests");
            None
        }
    }
}

fn stdio(name: &str, command: PathBuf, env: &[(&str, &str)]) -> ServerConfig {
    ServerConfig {
        name: name.into(),
        launch: Launch::Stdio {
            command: command.display().to_string(),
            args: vec!["stdio".into()],
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        },
        call_timeout: Duration::from_secs(20),
        outbound: None,
    }
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_stdio_server_lists_and_runs_its_tools_with_only_the_declared_environment() {
    let Some(server) = everything_server() else { return };
    let everything =
        ExternalServer::connect(stdio("everything", server, &[("DECLARED_SETTING", "declared-value")])).await.unwrap();
    let names: Vec<String> = everything.tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"echo".to_string()) && names.contains(&"get-env".to_string()), "{names:?}");
    assert_eq!(namespaced(everything.name(), "get-env"), "everything__get-env");

    let echoed = everything.call("echo", json!({"message": "hello from switchboard"}), None).await.unwrap();
    assert!(text(&echoed).contains("hello from switchboard"));
    let sum = everything.call("get-sum", json!({"a": 2, "b": 40}), None).await.unwrap();
    assert!(text(&sum).contains("42"), "{}", text(&sum));

    // Only what the configuration declares (plus PATH) reaches the child.
    let env = text(&everything.call("get-env", json!({}), None).await.unwrap());
    assert!(env.contains("declared-value"), "declared variable passed: {env}");
    assert!(env.contains("\\\"PATH\\\""), "keys appear quoted, so the absence checks below can fail: {env}");
    for inherited in ["HOME", "CARGO", "RUST_BACKTRACE", "SWITCHBOARD_TEST_MCP_SERVERS"] {
        assert!(!env.contains(&format!("\\\"{inherited}\\\"")), "{inherited} leaked into the child: {env}");
    }
    everything.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_fails_clearly_while_another_keeps_working() {
    let Some(server) = everything_server() else { return };
    let app = spawn_app(&Backend::Sqlite).await;
    let everything = ExternalServer::connect(stdio("everything", server, &[])).await.unwrap();
    let tasks = ExternalServer::connect(ServerConfig {
        name: "switchboard".into(),
        launch: Launch::Http {
            url: app.url("/mcp"),
            headers: BTreeMap::from([("Authorization".to_string(), format!("Bearer {}", app.token_for("alice")))]),
        },
        call_timeout: Duration::from_secs(10),
        outbound: None,
    })
    .await
    .unwrap();
    assert_eq!(tasks.tools().await.unwrap().len(), 5);

    let pid = everything.process_id().expect("a stdio server has a process");
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let error = everything.call("echo", json!({"message": "anyone?"}), None).await.unwrap_err();
    assert!(matches!(error, ClientError::Failed { .. } | ClientError::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("everything"), "the error names the server: {error}");

    let added = tasks.call("add_task", json!({"title": "still fine"}), None).await.unwrap();
    assert_eq!(added.is_error, Some(false));
    let listed: serde_json::Value = app.get("/api/v1/tasks", &app.token_for("alice")).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["title"], "still fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_give_connect_errors_that_name_them() {
    let missing = ExternalServer::connect(stdio("nowhere", PathBuf::from("/nonexistent/mcp-server"), &[])).await;
    assert!(matches!(&missing, Err(ClientError::Connect { server, .. }) if server == "nowhere"));
    let closed = ExternalServer::connect(ServerConfig {
        name: "closed".into(),
        launch: Launch::Http { url: "http://127.0.0.1:9/mcp".into(), headers: BTreeMap::new() },
        call_timeout: Duration::from_secs(5),
        outbound: None,
    })
    .await;
    assert!(matches!(&closed, Err(ClientError::Connect { server, .. }) if server == "closed"));
}
