//! Workers for the job queue. Jobs live in the database; a worker claims one under a lease
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same job), renews
//! the lease while the job runs, and records the outcome only if it still holds it. A worker that
//! dies stops renewing, its lease runs out and another worker runs the job again (at least once;
//! exactly one outcome is recorded). Failed attempts are retried with exponential backoff up to
//! the job's attempt limit. The owner's cancel request is seen at the next renewal and stops the
//! run by dropping it. Idle workers wait for a wake-up — in-process on enqueue, and from other
//! processes through the store (PostgreSQL LISTEN/NOTIFY) — or poll.
//!
//! With the Redis Streams backend ([`streams`]) job ids reach the workers through a stream and a
//! consumer group instead; the claim, lease and outcome are the same database statements.

pub mod streams;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use switchboard_domain::{Job, JobOutcome, JobStatus, JobTotals};
use switchboard_store::{ClaimById, Store};
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

/// How long progress may wait before it is written: what arrives meanwhile shares the write, and a
/// short run's progress goes with its outcome. Subscribers look for new events as often.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Progress of one job, stored as events for its subscribers. Progress is held for up to
/// [`PROGRESS_EVERY`] and then written in one go, text following text as one `delta`; what is
/// still held when the run ends is written with its outcome, in order.
#[derive(Clone)]
pub struct Events {
    store: Arc<dyn Store>,
    job: uuid::Uuid,
    held: Arc<tokio::sync::Mutex<Held>>,
}

/// Progress not written yet, and whether a write of it is on its way.
#[derive(Default)]
struct Held {
    events: Vec<(String, serde_json::Value)>,
    write_due: bool,
}

impl Events {
    pub fn new(store: Arc<dyn Store>, job: uuid::Uuid) -> Events {
        Events { store, job, held: Arc::default() }
    }

    /// Records progress while the job runs (within [`PROGRESS_EVERY`]); a failure is logged, never
    /// fatal to the run. A database crash may lose the last of these (the job's own record is
    /// kept durably).
    pub async fn emit(&self, kind: &str, payload: serde_json::Value) {
        let mut held = self.held.lock().await;
        hold(&mut held.events, kind, payload);
        if !held.write_due {
            held.write_due = true;
            let events = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(PROGRESS_EVERY).await;
                events.write_held().await;
            });
        }
    }

    /// Records how a run ended (or was put back in the queue), after the progress held: on disk
    /// before this returns.
    pub async fn emit_durably(&self, kind: &str, payload: serde_json::Value) {
        self.write(&mut *self.held.lock().await).await;
        self.record(kind, &payload, true).await;
    }

    /// Takes the progress not written yet, for the outcome's own write (waiting for a write
    /// already on its way, so the order holds).
    pub async fn take_held(&self) -> Vec<(String, serde_json::Value)> {
        std::mem::take(&mut self.held.lock().await.events)
    }

    async fn write_held(&self) {
        // The lock is kept while writing, so an outcome taking the rest waits for this.
        let mut held = self.held.lock().await;
        held.write_due = false;
        self.write(&mut held).await;
    }

    /// Writes the progress held, in order.
    async fn write(&self, held: &mut Held) {
        for (kind, payload) in std::mem::take(&mut held.events) {
            self.record(&kind, &payload, false).await;
        }
    }

    async fn record(&self, kind: &str, payload: &serde_json::Value, durable: bool) {
        if let Err(e) = self.store.append_job_event(self.job, kind, payload, durable).await {
            tracing::warn!(job = %self.job, error = %e, "could not record a job event");
        }
    }
}

