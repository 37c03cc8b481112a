//! Per-principal rate limits on `/api/*`: signed-in requests are counted per user, anonymous
//! ones per client address. The embedded limiter keeps its buckets in memory; with Redis
//! configured, every server shares the same buckets (the same GCRA, run as a script in Redis on
//! Redis's clock).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::Quota;
use ipnet::IpNet;
use switchboard_domain::Principal;

use crate::error::ApiError;
use crate::AppState;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset_after: Duration,
    /// When refused: until the next request can succeed.
    pub retry_after: Duration,
}

/// Counts requests per key.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    async fn check(&self, key: &str) -> RateDecision;
}

type Keyed<C> = governor::RateLimiter<String, DefaultKeyedStateStore<String>, C, StateInformationMiddleware>;

/// Buckets in this process's memory: `per_minute` requests per key, refilled evenly over a minute.
pub struct InMemoryRateLimiter<C: Clock = DefaultClock> {
    limiter: Keyed<C>,
    clock: C,
    per_minute: u32,
    checks: AtomicU64,
}

impl InMemoryRateLimiter<DefaultClock> {
    pub fn per_minute(per_minute: NonZeroU32) -> InMemoryRateLimiter<DefaultClock> {
        InMemoryRateLimiter::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock + Clone> InMemoryRateLimiter<C> {
    pub fn with_clock(per_minute: NonZeroU32, clock: C) -> InMemoryRateLimiter<C> {
        let limiter: Keyed<C> =
            governor::RateLimiter::new(Quota::per_minute(per_minute), DefaultKeyedStateStore::default(), clock.clone());
        InMemoryRateLimiter { limiter, clock, per_minute: per_minute.get(), checks: AtomicU64::new(0) }
    }

    fn decide(&self, key: &str) -> RateDecision {
        // Forget idle buckets now and then so memory follows the active users, not all users ever.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let per_request = Duration::from_secs(60) / self.per_minute;
        match self.limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateDecision {
                    allowed: true,
                    limit: self.per_minute,
                    remaining,
                    reset_after: per_request * (self.per_minute - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => RateDecision {
                allowed: false,
                limit: self.per_minute,
                remaining: 0,
                reset_after: per_request * self.per_minute,
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }
}

#[async_trait]
impl<C> RateLimiter for InMemoryRateLimiter<C>
where
    C: Clock + Clone + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    async fn check(&self, key: &str) -> RateDecision {
        self.decide(key)
    }
}

/// Buckets in Redis, shared by every server that uses the same Redis: the generic cell rate
/// algorithm (the one governor implements) as one Lua script, so each check is one atomic round
/// trip. If Redis cannot be reached the request is let through (and logged): an outage of the
/// limiter should not become an outage of the service.
pub struct RedisRateLimiter {
    redis: redis::aio::ConnectionManager,
    script: redis::Script,
    per_minute: u32,
    prefix: String,
}

/// KEYS[1]: the bucket; ARGV[1]: ms between requests at the steady rate; ARGV[2]: the limit.
/// Returns {allowed, remaining, reset_after_ms, retry_after_ms}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - limit * interval
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
local remaining = math.floor((now + limit * interval - new_tat) / interval)
return {1, remaining, new_tat - now, 0}
"#;

impl RedisRateLimiter {
    /// Connects (the connection manager reconnects by itself afterwards); keys start with `prefix`.
    pub async fn connect(
        url: &str,
        prefix: &str,
        per_minute: NonZeroU32,
    ) -> Result<RedisRateLimiter, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let redis = redis::aio::ConnectionManager::new(client).await?;
        Ok(RedisRateLimiter {
            redis,
            script: redis::Script::new(GCRA),
            per_minute: per_minute.get(),
            prefix: format!("{prefix}:ratelimit:"),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str) -> RateDecision {
        let interval_ms = 60_000 / u64::from(self.per_minute);
        let mut redis = self.redis.clone();
        let answer: Result<(i64, i64, i64, i64), _> = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(interval_ms)
            .arg(self.per_minute)
            .invoke_async(&mut redis)
            .await;
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        match answer {
            Ok((allowed, remaining, reset, retry)) => RateDecision {
                allowed: allowed == 1,
                limit: self.per_minute,
                remaining: remaining.clamp(0, i64::from(self.per_minute)) as u32,
                reset_after: ms(reset),
                retry_after: ms(retry),
            },
            Err(e) => {
                tracing::warn!(error = %e, "the shared rate limiter is unreachable; letting the request through");
                RateDecision {
                    allowed: true,
                    limit: self.per_minute,
                    remaining: self.per_minute,
                    reset_after: Duration::ZERO,
                    retry_after: Duration::ZERO,
                }
            }
        }
    }
}

/// Middleware: refuses requests over the limit with 429, and reports the budget on every answer.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(limiter) = state.limiter.clone() else {
        return next.run(req).await;
    };
    let key = match req.extensions().get::<Principal>() {
        Some(p) => format!("user:{}", p.user.id),
        None => format!("ip:{}", client_ip(&req, &state.config.trusted_proxies)),
    };
    let decision = limiter.check(&key).await;
    if !decision.allowed {
        let retry = ceil_secs(decision.retry_after).max(1);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {retry} s"),
        )
        .with_header(axum::http::header::RETRY_AFTER, HeaderValue::from(retry))
        .into_response();
        budget_headers(response.headers_mut(), &decision);
        return response;
    }
    let mut response = next.run(req).await;
    budget_headers(response.headers_mut(), &decision);
    response
}

fn budget_headers(headers: &mut HeaderMap, d: &RateDecision) {
    headers.insert(HeaderName::from_static("ratelimit-limit"), HeaderValue::from(d.limit));
    headers.insert(HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(d.remaining));
    headers.insert(HeaderName::from_static("ratelimit-reset"), HeaderValue::from(ceil_secs(d.reset_after)));
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> IpAddr {
    let peer =
        req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return peer;
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded.into_iter().rev().find(|ip| !trusted.iter().any(|net| net.contains(ip))).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limiter(clock: &FakeRelativeClock) -> InMemoryRateLimiter<FakeRelativeClock> {
        InMemoryRateLimiter::with_clock(NonZeroU32::new(60).unwrap(), clock.clone())
    }

    #[test]
    fn sixty_requests_pass_the_sixty_first_is_refused_and_a_minute_later_one_passes_again() {
        let clock = FakeRelativeClock::default();
        let l = limiter(&clock);
        for i in 1..=60 {
            let d = l.decide("user:a");
            assert!(d.allowed, "request {i} should pass");
            assert_eq!(d.remaining, 60 - i);
        }
        let refused = l.decide("user:a");
        assert!(!refused.allowed, "request 61 must be refused");
        assert_eq!(ceil_secs(refused.retry_after), 1);
        clock.advance(Duration::from_secs(60));
        assert!(l.decide("user:a").allowed, "a minute later the next request passes");
    }

    #[test]
    fn two_principals_have_independent_budgets() {
        let clock = FakeRelativeClock::default();
        let l = limiter(&clock);
        let mut passed = [0, 0];
        for _ in 0..100 {
            for (i, key) in ["user:a", "user:b"].iter().enumerate() {
                passed[i] += usize::from(l.decide(key).allowed);
            }
        }
        assert_eq!(passed, [60, 60]);
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers_and_honoured_from_trusted_ones() {
        let mut req = Request::new(axum::body::Body::empty());
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 5], 4000))));
        req.headers_mut().insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 10.0.0.7"));
        assert_eq!(client_ip(&req, &[]), IpAddr::from([10, 0, 0, 5]));
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip(&req, &trusted), IpAddr::from([203, 0, 113, 9]));
    }
}
