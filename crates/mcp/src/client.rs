//! The client for external MCP servers: launched as child processes over stdio (with only the
//! environment their configuration declares, plus `PATH`) or reached over Streamable HTTP (with
//! headers such as a bearer token). Either protocol era; rmcp negotiates the version.
//!
//! A connected server keeps its tool list and lists it again when the server says it changed
//! (`notifications/tools/list_changed`); progress a server reports on a call
//! (`notifications/progress`) reaches whoever made the call, and resets its timeout. The
//! [`pool`](crate::pool) keeps servers between runs and shuts idle ones down.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientRequest,
    Implementation, JsonRpcMessage, JsonRpcNotification, ProgressNotificationParam, ProgressToken, ServerNotification,
    ServerResult, Tool,
};
use rmcp::service::{
    NotificationContext, PeerRequestOptions, RunningService, RxJsonRpcMessage, ServiceError, TxJsonRpcMessage,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess, Transport};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::sync::mpsc::UnboundedSender;

/// Largest Server-Sent Event accepted from a remote server; a larger one ends the connection.
pub const MAX_SSE_EVENT_BYTES: usize = 10 * 1024 * 1024;

/// A call that reports progress may run this many times its call timeout in all.
const MAX_CALL_TIMEOUTS_WITH_PROGRESS: u32 = 10;

/// How to reach a server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// Longest a tool call may take without reporting progress.
    pub call_timeout: Duration,
    /// For a server whose URL a user influenced: the outbound rules its address must pass. The
    /// connection then goes only to the checked addresses.
    pub outbound: Option<Arc<crate::outbound::OutboundPolicy>>,
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
    /// The remote server wants an access token (it answered 401 or 403 with a challenge).
    #[error("MCP server {server} requires authorization")]
    AuthorizationRequired { server: String, challenge: String },
}

impl ClientError {
    /// The server the error is about.
    pub fn server(&self) -> &str {
        match self {
            ClientError::Connect { server, .. }
            | ClientError::Timeout { server, .. }
            | ClientError::Failed { server, .. }
            | ClientError::AuthorizationRequired { server, .. } => server,
        }
    }
}

/// Progress a server reported on a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub progress: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
}

/// Where a call's progress goes.
pub type ProgressSink = UnboundedSender<Progress>;

/// What a server sends unasked that the client acts on itself: tool list changes. (Progress goes
/// to its caller through [`ProgressRoutes`].)
#[derive(Default)]
struct Notifications {
    tools_changed: AtomicBool,
}

impl ClientHandler for Notifications {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.tools_changed.store(true, Ordering::Release);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("switchboard", env!("CARGO_PKG_VERSION")))
    }
}

/// Where each call in flight wants its progress, by progress token. Shared by a server's
/// transport, which forwards a progress notification the moment it reads it — in order with the
/// answers, so every notification a server sent before its result has reached the caller by the
/// time the call returns — and by the calls, which add and remove their routes.
#[derive(Default, Clone)]
struct ProgressRoutes(Arc<Mutex<HashMap<ProgressToken, ProgressSink>>>);

impl ProgressRoutes {
    fn forward(&self, params: &ProgressNotificationParam) {
        let sink = self.0.lock().expect("progress routes lock").get(&params.progress_token).cloned();
        if let Some(sink) = sink {
            let _ =
                sink.send(Progress { progress: params.progress, total: params.total, message: params.message.clone() });
        }
    }

    /// `transport`, forwarding progress to these routes.
    fn around<T>(&self, transport: T) -> Routed<T> {
        Routed { inner: transport, routes: self.clone() }
    }

    /// Routes `token`'s progress to `sink` until the returned guard is dropped.
    fn route(&self, token: ProgressToken, sink: ProgressSink) -> ProgressRoute {
        self.0.lock().expect("progress routes lock").insert(token.clone(), sink);
        ProgressRoute { routes: self.clone(), token }
    }
}

/// A call's progress route; dropping it ends the route (and closes the caller's channel).
struct ProgressRoute {
    routes: ProgressRoutes,
    token: ProgressToken,
}

impl Drop for ProgressRoute {
    fn drop(&mut self) {
        self.routes.0.lock().expect("progress routes lock").remove(&self.token);
    }
}

