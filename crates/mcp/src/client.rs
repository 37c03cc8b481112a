//! The client for external MCP servers: launched as child processes over stdio (with only the
//! environment their configuration declares, plus `PATH`) or reached over Streamable HTTP (with
//! headers such as a bearer token). Either protocol era; rmcp negotiates the version.

use std::collections::BTreeMap;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};

/// Largest Server-Sent Event accepted from a remote server; a larger one ends the connection.
pub const MAX_SSE_EVENT_BYTES: usize = 10 * 1024 * 1024;

/// How to reach a server.
#[derive(Debug, Clone)]
pub enum Launch {
    /// A child process speaking MCP on stdin/stdout.
    Stdio { command: String, args: Vec<String>, env: BTreeMap<String, String> },
    /// A Streamable HTTP endpoint.
    Http { url: String, headers: BTreeMap<String, String> },
}

/// One external server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Short name, used to namespace its tools (`name__tool`).
    pub name: String,
    pub launch: Launch,
    /// Longest a tool call may take.
    pub call_timeout: Duration,
    /// For a server whose URL a user influenced: the outbound rules its address must pass. The
    /// connection then goes only to the checked addresses.
    pub outbound: Option<std::sync::Arc<crate::outbound::OutboundPolicy>>,
}

/// What went wrong with an external server; the message names the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("MCP server {server} could not be started or reached: {reason}")]
    Connect { server: String, reason: String },
    #[error("MCP server {server} did not answer within {seconds} s")]
    Timeout { server: String, seconds: u64 },
    #[error("MCP server {server} failed: {reason}")]
    Failed { server: String, reason: String },
}

/// A connected external server with its tool list.
pub struct ExternalServer {
    name: String,
    service: RunningService<RoleClient, ()>,
    tools: Vec<Tool>,
    call_timeout: Duration,
    process_id: Option<u32>,
}

impl ExternalServer {
    /// Connects, initialises and lists the tools (following pagination).
    pub async fn connect(config: ServerConfig) -> Result<ExternalServer, ClientError> {
        let fail = |reason: String| ClientError::Connect { server: config.name.clone(), reason };
        let (service, process_id) = match &config.launch {
            Launch::Stdio { command, args, env } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear().envs(env);
                if let Some(path) = inherited_path() {
                    cmd.env("PATH", path);
                }
                let (transport, _stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .map_err(|e| fail(e.to_string()))?;
                let pid = transport.id();
                let service = tokio::time::timeout(config.call_timeout, ().serve(transport))
                    .await
                    .map_err(|_| fail("no answer to initialize".into()))?
                    .map_err(|e| fail(e.to_string()))?;
                (service, pid)
            }
            Launch::Http { url, headers } => {
                let mut http = StreamableHttpClientTransportConfig::with_uri(url.clone());
                let mut custom = std::collections::HashMap::new();
                for (name, value) in headers {
                    if name.eq_ignore_ascii_case("authorization") {
                        let token = value.strip_prefix("Bearer ").unwrap_or(value);
                        http = http.auth_header(token.to_owned());
                    } else {
                        let name = name.parse().map_err(|_| fail(format!("invalid header name {name}")))?;
                        let value = value.parse().map_err(|_| fail("invalid header value".into()))?;
                        custom.insert(name, value);
                    }
                }
                // rmcp bounds JSON answers at 16 MiB; SSE events are held to 10 MiB here.
                let http = http.custom_headers(custom).max_sse_event_size(MAX_SSE_EVENT_BYTES);
                let transport = match &config.outbound {
                    Some(policy) => {
                        let pinned = policy.check(url).await.map_err(|e| fail(e.to_string()))?;
                        StreamableHttpClientTransport::with_client(policy.client(&pinned).map_err(fail)?, http)
                    }
                    None => StreamableHttpClientTransport::from_config(http),
                };
                let service = tokio::time::timeout(config.call_timeout, ().serve(transport))
                    .await
                    .map_err(|_| fail("no answer to initialize".into()))?
                    .map_err(|e| fail(e.to_string()))?;
                (service, None)
            }
        };
        let tools = tokio::time::timeout(config.call_timeout, service.list_all_tools())
            .await
            .map_err(|_| fail("no answer to tools/list".into()))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(ExternalServer { name: config.name, service, tools, call_timeout: config.call_timeout, process_id })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tools listed at connection.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The child process, for a stdio server.
    pub fn process_id(&self) -> Option<u32> {
        self.process_id
    }

    /// Calls a tool (by its own, not namespaced, name).
    pub async fn call(&self, tool: &str, arguments: serde_json::Value) -> Result<CallToolResult, ClientError> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let serde_json::Value::Object(map) = arguments {
            params = params.with_arguments(map);
        }
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(self.call_timeout, self.service.call_tool(params)).await;
        tracing::info!(server = %self.name, tool, duration_ms = started.elapsed().as_millis() as u64, ok = matches!(outcome, Ok(Ok(_))), "external tool call");
        match outcome {
            Err(_) => Err(ClientError::Timeout { server: self.name.clone(), seconds: self.call_timeout.as_secs() }),
            Ok(Err(e)) => Err(ClientError::Failed { server: self.name.clone(), reason: e.to_string() }),
            Ok(Ok(result)) => Ok(result),
        }
    }

    /// Ends the session (and the child process of a stdio server).
    pub async fn shutdown(self) {
        let _ = self.service.cancel().await;
    }
}

#[allow(clippy::disallowed_methods)] // PATH is passed through to child servers by design, and nothing else
fn inherited_path() -> Option<std::ffi::OsString> {
    std::env::var_os("PATH")
}

/// The name a model sees for `tool` of `server`: `server__tool`, limited to the characters and
/// length (64) that model APIs accept, so tools of several servers never collide.
pub fn namespaced(server: &str, tool: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
    };
    let mut name = format!("{}__{}", clean(server), clean(tool));
    if name.len() > 64 {
        name.truncate(64);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_names_follow_the_model_apis_rules() {
        assert_eq!(namespaced("github", "create_issue"), "github__create_issue");
        assert_eq!(namespaced("my server", "do.thing/now"), "my_server__do_thing_now");
        assert!(namespaced(&"s".repeat(50), &"t".repeat(50)).len() <= 64);
    }
}
