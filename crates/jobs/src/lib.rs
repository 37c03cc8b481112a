//! Workers for the job queue. Jobs live in the database; a worker claims one under a lease
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same job), renews
//! the lease while the job runs, and records the outcome only if it still holds it. A worker that
//! dies stops renewing, its lease runs out and another worker runs the job again (at least once;
//! exactly one outcome is recorded). Failed attempts are retried with exponential backoff up to
//! the job's attempt limit. The owner's cancel request is seen at the next renewal and stops the
//! run by dropping it. Idle workers wait for a wake-up — in-process on enqueue, and from other
//! processes through the store (PostgreSQL LISTEN/NOTIFY) — or poll.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use switchboard_domain::{Job, JobOutcome, JobStatus};
use switchboard_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How a run went wrong.
#[derive(Debug)]
pub enum RunError {
    /// Worth another attempt (the model or a server was unavailable).
    Retryable(String),
    /// Another attempt would fail the same way.
    Permanent(String),
}

/// What a finished run produced.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    pub result: serde_json::Value,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
}

/// Progress of one job, stored as events for its subscribers.
#[derive(Clone)]
pub struct Events {
    store: Arc<dyn Store>,
    job: uuid::Uuid,
}

impl Events {
    pub fn new(store: Arc<dyn Store>, job: uuid::Uuid) -> Events {
        Events { store, job }
    }

    /// Records an event; a failure is logged, never fatal to the run.
    pub async fn emit(&self, kind: &str, payload: serde_json::Value) {
        if let Err(e) = self.store.append_job_event(self.job, kind, &payload).await {
            tracing::warn!(job = %self.job, error = %e, "could not record a job event");
        }
    }
}

/// Runs one job's work. Implemented where the agent is (chat turns and agent runs).
#[async_trait]
pub trait Runner: Send + Sync + 'static {
    async fn run(&self, job: &Job, events: &Events) -> Result<RunOutput, RunError>;
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Concurrent jobs per process.
    pub concurrency: usize,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// How often a running job's lease is renewed (and its cancel flag read).
    pub renew_every: Duration,
    /// How often an idle worker looks for due jobs without being woken.
    pub poll_every: Duration,
    /// First retry delay; doubled per attempt, at most `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Prefix of the worker ids (host and process are appended).
    pub name: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 2,
            lease: Duration::from_secs(30),
            renew_every: Duration::from_millis(500),
            poll_every: Duration::from_secs(1),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            name: "worker".into(),
        }
    }
}

/// Wakes idle workers of this process when a job is enqueued here.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn job_enqueued(&self) {
        self.0.notify_waiters();
        self.0.notify_one();
    }
}

/// The workers of one process.
pub struct Workers {
    store: Arc<dyn Store>,
    runner: Arc<dyn Runner>,
    config: WorkerConfig,
    wake: Wake,
    id: String,
    running: Arc<AtomicI64>,
}

impl Workers {
    pub fn new(store: Arc<dyn Store>, runner: Arc<dyn Runner>, config: WorkerConfig, wake: Wake) -> Workers {
        let id = format!("{}-{}-{}", config.name, std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Workers { store, runner, config, wake, id, running: Arc::default() }
    }

    /// This process's worker id (each concurrent slot appends `/n`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `shutdown`; no job is claimed after it, and jobs in flight stop where they are
    /// and go back to the queue for another worker (their user messages are already stored).
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(this.clone().forward_wakeups(shutdown.clone()));
        tasks.spawn(this.clone().heartbeat(shutdown.clone()));
        for slot in 0..this.config.concurrency.max(1) {
            tasks.spawn(this.clone().slot(slot, shutdown.clone()));
        }
        tracing::info!(worker = %this.id, concurrency = this.config.concurrency, "workers started");
        while tasks.join_next().await.is_some() {}
        let _ = this.store.remove_worker(&this.id).await;
        tracing::info!(worker = %this.id, "workers stopped");
    }

