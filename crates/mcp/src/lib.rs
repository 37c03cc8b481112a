//! MCP for Switchboard, on rmcp: the built-in tasks server (served in-process, over Streamable
//! HTTP at `/mcp`, and over stdio).

pub mod tasks_server;

pub use tasks_server::TasksServer;
