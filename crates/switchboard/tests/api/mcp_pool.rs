//! External servers over time: kept running between runs and shut down when idle, started again
//! after a crash, progress of long calls, tool lists that change, and results checked against
//! their output schemas — against the real `@modelcontextprotocol/server-everything` and a small
//! rmcp server whose tool list grows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, InitializeResult,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use switchboard_agent::launch::ServerTools;
use switchboard_agent::Tools;
use switchboard_mcp::client::{ClientError, ExternalServer, Launch, Progress, ServerConfig};
use switchboard_mcp::pool::ClientPool;

use crate::mcp_client::everything_server;

fn everything(command: std::path::PathBuf, call_timeout: Duration) -> ServerConfig {
    ServerConfig {
        name: "everything".into(),
        launch: Launch::Stdio {
            command: command.display().to_string(),
            args: vec!["stdio".into()],
            env: Default::default(),
        },
        call_timeout,
        outbound: None,
    }
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_server_is_reused_and_shut_down_once_idle() {
    let Some(command) = everything_server() else { return };
    let pool = ClientPool::new(Duration::from_secs(1));
    let first = pool.get("alice", everything(command.clone(), Duration::from_secs(20))).await.unwrap();
    let again = pool.get("alice", everything(command.clone(), Duration::from_secs(20))).await.unwrap();
    let pid = first.process_id().unwrap();
    assert_eq!(again.process_id(), Some(pid), "the same owner and configuration share one server");
    let bob = pool.get("bob", everything(command, Duration::from_secs(20))).await.unwrap();
    assert_ne!(bob.process_id(), Some(pid), "another owner gets a server of their own");
    assert_eq!(pool.running().await, 2);

    // In use, it outlives the idle time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(process_exists(pid), "a server still held by a run is not shut down");
    let echoed = first.call("echo", json!({"message": "still here"}), None).await.unwrap();
    assert!(serde_json::to_string(&echoed.content).unwrap().contains("still here"));

    drop((first, again, bob));
    wait_until("the idle servers are shut down", || !process_exists(pid)).await;
    wait_until("the pool is empty", || futures::executor::block_on(pool.running()) == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_server_that_crashed_is_started_again_on_the_next_request() {
    let Some(command) = everything_server() else { return };
    let pool = ClientPool::new(Duration::from_secs(300));
    let server = pool.get("alice", everything(command.clone(), Duration::from_secs(20))).await.unwrap();
    let pid = server.process_id().unwrap();
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    wait_until("the crash is noticed", || !server.is_alive()).await;
    let failed = server.call("echo", json!({"message": "anyone?"}), None).await.unwrap_err();
    assert!(failed.to_string().contains("everything"), "the error names the server: {failed}");

    let restarted = pool.get("alice", everything(command, Duration::from_secs(20))).await.unwrap();
    assert_ne!(restarted.process_id(), Some(pid));
    let echoed = restarted.call("echo", json!({"message": "back"}), None).await.unwrap();
    assert!(serde_json::to_string(&echoed.content).unwrap().contains("back"));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_caller_and_keeps_a_long_call_alive() {
    let Some(command) = everything_server() else { return };
    // Each call may be silent for 1 s at most; the operation takes 3 s in six steps.
    let server = ExternalServer::connect(everything(command, Duration::from_secs(1))).await.unwrap();
    let (sink, mut received) = tokio::sync::mpsc::unbounded_channel();
    let done = server
        .call("trigger-long-running-operation", json!({"duration": 3, "steps": 6}), Some(sink))
        .await
        .expect("progress every half second keeps the call within its timeout");
    assert!(serde_json::to_string(&done.content).unwrap().contains("completed"));
    // Every notification the server sent before its result has reached the caller by the time
    // the call returns, and the route is closed.
    let mut steps = Vec::new();
    while let Ok(Progress { progress, total, .. }) = received.try_recv() {
        assert_eq!(total, Some(6.0));
        steps.push(progress);
    }
    assert!(matches!(received.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)));
    assert_eq!(steps, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

    // The same 3 s in one step says nothing for 3 s: it times out after 1 s.
    let silent = server.call("trigger-long-running-operation", json!({"duration": 3, "steps": 1}), None).await;
    assert!(matches!(silent, Err(ClientError::Timeout { .. })), "{silent:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_checked_against_the_tools_output_schema() {
    let Some(command) = everything_server() else { return };
    let pool = ClientPool::new(Duration::from_secs(300));
    let tools = ServerTools::connect(&pool, "alice", vec![everything(command, Duration::from_secs(20))]).await.unwrap();
    let outcome = tools.call("everything__get-structured-content", json!({"location": "Chicago"}), None).await;
    assert!(!outcome.is_error, "a result matching its schema passes: {}", outcome.content);
    assert!(outcome.structured.unwrap()["temperature"].is_number());
    pool.shutdown().await;
}

/// An MCP server whose `grow` tool adds a second tool and says so.
#[derive(Clone, Default)]
struct Growing {
    grown: Arc<AtomicBool>,
}

fn tool(name: &str) -> Tool {
    Tool::new(
        name.to_owned(),
        format!("the {name} tool"),
        Arc::new(json!({"type": "object"}).as_object().unwrap().clone()),
    )
}

impl ServerHandler for Growing {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("growing", "1"))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = vec![tool("grow")];
        if self.grown.load(Ordering::SeqCst) {
            tools.push(tool("new_tool"));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name == "grow" {
            self.grown.store(true, Ordering::SeqCst);
            let _ = context.peer.notify_tool_list_changed().await;
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("ran {}", request.name))]).into())
    }
}

async fn growing_server() -> String {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    let service = StreamableHttpService::new(
        || Ok(Growing::default()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_legacy_session_mode(true),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().nest_service("/mcp", service)).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_says_its_tools_changed_is_listed_again() {
    let url = growing_server().await;
    let pool = ClientPool::new(Duration::from_secs(300));
    let config = ServerConfig {
        name: "growing".into(),
        launch: Launch::Http { url, headers: Default::default() },
        call_timeout: Duration::from_secs(10),
        outbound: None,
    };
    let tools = ServerTools::connect(&pool, "alice", vec![config]).await.unwrap();
    let names = |tools: &ServerTools| tools.specs().into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(names(&tools), ["growing__grow"]);
    let grown = tools.call("growing__grow", json!({}), None).await;
    assert!(!grown.is_error, "{}", grown.content);
    let mut seen = Vec::new();
    for _ in 0..50 {
        tools.refresh().await;
        seen = names(&tools);
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, ["growing__grow", "growing__new_tool"], "the next listing has the new tool");
    let added = tools.call("growing__new_tool", json!({}), None).await;
    assert_eq!(added.content, "ran new_tool");
    pool.shutdown().await;
}
