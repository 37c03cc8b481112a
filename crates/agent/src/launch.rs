//! Starting an agent's servers: the catalog entry's declared launch with the user's credentials
//! filled in (only what the entry declares is ever run), and their tools offered to the model
//! under namespaced names.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use switchboard_catalog::{CatalogEntry, Launch};
use switchboard_llm::ToolSpec;
use switchboard_mcp::client::{self, namespaced, ClientError, ExternalServer, ServerConfig};
use switchboard_mcp::outbound::OutboundPolicy;

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

/// The tools of several connected servers, as one set.
pub struct ServerTools {
    servers: Vec<ExternalServer>,
    /// Namespaced name → (server index, the tool's own name).
    routes: BTreeMap<String, (usize, String)>,
}

impl ServerTools {
    /// Connects to every server (in parallel); any failure closes those already started.
    pub async fn connect(configs: Vec<ServerConfig>) -> Result<ServerTools, ClientError> {
        let results = futures::future::join_all(configs.into_iter().map(ExternalServer::connect)).await;
        let mut servers = Vec::new();
        let mut failure = None;
        for result in results {
            match result {
                Ok(server) => servers.push(server),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            for server in servers {
                server.shutdown().await;
            }
            return Err(e);
        }
        let mut routes = BTreeMap::new();
        for (i, server) in servers.iter().enumerate() {
            for tool in server.tools() {
                routes.insert(namespaced(server.name(), &tool.name), (i, tool.name.to_string()));
            }
        }
        Ok(ServerTools { servers, routes })
    }

    /// Ends every server's session (and child process).
    pub async fn shutdown(self) {
        for server in self.servers {
            server.shutdown().await;
        }
    }
}

#[async_trait]
impl Tools for ServerTools {
    fn specs(&self) -> Vec<ToolSpec> {
        self.routes
            .iter()
            .map(|(name, (i, own))| {
                let tool = self.servers[*i].tools().iter().find(|t| t.name == *own).expect("routed tools exist");
                ToolSpec {
                    name: name.clone(),
                    description: tool.description.as_deref().unwrap_or_default().to_owned(),
                    input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
                }
            })
            .collect()
    }

    async fn call(&self, name: &str, arguments: serde_json::Value) -> ToolOutcome {
        let Some((i, own)) = self.routes.get(name) else {
            return ToolOutcome { content: format!("unknown tool {name}"), structured: None, is_error: true };
        };
        match self.servers[*i].call(own, arguments).await {
            Ok(result) => result.into(),
            Err(e) => ToolOutcome { content: e.to_string(), structured: None, is_error: true },
        }
    }
}
