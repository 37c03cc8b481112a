//! `switchboard tasks list|add|complete|update|delete`: the task operations through the API.
//! Tasks are named by their number (`3`) or id, as in chat.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{Client, ClientArgs};

#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(subcommand)]
    pub command: TasksCommand,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the API's JSON instead of lines
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// The tasks, oldest first.
    List {
        /// pending, in_progress or completed
        #[arg(long)]
        status: Option<String>,
        /// Only tasks whose title or description contains this
        #[arg(long)]
        search: Option<String>,
    },
    /// Adds a task.
    Add {
        title: String,
        #[arg(long)]
        description: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        due: Option<String>,
        /// low, medium or high
        #[arg(long)]
        priority: Option<String>,
        /// The parent task (number or id), making this a subtask
        #[arg(long)]
        parent: Option<String>,
    },
    /// Marks a task completed.
    Complete { task: String },
    /// Changes a task.
    Update {
        task: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// pending, in_progress or completed
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        priority: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        due: Option<String>,
    },
    /// Deletes a task (and its subtasks).
    Delete { task: String },
}

pub async fn run(args: TasksArgs) -> anyhow::Result<()> {
    let client = Client::from_args(&args.client)?;
    let path = |task: &str| format!("/api/v1/tasks/{}", urlencode(task));
    let answer = match args.command {
        TasksCommand::List { status, search } => {
            let mut query = vec!["limit=100".to_string()];
            if let Some(status) = status {
                query.push(format!("status={}", urlencode(&status)));
            }
            if let Some(search) = search {
                query.push(format!("q={}", urlencode(&search)));
            }
            let page = client.json(Method::GET, &format!("/api/v1/tasks?{}", query.join("&")), None).await?;
            if args.json {
                println!("{page}");
            } else if page["items"].as_array().is_none_or(|items| items.is_empty()) {
                println!("no tasks");
            } else {
                for task in page["items"].as_array().into_iter().flatten() {
                    println!("{}", line(task));
                }
            }
            return Ok(());
        }
        TasksCommand::Add { title, description, due, priority, parent } => {
            let body = object([
                ("title", Some(title)),
                ("description", description),
                ("due_date", due),
                ("priority", priority),
                ("parent", parent),
            ]);
            ("added", client.json(Method::POST, "/api/v1/tasks", Some(&body)).await?)
        }
        TasksCommand::Complete { task } => {
            ("completed", client.json(Method::POST, &format!("{}/complete", path(&task)), None).await?)
        }
        TasksCommand::Update { task, title, description, status, priority, due } => {
            let body = object([
                ("title", title),
                ("description", description),
                ("status", status),
                ("priority", priority),
                ("due_date", due),
            ]);
            if body.as_object().is_some_and(Map::is_empty) {
                anyhow::bail!("nothing to change: give --title, --description, --status, --priority or --due");
            }
            ("updated", client.json(Method::PATCH, &path(&task), Some(&body)).await?)
        }
        TasksCommand::Delete { task } => {
            client.json(Method::DELETE, &path(&task), None).await?;
            if args.json {
                println!("{}", json!({"deleted": task}));
            } else {
                println!("deleted task {task}");
            }
            return Ok(());
        }
    };
    let (verb, task) = answer;
    if args.json {
        println!("{task}");
    } else {
        println!("{verb}: {}", line(&task));
    }
    Ok(())
}

/// One task on one line: `#3 [ ] Buy milk (high, due 2026-12-24)`.
pub fn line(task: &Value) -> String {
    let done = if task["status"] == "completed" { "x" } else { " " };
    let mut notes = Vec::new();
    if let Some(priority) = task["priority"].as_str().filter(|p| *p != "medium") {
        notes.push(priority.to_string());
    }
    if let Some(due) = task["due_date"].as_str() {
        notes.push(format!("due {due}"));
    }
    if task["status"] == "in_progress" {
        notes.push("in progress".into());
    }
    let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
    format!("#{} [{done}] {}{notes}", task["number"], task["title"].as_str().unwrap_or(""))
}

fn object<const N: usize>(fields: [(&str, Option<String>); N]) -> Value {
    let map: Map<String, Value> =
        fields.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), Value::String(v)))).collect();
    Value::Object(map)
}

/// Percent-encodes a path or query part.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
