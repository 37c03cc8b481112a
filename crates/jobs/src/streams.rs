//! The Redis Streams queue backend: jobs are handed to workers through a stream with a consumer
//! group; the job record, its lease and its outcome stay in the database.
//!
//! - Enqueue writes the job to the database (with the user's message, in one transaction), then
//!   adds its id to the stream. Workers block on `XREADGROUP`, so an idle one starts at once.
//! - A delivered id is claimed in the database (`claim_job_by_id`), which stays the one arbiter:
//!   a duplicate or stale delivery finds the job running, finished or not due, and is acknowledged
//!   (or, while another worker holds the job, left pending). An entry is acknowledged when its
//!   job's outcome is recorded.
//! - A worker that dies leaves its entry pending; once the entry has been idle for a lease,
//!   another worker takes it over with `XAUTOCLAIM` and claims the job when its lease ran out.
//! - Retries wait in a sorted set (due time as score) and are moved to the stream when due.
//! - The database is the source of truth: when the stream holds nothing (no backlog, nothing
//!   pending) while the database still has waiting jobs — an id lost because Redis was down at
//!   enqueue, or Redis restarted without persistence — a sweep adds them again. Duplicates are
//!   harmless, since only the database claim decides who runs a job.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamInfoGroupsReply, StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands;
use uuid::Uuid;

/// The consumer group every worker reads in.
const GROUP: &str = "workers";
/// Field of a stream entry holding the job id.
const FIELD: &str = "job";

/// Moves every due job id of the delayed set (KEYS[1]) to the stream (KEYS[2]) in one step, so
/// two processes never both move one. ARGV[1]: now, in ms. Returns how many moved.
const MOVE_DUE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', job)
  redis.call('ZREM', KEYS[1], job)
end
return #due
"#;

/// One delivery of a job id to a worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The stream entry, acknowledged when done with.
    pub entry: String,
    pub job: Uuid,
}

/// How much the stream holds: entries not delivered yet, and delivered but not acknowledged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backlog {
    pub waiting: u64,
    pub pending: u64,
    pub delayed: u64,
}

/// The queue's keys on one Redis server.
pub struct RedisStreams {
    client: redis::Client,
    redis: ConnectionManager,
    stream: String,
    delayed: String,
    sweep_lock: String,
    move_due: redis::Script,
}

impl RedisStreams {
    /// Connects and makes sure the stream and its consumer group exist. Keys start with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> redis::RedisResult<RedisStreams> {
        let client = redis::Client::open(url)?;
        let redis = ConnectionManager::new(client.clone()).await?;
        let streams = RedisStreams {
            client,
            redis,
            stream: format!("{prefix}:jobs"),
            delayed: format!("{prefix}:jobs:delayed"),
            sweep_lock: format!("{prefix}:jobs:sweep"),
            move_due: redis::Script::new(MOVE_DUE),
        };
        streams.ensure_group().await?;
        Ok(streams)
    }

    async fn ensure_group(&self) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        match redis.xgroup_create_mkstream::<_, _, _, ()>(&self.stream, GROUP, "0").await {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// The stream's key.
    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    /// Hands the job to a worker.
    pub async fn publish(&self, job: Uuid) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        redis.xadd::<_, _, _, _, ()>(&self.stream, "*", &[(FIELD, job.to_string())]).await
    }

    /// Hands the job to a worker once `at` has come.
    pub async fn schedule(&self, job: Uuid, at: DateTime<Utc>) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        redis.zadd::<_, _, _, ()>(&self.delayed, job.to_string(), at.timestamp_millis()).await
    }

    /// Moves the retries that are due to the stream; how many moved.
    pub async fn move_due(&self) -> redis::RedisResult<u64> {
        let mut redis = self.redis.clone();
        self.move_due
            .key(&self.delayed)
            .key(&self.stream)
            .arg(switchboard_domain::now().timestamp_millis())
            .invoke_async(&mut redis)
            .await
    }

    /// A connection of one worker slot's own, for the blocking reads (a blocked read would hold
    /// up every other command on a shared connection).
    pub async fn reader(&self) -> redis::RedisResult<MultiplexedConnection> {
        self.client.get_multiplexed_async_connection().await
    }

    /// The next job id for `consumer`: first an entry another consumer left pending for longer
    /// than `stale_after` (its worker died), then a new one, waiting up to `block` for it.
    pub async fn next(
        &self,
        reader: &mut MultiplexedConnection,
        consumer: &str,
        stale_after: Duration,
        block: Duration,
    ) -> redis::RedisResult<Option<Delivery>> {
        let reclaimed: StreamAutoClaimReply = reader
            .xautoclaim_options(
                &self.stream,
                GROUP,
                consumer,
                stale_after.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(1),
            )
            .await?;
        if let Some(entry) = reclaimed.claimed.into_iter().next() {
            return Ok(Some(delivery(entry)));
        }
        let options = StreamReadOptions::default().group(GROUP, consumer).count(1).block(block.as_millis() as usize);
        let read: Option<StreamReadReply> = reader.xread_options(&[&self.stream], &[">"], &options).await?;
        Ok(read.and_then(|r| r.keys.into_iter().next()).and_then(|k| k.ids.into_iter().next()).map(delivery))
    }

    /// Done with a delivery: acknowledged and removed from the stream.
    pub async fn ack(&self, delivery: &Delivery) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        redis.xack::<_, _, _, ()>(&self.stream, GROUP, &[&delivery.entry]).await?;
        redis.xdel::<_, _, ()>(&self.stream, &[&delivery.entry]).await
    }

    /// What the stream holds for the workers.
    pub async fn backlog(&self) -> redis::RedisResult<Backlog> {
        let mut redis = self.redis.clone();
        let groups: StreamInfoGroupsReply = redis.xinfo_groups(&self.stream).await?;
        let delayed: u64 = redis.zcard(&self.delayed).await?;
        let group = groups.groups.into_iter().find(|g| g.name == GROUP).unwrap_or_default();
        Ok(Backlog { waiting: group.lag.unwrap_or(0) as u64, pending: group.pending as u64, delayed })
    }

    /// Takes the right to sweep for `ttl`; only one process sweeps at a time.
    pub async fn take_sweep(&self, holder: &str, ttl: Duration) -> redis::RedisResult<bool> {
        let mut redis = self.redis.clone();
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let taken: Option<String> = redis.set_options(&self.sweep_lock, holder, options).await?;
        Ok(taken.is_some())
    }

    /// Forgets a consumer that stops (its pending entries, if any, stay for others to take over).
    pub async fn remove_consumer(&self, consumer: &str) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let pending: redis::streams::StreamPendingCountReply =
            redis.xpending_consumer_count(&self.stream, GROUP, "-", "+", 1, consumer).await?;
        if pending.ids.is_empty() {
            redis.xgroup_delconsumer::<_, _, _, ()>(&self.stream, GROUP, consumer).await?;
        }
        Ok(())
    }

    /// Succeeds when Redis answers.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        redis::cmd("PING").query_async::<()>(&mut redis).await
    }
}

/// A stream entry as a delivery; an entry without a readable job id names the nil id, which the
/// database does not know (so it is acknowledged as gone).
fn delivery(entry: redis::streams::StreamId) -> Delivery {
    let job = entry
        .map
        .get(FIELD)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .and_then(|s| Uuid::parse_str(&s).ok())
        .unwrap_or_default();
    Delivery { entry: entry.id, job }
}
