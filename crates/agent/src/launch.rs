//! Starting an agent's servers: the catalog entry's declared launch with the user's credentials
//! filled in (only what the entry declares is ever run), and their tools offered to the model
//! under namespaced names.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::Tool;
use secrecy::SecretString;
use switchboard_catalog::{CatalogEntry, Launch};
use switchboard_llm::ToolSpec;
use switchboard_mcp::client::{self, namespaced, ClientError, ExternalServer, ProgressSink, ServerConfig};
use switchboard_mcp::outbound::OutboundPolicy;
use switchboard_mcp::pool::ClientPool;

use crate::credentials::{defaults, placeholders, substitute};
use crate::tools::{ToolOutcome, Tools};

/// Why a server could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    #[error("{0} has no launch configuration in the catalog")]
    NotRunnable(String),
    #[error("{server} needs {key}, which is not set")]
    Missing { server: String, key: String },
}

/// The client configuration for `entry` with the user's `values` in place of its placeholders.
/// Environment variables and headers that name an optional credential the user did not set are
/// left out; a required one that is missing is an error.
pub fn resolve(
    entry: &CatalogEntry,
    values: &BTreeMap<String, SecretString>,
    call_timeout: Duration,
    outbound: Option<Arc<OutboundPolicy>>,
) -> Result<ServerConfig, LaunchError> {
    let defaults = defaults(entry);
    let unresolved = |template: &str| -> Option<String> {
        placeholders(template)
            .into_iter()
            .find(|k| !values.contains_key(*k) && !defaults.contains_key(*k))
            .map(str::to_owned)
    };
    let required = |key: &str| entry.credentials.iter().find(|c| c.key == key).is_none_or(|c| c.required);
    let missing = |key: String| LaunchError::Missing { server: entry.name.clone(), key };
    let fill_map = |map: &BTreeMap<String, String>| -> Result<BTreeMap<String, String>, LaunchError> {
        let mut out = BTreeMap::new();
        for (name, template) in map {
            match unresolved(template) {
                Some(key) if required(&key) => return Err(missing(key)),
                Some(_) => continue,
                None => {
                    out.insert(name.clone(), substitute(template, values, &defaults));
                }
            }
        }
        Ok(out)
    };
    let launch = match entry.launch.as_ref().ok_or_else(|| LaunchError::NotRunnable(entry.name.clone()))? {
        Launch::Stdio { command, args, env } => {
            let mut filled = Vec::with_capacity(args.len());
            for arg in args {
                if let Some(key) = unresolved(arg) {
                    return Err(missing(key));
                }
                filled.push(substitute(arg, values, &defaults));
            }
            client::Launch::Stdio { command: command.clone(), args: filled, env: fill_map(env)? }
        }
        Launch::Remote { url, headers } => {
            if let Some(key) = unresolved(url) {
                return Err(missing(key));
            }
            client::Launch::Http { url: substitute(url, values, &defaults), headers: fill_map(headers)? }
        }
    };
    Ok(ServerConfig { name: entry.slug.clone(), launch, call_timeout, outbound })
}

/// The tools of several connected servers, as one set, under namespaced names.
pub struct ServerTools {
    servers: Vec<Arc<ExternalServer>>,
    /// Namespaced name → (server index, the tool as the server lists it), as of the last refresh.
    routes: std::sync::RwLock<BTreeMap<String, (usize, Tool)>>,
}

impl ServerTools {
    /// Gets every server from the pool (started in parallel if needed) for `owner`; any failure
    /// fails the whole set.
    pub async fn connect(
        pool: &ClientPool,
        owner: &str,
        configs: Vec<ServerConfig>,
    ) -> Result<ServerTools, ClientError> {
        let results = futures::future::join_all(configs.into_iter().map(|c| pool.get(owner, c))).await;
        let servers = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        let tools = ServerTools { servers, routes: Default::default() };
        tools.refresh().await;
        Ok(tools)
    }

    /// Like [`connect`](Self::connect), leaving out the servers that cannot be started or
    /// reached (returned beside the set, so the caller can say which).
    pub async fn connect_available(
        pool: &ClientPool,
        owner: &str,
        configs: Vec<ServerConfig>,
    ) -> (ServerTools, Vec<ClientError>) {
        let results = futures::future::join_all(configs.into_iter().map(|c| pool.get(owner, c))).await;
        let (mut servers, mut failures) = (Vec::new(), Vec::new());
        for result in results {
            match result {
                Ok(server) => servers.push(server),
                Err(e) => failures.push(e),
            }
        }
        let tools = ServerTools { servers, routes: Default::default() };
        tools.refresh().await;
        (tools, failures)
    }

