//! Accounts connected with OAuth, end to end against the local provider (`oauth_provider.rs`)
//! and a second Switchboard whose `/mcp` accepts the provider's tokens: consent granted, declined,
//! a forged state, a reused code, a token refreshed before use, a refused refresh asking for
//! consent again, disconnecting (with revocation), a remote server's own MCP authorization
//! (discovery and dynamic registration), workflows offering a Connect link, and the original
//! specification's `/auth/*` routes. Tokens never appear in a response.

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::{DatabaseUrl, LlmProvider};
use switchboard_agent::connections::ProviderClient;

use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::model_server::{app_with_model, ModelServer, Reply};
use crate::oauth_provider::{OAuthProvider, CLIENT_ID, CLIENT_SECRET};

/// A Switchboard whose `/mcp` accepts the provider's tokens for `audiences`, on a port chosen
/// beforehand so its own address can be one of them.
async fn tasks_server(provider: &OAuthProvider, audience_is_its_mcp: bool) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut audiences = vec![CLIENT_ID.to_string()];
    if audience_is_its_mcp {
        audiences = vec![format!("http://127.0.0.1:{port}/mcp")];
    }
    let issuer = provider.issuer.clone();
    spawn_app_with(
        &Backend::Sqlite,
        move |s| {
            s.addr = format!("127.0.0.1:{port}").parse().unwrap();
            s.oidc = serde_json::from_value(json!([{"issuer": issuer, "audiences": audiences}])).unwrap();
        },
        Default::default(),
    )
    .await
}

/// A catalog entry for `server`'s `/mcp`, connected through the operator's `test` client, whose
/// access token fills the bearer header.
fn team_tasks(server: &TestApp, provider: &OAuthProvider) -> Value {
    json!([{
        "name": "Team Tasks",
        "description": "The team's task list: add, list and complete tasks.",
        "tools": [{"name": "add_task", "description": "Add a task"}],
        "launch": {"transport": "remote", "url": server.url("/mcp"), "headers": {"Authorization": "Bearer ${TASKS_TOKEN}"}},
        "credentials": [{"key": "TASKS_TOKEN", "description": "An access token for the tasks server", "secret": true}],
        "oauth": {"client": "test", "issuer": provider.issuer,
                  "scopes": [{"name": "tasks", "description": "Manage your tasks", "required": true},
                             {"name": "files.read", "description": "Read your files"}],
                  "access_token_key": "TASKS_TOKEN"}
    }])
}

