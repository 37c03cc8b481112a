//! Per-user rate limits (RELIABILITY B6 items 36–38), through real HTTP. The limiter's clock is
//! a manual one, so the counts are exact however slow the machine is.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use reqwest::StatusCode;
use serde_json::json;
use switchboard::app::Parts;
use switchboard_api::ratelimit::InMemoryRateLimiter;

use crate::helpers::{error_code, spawn_app_with, Backend, TestApp};

async fn app_with_manual_clock(
    backend: &Backend,
    configure: impl FnOnce(&mut switchboard::Settings),
) -> (TestApp, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let limiter = InMemoryRateLimiter::with_clock(NonZeroU32::new(60).unwrap(), clock.clone());
    let app = spawn_app_with(backend, configure, Parts { rate_limiter: Some(Arc::new(limiter)) }).await;
    (app, clock)
}

/// B6.36: requests 1–60 pass, 61 gets 429 with Retry-After; 60 s later the next one passes.
async fn the_61st_request_in_a_minute_gets_429_and_a_minute_later_requests_pass_again(backend: Backend) {
    let (app, clock) = app_with_manual_clock(&backend, |_| {}).await;
    let token = app.token_for("alice");
    for i in 1..=60 {
        let response = app.get("/api/v1/conversations", &token).await;
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
        assert_eq!(response.headers()["ratelimit-limit"], "60");
        assert_eq!(response.headers()["ratelimit-remaining"].to_str().unwrap(), (60 - i).to_string());
    }
    let refused = app.get("/api/v1/conversations", &token).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    let (_, code) = error_code(refused).await;
    assert_eq!(code, "rate_limited");

    // A second user is not slowed or limited by the first one's flood.
    let bob = app.token_for("bob");
    assert_eq!(app.get("/api/v1/conversations", &bob).await.status(), StatusCode::OK);

    clock.advance(Duration::from_secs(60));
    assert_eq!(app.get("/api/v1/conversations", &token).await.status(), StatusCode::OK);
}

/// B6.37: two users flooding in parallel each get exactly 60 successes.
async fn two_users_in_parallel_each_get_exactly_60(backend: Backend) {
    let (app, _clock) = app_with_manual_clock(&backend, |_| {}).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for user in ["alice", "bob"] {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.token_for(user);
            let mut ok = 0;
            let mut limited = 0;
            let replies = futures::future::join_all((0..80).map(|_| app.get("/api/v1/me", &token))).await;
            for r in replies {
                match r.status() {
                    StatusCode::OK => ok += 1,
                    StatusCode::TOO_MANY_REQUESTS => limited += 1,
                    other => panic!("unexpected {other}"),
                }
            }
            (ok, limited)
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (60, 20));
    }
}

/// B6.38: anonymous requests are counted per client address; a rotating X-Forwarded-For from an
/// untrusted peer does not buy new buckets, from a trusted proxy it names the client.
async fn forwarded_for_from_an_untrusted_peer_shares_one_bucket(backend: Backend) {
    let (app, _clock) = app_with_manual_clock(&backend, |_| {}).await;
    let mut statuses = Vec::new();
    for i in 0..61 {
        let response = app
            .client
            .post(app.url("/api/auth/google"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"token": "x"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert!(statuses[..60].iter().all(|s| *s != StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(statuses[60], StatusCode::TOO_MANY_REQUESTS);

    let (trusting, _clock) =
        app_with_manual_clock(&backend, |s| s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    for i in 0..61 {
        let response = trusting
            .client
            .post(trusting.url("/api/auth/google"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"token": "x"}))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS, "client {i} has its own bucket");
    }
}

/// The real limiter (not the manual clock) is what `serve` uses by default.
async fn the_default_limit_is_60_per_minute(backend: Backend) {
    let app = spawn_app_with(&backend, |s| s.rate_limit_per_minute = 60, Parts::default()).await;
    let response = app.get("/api/v1/me", &app.token_for("alice")).await;
    assert_eq!(response.headers()["ratelimit-limit"], "60");
}

crate::on_both_backends!(
    the_61st_request_in_a_minute_gets_429_and_a_minute_later_requests_pass_again,
    two_users_in_parallel_each_get_exactly_60,
    forwarded_for_from_an_untrusted_peer_shares_one_bucket,
    the_default_limit_is_60_per_minute,
);