    /// A set of no servers.
    pub fn empty() -> ServerTools {
        ServerTools { servers: Vec::new(), routes: Default::default() }
    }

    /// Names of the servers in the set.
    pub fn servers(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.name().to_owned()).collect()
    }
}

/// Checks a result against the tool's declared output schema (the MCP specification asks
/// clients to): a result that does not match, or is missing, is an error for the model rather
/// than data it would trust.
fn check_output(tool: &Tool, result: rmcp::model::CallToolResult) -> ToolOutcome {
    let (Some(schema), false) = (&tool.output_schema, result.is_error.unwrap_or(false)) else {
        return result.into();
    };
    let schema = serde_json::Value::Object((**schema).clone());
    let problem = match (&result.structured_content, jsonschema::validator_for(&schema)) {
        (_, Err(e)) => Some(format!("its output schema is invalid ({e})")),
        (None, _) => Some("it returned no structured result, though it declares an output schema".to_owned()),
        (Some(value), Ok(validator)) => validator.iter_errors(value).next().map(|e| {
            let at = e.instance_path().to_string();
            format!("its result does not match its output schema at '{}': {e}", if at.is_empty() { "/" } else { &at })
        }),
    };
    match problem {
        Some(problem) => ToolOutcome::error(format!("The tool {} failed: {problem}.", tool.name)),
        None => result.into(),
    }
}

#[async_trait]
impl Tools for ServerTools {
    /// Lists again the tools of a server that said they changed. A server that went away keeps
    /// no tools; calls to them say why.
    async fn refresh(&self) {
        let mut routes = BTreeMap::new();
        for (i, server) in self.servers.iter().enumerate() {
            match server.tools().await {
                Ok(tools) => {
                    for tool in tools.iter() {
                        routes.insert(namespaced(server.name(), &tool.name), (i, tool.clone()));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "an MCP server's tools could not be listed"),
            }
        }
        *self.routes.write().expect("routes lock") = routes;
    }

    fn specs(&self) -> Vec<ToolSpec> {
        self.routes
            .read()
            .expect("routes lock")
            .iter()
            .map(|(name, (_, tool))| ToolSpec {
                name: name.clone(),
                description: tool.description.as_deref().unwrap_or_default().to_owned(),
                input_schema: tool.input_schema.clone(),
            })
            .collect()
    }

    async fn call(&self, name: &str, arguments: serde_json::Value, progress: Option<ProgressSink>) -> ToolOutcome {
        let Some((i, tool)) = self.routes.read().expect("routes lock").get(name).cloned() else {
            return ToolOutcome::error(format!("unknown tool {name}"));
        };
        match self.servers[i].call(&tool.name, arguments, progress).await {
            Ok(result) => check_output(&tool, result),
            Err(e) => ToolOutcome::error(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolResult, ContentBlock as Content};

    fn tool(output_schema: Option<serde_json::Value>) -> Tool {
        let input = serde_json::json!({"type": "object"}).as_object().unwrap().clone();
        let mut tool = Tool::new("weather", "", Arc::new(input));
        tool.output_schema = output_schema.map(|s| Arc::new(s.as_object().unwrap().clone()));
        tool
    }

    fn structured(value: serde_json::Value) -> CallToolResult {
        let mut result = CallToolResult::success(vec![Content::text(value.to_string())]);
        result.structured_content = Some(value);
        result
    }

    #[test]
    fn results_are_checked_against_the_declared_output_schema() {
        let schema = serde_json::json!({
            "type": "object", "properties": {"celsius": {"type": "number"}}, "required": ["celsius"]
        });
        let checked = tool(Some(schema));
        let good = check_output(&checked, structured(serde_json::json!({"celsius": 21.5})));
        assert!(!good.is_error, "{}", good.content);
        let bad = check_output(&checked, structured(serde_json::json!({"celsius": "warm"})));
        assert!(bad.is_error && bad.content.contains("does not match its output schema"), "{}", bad.content);
        assert!(bad.content.contains("/celsius"), "the problem says where: {}", bad.content);
        let missing = check_output(&checked, CallToolResult::success(vec![Content::text("21.5")]));
        assert!(missing.is_error && missing.content.contains("no structured result"), "{}", missing.content);
        let unchecked = check_output(&tool(None), CallToolResult::success(vec![Content::text("anything")]));
        assert!(!unchecked.is_error);
    }
}
