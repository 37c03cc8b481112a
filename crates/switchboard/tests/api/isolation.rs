//! Tenant isolation (RELIABILITY B2 items 10–13): another user's ids answer 404 exactly like
//! missing ones, lists never show another user's data, and admin routes are for admins only.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, TestApp};

struct Seeded {
    agents: Vec<String>,
    tasks: Vec<String>,
    conversations: Vec<String>,
    messages: Vec<String>,
    titles: Vec<String>,
}

async fn seed(app: &TestApp, token: &str, prefix: &str) -> Seeded {
    let mut seeded = Seeded { agents: vec![], conversations: vec![], messages: vec![], titles: vec![], tasks: vec![] };
    for i in 0..5 {
        let title = format!("{prefix}-secret-title-{i}");
        let reply = app.chat(token, &title, None).await;
        seeded.conversations.push(reply["conversation_id"].as_str().unwrap().to_owned());
        seeded.messages.push(reply["message"]["id"].as_str().unwrap().to_owned());
        let task: Value = app
            .post_json("/api/v1/tasks", token, &json!({"title": format!("{title}-task")}))
            .await
            .json()
            .await
            .unwrap();
        seeded.tasks.push(task["id"].as_str().unwrap().to_owned());
        seeded.titles.push(title);
        // An agent (the offline planner builds one for a server that needs no credentials) and
        // a credential.
        let reply = app.chat(token, "what time is it in Tokyo", None).await;
        assert_eq!(reply["status"], "success", "{reply}");
        seeded.conversations.push(reply["conversation_id"].as_str().unwrap().to_owned());
        seeded.agents.push(reply["agent_id"].as_str().unwrap().to_owned());
        let body = json!({"values": {"NOTION_TOKEN": format!("{prefix}-secret-notion-{i}")}});
        let put =
            app.client.put(app.url("/api/v1/credentials/notion")).bearer_auth(token).json(&body).send().await.unwrap();
        assert_eq!(put.status(), StatusCode::OK);
    }
    seeded
}

/// Row counts plus everything the owner can read: any change shows up here.
async fn snapshot(app: &TestApp, owner: &str) -> (Vec<i64>, Value, Value) {
    let mut counts = Vec::new();
    for table in ["conversations", "messages", "tasks", "agents", "credentials"] {
        counts.push(app.count_rows(table).await);
    }
    let conversations = app.get("/api/v1/conversations?limit=100", owner).await.json().await.unwrap();
    let tasks: Value = app.get("/api/v1/tasks?limit=100", owner).await.json().await.unwrap();
    let agents: Value = app.get("/api/v1/agents?limit=100", owner).await.json().await.unwrap();
    let credentials: Value = app.get("/api/v1/credentials", owner).await.json().await.unwrap();
    (counts, conversations, json!([tasks, agents, credentials]))
}

/// B2.10: every operation with a path id, called by B with A's ids, with GET, PATCH, DELETE and
/// POST: 404 for the operations that exist (405 for methods no route has), never A's data,
/// and no row changes.
async fn another_users_ids_answer_404_on_every_operation(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let a = seed(&app, &alice, "alice").await;
    seed(&app, &bob, "bob").await;
    let before = snapshot(&app, &alice).await;

    let spec: Value = app.openapi().await;
    let templates: Vec<(String, HashSet<String>)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.contains("{id}"))
        .map(|(path, ops)| (path.clone(), ops.as_object().unwrap().keys().cloned().collect()))
        .collect();
    assert!(!templates.is_empty());

    let mut attempts = 0;
    let ids: Vec<&String> = a.conversations.iter().chain(&a.messages).chain(&a.tasks).chain(&a.agents).collect();
    for (template, methods) in &templates {
        for id in &ids {
            let path = template.replace("{id}", id);
            for method in [Method::GET, Method::PATCH, Method::DELETE, Method::POST] {
                let response = app
                    .client
                    .request(method.clone(), app.url(&path))
                    .bearer_auth(&bob)
                    .json(&json!({"title": "hijacked"}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                attempts += 1;
                let expected = if methods.contains(&method.as_str().to_lowercase()) {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::METHOD_NOT_ALLOWED
                };
                assert_eq!(status, expected, "{method} {path}");
                assert!(
                    !a.conversations.iter().chain(&a.titles).any(|s| body.contains(s.as_str())),
                    "{method} {path} leaked: {body}"
                );
            }
        }
    }
    // POST-action: chatting into A's conversation.
    for id in &a.conversations {
        let response =
            app.post_json("/api/v1/chat", &bob, &json!({"message": "mine now", "conversation_id": id})).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        attempts += 1;
    }
    eprintln!("{attempts} cross-tenant attempts, all refused");
    assert!(attempts >= 300, "RELIABILITY B2.10 asks for at least 300 attempts, made {attempts}");
    assert_eq!(snapshot(&app, &alice).await, before, "nothing of Alice's changed");
    // Credentials are addressed by server: Bob deleting "his" Notion credential touches none of Alice's.
    let alices: Value = app.get("/api/v1/credentials", &alice).await.json().await.unwrap();
    let response = app.delete("/api/v1/credentials/notion", &bob).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "Bob's own");
    let response = app.delete("/api/v1/credentials/notion", &bob).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "Bob has none left; Alice's are not his to delete");
    assert_eq!(app.get("/api/v1/credentials", &alice).await.json::<Value>().await.unwrap(), alices);
    // A still sees all of hers.
    let list: Value = app.get("/api/v1/conversations", &alice).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 10, "5 chats and 5 agent set-ups");
}

