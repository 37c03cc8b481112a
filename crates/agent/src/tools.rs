//! What the agent can call: a set of tools behind one trait. The built-in tasks tools are called
//! in-process on the tasks MCP server, for one user.

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_domain::Id;
use switchboard_llm::ToolSpec;
use switchboard_mcp::client::ProgressSink;
use switchboard_mcp::TasksServer;

/// The result of one tool call.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    /// Text for the model.
    pub content: String,
    /// Structured data, when the tool gives it.
    pub structured: Option<serde_json::Value>,
    pub is_error: bool,
}

impl From<rmcp::model::CallToolResult> for ToolOutcome {
    /// An MCP tool result: its text blocks joined for the model, its structured content kept.
    fn from(result: rmcp::model::CallToolResult) -> Self {
        let content = result
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("\n");
        ToolOutcome { content, structured: result.structured_content, is_error: result.is_error.unwrap_or(false) }
    }
}

impl ToolOutcome {
    /// A failed call, explained for the model.
    pub fn error(content: impl Into<String>) -> ToolOutcome {
        ToolOutcome { content: content.into(), structured: None, is_error: true }
    }
}

/// Tools available to a turn.
#[async_trait]
pub trait Tools: Send + Sync {
    /// Brings the tool list up to date (a server said its tools changed); called before each
    /// model call, so [`specs`](Tools::specs) stays cheap.
    async fn refresh(&self) {}

    fn specs(&self) -> Vec<ToolSpec>;

    /// Calls a tool; progress it reports (an external server's long call) goes to `progress`.
    async fn call(&self, name: &str, arguments: serde_json::Value, progress: Option<ProgressSink>) -> ToolOutcome;
}

/// The built-in tasks tools, acting for one user.
pub struct BuiltinTasks {
    server: Arc<TasksServer>,
    user: Id,
}

impl BuiltinTasks {
    pub fn new(server: Arc<TasksServer>, user: Id) -> BuiltinTasks {
        BuiltinTasks { server, user }
    }
}

#[async_trait]
impl Tools for BuiltinTasks {
    fn specs(&self) -> Vec<ToolSpec> {
        self.server
            .tools()
            .into_iter()
            .map(|tool| ToolSpec {
                name: tool.name.to_string(),
                description: tool.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: tool.input_schema.clone(),
            })
            .collect()
    }

    async fn call(&self, name: &str, arguments: serde_json::Value, _: Option<ProgressSink>) -> ToolOutcome {
        self.server.call_for(self.user, name, arguments).await.into()
    }
}

/// Several tool sets offered together; names must not collide (external ones are namespaced).
pub struct Combined<'a>(pub Vec<&'a dyn Tools>);

#[async_trait]
impl Tools for Combined<'_> {
    async fn refresh(&self) {
        futures::future::join_all(self.0.iter().map(|t| t.refresh())).await;
    }

    fn specs(&self) -> Vec<ToolSpec> {
        self.0.iter().flat_map(|t| t.specs()).collect()
    }

    async fn call(&self, name: &str, arguments: serde_json::Value, progress: Option<ProgressSink>) -> ToolOutcome {
        for tools in &self.0 {
            if tools.specs().iter().any(|s| s.name == name) {
                return tools.call(name, arguments, progress).await;
            }
        }
        ToolOutcome::error(format!("unknown tool {name}"))
    }
}
