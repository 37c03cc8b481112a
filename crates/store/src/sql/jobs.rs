//! The job queue: claims under leases, outcomes recorded only by the lease holder, progress
//! events, and worker heartbeats.

use chrono::{DateTime, Utc};
use switchboard_domain::{
    Cursor, Id, Job, JobEvent, JobOutcome, JobStatus, JobTotals, Page, PageRequest, QueueStats, WorkerInfo,
};

use super::{decode, first, keyset, paginate, single, window};
use crate::db::{Db, Record, Tx};
use crate::{params, Result, StoreError};

macro_rules! job_columns {
    () => {
        "id, user_id, kind, input, status, result, error, input_tokens, output_tokens, \
         total_tokens, attempts, max_attempts, cancel_requested, worker, created_at, started_at, completed_at"
    };
}
pub(super) use job_columns;

const GET: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE user_id = $1 AND id = $2");

pub(super) fn job(mut r: Record) -> Result<Job> {
    let id = r.id()?;
    let user_id = r.id()?;
    let kind = r.text()?;
    let input = r.json()?;
    let status = r.text()?;
    let status =
        JobStatus::parse(&status).ok_or_else(|| StoreError::Decode(format!("unknown job status {status:?}")))?;
    Ok(Job {
        id,
        user_id,
        kind,
        input,
        status,
        result: r.opt_json()?,
        error: r.opt_text()?,
        input_tokens: r.int()?,
        output_tokens: r.int()?,
        total_tokens: r.int()?,
        attempts: r.i32()?,
        max_attempts: r.i32()?,
        cancel_requested: r.bool()?,
        worker: r.opt_text()?,
        created_at: r.time()?,
        started_at: r.opt_time()?,
        completed_at: r.opt_time()?,
    })
}

pub(super) async fn get<D: Db>(db: &D, owner: Id, id: Id) -> Result<Option<Job>> {
    first(db.fetch(GET, &params![owner, id]).await?).map(job).transpose()
}

pub(super) async fn list<D: Db>(db: &D, owner: Id, status: Option<JobStatus>, page: PageRequest) -> Result<Page<Job>> {
    const SQL: &str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE user_id = $1 AND ($2 IS NULL OR status = $2) \
         AND ($3 IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
    );
    let (before, before_id) = keyset(&page);
    let (limit, offset) = window(&page);
    let rows = db.fetch(SQL, &params![owner, status.map(|s| s.as_str()), before, before_id, limit, offset]).await?;
    let items = decode(rows, job)?;
    Ok(paginate(items, page.limit, |j: &Job| Cursor { at: j.created_at, id: j.id }))
}

pub(super) async fn cancel<D: Db>(db: &D, owner: Id, id: Id) -> Result<Option<Job>> {
    let mut tx = db.begin().await?;
    // A queued job ends here (and is counted here); a running one is asked to stop, and its
    // worker records and counts the end.
    let ended = tx
        .execute(
            "UPDATE jobs SET status = 'cancelled', completed_at = $1, cancel_requested = TRUE \
             WHERE user_id = $2 AND id = $3 AND status = 'queued'",
            &params![switchboard_domain::now(), owner, id],
        )
        .await?;
    if ended > 0 {
        tx.execute("UPDATE job_totals SET finished = finished + 1 WHERE status = 'cancelled'", &[]).await?;
    } else {
        tx.execute(
            "UPDATE jobs SET cancel_requested = TRUE WHERE user_id = $1 AND id = $2 AND status = 'running'",
            &params![owner, id],
        )
        .await?;
    }
    let row = tx.fetch(GET, &params![owner, id]).await?;
    tx.commit().await?;
    first(row).map(job).transpose()
}

