use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A task on a user's list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Task {
    pub id: Uuid,
    /// Short per-user number (1, 2, 3…) people use in chat: "complete task 3". Never reused.
    pub number: i64,
    pub title: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: Priority,
    pub due_date: Option<NaiveDate>,
    /// The task this one is a subtask of.
    pub parent_id: Option<Uuid>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Completed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        match s {
            "pending" => Some(TaskStatus::Pending),
            "in_progress" => Some(TaskStatus::InProgress),
            "completed" => Some(TaskStatus::Completed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "low" => Some(Priority::Low),
            "medium" => Some(Priority::Medium),
            "high" => Some(Priority::High),
            _ => None,
        }
    }
}

/// How a task is named: by id, or by its per-user number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRef {
    Id(Uuid),
    Number(i64),
}

impl TaskRef {
    /// Reads `"3"`, `"#3"` or a UUID.
    pub fn parse(s: &str) -> Option<TaskRef> {
        let s = s.trim();
        let digits = s.strip_prefix('#').unwrap_or(s);
        if let Ok(n) = digits.parse::<i64>() {
            return (n > 0).then_some(TaskRef::Number(n));
        }
        Uuid::try_parse(s).ok().map(TaskRef::Id)
    }

    /// The two nullable query parameters (`id`, `number`) that select this task.
    pub fn columns(self) -> (Option<Uuid>, Option<i64>) {
        match self {
            TaskRef::Id(id) => (Some(id), None),
            TaskRef::Number(n) => (None, Some(n)),
        }
    }
}

/// A task about to be created (already validated).
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub due_date: Option<NaiveDate>,
    pub parent_id: Option<Uuid>,
}

/// Changes to a task; `None` leaves a field as it is, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    pub due_date: Option<Option<NaiveDate>>,
}

/// Which tasks a list returns.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    /// Case-insensitive text searched in titles and descriptions.
    pub search: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_refs_read_numbers_hashes_and_ids() {
        assert_eq!(TaskRef::parse("3"), Some(TaskRef::Number(3)));
        assert_eq!(TaskRef::parse(" #12 "), Some(TaskRef::Number(12)));
        assert_eq!(TaskRef::parse("0"), None);
        assert_eq!(TaskRef::parse("-1"), None);
        assert_eq!(TaskRef::parse("abc"), None);
        let id = Uuid::new_v4();
        assert_eq!(TaskRef::parse(&id.to_string()), Some(TaskRef::Id(id)));
    }
}
