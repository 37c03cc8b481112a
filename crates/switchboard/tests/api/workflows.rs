//! From a described workflow to an agent: the offline planner on the built-in catalog and a
//! scripted model choosing servers, credentials asked for and given, the agent created, its
//! configuration exported in each client's format and parsed back.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::LlmProvider;

use crate::chat_stream::stream_body;
use crate::helpers::{error_code, spawn_app, Backend, TestApp};
use crate::model_server::{app_with_model, ModelServer, Reply};

const WORKFLOW: &str = "monitor gmail for invoices and save them to notion";
const NOTION_CANARY: &str = "CANARY-notion-3f1c9a7e-token";
const GOOGLE_ID: &str = "CANARY-google-client-id-88b2";
const GOOGLE_SECRET: &str = "CANARY-google-secret-5d0e41";

async fn chat_with(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post_json("/api/v1/chat", token, &body).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

fn required(reply: &Value) -> BTreeSet<(String, String)> {
    reply["required_credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["mcp_server"].as_str().unwrap().to_owned(), r["credential_key"].as_str().unwrap().to_owned()))
        .collect()
}

fn pair(server: &str, key: &str) -> (String, String) {
    (server.to_owned(), key.to_owned())
}

/// Exports the agent in every format and checks each against what its client reads.
async fn check_exports(app: &TestApp, token: &str, agent: &str) {
    let config = |format: &'static str, secrets: bool| {
        let path = format!("/api/v1/agents/{agent}/config?format={format}&include_secrets={secrets}");
        async move {
            let response = app.get(&path, token).await;
            assert_eq!(response.status(), StatusCode::OK, "{format}");
            response.text().await.unwrap()
        }
    };
    let claude: Value = serde_json::from_str(&config("claude", false).await).unwrap();
    let notion = &claude["mcpServers"]["notion"];
    assert_eq!(notion["command"], "npx");
    assert_eq!(notion["env"]["NOTION_TOKEN"], "${NOTION_TOKEN}");
    assert_eq!(claude["mcpServers"]["gmail"]["env"]["GOOGLE_OAUTH_CLIENT_SECRET"], "${GOOGLE_OAUTH_CLIENT_SECRET}");

    let code: Value = serde_json::from_str(&config("mcp-json", false).await).unwrap();
    assert_eq!(code["mcpServers"]["gmail"]["command"], "uvx");
    assert!(code["mcpServers"]["gmail"]["args"].as_array().unwrap().iter().any(|a| a == "workspace-mcp"));

    let vscode: Value = serde_json::from_str(&config("vscode", false).await).unwrap();
    assert_eq!(vscode["servers"]["notion"]["type"], "stdio");
    assert_eq!(vscode["servers"]["notion"]["env"]["NOTION_TOKEN"], "${input:NOTION_TOKEN}");
    let inputs: BTreeSet<&str> =
        vscode["inputs"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(inputs, BTreeSet::from(["GOOGLE_OAUTH_CLIENT_ID", "GOOGLE_OAUTH_CLIENT_SECRET", "NOTION_TOKEN"]));
    assert!(vscode["inputs"].as_array().unwrap().iter().all(|i| i["type"] == "promptString"));

    let yaml_text = config("fast-agent", false).await;
    let yaml: Value = serde_norway::from_str(&yaml_text).unwrap();
    assert_eq!(yaml["mcp"]["servers"]["notion"]["transport"], "stdio");
    assert_eq!(yaml["mcp"]["servers"]["notion"]["env"]["NOTION_TOKEN"], "${NOTION_TOKEN}");

    for format in ["claude", "mcp-json", "vscode", "fast-agent"] {
        let text = config(format, false).await;
        for canary in [NOTION_CANARY, GOOGLE_ID, GOOGLE_SECRET] {
            assert!(!text.contains(canary), "{format} export leaked a secret without being asked");
        }
    }
    // The owner may ask for the values explicitly.
    let with: Value = serde_json::from_str(&config("mcp-json", true).await).unwrap();
    assert_eq!(with["mcpServers"]["notion"]["env"]["NOTION_TOKEN"], NOTION_CANARY);
    assert_eq!(with["mcpServers"]["gmail"]["env"]["GOOGLE_OAUTH_CLIENT_ID"], GOOGLE_ID);

    let (status, code) = error_code(app.get(&format!("/api/v1/agents/{agent}/config?format=word"), token).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "unknown_format"));
}

async fn without_a_model_a_described_workflow_becomes_an_agent_once_its_credentials_are_given(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");

    let first = chat_with(&app, &token, json!({ "message": WORKFLOW })).await;
    assert_eq!(first["status"], "pending_credentials", "{first}");
    assert_eq!(first["agent_created"], false);
    assert_eq!(first["agent_id"], Value::Null);
    assert_eq!(
        required(&first),
        BTreeSet::from([
            pair("Gmail", "GOOGLE_OAUTH_CLIENT_ID"),
            pair("Gmail", "GOOGLE_OAUTH_CLIENT_SECRET"),
            pair("Notion", "NOTION_TOKEN")
        ])
    );
    for item in first["required_credentials"].as_array().unwrap() {
        assert!(!item["description"].as_str().unwrap().is_empty());
        assert!(!item["instructions"].as_array().unwrap().is_empty(), "{item}");
    }
    let conversation = first["conversation_id"].as_str().unwrap();

    // Part of them: the same workflow continues, asking only for the rest.
    let second = chat_with(
        &app,
        &token,
        json!({"message": "here is the notion token", "conversation_id": conversation,
               "credentials": {"notion": {"NOTION_TOKEN": NOTION_CANARY}}}),
    )
    .await;
    assert_eq!(second["status"], "pending_credentials");
    assert_eq!(
        required(&second),
        BTreeSet::from([pair("Gmail", "GOOGLE_OAUTH_CLIENT_ID"), pair("Gmail", "GOOGLE_OAUTH_CLIENT_SECRET")])
    );

    let third = chat_with(
        &app,
        &token,
        json!({"message": "and the google ones", "conversation_id": conversation,
               "credentials": {"Gmail": {"GOOGLE_OAUTH_CLIENT_ID": GOOGLE_ID, "GOOGLE_OAUTH_CLIENT_SECRET": GOOGLE_SECRET}}}),
    )
    .await;
    assert_eq!(third["status"], "success", "{third}");
    assert_eq!(third["agent_created"], true);
    assert_eq!(third["required_credentials"], json!([]));
    let agent_id = third["agent_id"].as_str().unwrap().to_owned();

    let agents: Value = app.get("/api/v1/agents", &token).await.json().await.unwrap();
    assert_eq!(agents["items"].as_array().unwrap().len(), 1);
    let agent: Value = app.get(&format!("/api/v1/agents/{agent_id}"), &token).await.json().await.unwrap();
    assert_eq!(agent["servers"], json!(["Gmail", "Notion"]));
    assert_eq!(agent["description"], WORKFLOW);
    assert_eq!(agent["conversation_id"], conversation);
    assert!(!agent["steps"].as_array().unwrap().is_empty() && !agent["system_prompt"].as_str().unwrap().is_empty());

    // A later message in the same conversation is ordinary chat again.
    let after = app.chat(&token, "list my tasks", Some(conversation)).await;
    assert_eq!(after["status"], "success");
    assert_eq!(after["agent_created"], false);

    let credentials = app.get("/api/v1/credentials", &token).await.text().await.unwrap();
    for canary in [NOTION_CANARY, GOOGLE_ID, GOOGLE_SECRET] {
        assert!(!credentials.contains(canary));
    }
    let credentials: Value = serde_json::from_str(&credentials).unwrap();
    assert!(credentials["items"].as_array().unwrap().iter().all(|s| s["complete"] == true), "{credentials}");

    check_exports(&app, &token, &agent_id).await;

    assert_eq!(app.delete(&format!("/api/v1/agents/{agent_id}"), &token).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/api/v1/agents/{agent_id}"), &token).await.status(), StatusCode::NOT_FOUND);
}

async fn the_original_chat_route_answers_the_workflow_fields(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let first: Value = app
        .post_json("/api/chat", &token, &json!({"message": "post to slack when a github issue is opened"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["status"], "pending_credentials", "{first}");
    let servers: BTreeSet<&str> =
        first["required_credentials"].as_array().unwrap().iter().map(|r| r["mcp_server"].as_str().unwrap()).collect();
    assert_eq!(servers, BTreeSet::from(["GitHub", "Slack"]));
    let session = first["session_id"].as_str().unwrap();
    let second: Value = app
        .post_json(
            "/api/chat",
            &token,
            &json!({"message": "here they are", "session_id": session, "credentials": {
                "slack": {"SLACK_BOT_TOKEN": "CANARY-xoxb-1", "SLACK_TEAM_ID": "T0123"},
                "github": {"GITHUB_PERSONAL_ACCESS_TOKEN": "CANARY-ghp-2"}}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["status"], "success", "{second}");
    assert_eq!(second["agent_created"], true);
    assert!(second["agent_id"].as_str().is_some());
    assert!(second["reply"].as_str().unwrap().contains("Created the agent"));
}

async fn bad_credentials_in_a_chat_request_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    for (credentials, status, code) in [
        (json!({"no-such-server": {"KEY": "v"}}), StatusCode::NOT_FOUND, "not_found"),
        (json!({"notion": {"NOT_A_NOTION_KEY": "v"}}), StatusCode::BAD_REQUEST, "unknown_credential"),
        (json!({"notion": {"NOTION_TOKEN": "   "}}), StatusCode::BAD_REQUEST, "invalid_credential"),
        (json!({"notion": {"NOTION_TOKEN": "line\nbreak"}}), StatusCode::BAD_REQUEST, "invalid_credential"),
        (json!({"notion": {}}), StatusCode::BAD_REQUEST, "no_values"),
        (json!({"notion": {"NOTION_TOKEN": 5}}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ] {
        let response =
            app.post_json("/api/v1/chat", &token, &json!({"message": WORKFLOW, "credentials": credentials})).await;
        let (got, got_code) = error_code(response).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{credentials}");
    }
    assert_eq!(app.count_rows("messages").await, 0, "a refused request stores nothing");
    assert_eq!(app.count_rows("credentials").await, 0);
}

/// The design the scripted model returns.
fn design() -> String {
    json!({"status": "ready", "name": "Invoice filer", "servers": ["Gmail", "Notion"],
           "steps": ["Search Gmail for new invoices", "Create a Notion page for each"],
           "system_prompt": "File every invoice email as a Notion page."})
    .to_string()
}

async fn a_scripted_model_chooses_the_servers_and_the_workflow_resumes_when_credentials_are_stored(backend: Backend) {
    let model = ModelServer::start(vec![
        Reply::tools(&[("create_workflow_agent", json!({"description": WORKFLOW}))]),
        Reply::text(&design()),
        Reply::text("I need your Gmail and Notion credentials first."),
        Reply::text("unused"),
    ])
    .await;
    let app = app_with_model(&backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |_| {}).await;
    let token = app.token_for("alice");
    let first = app.chat(&token, "Please watch my Gmail for invoices and put them in Notion", None).await;
    assert_eq!(first["status"], "pending_credentials", "{first}");
    assert_eq!(first["message"]["content"], "I need your Gmail and Notion credentials first.");
    assert_eq!(required(&first).len(), 3);
    assert!(first["usage"]["total_tokens"].as_u64().unwrap() >= 3 * 18, "the design call is counted");

    let received = model.received();
    assert_eq!(received.len(), 3);
    let tools: Vec<&str> =
        received[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(tools.contains(&"create_workflow_agent") && tools.contains(&"add_task"), "{tools:?}");
    let design_prompt = received[1].body["messages"][0]["content"].as_str().unwrap();
    assert!(design_prompt.contains("JSON Schema") && design_prompt.contains("\"Gmail\""), "candidates are offered");
    assert!(received[1].body.get("tools").is_none_or(|t| t.as_array().is_none_or(|a| a.is_empty())));

    // Credentials stored through the REST route; the next message finishes the workflow with no model call.
    for (server, values) in [
        ("gmail", json!({"GOOGLE_OAUTH_CLIENT_ID": GOOGLE_ID, "GOOGLE_OAUTH_CLIENT_SECRET": GOOGLE_SECRET})),
        ("notion", json!({"NOTION_TOKEN": NOTION_CANARY})),
    ] {
        let response = app
            .client
            .put(app.url(&format!("/api/v1/credentials/{server}")))
            .bearer_auth(&token)
            .json(&json!({ "values": values }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.text().await.unwrap();
        assert!(!body.contains("CANARY"), "{body}");
    }
    let conversation = first["conversation_id"].as_str().unwrap();
    let done = app.chat(&token, "done, I stored them", Some(conversation)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(model.received().len(), 3, "resuming needs no model call");
    let agent: Value =
        app.get(&format!("/api/v1/agents/{}", done["agent_id"].as_str().unwrap()), &token).await.json().await.unwrap();
    assert_eq!(agent["name"], "Invoice filer");
    assert_eq!(agent["system_prompt"], "File every invoice email as a Notion page.");
    check_exports(&app, &token, agent["id"].as_str().unwrap()).await;
}

async fn an_invalid_design_is_retried_once_with_the_problem_named(backend: Backend) {
    let model = ModelServer::start(vec![
        Reply::tools(&[("create_workflow_agent", json!({"description": WORKFLOW}))]),
        Reply::text("Sure! I would use Gmail and Notion."),
        Reply::text(&format!("```json\n{}\n```", design())),
        Reply::text("Almost there."),
    ])
    .await;
    let app = app_with_model(&backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |_| {}).await;
    let reply = app.chat(&app.token_for("alice"), WORKFLOW, None).await;
    assert_eq!(reply["status"], "pending_credentials", "{reply}");
    let received = model.received();
    assert_eq!(received.len(), 4);
    let retry = received[2].body["messages"].as_array().unwrap();
    assert!(retry.last().unwrap()["content"].as_str().unwrap().contains("That answer is invalid"));
}

async fn a_design_invalid_twice_fails_the_tool_and_the_model_answers(backend: Backend) {
    let model = ModelServer::start(vec![
        Reply::tools(&[("create_workflow_agent", json!({"description": WORKFLOW}))]),
        Reply::text(r#"{"status":"ready","name":"x","servers":["Made Up"],"steps":["a"]}"#),
        Reply::text("still not json"),
        Reply::text("I could not set that up."),
    ])
    .await;
    let app = app_with_model(&backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |_| {}).await;
    let reply = app.chat(&app.token_for("alice"), WORKFLOW, None).await;
    assert_eq!(reply["status"], "success");
    assert_eq!(reply["agent_created"], false);
    assert_eq!(reply["tool_calls"][0]["is_error"], true);
    assert_eq!(app.count_rows("agents").await, 0);
}

async fn questions_and_no_match_designs_set_the_status(backend: Backend) {
    let model = ModelServer::start(vec![
        Reply::tools(&[("create_workflow_agent", json!({"description": "keep notion and my calendar in sync"}))]),
        Reply::text(r#"{"status":"clarify","question":"Which two services should stay in sync?"}"#),
        Reply::text("Which two services should stay in sync?"),
        Reply::tools(&[("create_workflow_agent", json!({"description": "water my plants when github says so"}))]),
        Reply::text(r#"{"status":"no_match","reason":"no server controls garden hardware"}"#),
        Reply::text("Nothing in the catalog can water plants."),
    ])
    .await;
    let app = app_with_model(&backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |_| {}).await;
    let token = app.token_for("alice");
    let clarify = app.chat(&token, "keep notion and my calendar in sync", None).await;
    assert_eq!(clarify["status"], "analyzing");
    assert_eq!(clarify["message"]["content"], "Which two services should stay in sync?");
    let none = app.chat(&token, "water my plants when github says so", None).await;
    assert_eq!(none["status"], "no_match");
    assert_eq!(app.count_rows("agents").await, 0);
    assert_eq!(model.received().len(), 6, "each design was asked of the model");
}

async fn a_streamed_workflow_reports_its_status_in_message_end(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let events = stream_body(&app, &token, &json!({ "message": WORKFLOW })).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_start", "delta", "message_end"]);
    let end = &events[2].1;
    assert_eq!(end["status"], "pending_credentials");
    assert_eq!(required(end).len(), 3);
    let conversation = end["conversation_id"].as_str().unwrap();
    let events = stream_body(
        &app,
        &token,
        &json!({"message": "here", "conversation_id": conversation, "credentials": {
            "notion": {"NOTION_TOKEN": NOTION_CANARY},
            "gmail": {"GOOGLE_OAUTH_CLIENT_ID": GOOGLE_ID, "GOOGLE_OAUTH_CLIENT_SECRET": GOOGLE_SECRET}}}),
    )
    .await;
    let end = &events.last().unwrap().1;
    assert_eq!(end["status"], "success", "{end}");
    assert_eq!(end["agent_created"], true);
    assert!(!events.iter().any(|(_, data)| data.to_string().contains("CANARY")));
}

crate::on_both_backends!(
    a_streamed_workflow_reports_its_status_in_message_end,
    without_a_model_a_described_workflow_becomes_an_agent_once_its_credentials_are_given,
    the_original_chat_route_answers_the_workflow_fields,
    bad_credentials_in_a_chat_request_are_refused_and_nothing_is_stored,
    a_scripted_model_chooses_the_servers_and_the_workflow_resumes_when_credentials_are_stored,
    an_invalid_design_is_retried_once_with_the_problem_named,
    a_design_invalid_twice_fails_the_tool_and_the_model_answers,
    questions_and_no_match_designs_set_the_status,
);
