//! The MCP server catalog over HTTP and the command line: the built-in entries, search, the
//! importers (all or nothing, idempotent) and semantic search with the local embedding model.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::app::Parts;

use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend, TestApp};

async fn import(app: &TestApp, file: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/admin/catalog/import?file={file}")))
        .bearer_auth(&app.local_token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn search(app: &TestApp, query: &str) -> Value {
    let token = app.token_for("searcher");
    let response = app
        .client
        .get(app.url("/api/v1/servers/search"))
        .query(&[("q", query), ("limit", "5")])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn names(results: &Value) -> Vec<String> {
    results["results"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

async fn total(app: &TestApp) -> i64 {
    let list: Value = app.get("/api/v1/servers?limit=1", &app.token_for("reader")).await.json().await.unwrap();
    list["total"].as_i64().unwrap()
}

async fn the_built_in_catalog_is_listed_and_searchable(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let list: Value = app.get("/api/v1/servers?limit=200", &token).await.json().await.unwrap();
    assert!(list["total"].as_i64().unwrap() >= 40, "{}", list["total"]);
    let github: Value = app.get("/api/v1/servers/github", &token).await.json().await.unwrap();
    assert_eq!(github["name"], "GitHub");
    let credential = &github["credentials"][0];
    assert_eq!(credential["key"], "GITHUB_PERSONAL_ACCESS_TOKEN");
    assert_eq!(credential["secret"], true);
    assert!(credential["instructions"].as_array().unwrap().len() >= 2);
    assert_eq!(github["launch"]["transport"], "stdio");

    let found = search(&app, "open an issue in my github repository").await;
    assert_eq!(found["mode"], "bm25", "no embedding model is configured");
    assert_eq!(names(&found)[0], "GitHub");
    let first = &found["results"][0];
    assert!(first["matched"].as_array().unwrap().contains(&json!("bm25")));
    assert!(first["score"].as_f64().unwrap() > 0.0 && first["score"].as_f64().unwrap() <= 1.0);
    assert_eq!(names(&search(&app, "post a message to a slack channel").await)[0], "Slack");
}

async fn catalog_routes_refuse_bad_input(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    for (query, code) in [
        ("", "missing_query"),
        ("?q=%20%20", "missing_query"),
        ("?q=github&limit=0", "invalid_limit"),
        ("?q=github&limit=51", "invalid_limit"),
        ("?q=github&threshold=1.5", "invalid_threshold"),
        ("?q=github&limit=ten", "invalid_query"),
    ] {
        let response = app.get(&format!("/api/v1/servers/search{query}"), &token).await;
        assert_eq!(error_code(response).await, (StatusCode::BAD_REQUEST, code.to_string()), "{query}");
    }
    let long = "a".repeat(2001);
    assert_eq!(
        error_code(app.get(&format!("/api/v1/servers/search?q={long}"), &token).await).await.1,
        "query_too_long"
    );
    assert_eq!(error_code(app.get("/api/v1/servers/no-such-server", &token).await).await.0, StatusCode::NOT_FOUND);
    let anonymous = app.client.get(app.url("/api/v1/servers")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Only administrators change the catalog.
    let as_user = app
        .client
        .post(app.url("/api/v1/admin/catalog/import"))
        .bearer_auth(&token)
        .json(&json!([{"name": "X"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(as_user.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.delete("/api/v1/admin/catalog/github", &token).await.status(), StatusCode::FORBIDDEN);
    let all = search(&app, "search the web for news").await;
    let scores: Vec<f64> = all["results"].as_array().unwrap().iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.len() >= 2 && scores.windows(2).all(|w| w[0] >= w[1]), "ranked best first: {scores:?}");
    let threshold = scores[1] + 0.0001;
    let filtered: Value = app
        .get(&format!("/api/v1/servers/search?q=search%20the%20web%20for%20news&threshold={threshold}"), &token)
        .await
        .json()
        .await
        .unwrap();
    let kept = filtered["results"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.len() < scores.len(), "threshold drops lower scores: {filtered}");
    assert!(kept.iter().all(|r| r["score"].as_f64().unwrap() >= threshold));
}

fn zebra_servers() -> Value {
    json!({"servers": [{
        "name": "Zebra Migration Tracker",
        "description": "Tracks zebra herds across the savanna with GPS collars.",
        "tools": [{"name": "get_herd_position", "description": "Current position of a zebra herd"}]
    }]})
}

async fn an_import_is_visible_to_the_next_search_and_importing_twice_changes_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let before = total(&app).await;
    let response = import(&app, "servers.json", &zebra_servers()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!((report["created"].as_i64(), report["updated"].as_i64()), (Some(1), Some(0)));
    assert_eq!(names(&search(&app, "where are the zebra herds now").await)[0], "Zebra Migration Tracker");

    let again: Value = import(&app, "servers.json", &zebra_servers()).await.json().await.unwrap();
    assert_eq!(
        (again["created"].as_i64(), again["updated"].as_i64(), again["unchanged"].as_i64()),
        (Some(0), Some(0), Some(1))
    );
    assert_eq!(total(&app).await, before + 1, "no duplicate");

    // The launch command and credential instructions arrive in their own files and join the entry.
    let config = json!({"mcpServers": {"Zebra Migration Tracker": {
        "command": "npx", "args": ["-y", "zebra-mcp"], "env": {"ZEBRA_API_KEY": "your-key-here", "ZEBRA_REGION": "kenya"}
    }}});
    assert_eq!(import(&app, "config.json", &config).await.status(), StatusCode::OK);
    let credinfo = json!({"credential_instructions": {"Zebra Migration Tracker": {
        "required_tokens": ["ZEBRA_API_KEY"],
        "steps": ["Sign in at https://zebra.example/keys", "Create a key"]
    }}});
    let report: Value = import(&app, "credinfo.json", &credinfo).await.json().await.unwrap();
    assert_eq!(report["updated"], 1);
    let entry: Value =
        app.get("/api/v1/servers/zebra-migration-tracker", &app.token_for("a")).await.json().await.unwrap();
    assert_eq!(
        entry["launch"],
        json!({"transport": "stdio", "command": "npx", "args": ["-y", "zebra-mcp"],
        "env": {"ZEBRA_API_KEY": "${ZEBRA_API_KEY}", "ZEBRA_REGION": "${ZEBRA_REGION}"}})
    );
    let key = entry["credentials"].as_array().unwrap().iter().find(|c| c["key"] == "ZEBRA_API_KEY").unwrap();
    assert_eq!((key["secret"].as_bool(), key["required"].as_bool()), (Some(true), Some(true)));
    assert_eq!(key["instructions"][0], "Sign in at https://zebra.example/keys");
    assert_eq!(key["link"], "https://zebra.example/keys");
    let region = entry["credentials"].as_array().unwrap().iter().find(|c| c["key"] == "ZEBRA_REGION").unwrap();
    assert_eq!((region["default"].as_str(), region["required"].as_bool()), (Some("kenya"), Some(false)));

    // Export, then import the export: a plain list that changes nothing.
    let export = app.get("/api/v1/admin/catalog/export", &app.local_token).await;
    let exported: Value = export.json().await.unwrap();
    let report: Value = import(&app, "export.json", &exported).await.json().await.unwrap();
    assert_eq!((report["created"].as_i64(), report["updated"].as_i64()), (Some(0), Some(0)));
    assert_eq!(report["unchanged"].as_i64(), Some(before + 1));

    // Deleting removes it from lookups and search.
    assert_eq!(
        app.delete("/api/v1/admin/catalog/zebra-migration-tracker", &app.local_token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/servers/zebra-migration-tracker", &app.token_for("a")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!names(&search(&app, "zebra herds").await).contains(&"Zebra Migration Tracker".to_string()));
    assert_eq!(
        app.delete("/api/v1/admin/catalog/zebra-migration-tracker", &app.local_token).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn a_registry_server_json_becomes_a_launch_command_and_a_credential_form(backend: Backend) {
    let app = spawn_app(&backend).await;
    let server = json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": "io.github.example/weather",
        "title": "Weather Example",
        "description": "Forecasts and weather alerts for any city.",
        "version": "1.2.0",
        "packages": [{
            "registryType": "npm", "identifier": "@example/weather-mcp", "version": "1.2.0",
            "transport": {"type": "stdio"},
            "environmentVariables": [
                {"name": "WEATHER_API_KEY", "description": "API key", "isRequired": true, "isSecret": true},
                {"name": "WEATHER_UNITS", "description": "Units", "default": "metric", "choices": ["metric", "imperial"]}
            ]
        }],
        "remotes": [{"type": "streamable-http", "url": "https://weather.example/mcp",
            "headers": [{"name": "X-API-Key", "isRequired": true, "isSecret": true}]}]
    });
    let response = import(&app, "server.json", &server).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let entry: Value =
        app.get("/api/v1/servers/io-github-example-weather", &app.token_for("a")).await.json().await.unwrap();
    assert_eq!(entry["name"], "io.github.example/weather");
    assert_eq!(entry["title"], "Weather Example");
    assert_eq!(entry["launch"]["command"], "npx");
    assert_eq!(entry["launch"]["args"], json!(["-y", "@example/weather-mcp@1.2.0"]));
    assert_eq!(entry["launch"]["env"]["WEATHER_API_KEY"], "${WEATHER_API_KEY}");
    let creds = entry["credentials"].as_array().unwrap();
    assert_eq!((creds[0]["required"].as_bool(), creds[0]["secret"].as_bool()), (Some(true), Some(true)));
    assert_eq!((creds[1]["required"].as_bool(), creds[1]["secret"].as_bool()), (Some(false), Some(false)));
    assert_eq!(creds[1]["choices"], json!(["metric", "imperial"]));
    assert_eq!(creds[1]["default"], "metric");

    // A remote-only registry entry becomes a Streamable HTTP launch with its header as a credential.
    let remote = json!({"server": {"name": "io.example/remote-only", "description": "Remote only",
        "remotes": [{"type": "streamable-http", "url": "https://r.example/mcp",
            "headers": [{"name": "Authorization", "value": "Bearer {api_token}", "isSecret": true, "isRequired": true}]}]}});
    assert_eq!(import(&app, "remote.json", &remote).await.status(), StatusCode::OK);
    let entry: Value =
        app.get("/api/v1/servers/io-example-remote-only", &app.token_for("a")).await.json().await.unwrap();
    assert_eq!(
        entry["launch"],
        json!({"transport": "remote", "url": "https://r.example/mcp",
        "headers": {"Authorization": "Bearer ${api_token}"}})
    );
}

async fn malformed_files_are_refused_naming_file_entry_and_field_and_nothing_is_imported(backend: Backend) {
    let app = spawn_app(&backend).await;
    let before = total(&app).await;
    let cases = [
        ("list.json", json!([{"name": "Fine One"}, {"description": "no name"}]), vec!["list.json", "[1]", "name"]),
        (
            "servers.json",
            json!({"servers": [{"name": "Ok"}, {"name": "Bad", "tools": [{"description": "x"}]}]}),
            vec!["servers.json", "servers[1] (\"Bad\").tools[0].name", "missing"],
        ),
        (
            "config.json",
            json!({"mcpServers": {"Nowhere": {"command": "npx"}}}),
            vec!["config.json", "Nowhere", "no catalog entry"],
        ),
        ("config.json", json!({"mcpServers": {"GitHub": {"args": []}}}), vec!["config.json", "GitHub", "command"]),
        (
            "server.json",
            json!({"name": "io.x/y", "packages": [{"registryType": "apt", "identifier": "x"}]}),
            vec!["server.json", "packages[0].registryType", "apt"],
        ),
        ("dupes.json", json!([{"name": "Twice"}, {"name": "Twice"}]), vec!["dupes.json", "Twice", "unique"]),
        ("other.json", json!({"hello": "world"}), vec!["other.json", "not a catalog file"]),
    ];
    for (file, body, expected) in cases {
        let response = import(&app, file, &body).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{file}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_catalog");
        let message = error["error"]["message"].as_str().unwrap();
        for part in expected {
            assert!(message.contains(part), "{message:?} should name {part:?}");
        }
    }
    let not_json = app
        .client
        .post(app.url("/api/v1/admin/catalog/import?file=broken.json"))
        .bearer_auth(&app.local_token)
        .body("{ not json")
        .send()
        .await
        .unwrap();
    let error: Value = not_json.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("broken.json: (file): not valid JSON"), "{error}");
    assert_eq!(total(&app).await, before, "nothing was imported");
    assert_eq!(app.get("/api/v1/servers/fine-one", &app.token_for("a")).await.status(), StatusCode::NOT_FOUND);
}

crate::on_both_backends!(
    the_built_in_catalog_is_listed_and_searchable,
    catalog_routes_refuse_bad_input,
    an_import_is_visible_to_the_next_search_and_importing_twice_changes_nothing,
    a_registry_server_json_becomes_a_launch_command_and_a_credential_form,
    malformed_files_are_refused_naming_file_entry_and_field_and_nothing_is_imported,
);

#[allow(clippy::disallowed_methods)] // tests read their fixtures' locations from the environment
fn model_dir() -> Option<PathBuf> {
    match std::env::var_os("SWITCHBOARD_TEST_EMBED_MODEL_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => panic!("SWITCHBOARD_TEST_EMBED_MODEL_DIR must be set in CI"),
        None => {
            eprintln!("SWITCHBOARD_TEST_EMBED_MODEL_DIR is not set: the semantic search test is not run");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_local_model_search_becomes_hybrid_and_finds_servers_by_meaning() {
    let Some(dir) = model_dir() else { return };
    let app = spawn_app_with(&Backend::Sqlite, |s| s.embed_model_dir = Some(dir), Parts::default()).await;
    // The model loads and the catalog is embedded in the background; search answers meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let found = loop {
        let found = search(&app, "what hour is it in Tokyo right now").await;
        if found["mode"] == "hybrid" {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "search never became hybrid: {found}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(names(&found)[0], "Time", "{found}");
    assert!(found["results"][0]["cosine"].as_f64().unwrap() > 0.3);
    // No word in common with the entry: only meaning can find it.
    let found = search(&app, "keep facts about people I mention between our chats").await;
    assert!(names(&found)[..3].contains(&"Memory".to_string()), "{found}");
    // A file path states a need outright: the file server is held in the top five even though
    // the rest of the request (GitHub, issues, a report) ranks five other servers above it.
    let found =
        search(&app, "Summarise this week's open GitHub issues and save the report to /srv/reports/issues.md").await;
    assert_eq!(names(&found)[0], "GitHub", "{found}");
    let files = found["results"].as_array().unwrap().iter().position(|r| r["name"] == "Filesystem");
    assert!(files.is_some_and(|at| at < 5), "{found}");
    assert!(found["results"][files.unwrap()]["matched"].as_array().unwrap().contains(&json!("cue")), "{found}");
    // A new entry is embedded on import and found by meaning at once.
    import(&app, "servers.json", &zebra_servers()).await;
    let found = search(&app, "where are the animal herds on the savanna today").await;
    assert_eq!(names(&found)[0], "Zebra Migration Tracker", "{found}");
}

#[test]
fn the_command_line_imports_into_a_data_directory_and_searches_it_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("servers.json");
    std::fs::write(&file, zebra_servers().to_string()).unwrap();
    let bin = env!("CARGO_BIN_EXE_switchboard");
    let data = dir.path().join("data");
    let output = Command::new(bin)
        .args(["catalog", "import", "--data-dir"])
        .arg(&data)
        .arg(&file)
        .env_remove("SWITCHBOARD_EMBED_MODEL_DIR")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 created"));

    let output = Command::new(bin)
        .args(["catalog", "search", "--json", "--limit", "3", "--data-dir"])
        .arg(&data)
        .args(["zebra", "herd", "positions"])
        .env_remove("SWITCHBOARD_EMBED_MODEL_DIR")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("stdout is exactly one JSON document");
    let results = printed["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.len() <= 3);
    assert_eq!(results[0]["name"], "Zebra Migration Tracker");
    assert!(results[0]["score"].as_f64().unwrap() > 0.0);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[{\"description\": \"no name\"}]").unwrap();
    let output = Command::new(bin).args(["catalog", "import", "--data-dir"]).arg(&data).arg(&bad).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.json") && stderr.contains("[0].name"), "{stderr}");
}

/// A local OpenAI-compatible `/v1/embeddings` server: hashed bag-of-words vectors (so texts that
/// share words are close), recording the Authorization header of each request.
async fn embeddings_server(auth_seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> String {
    use axum::routing::post;
    async fn embed(
        axum::extract::State(seen): axum::extract::State<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
        headers: axum::http::HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        seen.lock().unwrap().push(auth);
        let data: Vec<Value> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let mut v = vec![0.0f32; 64];
                for word in text.as_str().unwrap().to_lowercase().split(|c: char| !c.is_alphanumeric()) {
                    if word.len() > 2 {
                        let h = word.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
                        v[(h % 64) as usize] += 1.0;
                    }
                }
                v[63] += 0.01;
                json!({"object": "embedding", "index": index, "embedding": v})
            })
            .collect();
        axum::Json(json!({"object": "list", "data": data, "model": body["model"]}))
    }
    let app = axum::Router::new().route("/v1/embeddings", post(embed)).with_state(auth_seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_embeddings_endpoint_makes_search_hybrid_and_its_key_stays_out_of_replies() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = embeddings_server(seen.clone()).await;
    let key = "sk-embed-canary-7f3a9c1d2e4b5a6f";
    let app = spawn_app_with(
        &Backend::Sqlite,
        |s| {
            s.embed_base_url = Some(url);
            s.embed_api_key = Some(key.to_string().into());
        },
        Parts::default(),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let found = loop {
        let found = search(&app, "current time in a timezone").await;
        if found["mode"] == "hybrid" {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "search never became hybrid: {found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(names(&found)[0], "Time", "{found}");
    assert!(found["results"][0]["matched"].as_array().unwrap().contains(&json!("dense")));
    assert!(!found.to_string().contains(key));
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 2 && seen.iter().all(|a| a == &format!("Bearer {key}")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_embeddings_endpoint_down_search_still_answers_with_bm25() {
    // Nothing listens on this port: the model never loads, and search stays lexical.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app =
        spawn_app_with(&Backend::Sqlite, |s| s.embed_base_url = Some(format!("http://{closed}/v1")), Parts::default())
            .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let found = search(&app, "post a message to a slack channel").await;
    assert_eq!(found["mode"], "bm25");
    assert_eq!(names(&found)[0], "Slack");
}

#[test]
fn catalog_eval_prints_recall_and_mrr_for_the_retrieval_set() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/retrieval");
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["catalog", "eval", "--json", "--catalog"])
        .arg(data.join("catalog.json"))
        .arg("--queries")
        .arg(data.join("queries-dev.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let figures: Value = serde_json::from_slice(&output.stdout).unwrap();
    let bm25 = &figures["bm25"];
    assert_eq!(bm25["queries"], 59);
    let r5 = bm25["recall_at_5"].as_f64().unwrap();
    // 0.534 with the request stop list; 0.435 without it.
    assert!(r5 > 0.5 && r5 <= 1.0, "{figures}");
    assert!(bm25["recall_at_1"].as_f64().unwrap() <= bm25["recall_at_3"].as_f64().unwrap());
    assert!(bm25["recall_at_3"].as_f64().unwrap() <= r5);
    assert!(figures.get("hybrid").is_none(), "no model, no hybrid figures");
}
