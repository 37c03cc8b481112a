//! Running agents here: their catalog servers started with the owner's credentials (a real
//! third-party server over stdio, Switchboard's own `/mcp` as a remote server), the faults a run
//! meets, and the outbound rules that keep a user from pointing the server at internal addresses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::LlmProvider;

use crate::helpers::{error_code, Backend, TestApp};
use crate::mcp_client::everything_server;
use crate::model_server::{app_with_model, ModelServer, Reply};

async fn put_credentials(app: &TestApp, token: &str, server: &str, values: Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/credentials/{server}")))
        .bearer_auth(token)
        .json(&json!({ "values": values }))
        .send()
        .await
        .unwrap()
}

/// A server answering with the scripted model, with `entries` in its catalog and internal
/// networks `allow`ed outbound (plain http too when any is).
async fn app_for(backend: &Backend, script: Vec<Reply>, entries: Value, allow: &[&str]) -> (ModelServer, TestApp) {
    let model = ModelServer::start(script).await;
    let allow: Vec<ipnet::IpNet> = allow.iter().map(|a| a.parse().unwrap()).collect();
    let app = app_with_model(backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |s| {
        s.outbound_allow_http = !allow.is_empty();
        s.outbound_allow = allow;
    })
    .await;
    app.import_catalog(&entries).await;
    (model, app)
}

/// The model replies that create an agent using `servers`, through the workflow tool.
fn workflow_replies(description: &str, servers: &[&str]) -> Vec<Reply> {
    let design = json!({"status": "ready", "name": "Test agent", "servers": servers,
                        "steps": ["Use the tools"], "system_prompt": "You are the test agent. Use your tools."});
    vec![
        Reply::tools(&[("create_workflow_agent", json!({ "description": description }))]),
        Reply::text(&design.to_string()),
        Reply::text("Give me the credentials."),
    ]
}

/// Describes the workflow, stores the credentials, and returns the created agent's id.
async fn create_agent(app: &TestApp, token: &str, description: &str, credentials: &[(&str, Value)]) -> String {
    let first = app.chat(token, description, None).await;
    let conversation = first["conversation_id"].as_str().unwrap().to_owned();
    for (server, values) in credentials {
        let response = put_credentials(app, token, server, values.clone()).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    }
    let done = app.chat(token, "all set", Some(&conversation)).await;
    assert_eq!(done["status"], "success", "{first} {done}");
    done["agent_id"].as_str().unwrap().to_owned()
}

async fn run(app: &TestApp, token: &str, agent: &str, input: &str) -> reqwest::Response {
    app.post_json(&format!("/api/v1/agents/{agent}/run"), token, &json!({ "input": input })).await
}