/// Adds an event to those held: text following text joins it, anything else keeps its place.
fn hold(events: &mut Vec<(String, serde_json::Value)>, kind: &str, payload: serde_json::Value) {
    let joined = match (events.last_mut(), payload.get("text").and_then(|t| t.as_str())) {
        (Some((last, previous)), Some(more)) if kind == "delta" && last == "delta" => match previous.get_mut("text") {
            Some(serde_json::Value::String(text)) => {
                text.push_str(more);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if !joined {
        events.push((kind.to_owned(), payload));
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
    /// Finished jobs created longer ago than this are deleted, with their events; `None` keeps
    /// them.
    pub retention: Option<Duration>,
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
            retention: None,
        }
    }
}

/// How enqueued jobs reach the workers: the database itself (workers claim the next due job;
/// idle ones are woken in-process, and through the database from other processes), or a Redis
/// stream carrying job ids.
#[derive(Clone, Default)]
pub struct Queue {
    wake: Arc<Notify>,
    streams: Option<Arc<streams::RedisStreams>>,
}

impl Queue {
    /// The queue in the database.
    pub fn database() -> Queue {
        Queue::default()
    }

    /// Job ids through Redis Streams.
    pub fn redis(streams: Arc<streams::RedisStreams>) -> Queue {
        Queue { wake: Arc::default(), streams: Some(streams) }
    }

    /// `database` or `redis`.
    pub fn backend(&self) -> &'static str {
        if self.streams.is_some() {
            "redis"
        } else {
            "database"
        }
    }

    pub fn streams(&self) -> Option<&Arc<streams::RedisStreams>> {
        self.streams.as_ref()
    }

    /// Tells the workers about a job just stored. With Redis, a failure to hand it over is
    /// logged, not returned: the job is safe in the database, and the sweep hands it over later.
    pub async fn enqueued(&self, job: uuid::Uuid) {
        self.wake.notify_waiters();
        self.wake.notify_one();
        if let Some(streams) = &self.streams {
            if let Err(e) = streams.publish(job).await {
                tracing::warn!(job = %job, error = %e, "could not add the job to the Redis stream; the sweep will");
            }
        }
    }

    /// A retry waits until `at` (in the database already; with Redis, in the delayed set too).
    async fn retry_at(&self, job: uuid::Uuid, at: chrono::DateTime<chrono::Utc>) {
        if let Some(streams) = &self.streams {
            if let Err(e) = streams.schedule(job, at).await {
                tracing::warn!(job = %job, error = %e, "could not schedule the retry in Redis; the sweep will");
            }
        }
    }

    /// Succeeds when the queue's own backend answers (the database's health is checked apart).
    pub async fn ping(&self) -> Result<(), String> {
        match &self.streams {
            Some(streams) => streams.ping().await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// How a claimed job's run ended, for its delivery.
enum Settled {
    /// Its outcome, a retry or a release is recorded: the delivery is done with.
    Done,
    /// Another worker took it over: its delivery is that worker's now.
    TakenOver,
}

/// How often the Redis backend moves due retries to the stream, and sweeps.
const MOVE_DUE_EVERY: Duration = Duration::from_millis(200);
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// How long finished jobs wait to be added to the totals: those finishing meanwhile share the
/// write, so under load it is a few statements a second rather than one per job.
const TOTALS_EVERY: Duration = Duration::from_millis(100);

/// Finished jobs deleted per statement by retention (the rest wait for the next statement).
const FORGET_BATCH: i64 = 500;

/// Jobs this process finished and has not added to the database's totals yet.
#[derive(Default)]
struct Tally {
    completed: AtomicI64,
    failed: AtomicI64,
    cancelled: AtomicI64,
    finished: Notify,
}

impl Tally {
    fn count(&self, status: JobStatus) {
        let counter = match status {
            JobStatus::Completed => &self.completed,
            JobStatus::Failed => &self.failed,
            JobStatus::Cancelled => &self.cancelled,
            JobStatus::Queued | JobStatus::Running => return,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.finished.notify_one();
    }

    fn take(&self) -> JobTotals {
        JobTotals {
            completed: self.completed.swap(0, Ordering::SeqCst),
            failed: self.failed.swap(0, Ordering::SeqCst),
            cancelled: self.cancelled.swap(0, Ordering::SeqCst),
        }
    }

    /// Puts back what could not be written, for the next write.
    fn restore(&self, totals: JobTotals) {
        self.completed.fetch_add(totals.completed, Ordering::SeqCst);
        self.failed.fetch_add(totals.failed, Ordering::SeqCst);
        self.cancelled.fetch_add(totals.cancelled, Ordering::SeqCst);
    }
}

/// The workers of one process.
pub struct Workers {
    store: Arc<dyn Store>,
    runner: Arc<dyn Runner>,
    config: WorkerConfig,
    queue: Queue,
    id: String,
    running: Arc<AtomicI64>,
    tally: Tally,
}

impl Workers {
    pub fn new(store: Arc<dyn Store>, runner: Arc<dyn Runner>, config: WorkerConfig, queue: Queue) -> Workers {
        let id = format!("{}-{}-{}", config.name, std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Workers { store, runner, config, queue, id, running: Arc::default(), tally: Tally::default() }
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
        match this.queue.streams.clone() {
            Some(streams) => tasks.spawn(this.clone().maintain(streams, shutdown.clone())),
            None => tasks.spawn(this.clone().forward_wakeups(shutdown.clone())),
        };
        tasks.spawn(this.clone().heartbeat(shutdown.clone()));
        tasks.spawn(this.clone().add_totals(shutdown.clone()));
        if let Some(retention) = this.config.retention {
            tasks.spawn(this.clone().forget_old_jobs(retention, shutdown.clone()));
        }
        for slot in 0..this.config.concurrency.max(1) {
            tasks.spawn(this.clone().slot(slot, shutdown.clone()));
        }
        tracing::info!(worker = %this.id, concurrency = this.config.concurrency, queue = this.queue.backend(), "workers started");
        while tasks.join_next().await.is_some() {}
        let _ = this.write_totals().await;
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
                            Some(()) => { self.queue.wake.notify_waiters(); self.queue.wake.notify_one(); }
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

    /// Adds the jobs finished here to the database's totals, at most every [`TOTALS_EVERY`].
    async fn add_totals(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.tally.finished.notified() => {}
            }
            // The database away: tried again a second later, with what finished meanwhile.
            while !self.write_totals().await {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(TOTALS_EVERY) => {}
            }
        }
    }

    /// Adds what finished here since the last write; `false` when the database refused it (it is
    /// kept for the next write).
    async fn write_totals(&self) -> bool {
        let totals = self.tally.take();
        if totals == JobTotals::default() {
            return true;
        }
        match self.store.add_job_totals(&totals).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not add finished jobs to the totals; trying again in a second");
                self.tally.restore(totals);
                false
            }
        }
    }

    /// Deletes finished jobs older than `retention`, a batch at a time, as often as half the
    /// retention (at least every second, at most every minute).
    async fn forget_old_jobs(self: Arc<Self>, retention: Duration, shutdown: CancellationToken) {
        let every = (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let Ok(retention) = chrono::Duration::from_std(retention) else { return };
        loop {
            let before = switchboard_domain::now() - retention;
            let mut deleted = 0;
            loop {
                match self.store.delete_finished_jobs(before, FORGET_BATCH).await {
                    Ok(n) => {
                        deleted += n;
                        if n < FORGET_BATCH as u64 || shutdown.is_cancelled() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "deleting jobs past their retention failed");
                        break;
                    }
                }
            }
            if deleted > 0 {
                tracing::info!(jobs = deleted, "deleted finished jobs past their retention");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Redis only: moves due retries to the stream, and sweeps (see [`streams`]) — one process
    /// at a time.
    async fn maintain(self: Arc<Self>, streams: Arc<streams::RedisStreams>, shutdown: CancellationToken) {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            if let Err(e) = streams.move_due().await {
                tracing::warn!(error = %e, "moving due retries to the Redis stream failed");
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = tokio::time::Instant::now();
                if let Err(e) = self.sweep(&streams).await {
                    tracing::warn!(error = %e, "sweeping the job queue failed");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(MOVE_DUE_EVERY) => {}
            }
        }
    }

    /// When the stream holds nothing while the database has jobs waiting, hands them over again.
    async fn sweep(&self, streams: &streams::RedisStreams) -> Result<(), String> {
        if !streams.take_sweep(&self.id, SWEEP_EVERY - Duration::from_millis(500)).await.map_err(|e| e.to_string())? {
            return Ok(());
        }
        let backlog = streams.backlog().await.map_err(|e| e.to_string())?;
        if backlog.waiting > 0 || backlog.pending > 0 {
            return Ok(());
        }
        let waiting = self.store.waiting_jobs(1000).await.map_err(|e| e.to_string())?;
        let now = switchboard_domain::now();
        for (job, due) in &waiting {
            let handed = if *due <= now { streams.publish(*job).await } else { streams.schedule(*job, *due).await };
            handed.map_err(|e| e.to_string())?;
        }
        if !waiting.is_empty() {
            tracing::info!(jobs = waiting.len(), "swept waiting jobs the Redis stream did not hold into it");
        }
        Ok(())
    }

    async fn slot(self: Arc<Self>, slot: usize, shutdown: CancellationToken) {
        let worker = format!("{}/{slot}", self.id);
        let mut reader = None;
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let lease_until = switchboard_domain::now() + self.config.lease;
            match self.next_job(&worker, lease_until, &mut reader).await {
                Ok(Some((job, delivery))) => {
                    failures = 0;
                    self.running.fetch_add(1, Ordering::SeqCst);
                    let id = job.id;
                    // Every line logged while the job runs (its tool calls among them) names it and its user.
                    let span = tracing::info_span!("job", job = %id, user = %job.user_id);
                    let settled = tokio::select! {
                        settled = tracing::Instrument::instrument(self.execute(&worker, job), span) => settled,
                        () = shutdown.cancelled() => self.release(&worker, id).await,
                    };
                    self.running.fetch_sub(1, Ordering::SeqCst);
                    if let (Settled::Done, Some(delivery), Some(streams)) = (settled, delivery, &self.queue.streams) {
                        if let Err(e) = streams.ack(&delivery).await {
                            tracing::warn!(job = %id, error = %e, "could not acknowledge the job's stream entry");
                        }
                    }
                }
                Ok(None) if self.queue.streams.is_some() => failures = 0, // the read waited already
                Ok(None) => {
                    failures = 0;
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = self.queue.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll_every) => {}
                    }
                }
                Err(e) => {
                    failures += 1;
                    reader = None;
                    let wait = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "claiming a job failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        if let Some(streams) = &self.queue.streams {
            let _ = streams.remove_consumer(&worker).await;
        }
    }

    /// The next job this slot runs, claimed under a lease until `lease_until`: the next due job
    /// in the database, or the next job id the Redis stream delivers (with that delivery).
    async fn next_job(
        &self,
        worker: &str,
        lease_until: chrono::DateTime<chrono::Utc>,
        reader: &mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<Option<(Job, Option<streams::Delivery>)>, String> {
        let Some(streams) = &self.queue.streams else {
            let job = self.store.claim_job(worker, lease_until).await.map_err(|e| e.to_string())?;
            return Ok(job.map(|job| (job, None)));
        };
        let connection = match reader {
            Some(connection) => connection,
            None => reader.insert(streams.reader().await.map_err(|e| e.to_string())?),
        };
        let Some(delivery) = streams
            .next(connection, worker, self.config.lease, self.config.poll_every)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        match self.store.claim_job_by_id(delivery.job, worker, lease_until).await.map_err(|e| e.to_string())? {
            ClaimById::Claimed(job) => Ok(Some((*job, Some(delivery)))),
            // Left pending: taken over later if that worker dies.
            ClaimById::Held => Ok(None),
            // A duplicate, or a retry handed over early: the delayed set or the sweep brings it back.
            ClaimById::NotDue | ClaimById::Gone => {
                streams.ack(&delivery).await.map_err(|e| e.to_string())?;
                Ok(None)
            }
        }
    }

    /// Runs one claimed job to its recorded end (or until the lease is lost).
    async fn execute(&self, worker: &str, job: Job) -> Settled {
        let events = Events::new(self.store.clone(), job.id);
        if job.attempts > job.max_attempts {
            let error = format!("gave up after {} attempts whose workers stopped responding", job.max_attempts);
            return self
                .finish(worker, &job, &events, JobStatus::Failed, None, Some(error), RunOutput::default())
                .await;
        }
        tracing::info!(job = %job.id, attempt = job.attempts, worker, "job started");
        // The claim recorded the `running` event (`Store::claim_job`).
        let lost = CancellationToken::new();
        let cancelled = CancellationToken::new();
        let renewing = self.renew(worker, job.id, lost.clone(), cancelled.clone());
        let run = self.runner.run(&job, &events);
        let outcome = tokio::select! {
            outcome = run => Some(outcome),
            () = lost.cancelled() => None,
            () = cancelled.cancelled() => {
                let output = RunOutput::default();
                let error = Some("cancelled by its owner".into());
                return self.finish(worker, &job, &events, JobStatus::Cancelled, None, error, output).await;
            }
            () = renewing => None,
        };
        let Some(outcome) = outcome else {
            tracing::warn!(job = %job.id, worker, "lost the job's lease; another worker will run it");
            return Settled::TakenOver;
        };
        match outcome {
            Ok(output) => {
                let result = Some(output.result.clone());
                self.finish(worker, &job, &events, JobStatus::Completed, result, None, output).await
            }
            Err(RunError::Retryable(error)) if job.attempts < job.max_attempts => {
                let delay = self.backoff(job.attempts);
                let run_after = switchboard_domain::now() + delay;
                match self.store.retry_job(job.id, worker, run_after, &error).await {
                    Ok(true) => {
                        tracing::warn!(job = %job.id, attempt = job.attempts, delay_ms = delay.as_millis() as u64, error = %error, "job attempt failed; retrying");
                        self.queue.retry_at(job.id, run_after).await;
                        events
                            .emit_durably(
                                "status",
                                json!({"status": "queued", "error": error, "retry_in_ms": delay.as_millis() as u64}),
                            )
                            .await;
                        Settled::Done
                    }
                    Ok(false) => Settled::TakenOver,
                    Err(e) => {
                        tracing::error!(job = %job.id, error = %e, "could not requeue the job; its lease will run out");
                        Settled::TakenOver
                    }
                }
            }
            Err(RunError::Retryable(error) | RunError::Permanent(error)) => {
                self.finish(worker, &job, &events, JobStatus::Failed, None, Some(error), RunOutput::default()).await
            }
        }
    }

    /// At shutdown: puts the interrupted job back in the queue at once, so another worker takes
    /// it without waiting for the lease to run out.
    async fn release(&self, worker: &str, job: uuid::Uuid) -> Settled {
        let note = "interrupted: its worker shut down";
        match self.store.retry_job(job, worker, switchboard_domain::now(), note).await {
            Ok(true) => {
                tracing::info!(job = %job, worker, "job released at shutdown");
                self.queue.enqueued(job).await;
                Events::new(self.store.clone(), job)
                    .emit_durably("status", json!({"status": "queued", "error": note}))
                    .await;
                Settled::Done
            }
            Ok(false) => Settled::TakenOver,
            Err(e) => {
                tracing::warn!(job = %job, error = %e, "could not release the job; its lease will run out");
                Settled::TakenOver
            }
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
    ) -> Settled {
        // What the job's subscribers are told, recorded with the outcome itself: the progress
        // not written yet, the result, the final status.
        let mut payload = json!({"status": status.as_str()});
        if let Some(error) = &error {
            payload["error"] = json!(error);
        }
        let (kinds, held): (Vec<String>, Vec<serde_json::Value>) = events.take_held().await.into_iter().unzip();
        let mut told: Vec<(&str, serde_json::Value)> = kinds.iter().map(String::as_str).zip(held).collect();
        if let Some(result) = &result {
            told.push(("result", result.clone()));
        }
        told.push(("status", payload));
        let outcome = JobOutcome {
            status,
            result,
            error,
            input_tokens: output.input_tokens,
            output_tokens: output.output_tokens,
            total_tokens: output.total_tokens,
        };
        // The database may be restarting: keep trying while the lease lasts.
        let deadline = tokio::time::Instant::now() + self.config.lease;
        loop {
            match self.store.finish_job(job.id, worker, &outcome, &told).await {
                Ok(true) => break,
                Ok(false) => {
                    tracing::warn!(job = %job.id, worker, "the job was taken over; this outcome is dropped");
                    return Settled::TakenOver;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(job = %job.id, error = %e, "recording the job's outcome failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "could not record the job's outcome");
                    return Settled::TakenOver;
                }
            }
        }
        tracing::info!(job = %job.id, status = status.as_str(), worker, "job finished");
        self.tally.count(status);
        Settled::Done
    }

    fn backoff(&self, attempt: i32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).max(0) as u32);
        self.config.backoff.saturating_mul(factor).min(self.config.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_following_text_is_held_as_one_event_and_other_events_keep_their_place() {
        let mut held = Vec::new();
        for (kind, payload) in [
            ("delta", json!({"text": "a"})),
            ("delta", json!({"text": "bc"})),
            ("tool_call", json!({"tool": "t", "args": {}})),
            ("delta", json!({"text": "d"})),
            ("delta", json!({"text": "e"})),
        ] {
            hold(&mut held, kind, payload);
        }
        let kinds: Vec<&str> = held.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["delta", "tool_call", "delta"]);
        assert_eq!((held[0].1["text"].as_str(), held[2].1["text"].as_str()), (Some("abc"), Some("de")));
        assert_eq!(held[1].1["tool"], "t", "a tool call is never merged");
    }
}