pub(super) async fn claim<D: Db>(db: &D, worker: &str, lease_until: DateTime<Utc>) -> Result<Option<Job>> {
    // First a job whose worker stopped renewing its lease (rare), else the oldest due one: each
    // a short walk down an index that stops at the first job it can take, the second run only
    // when the first finds none. (An `OR` of both made both databases gather and sort every
    // queued job to pick one, so a backlog slowed every claim.)
    let skip_locked = db.skip_locked();
    let update = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $1, lease_until = $2, \
           started_at = COALESCE(started_at, $3) \
         WHERE id = COALESCE(\
           (SELECT id FROM jobs WHERE status = 'running' AND lease_until < $3 \
              ORDER BY lease_until, id LIMIT 1 {skip_locked}), \
           (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= $3 \
              ORDER BY run_after, id LIMIT 1 {skip_locked}))"
    );
    let now = switchboard_domain::now();
    claim_noted(db, &update, &params![worker, lease_until, now], now).await
}

pub(super) async fn claim_by_id<D: Db>(
    db: &D,
    id: Id,
    worker: &str,
    lease_until: DateTime<Utc>,
) -> Result<crate::ClaimById> {
    const UPDATE: &str = "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $1, lease_until = $2, \
           started_at = COALESCE(started_at, $3) \
         WHERE id = $4 AND ((status = 'queued' AND run_after <= $3) OR (status = 'running' AND lease_until < $3))";
    let now = switchboard_domain::now();
    if let Some(job) = claim_noted(db, UPDATE, &params![worker, lease_until, now, id], now).await? {
        return Ok(crate::ClaimById::Claimed(Box::new(job)));
    }
    let Some(mut row) = first(db.fetch("SELECT status FROM jobs WHERE id = $1", &params![id]).await?) else {
        return Ok(crate::ClaimById::Gone);
    };
    Ok(match row.text()?.as_str() {
        "running" => crate::ClaimById::Held,
        "queued" => crate::ClaimById::NotDue,
        _ => crate::ClaimById::Gone,
    })
}

