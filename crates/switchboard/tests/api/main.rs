//! Black-box tests of the HTTP API: the real server on a random port, over real HTTP, on SQLite
//! and on PostgreSQL.

mod helpers;
mod model_server;

mod agent;
mod agent_runs;
mod bad_input;
mod catalog;
mod chat;
mod chat_stream;
mod compat;
mod connections;
mod conversations;
mod isolation;
mod jobs;
mod jobs_faults;
mod jobs_redis;
mod llm_anthropic;
mod llm_openai;
mod mcp_client;
mod mcp_http;
mod mcp_pool;
mod oauth_provider;
mod operations;
mod process;
mod rate_limits;
mod several_servers;
mod sign_in;
mod sign_in_oidc;
mod tasks;
mod terminal;
mod vault;
mod web;
mod workflows;
