//! MCP for Switchboard, on rmcp: the built-in tasks server (served in-process, over Streamable
//! HTTP at `/mcp`, and over stdio), and the client for external MCP servers with its pool.

pub mod client;
pub mod outbound;
pub mod pool;
pub mod tasks_server;

pub use tasks_server::TasksServer;

/// Serves the tasks server over this process's stdin and stdout until the client goes away.
pub async fn serve_stdio(server: TasksServer) -> std::io::Result<()> {
    use rmcp::ServiceExt;
    let running = server.serve(rmcp::transport::stdio()).await.map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}