/// Runs a claiming `UPDATE` (parameters $1 worker, $2 lease end, $3 now) and records the claimed
/// job's `running` status event with it — in the same statement where the database allows it,
/// else in one transaction. A job past its attempt limit gets no such event: its worker records
/// it as failed without running it. The commit is relaxed: a claim a crash loses puts the job
/// back in the queue, as the crash of its worker would.
async fn claim_noted<D: Db>(
    db: &D,
    update: &str,
    params: &[crate::db::Param<'_>],
    now: DateTime<Utc>,
) -> Result<Option<Job>> {
    if db.writes_in_with() {
        let sql = format!(
            "WITH claimed AS ({update} RETURNING {columns}), \
             noted AS (INSERT INTO job_events (job_id, seq, kind, payload, at) \
               SELECT id, COALESCE((SELECT MAX(seq) FROM job_events WHERE job_id = claimed.id), 0) + 1, 'status', \
                 jsonb_build_object('status', 'running', 'attempt', attempts, 'worker', worker), $3 \
               FROM claimed WHERE attempts <= max_attempts) \
             SELECT {columns} FROM claimed",
            columns = job_columns!()
        );
        return first(db.execute_returning_relaxed(&sql, params).await?).map(job).transpose();
    }
    let mut tx = db.begin().await?;
    let claimed =
        first(tx.fetch(&format!("{update} RETURNING {}", job_columns!()), params).await?).map(job).transpose()?;
    if let Some(job) = claimed.as_ref().filter(|j| j.attempts <= j.max_attempts) {
        let event = serde_json::json!({"status": "running", "attempt": job.attempts, "worker": job.worker});
        tx.fetch(APPEND_EVENT, &params![job.id, "status", &event, now]).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

pub(super) async fn waiting<D: Db>(db: &D, limit: i64) -> Result<Vec<(Id, DateTime<Utc>)>> {
    let rows = db
        .fetch(
            // Each half reads its own partial index (an `OR` would read the whole table).
            "SELECT id, run_after FROM (\
               SELECT id, run_after FROM jobs WHERE status = 'queued' \
               UNION ALL SELECT id, run_after FROM jobs WHERE status = 'running' AND lease_until < $1) AS w \
             ORDER BY run_after, id LIMIT $2",
            &params![switchboard_domain::now(), limit],
        )
        .await?;
    decode(rows, |mut r| Ok((r.id()?, r.time()?)))
}

pub(super) async fn renew_lease<D: Db>(
    db: &D,
    id: Id,
    worker: &str,
    lease_until: DateTime<Utc>,
) -> Result<Option<bool>> {
    let rows = db
        .execute_returning(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND worker = $3 AND status = 'running' \
             RETURNING cancel_requested",
            &params![lease_until, id, worker],
        )
        .await?;
    first(rows).map(|mut r| r.bool()).transpose()
}

pub(super) async fn finish<D: Db>(
    db: &D,
    id: Id,
    worker: &str,
    outcome: &JobOutcome,
    events: &[(&str, serde_json::Value)],
) -> Result<bool> {
    const UPDATE: &str = "UPDATE jobs SET status = $1, result = $2, error = $3, input_tokens = input_tokens + $4, \
           output_tokens = output_tokens + $5, total_tokens = total_tokens + $6, completed_at = $7, \
           lease_until = NULL \
         WHERE id = $8 AND worker = $9 AND status = 'running'";
    let now = switchboard_domain::now();
    let mut values = params![
        outcome.status.as_str(),
        outcome.result.as_ref(),
        outcome.error.as_deref(),
        outcome.input_tokens,
        outcome.output_tokens,
        outcome.total_tokens,
        now,
        id,
        worker
    ]
    .to_vec();
    if db.writes_in_with() && !events.is_empty() {
        // One statement: the outcome and its events, numbered after the job's last event.
        let mut rows = Vec::with_capacity(events.len());
        for (n, (kind, payload)) in events.iter().enumerate() {
            rows.push(format!("({}, ${}::text, ${}::jsonb)", n + 1, values.len() + 1, values.len() + 2));
            values.push(crate::db::Param::from(*kind));
            values.push(crate::db::Param::from(payload));
        }
        let sql = format!(
            "WITH done AS ({UPDATE} RETURNING id), \
             noted AS (INSERT INTO job_events (job_id, seq, kind, payload, at) \
               SELECT done.id, (SELECT COALESCE(MAX(seq), 0) FROM job_events WHERE job_id = done.id) + e.n, \
                 e.kind, e.payload, $7 \
               FROM done, (VALUES {}) AS e(n, kind, payload)) \
             SELECT id FROM done",
            rows.join(", ")
        );
        return Ok(!db.execute_returning(&sql, &values).await?.is_empty());
    }
    let mut tx = db.begin().await?;
    if tx.execute(UPDATE, &values).await? == 0 {
        return Ok(false);
    }
    for (kind, payload) in events {
        tx.fetch(APPEND_EVENT, &params![id, *kind, payload, now]).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn retry<D: Db>(db: &D, id: Id, worker: &str, run_after: DateTime<Utc>, error: &str) -> Result<bool> {
    let changed = db
        .execute(
            "UPDATE jobs SET status = 'queued', run_after = $1, error = $2, lease_until = NULL \
             WHERE id = $3 AND worker = $4 AND status = 'running'",
            &params![run_after, error, id, worker],
        )
        .await?;
    Ok(changed > 0)
}

const APPEND_EVENT: &str = "INSERT INTO job_events (job_id, seq, kind, payload, at) \
     SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM job_events WHERE job_id = $1 RETURNING seq";

pub(super) async fn append_event<D: Db>(
    db: &D,
    job: Id,
    kind: &str,
    payload: &serde_json::Value,
    durable: bool,
) -> Result<i64> {
    let params = params![job, kind, payload, switchboard_domain::now()];
    let rows = if durable {
        db.execute_returning(APPEND_EVENT, &params).await?
    } else {
        db.execute_returning_relaxed(APPEND_EVENT, &params).await?
    };
    single(rows)?.int()
}

pub(super) async fn events<D: Db>(db: &D, owner: Id, job: Id, after_seq: i64) -> Result<Option<Vec<JobEvent>>> {
    let owned = db.fetch("SELECT id FROM jobs WHERE user_id = $1 AND id = $2", &params![owner, job]).await?;
    if owned.is_empty() {
        return Ok(None);
    }
    let rows = db
        .fetch(
            "SELECT seq, kind, payload, at FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq",
            &params![job, after_seq],
        )
        .await?;
    decode(rows, |mut r| Ok(JobEvent { seq: r.int()?, kind: r.text()?, payload: r.json()?, at: r.time()? })).map(Some)
}

pub(super) async fn heartbeat<D: Db>(db: &D, worker: &str, running: i64) -> Result<()> {
    db.execute(
        "INSERT INTO workers (id, running, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (id) DO UPDATE SET running = excluded.running, heartbeat_at = excluded.heartbeat_at",
        &params![worker, running, switchboard_domain::now()],
    )
    .await?;
    Ok(())
}

pub(super) async fn remove_worker<D: Db>(db: &D, worker: &str) -> Result<()> {
    db.execute("DELETE FROM workers WHERE id = $1", &params![worker]).await?;
    Ok(())
}

pub(super) async fn stats<D: Db>(db: &D, alive_since: DateTime<Utc>) -> Result<QueueStats> {
    // The queue from the claim's partial indexes, the last hour's failures from the failures'
    // own, the rest from the totals: however long the history, nothing here reads it all.
    let hour_ago = switchboard_domain::now() - chrono::Duration::hours(1);
    let mut counts = single(
        db.fetch(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'queued'), \
               (SELECT COUNT(*) FROM jobs WHERE status = 'running'), \
               (SELECT finished FROM job_totals WHERE status = 'completed'), \
               (SELECT finished FROM job_totals WHERE status = 'failed'), \
               (SELECT finished FROM job_totals WHERE status = 'cancelled'), \
               (SELECT COUNT(*) FROM jobs WHERE status = 'failed' AND completed_at >= $1)",
            &params![hour_ago],
        )
        .await?,
    )?;
    let mut stats = QueueStats {
        queued: counts.int()?,
        running: counts.int()?,
        completed: counts.int()?,
        failed: counts.int()?,
        cancelled: counts.int()?,
        failed_last_hour: counts.int()?,
        ..QueueStats::default()
    };
    let workers = db
        .fetch(
            "SELECT id, running, started_at, heartbeat_at FROM workers WHERE heartbeat_at >= $1 ORDER BY id",
            &params![alive_since],
        )
        .await?;
    stats.workers = decode(workers, |mut r| {
        Ok(WorkerInfo { id: r.text()?, running: r.int()?, started_at: r.time()?, heartbeat_at: r.time()? })
    })?;
    Ok(stats)
}

pub(super) async fn add_totals<D: Db>(db: &D, finished: &JobTotals) -> Result<()> {
    db.execute(
        "UPDATE job_totals SET finished = finished + CASE status \
           WHEN 'completed' THEN $1 WHEN 'failed' THEN $2 ELSE $3 END",
        &params![finished.completed, finished.failed, finished.cancelled],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_finished<D: Db>(db: &D, created_before: DateTime<Utc>, limit: i64) -> Result<u64> {
    // Ids are time-ordered, so the primary key walks the oldest jobs first; their events go
    // with them (`ON DELETE CASCADE`).
    let sql = format!(
        "DELETE FROM jobs WHERE id IN (\
           SELECT id FROM jobs WHERE id < $1 AND status IN ('completed', 'failed', 'cancelled') \
           ORDER BY id LIMIT $2 {})",
        db.skip_locked()
    );
    db.execute(&sql, &params![switchboard_domain::first_id_at(created_before), limit]).await
}