async fn an_agent_runs_a_real_stdio_server_with_the_owners_credential_injected(backend: Backend) {
    let Some(command) = everything_server() else { return };
    let description = "echo messages with the everything test server";
    let mut script = workflow_replies(description, &["Everything Test"]);
    script.push(Reply::tools(&[
        ("everything-test__echo", json!({"message": "hello from the agent"})),
        ("everything-test__get-env", json!({})),
    ]));
    script.push(Reply::text("I echoed your message."));
    let (model, app) = app_for(
        &backend,
        script,
        json!([{"name": "Everything Test", "description": "The MCP reference server: echo, sums, environment",
                "tools": [{"name": "echo", "description": "Echo a message"}],
                "launch": {"transport": "stdio", "command": command.display().to_string(), "args": ["stdio"],
                           "env": {"EVERYTHING_TOKEN": "${EVERYTHING_TOKEN}"}},
                "credentials": [{"key": "EVERYTHING_TOKEN", "description": "A token the server reads", "secret": true}]}]),
        &[],
    )
    .await;
    let token = app.token_for("alice");
    let agent = create_agent(
        &app,
        &token,
        description,
        &[("everything-test", json!({"EVERYTHING_TOKEN": "injected-value-77"}))],
    )
    .await;

    let response = run(&app, &token, &agent, "echo hello").await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["message"]["content"], "I echoed your message.");
    let calls = reply["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[0]["result"].to_string().contains("hello from the agent"), "{}", calls[0]);
    assert_eq!(calls[0]["is_error"], false);
    let env = calls[1]["result"].to_string();
    assert!(env.contains("EVERYTHING_TOKEN") && env.contains("injected-value-77"), "the credential reached the server");
    assert!(!env.contains("SWITCHBOARD_TEST_POSTGRES_URL"), "nothing of the server's own environment leaks");

    // The model ran as the agent, with the agent's server's tools only.
    let asked = &model.received()[3].body;
    assert_eq!(asked["messages"][0]["content"], "You are the test agent. Use your tools.");
    let tools: Vec<&str> =
        asked["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(tools.iter().all(|t| t.starts_with("everything-test__")) && tools.contains(&"everything-test__echo"));

    // The run is a conversation of its own, kept like chat.
    let conversation = reply["conversation_id"].as_str().unwrap();
    let messages: Value =
        app.get(&format!("/api/v1/conversations/{conversation}/messages"), &token).await.json().await.unwrap();
    assert_eq!(messages["items"].as_array().unwrap().len(), 2);
}

async fn runs_answer_missing_credentials_and_dead_servers_clearly_and_keep_the_input(backend: Backend) {
    let description = "use the broken test server";
    let (_model, app) = app_for(
        &backend,
        workflow_replies(description, &["Broken Test"]),
        json!([{"name": "Broken Test", "description": "A server whose program does not exist",
                "launch": {"transport": "stdio", "command": "/nonexistent/switchboard-test-server", "args": [],
                           "env": {"BROKEN_TOKEN": "${BROKEN_TOKEN}"}},
                "credentials": [{"key": "BROKEN_TOKEN", "description": "A token"}]}]),
        &[],
    )
    .await;
    let token = app.token_for("alice");
    let agent =
        create_agent(&app, &token, description, &[("broken-test", json!({"BROKEN_TOKEN": "CANARY-broken-1"}))]).await;
    let before = app.count_rows("messages").await;

    let (status, code) = error_code(run(&app, &token, &agent, "go").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_GATEWAY, "mcp_server_unavailable"));
    assert_eq!(app.count_rows("messages").await, before + 1, "the input was kept");

    assert_eq!(app.delete("/api/v1/credentials/broken-test", &token).await.status(), StatusCode::NO_CONTENT);
    let (status, code) = error_code(run(&app, &token, &agent, "go").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "missing_credentials"));

    let (status, code) = error_code(
        app.post_json(&format!("/api/v1/agents/{agent}/run"), &token, &json!({"input": "x", "owner_id": "y"})).await,
    )
    .await;
    assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    assert_eq!(run(&app, &app.token_for("bob"), &agent, "go").await.status(), StatusCode::NOT_FOUND);
}

/// A listener that counts the connections it accepts: the canary of the SSRF tests.
async fn canary_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, accepted)
}

fn remote_entry() -> Value {
    json!([{"name": "Remote Tasks", "description": "Tasks on another Switchboard, over Streamable HTTP",
            "launch": {"transport": "remote", "url": "${SERVER_URL}", "headers": {"Authorization": "Bearer ${REMOTE_TOKEN}"}},
            "credentials": [{"key": "SERVER_URL", "description": "The server's /mcp address", "secret": false},
                            {"key": "REMOTE_TOKEN", "description": "A bearer token for it"}]}])
}