/// Switchboard with the operator's client for the provider, internal addresses allowed out (the
/// provider and the tasks server listen on loopback), and a scripted model.
async fn app(
    backend: &Backend,
    script: Vec<Reply>,
    configure: impl FnOnce(&mut switchboard::Settings),
) -> (ModelServer, TestApp) {
    let model = ModelServer::start(script).await;
    let app = app_with_model(backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |s| {
        s.outbound_allow = vec!["127.0.0.0/8".parse().unwrap()];
        s.outbound_allow_http = true;
        s.oauth_clients = vec![ProviderClient {
            name: "test".into(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.to_string().into()),
            auth: None,
            issuer: None,
        }];
        configure(s);
    })
    .await;
    (model, app)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Sends the person to the provider; returns where it sends them back.
async fn consent(auth_url: &str) -> String {
    let response = no_redirects().get(auth_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap_or_default());
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The page the callback answers, and its status.
async fn land(back: &str) -> (StatusCode, String) {
    let response = no_redirects().get(back).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn start(app: &TestApp, token: &str, server: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.post(app.url(&format!("/api/v1/connections/{server}"))).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Connects `server` for the token's user, all the way through the provider.
async fn connect(app: &TestApp, token: &str, server: &str) {
    let response = start(app, token, server, None).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let started: Value = response.json().await.unwrap();
    let (status, page) = land(&consent(started["auth_url"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
}

async fn connections(app: &TestApp, token: &str) -> Value {
    app.get("/api/v1/connections", token).await.json().await.unwrap()
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// The model replies that create an agent using `servers` through the workflow tool, then call
/// `tool` once when the agent runs.
fn workflow_then_tool(description: &str, server: &str, tool: &str) -> Vec<Reply> {
    let design = json!({"status": "ready", "name": "Tasks agent", "servers": [server],
                        "steps": ["Add the task"], "system_prompt": "You add tasks."});
    vec![
        Reply::tools(&[("create_workflow_agent", json!({ "description": description }))]),
        Reply::text(&design.to_string()),
        Reply::text("Set up."),
        Reply::tools(&[(tool, json!({"title": "filed through the connection"}))]),
        Reply::text("Added it."),
    ]
}

/// The workflow the tests describe.
const TEAM_WORKFLOW: &str = "add tasks to the team's task list";

/// The provider, a tasks server accepting its tokens, and a Switchboard with the Team Tasks entry
/// whose model creates an agent for `description` and then calls its tool once.
struct Setup {
    provider: OAuthProvider,
    tasks: TestApp,
    _model: ModelServer,
    app: TestApp,
    alice: String,
}

async fn setup(backend: &Backend, description: &str) -> Setup {
    let provider = OAuthProvider::start().await;
    let tasks = tasks_server(&provider, false).await;
    let (model, app) =
        app(backend, workflow_then_tool(description, "Team Tasks", "team-tasks__add_task"), |_| {}).await;
    app.import_catalog(&team_tasks(&tasks, &provider)).await;
    let alice = app.token_for("alice");
    Setup { provider, tasks, _model: model, app, alice }
}

fn assert_no_token(provider: &OAuthProvider, text: &str) {
    for token in provider.record().issued {
        assert!(!text.contains(&token), "a token leaked into a response: {text}");
    }
}

/// The titles of the tasks the provider's user has on the tasks server.
async fn provider_users_tasks(tasks: &TestApp, provider: &OAuthProvider) -> Vec<String> {
    let access = provider.record().issued.last().cloned().unwrap_or_default();
    let token = if access.starts_with("ey") {
        access
    } else {
        provider.record().issued.iter().rev().find(|t| t.starts_with("ey")).unwrap().clone()
    };
    let listed: Value = tasks.get("/api/v1/tasks", &token).await.json().await.unwrap();
    listed["items"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_owned()).collect()
}

async fn an_account_is_connected_with_pkce_and_its_token_reaches_the_server_but_no_response(backend: Backend) {
    let Setup { provider, tasks, app, alice, .. } = setup(&backend, TEAM_WORKFLOW).await;

    let scopes: Value = app.get("/api/v1/connections/team-tasks/scopes", &alice).await.json().await.unwrap();
    assert_eq!(
        (scopes["kind"].as_str(), scopes["status"].as_str()),
        (Some("provider"), Some("not_connected")),
        "{scopes}"
    );
    assert_eq!(
        scopes["scopes"][0],
        json!({"name": "tasks", "description": "Manage your tasks", "required": true, "granted": false})
    );
    let refused = start(&app, &alice, "team-tasks", Some(json!({"scopes": ["admin"]}))).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "a scope the server does not offer");

    let started: Value = start(&app, &alice, "team-tasks", Some(json!({"scopes": []}))).await.json().await.unwrap();
    let auth_url = started["auth_url"].as_str().unwrap();
    let asked = query(auth_url);
    assert!(auth_url.starts_with(&format!("{}/authorize?", provider.issuer)), "{auth_url}");
    assert_eq!(asked["client_id"], CLIENT_ID);
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["code_challenge"].len(), 43);
    assert_eq!(asked["scope"], "tasks", "the required scope is always asked for");
    assert_eq!(asked["redirect_uri"], app.url("/api/v1/oauth/callback"));
    assert!(asked["state"].len() >= 43);

    let back = consent(auth_url).await;
    assert!(back.starts_with(&app.url("/api/v1/oauth/callback?")), "{back}");
    let (status, page) = land(&back).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Team Tasks is connected"), "{page}");
    let (status, page) = land(&back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a state is used once: {page}");
    assert!(page.contains("used already"), "{page}");

    let listed = connections(&app, &alice).await;
    let item = &listed["items"][0];
    assert_eq!((item["slug"].as_str(), item["status"].as_str()), (Some("team-tasks"), Some("connected")), "{listed}");
    assert_eq!((item["scopes"].clone(), item["refreshable"].clone()), (json!(["tasks"]), json!(true)));
    assert!(item["expires_at"].is_string());
    assert_no_token(&provider, &listed.to_string());
    assert_eq!(connections(&app, &app.token_for("bob")).await["items"], json!([]), "Bob has none");

    // The connected account stands for the key: the workflow needs nothing more.
    let created = app.chat(&alice, TEAM_WORKFLOW, None).await;
    assert_eq!(created["status"], "success", "{created}");
    let agent = created["agent_id"].as_str().unwrap();
    let response = app.post_json(&format!("/api/v1/agents/{agent}/run"), &alice, &json!({"input": "file it"})).await;
    let text = response.text().await.unwrap();
    assert_no_token(&provider, &text);
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["tool_calls"][0]["is_error"], false, "{reply}");
    assert_eq!(provider_users_tasks(&tasks, &provider).await, ["filed through the connection"]);

    if let Backend::Sqlite = backend {
        let db = std::fs::read(app.settings.data_dir.join("switchboard.db")).unwrap();
        let text = String::from_utf8_lossy(&db);
        for token in provider.record().issued {
            assert!(!text.contains(&token), "a token is stored in clear");
        }
    }
}

async fn declined_consent_a_forged_state_and_a_reused_code_connect_nothing(backend: Backend) {
    let provider = OAuthProvider::start().await;
    let tasks = tasks_server(&provider, false).await;
    let (_model, app) = app(&backend, vec![Reply::text("unused")], |_| {}).await;
    app.import_catalog(&team_tasks(&tasks, &provider)).await;
    let alice = app.token_for("alice");
    let auth_url = |r: Value| r["auth_url"].as_str().unwrap().to_owned();

    provider.set(|k| k.decline = true);
    let declined = auth_url(start(&app, &alice, "team-tasks", None).await.json().await.unwrap());
    let back = consent(&declined).await;
    assert_eq!(query(&back)["error"], "access_denied");
    let (status, page) = land(&back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Team Tasks was not connected") && page.contains("declined"), "{page}");
    let state = query(&back)["state"].clone();
    let (status, _) = land(&app.url(&format!("/api/v1/oauth/callback?code=made-up&state={state}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a declined state cannot be used afterwards");

    provider.set(|k| {
        k.decline = false;
        k.wrong_state = true;
    });
    let forged = auth_url(start(&app, &alice, "team-tasks", None).await.json().await.unwrap());
    let (status, page) = land(&consent(&forged).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("unknown"), "{page}");
    assert_eq!(connections(&app, &alice).await["items"], json!([]));

    // A code used once is refused by the provider when replayed under another state.
    provider.set(|k| k.wrong_state = false);
    let first = consent(&auth_url(start(&app, &alice, "team-tasks", None).await.json().await.unwrap())).await;
    assert_eq!(land(&first).await.0, StatusCode::OK);
    let second = consent(&auth_url(start(&app, &alice, "team-tasks", None).await.json().await.unwrap())).await;
    let replay =
        app.url(&format!("/api/v1/oauth/callback?code={}&state={}", query(&first)["code"], query(&second)["state"]));
    let (status, page) = land(&replay).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("refused"), "{page}");
    assert_eq!(connections(&app, &alice).await["items"].as_array().unwrap().len(), 1, "the first connection stays");

    for bad in ["/api/v1/oauth/callback?code=x", "/api/v1/oauth/callback?state=y"] {
        assert_eq!(land(&app.url(bad)).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    let code =
        |r: reqwest::Response| async move { (r.status(), r.json::<Value>().await.unwrap()["error"]["code"].clone()) };
    assert_eq!(code(start(&app, &alice, "no-such-server", None).await).await.0, StatusCode::NOT_FOUND);
    assert_eq!(code(start(&app, &alice, "time", None).await).await, (StatusCode::CONFLICT, json!("not_connectable")));
    assert_eq!(
        code(start(&app, &alice, "github", None).await).await,
        (StatusCode::CONFLICT, json!("oauth_not_configured")),
        "GitHub connects through an OAuth client this server has not configured"
    );
}

async fn an_expiring_token_is_refreshed_and_a_refused_refresh_asks_for_consent_again(backend: Backend) {
    let provider = OAuthProvider::start().await;
    provider.set(|k| k.access_ttl = Some(30)); // inside the minute before expiry that triggers a refresh
    let tasks = tasks_server(&provider, false).await;
    let description = "add tasks to the team's task list";
    let mut script = workflow_then_tool(description, "Team Tasks", "team-tasks__add_task");
    script.push(Reply::text("Your Team Tasks account needs to be connected again."));
    script.push(Reply::tools(&[("team-tasks__add_task", json!({"title": "after reconnecting"}))]));
    script.push(Reply::text("Added it again."));
    let (model, app) = app(&backend, script, |_| {}).await;
    app.import_catalog(&team_tasks(&tasks, &provider)).await;
    let alice = app.token_for("alice");
    connect(&app, &alice, "team-tasks").await;
    let agent = app.chat(&alice, description, None).await["agent_id"].as_str().unwrap().to_owned();
    let run = |input: &'static str| {
        let (app, alice, agent) = (&app, &alice, &agent);
        async move { app.post_json(&format!("/api/v1/agents/{agent}/run"), alice, &json!({ "input": input })).await }
    };

    let before = provider.record().refreshes;
    let response = run("file it").await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    assert_eq!(provider.record().refreshes, before + 1, "the expiring token was refreshed before the server got it");
    assert_eq!(provider_users_tasks(&tasks, &provider).await, ["filed through the connection"]);

    provider.set(|k| k.refuse_refresh = true);
    let response = run("file another").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "connection_needs_consent", "{error}");
    let again = error["error"]["auth_url"].as_str().expect("the link to connect again");
    assert_eq!(connections(&app, &alice).await["items"][0]["status"], "needs_consent");
    // Chat says so too, with the link: in the reply's context, and to the model.
    let chat = app.chat(&alice, "list the team's tasks", None).await;
    assert_eq!(chat["context"]["reconnect"][0]["server"], "team-tasks", "{chat}");
    assert!(chat["context"]["reconnect"][0]["auth_url"].as_str().unwrap().starts_with(&provider.issuer));
    let prompt = model.received().last().unwrap().body["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(prompt.contains("must be connected again") && prompt.contains("team-tasks ("), "{prompt}");

    provider.set(|k| {
        k.refuse_refresh = false;
        k.access_ttl = None;
    });
    assert_eq!(land(&consent(again).await).await.0, StatusCode::OK);
    assert_eq!(connections(&app, &alice).await["items"][0]["status"], "connected");
    let response = run("file it again").await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

async fn disconnecting_revokes_and_forgets_and_nobody_else_can(backend: Backend) {
    let provider = OAuthProvider::start().await;
    let tasks = tasks_server(&provider, false).await;
    let (_model, app) = app(&backend, vec![Reply::text("unused")], |_| {}).await;
    app.import_catalog(&team_tasks(&tasks, &provider)).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    connect(&app, &alice, "team-tasks").await;
    let refresh_token = provider.record().issued[1].clone();

    assert_eq!(app.delete("/api/v1/connections/team-tasks", &bob).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(connections(&app, &alice).await["items"].as_array().unwrap().len(), 1, "Alice's stays");
    assert_eq!(app.delete("/api/v1/connections/team-tasks", &alice).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(provider.record().revoked, [refresh_token], "the refresh token was revoked at the provider");
    assert_eq!(connections(&app, &alice).await["items"], json!([]));
    assert_eq!(app.delete("/api/v1/connections/team-tasks", &alice).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.count_rows("connections").await, 0);
}

/// A remote MCP server that declares nothing but answers 401: its authorization server is found
/// through its protected resource metadata, a client is registered dynamically, and the token
/// (for this resource) is sent as its bearer — never the caller's own token.
async fn a_remote_servers_own_authorization_is_discovered_and_used(backend: Backend) {
    let provider = OAuthProvider::start().await;
    let tasks = tasks_server(&provider, true).await;
    let description = "add tasks on the protected tasks server";
    let (_model, app) =
        app(&backend, workflow_then_tool(description, "Protected Tasks", "protected-tasks__add_task"), |_| {}).await;
    app.import_catalog(&json!([{"name": "Protected Tasks", "description": "A task list behind its own sign-in.",
                "tools": [{"name": "add_task", "description": "Add a task"}],
                "launch": {"transport": "remote", "url": tasks.url("/mcp")}}]))
        .await;
    let alice = app.token_for("alice");

    // The tasks server's side of the specification.
    let refused = tasks.client.post(tasks.url("/mcp")).json(&json!({})).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let metadata_url = tasks.url("/.well-known/oauth-protected-resource/mcp");
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")), "{challenge}");
    let metadata: Value = tasks.client.get(&metadata_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resource"], tasks.url("/mcp"));
    assert_eq!(metadata["authorization_servers"], json!([provider.issuer]));

    let created = app.chat(&alice, description, None).await;
    let agent = created["agent_id"].as_str().expect("no credentials are declared").to_owned();
    let response = app.post_json(&format!("/api/v1/agents/{agent}/run"), &alice, &json!({"input": "file it"})).await;
    assert_eq!(response.status(), StatusCode::CONFLICT, "the server wants authorization first");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "connection_required", "{error}");
    let auth_url = error["error"]["auth_url"].as_str().unwrap().to_owned();
    let asked = query(&auth_url);
    assert_eq!(asked["resource"], tasks.url("/mcp"));
    assert_eq!(provider.record().registered, [asked["client_id"].clone()], "a client was registered dynamically");

    assert_eq!(land(&consent(&auth_url).await).await.0, StatusCode::OK);
    let scopes: Value = app.get("/api/v1/connections/protected-tasks/scopes", &alice).await.json().await.unwrap();
    assert_eq!((scopes["kind"].as_str(), scopes["status"].as_str()), (Some("mcp"), Some("connected")));
    let response = app.post_json(&format!("/api/v1/agents/{agent}/run"), &alice, &json!({"input": "file it"})).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    assert_eq!(provider.record().resources, [tasks.url("/mcp")], "the code was exchanged for this resource");
    assert_eq!(provider_users_tasks(&tasks, &provider).await, ["filed through the connection"]);

    // Another user connecting reuses the registered client.
    let bob = app.token_for("bob");
    assert_eq!(start(&app, &bob, "protected-tasks", None).await.status(), StatusCode::OK);
    assert_eq!(provider.record().registered.len(), 1);
}

/// A workflow whose server is connected with OAuth offers a Connect link for it, and continues
/// once the account is connected.
async fn a_workflow_offers_a_connect_link_instead_of_a_key(backend: Backend) {
    let Setup { provider: _provider, tasks: _tasks, app, alice, .. } = setup(&backend, TEAM_WORKFLOW).await;
    let first = app.chat(&alice, TEAM_WORKFLOW, None).await;
    assert_eq!(first["status"], "pending_credentials", "{first}");
    let wanted = first["required_credentials"].as_array().unwrap();
    assert_eq!(wanted.len(), 1, "one Connect item, not a key to paste: {first}");
    assert_eq!(wanted[0]["credential_key"], "TASKS_TOKEN");
    let auth_url = wanted[0]["auth_url"].as_str().unwrap();
    assert_eq!(land(&consent(auth_url).await).await.0, StatusCode::OK);
    let done = app.chat(&alice, "connected", first["conversation_id"].as_str()).await;
    assert_eq!(done["status"], "success", "{done}");
    assert!(done["agent_id"].is_string());
    let credentials: Value = app.get("/api/v1/credentials", &alice).await.json().await.unwrap();
    assert_eq!(credentials["items"][0]["complete"], true, "{credentials}");

    // Keys pasted for another server are listed beside the connected account, each complete.
    let response = app
        .client
        .put(app.url("/api/v1/credentials/notion"))
        .bearer_auth(&alice)
        .json(&json!({"values": {"NOTION_TOKEN": "ntn_pasted"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let credentials: Value = app.get("/api/v1/credentials", &alice).await.json().await.unwrap();
    let listed: Vec<(&str, bool)> = credentials["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["slug"].as_str().unwrap(), s["complete"].as_bool().unwrap()))
        .collect();
    assert_eq!(listed, [("notion", true), ("team-tasks", true)], "{credentials}");
}

/// The original specification's `/auth/*` routes, mapped onto the connection of the server
/// `google_connection_server` names.
async fn the_original_auth_routes_connect_through_the_same_flow(backend: Backend) {
    let provider = OAuthProvider::start().await;
    let tasks = tasks_server(&provider, false).await;
    let (_model, app) =
        app(&backend, vec![Reply::text("unused")], |s| s.google_connection_server = "team-tasks".into()).await;
    app.import_catalog(&team_tasks(&tasks, &provider)).await;
    let token = app.token_for("alice");
    let status: Value = app.get("/auth/status", &token).await.json().await.unwrap();
    assert_eq!((status["authenticated"].clone(), status["status"].clone()), (json!(false), json!("not_connected")));

    let login: Value = app.post_json("/auth/login", &token, &json!({})).await.json().await.unwrap();
    assert_eq!(land(&consent(login["auth_url"].as_str().unwrap()).await).await.0, StatusCode::OK);
    let status: Value = app.get("/auth/status", &token).await.json().await.unwrap();
    assert_eq!(
        (status["authenticated"].clone(), status["scopes"].clone()),
        (json!(true), json!(["tasks"])),
        "{status}"
    );
    let scopes: Value = app.get("/auth/scopes", &token).await.json().await.unwrap();
    assert_eq!(scopes["scopes"][0]["granted"], true);
    let more: Value =
        app.post_json("/auth/scopes", &token, &json!({"scopes": ["files.read"]})).await.json().await.unwrap();
    assert_eq!(query(more["auth_url"].as_str().unwrap())["scope"], "files.read tasks");
    let (page_status, _) = land(&app.url("/auth/callback?code=x&state=unknown")).await;
    assert_eq!(page_status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/me", &token).await.status(), StatusCode::OK);

    let response = app.client.delete(app.url("/auth/logout")).bearer_auth(&token).send().await.unwrap();
    let out: Value = response.json().await.unwrap();
    assert_eq!(out, json!({"google_disconnected": true, "session_revoked": true}));
    assert_eq!(app.get("/me", &token).await.status(), StatusCode::UNAUTHORIZED, "the session ended");
}

/// A provider that is down: the code exchange fails with a page that says so (and the state is
/// spent), and a refresh that cannot reach it keeps the connection (503, try again) rather than
/// asking for consent again.
async fn a_provider_outage_is_not_a_refusal(backend: Backend) {
    let Setup { provider, tasks: _tasks, app, alice, .. } = setup(&backend, TEAM_WORKFLOW).await;
    provider.set(|k| k.fail_token_endpoint = true);
    let started: Value = start(&app, &alice, "team-tasks", None).await.json().await.unwrap();
    let (status, page) = land(&consent(started["auth_url"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("could not be reached"), "{page}");
    assert_eq!(connections(&app, &alice).await["items"], json!([]));

    provider.set(|k| {
        k.fail_token_endpoint = false;
        k.access_ttl = Some(30);
    });
    connect(&app, &alice, "team-tasks").await;
    let agent = app.chat(&alice, TEAM_WORKFLOW, None).await["agent_id"].as_str().unwrap().to_owned();
    provider.set(|k| k.fail_token_endpoint = true);
    let response = app.post_json(&format!("/api/v1/agents/{agent}/run"), &alice, &json!({"input": "file it"})).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "oauth_unavailable", "{error}");
    assert_eq!(connections(&app, &alice).await["items"][0]["status"], "connected", "still connected");
}

crate::on_both_backends!(
    a_provider_outage_is_not_a_refusal,
    an_account_is_connected_with_pkce_and_its_token_reaches_the_server_but_no_response,
    declined_consent_a_forged_state_and_a_reused_code_connect_nothing,
    an_expiring_token_is_refreshed_and_a_refused_refresh_asks_for_consent_again,
    disconnecting_revokes_and_forgets_and_nobody_else_can,
    a_remote_servers_own_authorization_is_discovered_and_used,
    a_workflow_offers_a_connect_link_instead_of_a_key,
    the_original_auth_routes_connect_through_the_same_flow,
);

/// Connections live in the database: one begun on one server finishes on another (the callback
/// lands anywhere), on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_started_on_one_server_finishes_on_another() {
    let Some(Backend::Postgres(server)) = Backend::postgres() else { return };
    let db = crate::helpers::fresh_postgres_database(&server).await;
    let provider = OAuthProvider::start().await;
    let tasks = tasks_server(&provider, false).await;
    // Servers sharing a database share the vault's key too.
    let shared = |db: String| {
        move |s: &mut switchboard::Settings| {
            s.database_url = Some(DatabaseUrl::new(db));
            s.master_key = Some("5a8c3e91f04d27b6c1e89f2a7d4b0c63e5f17a9d2b8c4e06".to_string().into());
        }
    };
    let (_m1, a) = app(&Backend::Sqlite, vec![Reply::text("unused")], shared(db.clone())).await;
    a.import_catalog(&team_tasks(&tasks, &provider)).await;
    let (_m2, b) = app(&Backend::Sqlite, vec![Reply::text("unused")], shared(db)).await;
    let alice = a.token_for("alice");
    let started: Value = start(&a, &alice, "team-tasks", None).await.json().await.unwrap();
    let back = consent(started["auth_url"].as_str().unwrap()).await;
    // The provider sends the person to `a`; the same query reaches `b` instead.
    let on_b = back.replace(&a.url(""), &b.url(""));
    assert_eq!(land(&on_b).await.0, StatusCode::OK);
    assert_eq!(connections(&a, &alice).await["items"][0]["status"], "connected");
    assert_eq!(land(&back).await.0, StatusCode::BAD_REQUEST, "and only once");
}

/// Tokens never appear in responses, the trace-level logs or the database files: the real
/// binary connects an account, lists it and disconnects it (revoking it) with every line logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_tokens_never_appear_in_responses_logs_or_database_files() {
    use crate::process::{serve, sigterm, wait_with_deadline, BIN};
    use crate::vault::{contains, files_text, forms, Client};

    let provider = OAuthProvider::start().await;
    let tasks = tasks_server(&provider, false).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, team_tasks(&tasks, &provider).to_string()).unwrap();
    let imported = std::process::Command::new(BIN)
        .args(["catalog", "import", "--data-dir"])
        .arg(&data)
        .arg(&catalog)
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let clients = format!(r#"[{{name="test", client_id="{CLIENT_ID}", client_secret="{CLIENT_SECRET}"}}]"#);
    let env = [
        ("SWITCHBOARD_OAUTH_CLIENTS", clients.as_str()),
        ("SWITCHBOARD_OUTBOUND_ALLOW", "127.0.0.0/8"),
        ("SWITCHBOARD_OUTBOUND_ALLOW_HTTP", "true"),
    ];
    let mut served = serve(&data, &["--log-level", "trace", "--rate-limit-per-minute", "0"], &env);
    let mut client = Client::new(&served);

    let (status, started) = client.send(reqwest::Method::POST, "/api/v1/connections/team-tasks", None).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let started: Value = serde_json::from_str(&started).unwrap();
    let (status, page) = land(&consent(started["auth_url"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    client.seen.push_str(&page);
    // The connection is listed, then removed (which revokes its refresh token at the provider).
    let (status, _) = client.send(reqwest::Method::GET, "/api/v1/connections", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client.send(reqwest::Method::GET, "/api/v1/credentials", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client.send(reqwest::Method::DELETE, "/api/v1/connections/team-tasks", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    sigterm(&served.child);
    wait_with_deadline(&mut served.child, std::time::Duration::from_secs(10));
    let logs = served.stderr.join().unwrap();
    assert!(logs.contains("account connected"), "the trace logs saw the connection");
    let files = files_text(&data);
    let issued = provider.record().issued;
    assert!(issued.len() >= 2 && !provider.record().revoked.is_empty());
    for token in &issued {
        for form in forms(token) {
            assert!(!client.seen.contains(&form), "a response holds a token");
            assert!(!logs.contains(&form), "the logs hold a token");
            for (name, bytes) in &files {
                assert!(!contains(bytes, &form), "{name} holds a token in clear");
            }
        }
    }
}
