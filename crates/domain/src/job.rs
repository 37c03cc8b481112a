//! Background jobs: an agent run that does not hold an HTTP request open.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    /// Completed, failed or cancelled: nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// One job as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `chat` (a message for the assistant) or `agent` (a configured agent's run).
    pub kind: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    pub status: JobStatus,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The owner asked for it to stop while it ran.
    pub cancel_requested: bool,
    /// The worker running it (or that ran it last).
    pub worker: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// What enqueuing a job takes.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub input: serde_json::Value,
    pub max_attempts: i32,
}

/// How a run ended, as a worker records it.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub status: JobStatus,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
}

/// One step of a job's progress, numbered from 1 per job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JobEvent {
    pub seq: i64,
    /// `status`, `tool_call`, `tool_result`, `delta`, `result` or `error`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
}

/// The queue at a glance, for operators.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct QueueStats {
    /// Jobs waiting for a worker (retries waiting for their time among them).
    pub queued: i64,
    /// Jobs a worker holds.
    pub running: i64,
    /// Jobs that ever finished this way, deleted ones included: a monitoring figure. Each worker
    /// process adds what it finished within a tenth of a second; one killed without warning loses
    /// that last tenth, and a database connection cut in the middle of a write may count the jobs
    /// finishing at that moment twice or not at all.
    pub completed: i64,
    /// As `completed`.
    pub failed: i64,
    /// As `completed`.
    pub cancelled: i64,
    /// Jobs that failed in the last hour (of those not deleted yet).
    pub failed_last_hour: i64,
    pub workers: Vec<WorkerInfo>,
}

/// Jobs finished, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobTotals {
    pub completed: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// A worker and when it last said it was alive.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    pub running: i64,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub heartbeat_at: DateTime<Utc>,
}