async fn internal_and_malformed_addresses_are_refused_before_any_connection(backend: Backend) {
    let model = ModelServer::start(vec![Reply::text("unused")]).await;
    let app = app_with_model(&backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |s| {
        s.outbound_allow_http = true;
    })
    .await;
    app.import_catalog(&remote_entry()).await;
    let token = app.token_for("alice");
    let (port, accepted) = canary_listener().await;
    let hostile = [
        format!("http://127.0.0.1:{port}/mcp"),
        format!("http://localhost:{port}/mcp"),
        format!("http://0.0.0.0:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://a@127.0.0.1:{port}/"),
        format!("http://example.com@127.0.0.1:{port}/"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://10.0.0.1/".into(),
        "http://172.16.0.1/".into(),
        "http://192.168.1.1/".into(),
        "http://100.64.0.1/".into(),
        "http://[fc00::1]/".into(),
        "http://[fe80::1]/".into(),
        "http://[64:ff9b::7f00:1]/".into(),
        "javascript:alert(1)".into(),
        "file:///etc/passwd".into(),
        "data:text/plain,hello".into(),
        "gopher://127.0.0.1:6379/_INFO".into(),
        "ftp://example.com/".into(),
        "not a url".into(),
        "http://user:pass@example.com/".into(),
        format!("http://[::]:{port}/"),
        "http://224.0.0.1/".into(),
        "http://255.255.255.255/".into(),
        "http://198.18.0.1/".into(),
    ];
    assert!(hostile.len() >= 30);
    for url in &hostile {
        let response = put_credentials(&app, &token, "remote-tasks", json!({"SERVER_URL": url})).await;
        let (status, code) = error_code(response).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "address_not_allowed"), "{url}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection reached the canary");
    assert_eq!(app.count_rows("credentials").await, 0);
}

async fn plain_http_is_refused_unless_allowed(backend: Backend) {
    let (_model, app) = app_for(&backend, vec![Reply::text("unused")], remote_entry(), &[]).await;
    let token = app.token_for("alice");
    let response =
        put_credentials(&app, &token, "remote-tasks", json!({"SERVER_URL": "http://93.184.215.14/mcp"})).await;
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "address_not_allowed"));
    let response =
        put_credentials(&app, &token, "remote-tasks", json!({"SERVER_URL": "https://93.184.215.14/mcp"})).await;
    assert_eq!(response.status(), StatusCode::OK, "a public https address is fine (no connection is made yet)");
}

async fn an_agent_reaches_an_allowed_remote_server_with_the_vault_credential_not_the_callers_token(backend: Backend) {
    let description = "manage tasks on the remote tasks server";
    let mut script = workflow_replies(description, &["Remote Tasks"]);
    script.push(Reply::tools(&[("remote-tasks__add_task", json!({"title": "filed by the agent"}))]));
    script.push(Reply::text("Added it."));
    let (_model, app) = app_for(&backend, script, remote_entry(), &["127.0.0.1/32"]).await;
    let (alice, robot) = (app.token_for("alice"), app.token_for("robot"));
    let agent = create_agent(
        &app,
        &alice,
        description,
        &[("remote-tasks", json!({"SERVER_URL": app.url("/mcp"), "REMOTE_TOKEN": robot}))],
    )
    .await;
    let response = run(&app, &alice, &agent, "add a task").await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["tool_calls"][0]["is_error"], false, "{reply}");
    // The remote server saw the vault's credential (robot's token), not Alice's own bearer.
    let robots: Value = app.get("/api/v1/tasks", &robot).await.json().await.unwrap();
    let titles: Vec<&str> = robots["items"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["filed by the agent"]);
    let alices: Value = app.get("/api/v1/tasks", &alice).await.json().await.unwrap();
    assert_eq!(alices["items"], json!([]));
}