    async fn forward_wakeups(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            match self.store.job_wakeups().await {
                Ok(Some(mut stream)) => loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        next = stream.next() => match next {
                            Some(()) => self.wake.job_enqueued(),
                            None => break,
                        },
                    }
                },
                Ok(None) => return,
                Err(e) => tracing::warn!(error = %e, "cannot listen for new jobs; polling meanwhile"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn heartbeat(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.store.worker_heartbeat(&self.id, self.running.load(Ordering::SeqCst)).await {
                tracing::warn!(error = %e, "worker heartbeat failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    async fn slot(self: Arc<Self>, slot: usize, shutdown: CancellationToken) {
        let worker = format!("{}/{slot}", self.id);
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let lease_until = switchboard_domain::now() + self.config.lease;
            match self.store.claim_job(&worker, lease_until).await {
                Ok(Some(job)) => {
                    failures = 0;
                    self.running.fetch_add(1, Ordering::SeqCst);
                    let id = job.id;
                    // Every line logged while the job runs (its tool calls among them) names it and its user.
                    let span = tracing::info_span!("job", job = %id, user = %job.user_id);
                    tokio::select! {
                        () = tracing::Instrument::instrument(self.execute(&worker, job), span) => {}
                        () = shutdown.cancelled() => self.release(&worker, id).await,
                    }
                    self.running.fetch_sub(1, Ordering::SeqCst);
                }
                Ok(None) => {
                    failures = 0;
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = self.wake.0.notified() => {}
                        () = tokio::time::sleep(self.config.poll_every) => {}
                    }
                }
                Err(e) => {
                    failures += 1;
                    let wait = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "claiming a job failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Runs one claimed job to its recorded end (or until the lease is lost).
    async fn execute(&self, worker: &str, job: Job) {
        let events = Events::new(self.store.clone(), job.id);
        if job.attempts > job.max_attempts {
            let error = format!("gave up after {} attempts whose workers stopped responding", job.max_attempts);
            self.finish(worker, &job, &events, JobStatus::Failed, None, Some(error), RunOutput::default()).await;
            return;
        }
        tracing::info!(job = %job.id, attempt = job.attempts, worker, "job started");
        events.emit("status", json!({"status": "running", "attempt": job.attempts, "worker": worker})).await;
        let lost = CancellationToken::new();
        let cancelled = CancellationToken::new();
        let renewing = self.renew(worker, job.id, lost.clone(), cancelled.clone());
        let run = self.runner.run(&job, &events);
        let outcome = tokio::select! {
            outcome = run => Some(outcome),
            () = lost.cancelled() => None,
            () = cancelled.cancelled() => {
                let output = RunOutput::default();
                self.finish(worker, &job, &events, JobStatus::Cancelled, None, Some("cancelled by its owner".into()), output).await;
                return;
            }
            () = renewing => None,
        };
        let Some(outcome) = outcome else {
            tracing::warn!(job = %job.id, worker, "lost the job's lease; another worker will run it");
            return;
        };
        match outcome {
            Ok(output) => {
                let result = Some(output.result.clone());
                self.finish(worker, &job, &events, JobStatus::Completed, result, None, output).await;
            }
            Err(RunError::Retryable(error)) if job.attempts < job.max_attempts => {
                let delay = self.backoff(job.attempts);
                let run_after = switchboard_domain::now() + delay;
                match self.store.retry_job(job.id, worker, run_after, &error).await {
                    Ok(true) => {
                        tracing::warn!(job = %job.id, attempt = job.attempts, delay_ms = delay.as_millis() as u64, error = %error, "job attempt failed; retrying");
                        events
                            .emit(
                                "status",
                                json!({"status": "queued", "error": error, "retry_in_ms": delay.as_millis() as u64}),
                            )
                            .await;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(job = %job.id, error = %e, "could not requeue the job; its lease will run out")
                    }
                }
            }
            Err(RunError::Retryable(error) | RunError::Permanent(error)) => {
                self.finish(worker, &job, &events, JobStatus::Failed, None, Some(error), RunOutput::default()).await;
            }
        }
    }

    /// At shutdown: puts the interrupted job back in the queue at once, so another worker takes
    /// it without waiting for the lease to run out.
    async fn release(&self, worker: &str, job: uuid::Uuid) {
        let note = "interrupted: its worker shut down";
        match self.store.retry_job(job, worker, switchboard_domain::now(), note).await {
            Ok(true) => {
                tracing::info!(job = %job, worker, "job released at shutdown");
                Events::new(self.store.clone(), job).emit("status", json!({"status": "queued", "error": note})).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(job = %job, error = %e, "could not release the job; its lease will run out"),
        }
    }

    /// Renews the lease until the run ends; signals a lost lease or a cancel request.
    async fn renew(&self, worker: &str, job: uuid::Uuid, lost: CancellationToken, cancelled: CancellationToken) {
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            let lease_until = switchboard_domain::now() + self.config.lease;
            match self.store.renew_job_lease(job, worker, lease_until).await {
                Ok(Some(false)) => {}
                Ok(Some(true)) => {
                    cancelled.cancel();
                    std::future::pending::<()>().await;
                }
                Ok(None) => {
                    lost.cancel();
                    std::future::pending::<()>().await;
                }
                // The database may be restarting: keep running while the lease lasts.
                Err(e) => tracing::warn!(job = %job, error = %e, "renewing the job's lease failed"),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        worker: &str,
        job: &Job,
        events: &Events,
        status: JobStatus,
        result: Option<serde_json::Value>,
        error: Option<String>,
        output: RunOutput,
    ) {
        let outcome = JobOutcome {
            status,
            result: result.clone(),
            error: error.clone(),
            input_tokens: output.input_tokens,
            output_tokens: output.output_tokens,
            total_tokens: output.total_tokens,
        };
        // The database may be restarting: keep trying while the lease lasts.
        let deadline = tokio::time::Instant::now() + self.config.lease;
        loop {
            match self.store.finish_job(job.id, worker, &outcome).await {
                Ok(true) => break,
                Ok(false) => {
                    tracing::warn!(job = %job.id, worker, "the job was taken over; this outcome is dropped");
                    return;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(job = %job.id, error = %e, "recording the job's outcome failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "could not record the job's outcome");
                    return;
                }
            }
        }
        tracing::info!(job = %job.id, status = status.as_str(), worker, "job finished");
        if let Some(result) = result {
            events.emit("result", result).await;
        }
        let mut payload = json!({"status": status.as_str()});
        if let Some(error) = error {
            payload["error"] = json!(error);
        }
        events.emit("status", payload).await;
    }

    fn backoff(&self, attempt: i32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).max(0) as u32);
        self.config.backoff.saturating_mul(factor).min(self.config.max_backoff)
    }
}