/// B2.11: lists with injected owner filters and A's cursors return none of A's objects.
async fn lists_never_return_another_users_objects(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let a = seed(&app, &alice, "alice").await;
    let b = seed(&app, &bob, "bob").await;
    let alice_id =
        app.get("/api/v1/me", &alice).await.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let a_page: Value = app.get("/api/v1/conversations?limit=2", &alice).await.json().await.unwrap();
    let a_cursor = a_page["next_cursor"].as_str().unwrap();
    for query in [
        format!("?tenant_id={alice_id}"),
        format!("?user_id={alice_id}&owner_id={alice_id}"),
        format!("?limit=100&cursor={a_cursor}"),
        "?offset=0&limit=100".to_string(),
    ] {
        let list: Value = app.get(&format!("/api/v1/conversations{query}"), &bob).await.json().await.unwrap();
        let ids: HashSet<&str> = list["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert!(ids.iter().all(|id| b.conversations.iter().any(|x| x == id)), "{query}: only Bob's");
        assert!(!a.conversations.iter().any(|x| ids.contains(x.as_str())), "{query}: none of Alice's");
    }
}

/// B2.12: owner, role or admin fields in bodies are refused and change nothing.
async fn mass_assignment_fields_are_refused(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let alice_id =
        app.get("/api/v1/me", &alice).await.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    for field in ["tenant_id", "owner_id", "user_id", "role", "is_admin", "created_by"] {
        let body = json!({"message": "hello", field: if field == "is_admin" { json!(true) } else { json!(alice_id) }});
        assert_eq!(
            app.post_json("/api/v1/chat", &bob, &body).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}"
        );
    }
    assert_eq!(app.count_rows("conversations").await, 0);
    let me: Value = app.get("/api/v1/me", &bob).await.json().await.unwrap();
    assert_eq!(me["is_admin"], false);
}

/// B2.13: every route tagged `admin` in the OpenAPI document answers 403 to a non-admin.
async fn admin_routes_refuse_non_admins_with_403(backend: Backend) {
    let app = spawn_app(&backend).await;
    let bob = app.token_for("bob");
    let spec: Value = app.openapi().await;
    let mut admin_routes = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "admin")) {
                admin_routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(!admin_routes.is_empty());
    for (method, path) in &admin_routes {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let as_bob = app.client.request(method.clone(), app.url(path)).bearer_auth(&bob).send().await.unwrap();
        assert_eq!(as_bob.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let as_admin =
            app.client.request(method.clone(), app.url(path)).bearer_auth(&app.local_token).send().await.unwrap();
        // Past the admin check (the bodiless import then fails validation, the literal `{slug}` is not found).
        let status = as_admin.status();
        assert!(
            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED && !status.is_server_error(),
            "{method} {path} as admin: {status}"
        );
    }
}

/// Several users doing random operations: nobody ever reads, lists, changes or deletes another's
/// conversations or messages.
async fn random_operations_by_many_users_never_cross_owners(backend: Backend) {
    let app = spawn_app(&backend).await;
    let users: Vec<String> = (0..4).map(|i| app.token_for(&format!("user-{i}"))).collect();
    let mut owned: HashMap<usize, Vec<String>> = HashMap::new();
    let mut rng = StdRng::seed_from_u64(20261122);
    for step in 0..160 {
        let who = rng.random_range(0..users.len());
        let token = &users[who];
        let all: Vec<(usize, String)> =
            owned.iter().flat_map(|(u, ids)| ids.iter().map(move |id| (*u, id.clone()))).collect();
        let target = (!all.is_empty()).then(|| all[rng.random_range(0..all.len())].clone());
        match (rng.random_range(0..5), target) {
            (0, _) | (_, None) => {
                let reply = app.chat(token, &format!("step {step} by {who}"), None).await;
                owned.entry(who).or_default().push(reply["conversation_id"].as_str().unwrap().to_owned());
            }
            (1, Some((owner, id))) => {
                let response =
                    app.post_json("/api/v1/chat", token, &json!({"message": "hi", "conversation_id": id})).await;
                assert_eq!(response.status(), visible_only_to_owner(owner, who));
            }
            (2, Some((owner, id))) => {
                let response = app.get(&format!("/api/v1/conversations/{id}/messages"), token).await;
                assert_eq!(response.status(), visible_only_to_owner(owner, who));
            }
            (3, Some((owner, id))) => {
                let response = app.delete(&format!("/api/v1/conversations/{id}"), token).await;
                if owner == who {
                    assert_eq!(response.status(), StatusCode::NO_CONTENT);
                    owned.get_mut(&owner).unwrap().retain(|x| *x != id);
                } else {
                    assert_eq!(response.status(), StatusCode::NOT_FOUND);
                }
            }
            (_, Some(_)) => {
                let list: Value = app.get("/api/v1/conversations?limit=100", token).await.json().await.unwrap();
                let listed: HashSet<String> =
                    list["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
                let mine: HashSet<String> = owned.get(&who).cloned().unwrap_or_default().into_iter().collect();
                assert_eq!(listed, mine, "step {step}: user {who} lists exactly their own");
            }
        }
    }
}

/// What a request on `owner`'s conversation answers when made by `who`.
fn visible_only_to_owner(owner: usize, who: usize) -> StatusCode {
    if owner == who {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

crate::on_both_backends!(
    another_users_ids_answer_404_on_every_operation,
    lists_never_return_another_users_objects,
    mass_assignment_fields_are_refused,
    admin_routes_refuse_non_admins_with_403,
    random_operations_by_many_users_never_cross_owners,
);