async fn a_remote_server_that_redirects_is_not_followed(backend: Backend) {
    // The first hop is allowed (127.0.0.0/8); it redirects to a canary on 127.0.0.2, which a
    // redirect-following client would reach.
    let canary = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let canary_port = canary.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    tokio::spawn(async move {
        while let Ok(_connection) = canary.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let redirector = axum::Router::new().fallback(move || async move {
        (StatusCode::FOUND, [("location", format!("http://127.0.0.2:{canary_port}/mcp"))])
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirector).await.unwrap() });

    let description = "manage tasks on the remote tasks server";
    let (_model, app) =
        app_for(&backend, workflow_replies(description, &["Remote Tasks"]), remote_entry(), &["127.0.0.0/8"]).await;
    let token = app.token_for("alice");
    let agent = create_agent(
        &app,
        &token,
        description,
        &[("remote-tasks", json!({"SERVER_URL": remote, "REMOTE_TOKEN": "t"}))],
    )
    .await;
    let (status, code) = error_code(run(&app, &token, &agent, "go").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_GATEWAY, "mcp_server_unavailable"));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was not followed");
}

/// A minimal Streamable HTTP MCP server whose `initialize` answer carries `pad` bytes of
/// instructions, as JSON or as one Server-Sent Event.
async fn padded_mcp_server(pad: usize, sse: bool) -> String {
    let answer = move |body: String| async move {
        let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let Some(id) = request.get("id").cloned() else {
            return (StatusCode::ACCEPTED, [("content-type", "application/json")], String::new());
        };
        let result = match request["method"].as_str() {
            Some("initialize") => json!({"protocolVersion": request["params"]["protocolVersion"],
                "capabilities": {"tools": {}}, "serverInfo": {"name": "padded", "version": "1"},
                "instructions": "x".repeat(pad)}),
            _ => json!({"tools": []}),
        };
        let message = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        if sse {
            (StatusCode::OK, [("content-type", "text/event-stream")], format!("data: {message}\n\n"))
        } else {
            (StatusCode::OK, [("content-type", "application/json")], message)
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(axum::routing::post(answer))).await.unwrap()
    });
    url
}

async fn oversized_answers_from_a_remote_server_are_cut_off(backend: Backend) {
    // B4.28: a 1 MiB answer is fine; a 20 MiB one (JSON, or a single event) ends the connection.
    for (pad, sse, fine) in
        [(1 << 20, false, true), (1 << 20, true, true), (20 << 20, false, false), (20 << 20, true, false)]
    {
        let remote = padded_mcp_server(pad, sse).await;
        let description = "manage tasks on the remote tasks server";
        let mut script = workflow_replies(description, &["Remote Tasks"]);
        script.push(Reply::text("Nothing to do."));
        let (_model, app) = app_for(&backend, script, remote_entry(), &["127.0.0.1/32"]).await;
        let token = app.token_for("alice");
        let credentials = [("remote-tasks", json!({"SERVER_URL": remote, "REMOTE_TOKEN": "t"}))];
        let agent = create_agent(&app, &token, description, &credentials).await;
        let response = run(&app, &token, &agent, "go").await;
        if fine {
            assert_eq!(response.status(), StatusCode::OK, "{pad} bytes, sse {sse}: {}", response.text().await.unwrap());
        } else {
            let (status, code) = error_code(response).await;
            assert_eq!((status, code.as_str()), (StatusCode::BAD_GATEWAY, "mcp_server_unavailable"), "sse {sse}");
        }
    }
}

