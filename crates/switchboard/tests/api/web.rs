//! The web page: served from the binary with a strict content security policy, and driven end
//! to end in headless Chromium by `tests/web/e2e.mjs` against a real `switchboard serve`.

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;

use crate::helpers::{spawn_app, Backend};
use crate::process::BIN;

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let app = spawn_app(&Backend::Sqlite).await;
    for (path, media_type, needle) in [
        ("/", "text/html", "<script type=\"module\" src=\"/web/app.js\">"),
        ("/web/app.js", "text/javascript", "/api/v1/chat/stream"),
        ("/web/style.css", "text/css", ".tool-card"),
    ] {
        let response = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(media_type), "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    // No sign-in needed for the page itself; the API behind it still requires one.
    let api = reqwest::get(app.url("/api/v1/me")).await.unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let unknown = reqwest::get(app.url("/web/missing.js")).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

/// Where the browser test's npm packages are (playwright-core, typescript, openapi-typescript).
#[allow(clippy::disallowed_methods)] // the tests' own environment, not a server setting
fn web_modules() -> Option<String> {
    match std::env::var("SWITCHBOARD_TEST_WEB") {
        Ok(dir) => Some(dir),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("SWITCHBOARD_TEST_WEB is not set: CI must run the browser tests")
        }
        Err(_) => {
            eprintln!("SWITCHBOARD_TEST_WEB is not set: skipping the browser tests");
            None
        }
    }
}

#[test]
fn the_web_page_works_in_a_real_browser() {
    let Some(modules) = web_modules() else { return };
    let Some(servers) = crate::mcp_client::everything_server() else { return };
    let servers = servers.ancestors().nth(3).unwrap().to_path_buf();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/web/e2e.mjs");
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    let output = Command::new("node")
        .arg(&script)
        .env("SWITCHBOARD_BIN", BIN)
        .env("SWITCHBOARD_TEST_WEB", modules)
        .env("SWITCHBOARD_TEST_MCP_SERVERS", servers)
        .env("SCREENSHOTS", &screenshots)
        .output()
        .expect("node runs");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "the browser test failed:\n{report}");
    for shot in ["chat", "credentials-form", "agent-card", "jobs", "tasks", "catalog", "phone-chat"] {
        assert!(screenshots.join(format!("{shot}.png")).is_file(), "no {shot} screenshot");
    }
}
