//! The built-in tasks MCP server: `add_task`, `list_tasks`, `complete_task`, `update_task` and
//! `delete_task` over the same [`TaskService`] as the REST routes.
//!
//! Every call acts for one user: the user fixed at construction (stdio, in-process), or the
//! signed-in [`Principal`] that the HTTP layer put in the request (`/mcp`). Failures the caller
//! can act on — unknown task, missing or invalid argument — are tool results with `isError`,
//! never protocol errors, so a model sees the message and can correct itself.

use chrono::NaiveDate;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, InitializeResult, ServerCapabilities};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{Id, PageRequest, Principal, Priority, Task, TaskFilter, TaskStatus};
use switchboard_tasks::{AddTask, TaskError, TaskService, UpdateTask};

/// A task named by its number (`3`) or id.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum TaskName {
    Number(i64),
    Text(String),
}

impl TaskName {
    fn text(&self) -> String {
        match self {
            TaskName::Number(n) => n.to_string(),
            TaskName::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[schemars(extend("required" = ["title"]))]
pub struct AddTaskArgs {
    /// What to do, in a few words (1–200 characters).
    #[serde(default)]
    pub title: Option<String>,
    /// Optional details.
    #[serde(default)]
    pub description: Option<String>,
    /// Optional due date, YYYY-MM-DD.
    #[serde(default)]
    pub due_date: Option<String>,
    /// Optional priority: "low", "medium" (default) or "high".
    #[serde(default)]
    pub priority: Option<String>,
    /// Optional parent task (its number or id) to make this a subtask.
    #[serde(default)]
    pub parent: Option<TaskName>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct ListTasksArgs {
    /// Only tasks with this status: "pending", "in_progress" or "completed".
    #[serde(default)]
    pub status: Option<String>,
    /// Only tasks whose title or description contains this text (case-insensitive).
    #[serde(default)]
    pub search: Option<String>,
    /// How many tasks to return, 1–100 (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of a previous call, for the next page.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[schemars(extend("required" = ["task"]))]
pub struct TaskArgs {
    /// The task's number (as shown in lists, e.g. 3) or id.
    #[serde(default)]
    pub task: Option<TaskName>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[schemars(extend("required" = ["task"]))]
pub struct UpdateTaskArgs {
    /// The task's number (e.g. 3) or id.
    #[serde(default)]
    pub task: Option<TaskName>,
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New description ("" clears it).
    #[serde(default)]
    pub description: Option<String>,
    /// New status: "pending", "in_progress" or "completed".
    #[serde(default)]
    pub status: Option<String>,
    /// New priority: "low", "medium" or "high".
    #[serde(default)]
    pub priority: Option<String>,
    /// New due date, YYYY-MM-DD ("" clears it).
    #[serde(default)]
    pub due_date: Option<String>,
}

/// The tasks MCP server for one store.
#[derive(Clone)]
pub struct TasksServer {
    tasks: TaskService,
    user: Option<Id>,
    tool_router: ToolRouter<TasksServer>,
}

/// A failure reported to the caller as a tool error.
struct ToolFailure(String);

impl From<TaskError> for ToolFailure {
    fn from(e: TaskError) -> ToolFailure {
        match e {
            TaskError::Invalid(message) => ToolFailure(message),
            TaskError::NotFound(task) => ToolFailure(format!("task {task} not found")),
            other => {
                tracing::error!(error = %other, "task tool failed");
                ToolFailure("the task store is unavailable; try again shortly".into())
            }
        }
    }
}

type ToolOutcome = Result<CallToolResult, ToolFailure>;

fn finish_in_process(outcome: ToolOutcome) -> CallToolResult {
    outcome.unwrap_or_else(|ToolFailure(message)| CallToolResult::error(vec![ContentBlock::text(message)]))
}

fn finish(outcome: ToolOutcome) -> Result<CallToolResult, ErrorData> {
    Ok(outcome.unwrap_or_else(|ToolFailure(message)| CallToolResult::error(vec![ContentBlock::text(message)])))
}

/// A result with a sentence for people and the data for programs.
fn result(summary: String, data: serde_json::Value) -> CallToolResult {
    let mut result = CallToolResult::structured(data);
    result.content = vec![ContentBlock::text(summary)];
    result
}

fn describe(task: &Task) -> String {
    let mut line = format!("#{} {} [{}]", task.number, task.title, task.status.as_str());
    if task.priority != Priority::Medium {
        line.push_str(&format!(" ({} priority)", task.priority.as_str()));
    }
    if let Some(due) = task.due_date {
        line.push_str(&format!(" due {due}"));
    }
    line
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, ToolFailure> {
    value.ok_or_else(|| ToolFailure(format!("missing argument: {name}")))
}

fn parse_priority(text: &str) -> Result<Priority, ToolFailure> {
    Priority::parse(text.trim())
        .ok_or_else(|| ToolFailure(format!("priority must be low, medium or high, not {text:?}")))
}

fn parse_status(text: &str) -> Result<TaskStatus, ToolFailure> {
    TaskStatus::parse(text.trim())
        .ok_or_else(|| ToolFailure(format!("status must be pending, in_progress or completed, not {text:?}")))
}

fn parse_date(text: &str) -> Result<NaiveDate, ToolFailure> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| ToolFailure(format!("due_date must be YYYY-MM-DD, not {text:?}")))
}

/// `""` clears, anything else is parsed.
fn clearable<T>(
    text: Option<String>,
    parse: impl Fn(&str) -> Result<T, ToolFailure>,
) -> Result<Option<Option<T>>, ToolFailure> {
    match text {
        None => Ok(None),
        Some(t) if t.trim().is_empty() => Ok(Some(None)),
        Some(t) => parse(&t).map(|v| Some(Some(v))),
    }
}

#[tool_router(router = tool_router)]
impl TasksServer {
    /// A server whose user comes from each request's signed-in principal (for `/mcp`).
    pub fn for_signed_in_users(tasks: TaskService) -> TasksServer {
        TasksServer { tasks, user: None, tool_router: Self::tool_router() }
    }

    /// A server acting for one user (stdio, in-process).
    pub fn for_user(tasks: TaskService, user: Id) -> TasksServer {
        TasksServer { tasks, user: Some(user), tool_router: Self::tool_router() }
    }

    /// The tools this server offers, as MCP describes them.
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        self.tool_router.list_all()
    }

    /// Calls a tool for `user` in-process: the same code as over MCP, without the JSON-RPC hop.
    pub async fn call_for(&self, user: Id, name: &str, arguments: serde_json::Value) -> CallToolResult {
        fn args<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ToolFailure> {
            let value = if value.is_null() { json!({}) } else { value };
            serde_json::from_value(value).map_err(|e| ToolFailure(format!("invalid arguments: {e}")))
        }
        let outcome = match name {
            "add_task" => async { self.run_add(user, args(arguments)?).await }.await,
            "list_tasks" => async { self.run_list(user, args(arguments)?).await }.await,
            "complete_task" => async { self.run_complete(user, args(arguments)?).await }.await,
            "update_task" => async { self.run_update(user, args(arguments)?).await }.await,
            "delete_task" => async { self.run_delete(user, args(arguments)?).await }.await,
            other => Err(ToolFailure(format!("unknown tool {other}"))),
        };
        finish_in_process(outcome)
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Id, ToolFailure> {
        if let Some(user) = self.user {
            return Ok(user);
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .map(Principal::user_id)
            .ok_or_else(|| ToolFailure("not signed in".into()))
    }

    #[tool(description = "Add a task to the user's list. Returns the new task with its number.")]
    async fn add_task(
        &self,
        Parameters(args): Parameters<AddTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        finish(async { self.run_add(self.caller(&context)?, args).await }.await)
    }

    #[tool(
        description = "List the user's tasks, optionally filtered by status or text. Paginated: pass next_cursor back as cursor for more."
    )]
    async fn list_tasks(
        &self,
        Parameters(args): Parameters<ListTasksArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        finish(async { self.run_list(self.caller(&context)?, args).await }.await)
    }

    #[tool(description = "Mark a task as completed.")]
    async fn complete_task(
        &self,
        Parameters(args): Parameters<TaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        finish(async { self.run_complete(self.caller(&context)?, args).await }.await)
    }

    #[tool(description = "Change a task's title, description, status, priority or due date.")]
    async fn update_task(
        &self,
        Parameters(args): Parameters<UpdateTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        finish(async { self.run_update(self.caller(&context)?, args).await }.await)
    }

    #[tool(description = "Delete a task. Confirm with the user first when the request is ambiguous.")]
    async fn delete_task(
        &self,
        Parameters(args): Parameters<TaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        finish(async { self.run_delete(self.caller(&context)?, args).await }.await)
    }
}

/// The tools' work, for one user, whichever way the call arrived.
impl TasksServer {
    async fn run_add(&self, user: Id, args: AddTaskArgs) -> ToolOutcome {
        let input = AddTask {
            title: required(args.title, "title")?,
            description: args.description,
            due_date: args.due_date.as_deref().map(parse_date).transpose()?,
            priority: args.priority.as_deref().map(parse_priority).transpose()?,
            parent: args.parent.map(|p| p.text()),
        };
        let task = self.tasks.add(user, input).await?;
        Ok(result(format!("Added task {}", describe(&task)), json!({ "task": task })))
    }

    async fn run_list(&self, user: Id, args: ListTasksArgs) -> ToolOutcome {
        let cursor = match args.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                switchboard_domain::Cursor::decode(c).ok_or_else(|| ToolFailure("the cursor is not valid".into()))?,
            ),
        };
        let filter = TaskFilter {
            status: args.status.as_deref().map(parse_status).transpose()?,
            search: args.search.filter(|s| !s.trim().is_empty()),
        };
        let page = self.tasks.list(user, filter, PageRequest::new(args.limit, cursor, None)).await?;
        let summary = if page.items.is_empty() {
            "No tasks.".to_string()
        } else {
            page.items.iter().map(describe).collect::<Vec<_>>().join("\n")
        };
        Ok(result(summary, json!({ "tasks": page.items, "next_cursor": page.next_cursor })))
    }

    async fn run_complete(&self, user: Id, args: TaskArgs) -> ToolOutcome {
        let task = self.tasks.complete(user, &required(args.task, "task")?.text()).await?;
        Ok(result(format!("Completed task {}", describe(&task)), json!({ "task": task })))
    }

    async fn run_update(&self, user: Id, args: UpdateTaskArgs) -> ToolOutcome {
        let name = required(args.task, "task")?.text();
        let input = UpdateTask {
            title: args.title,
            description: clearable(args.description, |s| Ok(s.to_owned()))?,
            status: args.status.as_deref().map(parse_status).transpose()?,
            priority: args.priority.as_deref().map(parse_priority).transpose()?,
            due_date: clearable(args.due_date, parse_date)?,
        };
        let task = self.tasks.update(user, &name, input).await?;
        Ok(result(format!("Updated task {}", describe(&task)), json!({ "task": task })))
    }

    async fn run_delete(&self, user: Id, args: TaskArgs) -> ToolOutcome {
        let task = self.tasks.delete(user, &required(args.task, "task")?.text()).await?;
        Ok(result(format!("Deleted task {}", describe(&task)), json!({ "task": task })))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TasksServer {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("switchboard-tasks", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Manage the user's tasks. Tasks have short numbers (1, 2, 3…) that the user uses to name them.",
            )
    }
}