/// Requests seen: method and `Authorization` header.
type Recorded = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A remote MCP server (JSON answers) that records the `Authorization` header of every request.
/// Tools: `ping` (answers "pong"), `huge` (10 MiB of text), `weather` (declares an output schema
/// its result does not match).
async fn recording_mcp_server() -> (String, Recorded) {
    let seen: Recorded = Default::default();
    let record = seen.clone();
    let answer = move |headers: axum::http::HeaderMap, body: String| {
        let record = record.clone();
        async move {
            let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let method = request["method"].as_str().unwrap_or_default().to_owned();
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
            record.lock().unwrap().push((method.clone(), auth));
            let Some(id) = request.get("id").cloned() else {
                return (StatusCode::ACCEPTED, [("content-type", "application/json")], String::new());
            };
            let object = json!({"type": "object"});
            let result = match method.as_str() {
                "initialize" => json!({"protocolVersion": request["params"]["protocolVersion"],
                    "capabilities": {"tools": {}}, "serverInfo": {"name": "recording", "version": "1"}}),
                "tools/list" => json!({"tools": [
                    {"name": "ping", "inputSchema": object},
                    {"name": "huge", "inputSchema": object},
                    {"name": "weather", "inputSchema": object, "outputSchema": {"type": "object",
                        "properties": {"celsius": {"type": "number"}}, "required": ["celsius"]}}]}),
                "tools/call" => match request["params"]["name"].as_str() {
                    Some("huge") => json!({"content": [{"type": "text", "text": "h".repeat(10 << 20)}]}),
                    Some("weather") => json!({"content": [{"type": "text", "text": "warm"}],
                                              "structuredContent": {"celsius": "warm"}}),
                    _ => json!({"content": [{"type": "text", "text": "pong"}]}),
                },
                _ => json!({}),
            };
            let message = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
            (StatusCode::OK, [("content-type", "application/json")], message)
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(axum::routing::post(answer))).await.unwrap()
    });
    (url, seen)
}

/// B3.22: over 100 proxied tool calls the upstream server never sees the caller's bearer, and
/// every request it gets carries the credential from the owner's vault.
async fn the_callers_token_never_reaches_an_upstream_server(backend: Backend) {
    let (url, seen) = recording_mcp_server().await;
    let description = "ping the remote server";
    let mut script = workflow_replies(description, &["Remote Tasks"]);
    let pings: Vec<(&str, Value)> = (0..100).map(|_| ("remote-tasks__ping", json!({}))).collect();
    script.push(Reply::tools(&pings));
    script.push(Reply::text("Pinged it a hundred times."));
    let (_model, app) = app_for(&backend, script, remote_entry(), &["127.0.0.1/32"]).await;
    let alice = app.token_for("alice");
    let vault_token = "upstream-credential-4b1d";
    let agent = create_agent(
        &app,
        &alice,
        description,
        &[("remote-tasks", json!({"SERVER_URL": url, "REMOTE_TOKEN": vault_token}))],
    )
    .await;
    let response = run(&app, &alice, &agent, "ping").await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["tool_calls"].as_array().unwrap().len(), 100);
    let seen = seen.lock().unwrap().clone();
    let calls = seen.iter().filter(|(method, _)| method == "tools/call").count();
    assert_eq!(calls, 100);
    let expected = format!("Bearer {vault_token}");
    for (method, auth) in &seen {
        assert_eq!(auth.as_deref(), Some(expected.as_str()), "{method} carried the vault's credential");
        assert!(!auth.as_deref().unwrap_or_default().contains(&alice), "{method} carried the caller's token");
    }
}

/// B10.65: a 10 MiB tool result reaches the model cut to the limit, and a result that does not
/// match the tool's output schema is an error item; the run goes on to its answer.
async fn oversized_and_malformed_tool_results_never_reach_the_model_as_they_are(backend: Backend) {
    let (url, _seen) = recording_mcp_server().await;
    let description = "read the remote server";
    let mut script = workflow_replies(description, &["Remote Tasks"]);
    script.push(Reply::tools(&[("remote-tasks__huge", json!({})), ("remote-tasks__weather", json!({}))]));
    script.push(Reply::text("One was too long and one was malformed."));
    let (model, app) = app_for(&backend, script, remote_entry(), &["127.0.0.1/32"]).await;
    let alice = app.token_for("alice");
    let agent =
        create_agent(&app, &alice, description, &[("remote-tasks", json!({"SERVER_URL": url, "REMOTE_TOKEN": "t"}))])
            .await;
    let response = run(&app, &alice, &agent, "read").await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["message"]["content"], "One was too long and one was malformed.");
    assert_eq!(reply["tool_calls"][1]["is_error"], true, "{}", reply["tool_calls"][1]);
    let received = model.received();
    let asked = &received.last().unwrap().body["messages"];
    let results: Vec<&str> = asked
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].len() < 20_000 && results[0].contains("[truncated"), "{} bytes", results[0].len());
    assert!(results[1].contains("does not match its output schema"), "{}", results[1]);
}

