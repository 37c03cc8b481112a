//! The task service: one place that validates task input and applies it to the store, so the
//! REST routes, the MCP tools and chat commands behave identically.

use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};
use switchboard_domain::{
    Id, NewTask, Page, PageRequest, Priority, Task, TaskChanges, TaskFilter, TaskRef, TaskStatus,
};
use switchboard_store::{Store, StoreError};
use utoipa::ToSchema;

/// Longest task title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest task description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// Why a task operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The input is not acceptable; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// No such task for this user (another user's task is not found either).
    #[error("task {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Input of "add a task".
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTask {
    /// What to do (1–200 characters).
    pub title: String,
    /// Details.
    #[serde(default)]
    pub description: Option<String>,
    /// Due date, `YYYY-MM-DD`.
    #[serde(default)]
    pub due_date: Option<NaiveDate>,
    /// `low`, `medium` (default) or `high`.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Make this a subtask of that task (its number, like `3`, or its id).
    #[serde(default)]
    pub parent: Option<String>,
}

/// Input of "change a task": absent fields stay as they are; `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub status: Option<TaskStatus>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<NaiveDate>)]
    pub due_date: Option<Option<NaiveDate>>,
}

/// A field that is present (even as `null`) becomes `Some(value)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Task operations for one store.
#[derive(Clone)]
pub struct TaskService {
    store: Arc<dyn Store>,
}

impl TaskService {
    pub fn new(store: Arc<dyn Store>) -> TaskService {
        TaskService { store }
    }

    pub async fn add(&self, owner: Id, input: AddTask) -> Result<Task, TaskError> {
        let title = title(&input.title)?;
        let description = description(input.description)?;
        let parent_id = match input.parent.as_deref() {
            None => None,
            Some(text) => Some(self.resolve(owner, text).await?.id),
        };
        let new = NewTask {
            title,
            description,
            priority: input.priority.unwrap_or_default(),
            due_date: input.due_date,
            parent_id,
        };
        self.store.create_task(owner, new).await?.ok_or_else(|| TaskError::NotFound(input.parent.unwrap_or_default()))
    }

    pub async fn list(&self, owner: Id, filter: TaskFilter, page: PageRequest) -> Result<Page<Task>, TaskError> {
        if let Some(search) = &filter.search {
            reject_nul(search)?;
        }
        Ok(self.store.list_tasks(owner, &filter, page).await?)
    }

    /// Finds a task by its number (`3`, `#3`) or id.
    pub async fn get(&self, owner: Id, task: &str) -> Result<Task, TaskError> {
        self.resolve(owner, task).await
    }

    pub async fn update(&self, owner: Id, task: &str, input: UpdateTask) -> Result<Task, TaskError> {
        let reference = reference(task)?;
        let changes = TaskChanges {
            title: input.title.as_deref().map(title).transpose()?,
            description: input.description.map(description).transpose()?,
            status: input.status,
            priority: input.priority,
            due_date: input.due_date,
        };
        let nothing = changes.title.is_none()
            && changes.description.is_none()
            && changes.status.is_none()
            && changes.priority.is_none()
            && changes.due_date.is_none();
        if nothing {
            return Err(TaskError::Invalid(
                "nothing to change: give a title, description, status, priority or due_date".into(),
            ));
        }
        self.store.update_task(owner, reference, changes).await?.ok_or_else(|| TaskError::NotFound(task.to_owned()))
    }

    pub async fn complete(&self, owner: Id, task: &str) -> Result<Task, TaskError> {
        let changes = TaskChanges { status: Some(TaskStatus::Completed), ..TaskChanges::default() };
        self.store
            .update_task(owner, reference(task)?, changes)
            .await?
            .ok_or_else(|| TaskError::NotFound(task.to_owned()))
    }

    /// Deletes a task and returns what it was.
    pub async fn delete(&self, owner: Id, task: &str) -> Result<Task, TaskError> {
        let found = self.resolve(owner, task).await?;
        if !self.store.delete_task(owner, TaskRef::Id(found.id)).await? {
            return Err(TaskError::NotFound(task.to_owned()));
        }
        Ok(found)
    }

    async fn resolve(&self, owner: Id, task: &str) -> Result<Task, TaskError> {
        self.store.get_task(owner, reference(task)?).await?.ok_or_else(|| TaskError::NotFound(task.to_owned()))
    }
}

fn reference(task: &str) -> Result<TaskRef, TaskError> {
    TaskRef::parse(task).ok_or_else(|| TaskError::Invalid(format!("{task:?} is not a task number or id")))
}

fn reject_nul(text: &str) -> Result<(), TaskError> {
    if text.contains('\0') {
        return Err(TaskError::Invalid("text must not contain NUL characters".into()));
    }
    Ok(())
}

fn title(raw: &str) -> Result<String, TaskError> {
    let title = raw.trim();
    reject_nul(title)?;
    if title.is_empty() {
        return Err(TaskError::Invalid("the title is empty".into()));
    }
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(TaskError::Invalid(format!("the title has {chars} characters; at most {MAX_TITLE_CHARS}")));
    }
    Ok(title.to_owned())
}

fn description(raw: Option<String>) -> Result<Option<String>, TaskError> {
    let Some(text) = raw else { return Ok(None) };
    reject_nul(&text)?;
    let chars = text.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(TaskError::Invalid(format!(
            "the description has {chars} characters; at most {MAX_DESCRIPTION_CHARS}"
        )));
    }
    Ok((!text.trim().is_empty()).then_some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_must_be_short_and_present() {
        assert_eq!(title("  buy milk ").unwrap(), "buy milk");
        assert!(title("   ").is_err());
        assert!(title(&"x".repeat(MAX_TITLE_CHARS + 1)).is_err());
        assert!(title("a\0b").is_err());
    }

    #[test]
    fn update_input_tells_absent_from_null() {
        let absent: UpdateTask = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.description, None);
        let cleared: UpdateTask = serde_json::from_str(r#"{"description": null}"#).unwrap();
        assert_eq!(cleared.description, Some(None));
        let set: UpdateTask = serde_json::from_str(r#"{"description": "d"}"#).unwrap();
        assert_eq!(set.description, Some(Some("d".into())));
        assert!(serde_json::from_str::<UpdateTask>(r#"{"owner_id": "x"}"#).is_err());
    }
}