/// A transport that hands progress notifications to their routes as it reads them. rmcp runs
/// notification handlers as tasks of their own, so a handler could run after the call's result
/// had been delivered and its route removed: the last progress of a call was sometimes lost.
struct Routed<T> {
    inner: T,
    routes: ProgressRoutes,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Routed<T> {
    type Error = T::Error;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await?;
        if let JsonRpcMessage::Notification(JsonRpcNotification {
            notification: ServerNotification::ProgressNotification(progress),
            ..
        }) = &message
        {
            self.routes.forward(&progress.params);
        }
        Some(message)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// The `WWW-Authenticate` challenge of a remote server that refused to initialize without
/// authorization, found under rmcp's error.
fn auth_challenge(e: &rmcp::service::ClientInitializeError) -> Option<String> {
    use rmcp::transport::streamable_http_client::StreamableHttpError;
    let rmcp::service::ClientInitializeError::TransportError { error, .. } = e else { return None };
    match error.error.downcast_ref::<StreamableHttpError<reqwest013::Error>>()? {
        StreamableHttpError::AuthRequired(required) => Some(required.www_authenticate_header.clone()),
        StreamableHttpError::InsufficientScope(insufficient) => Some(insufficient.www_authenticate_header.clone()),
        _ => None,
    }
}

/// A connected external server with its tool list.
pub struct ExternalServer {
    name: String,
    service: RunningService<RoleClient, Notifications>,
    progress: ProgressRoutes,
    tools: tokio::sync::RwLock<Arc<Vec<Tool>>>,
    call_timeout: Duration,
    process_id: Option<u32>,
}

impl ExternalServer {
    /// Connects, initialises and lists the tools (following pagination).
    pub async fn connect(config: ServerConfig) -> Result<ExternalServer, ClientError> {
        let name = config.name.clone();
        let fail = |reason: String| ClientError::Connect { server: name.clone(), reason };
        let handler = Notifications::default();
        let progress = ProgressRoutes::default();
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
                let service = tokio::time::timeout(config.call_timeout, handler.serve(progress.around(transport)))
                    .await
                    .map_err(|_| fail("no answer to initialize".into()))?
                    .map_err(|e| fail(e.to_string()))?;
                (service, pid)
            }
            Launch::Http { url, headers } => {
                crate::outbound::install_tls_provider();
                let mut http = StreamableHttpClientTransportConfig::with_uri(url.clone());
                let mut custom = HashMap::new();
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
                let service = tokio::time::timeout(config.call_timeout, handler.serve(progress.around(transport)))
                    .await
                    .map_err(|_| fail("no answer to initialize".into()))?
                    .map_err(|e| match auth_challenge(&e) {
                        Some(challenge) => ClientError::AuthorizationRequired { server: name.clone(), challenge },
                        None => fail(e.to_string()),
                    })?;
                (service, None)
            }
        };
        let server = ExternalServer {
            name: config.name,
            service,
            progress,
            tools: Default::default(),
            call_timeout: config.call_timeout,
            process_id,
        };
        server
            .refresh_tools()
            .await
            .map_err(|e| ClientError::Connect { server: server.name.clone(), reason: e.to_string() })?;
        Ok(server)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's tools: the list fetched last, fetched again if the server said it changed.
    pub async fn tools(&self) -> Result<Arc<Vec<Tool>>, ClientError> {
        if self.service.service().tools_changed.swap(false, Ordering::AcqRel) {
            tracing::debug!(server = %self.name, "tool list changed; listing again");
            self.refresh_tools().await?;
        }
        Ok(self.tools.read().await.clone())
    }

    async fn refresh_tools(&self) -> Result<(), ClientError> {
        let listed = tokio::time::timeout(self.call_timeout, self.service.list_all_tools())
            .await
            .map_err(|_| self.timeout())?
            .map_err(|e| self.failed(e))?;
        *self.tools.write().await = Arc::new(listed);
        Ok(())
    }

    /// The child process, for a stdio server.
    pub fn process_id(&self) -> Option<u32> {
        self.process_id
    }

    /// Whether the connection is still up (a crashed child or a closed session is not).
    pub fn is_alive(&self) -> bool {
        !self.service.is_transport_closed() && !self.service.is_closed()
    }

    /// Calls a tool (by its own, not namespaced, name). Progress the server reports goes to
    /// `progress` and restarts the call's timeout (up to ten timeouts in all).
    pub async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Value,
        progress: Option<ProgressSink>,
    ) -> Result<CallToolResult, ClientError> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let serde_json::Value::Object(map) = arguments {
            params = params.with_arguments(map);
        }
        let options = PeerRequestOptions::with_timeout(self.call_timeout)
            .reset_timeout_on_progress()
            .with_max_total_timeout(self.call_timeout * MAX_CALL_TIMEOUTS_WITH_PROGRESS);
        let started = std::time::Instant::now();
        let handle = self
            .service
            .send_request_with_option(ClientRequest::CallToolRequest(CallToolRequest::new(params)), options)
            .await
            .map_err(|e| self.failed(e))?;
        let route = progress.map(|sink| self.progress.route(handle.progress_token.clone(), sink));
        let outcome = handle.await_response().await;
        drop(route);
        tracing::info!(server = %self.name, tool, duration_ms = started.elapsed().as_millis() as u64, ok = outcome.is_ok(), "external tool call");
        match outcome {
            Ok(ServerResult::CallToolResult(result)) => Ok(result),
            Ok(_) => Err(self.failed("the answer to tools/call was not a tool result")),
            Err(ServiceError::Timeout { .. }) => Err(self.timeout()),
            Err(e) => Err(self.failed(e)),
        }
    }

    fn timeout(&self) -> ClientError {
        ClientError::Timeout { server: self.name.clone(), seconds: self.call_timeout.as_secs() }
    }

    fn failed(&self, reason: impl std::fmt::Display) -> ClientError {
        ClientError::Failed { server: self.name.clone(), reason: reason.to_string() }
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
