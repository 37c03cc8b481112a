//! Prometheus metrics: request counts and latency histograms by route and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::AppState;

/// This server's metrics, in their own registry (several servers may share a process in tests).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    jobs: IntGaugeVec,
    jobs_failed_last_hour: IntGauge,
    workers: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let labels = &["method", "route", "status"];
        let requests = IntCounterVec::new(Opts::new("http_requests_total", "HTTP requests answered"), labels)
            .expect("static metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Time to answer HTTP requests")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            labels,
        )
        .expect("static metric definition");
        let jobs = IntGaugeVec::new(Opts::new("switchboard_jobs", "Jobs in the queue by status"), &["status"])
            .expect("static metric definition");
        let jobs_failed_last_hour =
            IntGauge::new("switchboard_jobs_failed_last_hour", "Jobs that failed in the last hour")
                .expect("static metric definition");
        let workers = IntGauge::new("switchboard_workers", "Workers that sent a heartbeat in the last 30 s")
            .expect("static metric definition");
        registry.register(Box::new(requests.clone())).expect("unique metric");
        registry.register(Box::new(latency.clone())).expect("unique metric");
        registry.register(Box::new(jobs.clone())).expect("unique metric");
        registry.register(Box::new(jobs_failed_last_hour.clone())).expect("unique metric");
        registry.register(Box::new(workers.clone())).expect("unique metric");
        Metrics { registry, requests, latency, jobs, jobs_failed_last_hour, workers }
    }

    /// Sets the queue gauges (read from the database when scraped).
    pub fn set_queue(&self, stats: &switchboard_domain::QueueStats) {
        for (status, n) in [
            ("queued", stats.queued),
            ("running", stats.running),
            ("completed", stats.completed),
            ("failed", stats.failed),
            ("cancelled", stats.cancelled),
        ] {
            self.jobs.with_label_values(&[status]).set(n);
        }
        self.jobs_failed_last_hour.set(stats.failed_last_hour);
        self.workers.set(stats.workers.len() as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }
}

/// Middleware: counts and times every request under its route template (never the raw path,
/// which would carry ids and grow without bound).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    state.metrics.observe(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}