/// In plain chat the model gets the tools of the servers the user has connected (all their
/// credentials stored) besides the task tools; one that cannot start is left out and named.
async fn chat_offers_the_tools_of_the_users_connected_servers(backend: Backend) {
    let Some(command) = everything_server() else { return };
    let script =
        vec![Reply::tools(&[("everything-test__echo", json!({"message": "from chat"}))]), Reply::text("Echoed.")];
    let entries = json!([
        {"name": "Everything Test", "description": "The MCP reference server",
         "launch": {"transport": "stdio", "command": command.display().to_string(), "args": ["stdio"],
                    "env": {"EVERYTHING_TOKEN": "${EVERYTHING_TOKEN}"}},
         "credentials": [{"key": "EVERYTHING_TOKEN", "description": "A token", "secret": true}]},
        {"name": "Broken Server", "description": "A server whose command does not exist",
         "launch": {"transport": "stdio", "command": "/nonexistent/mcp-server", "args": [],
                    "env": {"BROKEN_TOKEN": "${BROKEN_TOKEN}"}},
         "credentials": [{"key": "BROKEN_TOKEN", "description": "A token", "secret": true}]},
        {"name": "Unconnected Server", "description": "No credentials stored for it",
         "launch": {"transport": "stdio", "command": "/nonexistent/other", "args": [], "env": {"T": "${T}"}},
         "credentials": [{"key": "T", "description": "A token", "secret": true}]}
    ]);
    let (model, app) = app_for(&backend, script, entries, &[]).await;
    let token = app.token_for("alice");
    for (server, values) in
        [("everything-test", json!({"EVERYTHING_TOKEN": "t1"})), ("broken-server", json!({"BROKEN_TOKEN": "t2"}))]
    {
        let response = put_credentials(&app, &token, server, values).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    }
    let reply = app.chat(&token, "echo from chat", None).await;
    assert_eq!(reply["message"]["content"], "Echoed.", "{reply}");
    assert!(reply["tool_calls"][0]["result"].to_string().contains("from chat"), "{reply}");
    assert_eq!(reply["context"]["connected_servers"], json!(["everything-test"]));
    assert_eq!(reply["context"]["servers_unavailable"], json!(["broken-server"]));
    let asked = &model.received()[0].body;
    let tools: Vec<&str> =
        asked["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(tools.contains(&"add_task") && tools.contains(&"everything-test__echo"), "{tools:?}");
    assert!(!tools.iter().any(|t| t.starts_with("unconnected")), "only connected servers: {tools:?}");
    assert!(asked["messages"][0]["content"].as_str().unwrap().contains("broken-server"), "the model is told");
    // Another user has connected nothing: the task tools only.
    let bob = app.token_for("bob");
    let _ = app.post_json("/api/v1/chat", &bob, &json!({"message": "hi"})).await;
    let tools = model.received().last().unwrap().body["tools"].as_array().unwrap().len();
    assert_eq!(tools, 6, "five task tools and the workflow tool");
}

crate::on_both_backends!(
    chat_offers_the_tools_of_the_users_connected_servers,
    the_callers_token_never_reaches_an_upstream_server,
    oversized_and_malformed_tool_results_never_reach_the_model_as_they_are,
    oversized_answers_from_a_remote_server_are_cut_off,
    a_remote_server_that_redirects_is_not_followed,
    an_agent_runs_a_real_stdio_server_with_the_owners_credential_injected,
    runs_answer_missing_credentials_and_dead_servers_clearly_and_keep_the_input,
    internal_and_malformed_addresses_are_refused_before_any_connection,
    plain_http_is_refused_unless_allowed,
    an_agent_reaches_an_allowed_remote_server_with_the_vault_credential_not_the_callers_token,
);
