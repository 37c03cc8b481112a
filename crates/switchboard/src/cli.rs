//! The command line: `serve`, `token`, `mcp` and `catalog` (in `catalog_cli`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use switchboard_api::auth::{NewToken, TokenSigner, LOCAL_ISSUER};

use crate::app::{self, Application};
use crate::config::{parse_duration, LogFormat, Settings};

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Self-hosted multi-user MCP agent server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeArgs>),
    /// Print a bearer token signed with the server's secret (and nothing else).
    Token(TokenArgs),
    /// Serve a built-in MCP server over stdio (for MCP clients that launch local servers).
    #[command(subcommand)]
    Mcp(McpCommand),
    /// The MCP server catalog: import, export, search, evaluate.
    #[command(subcommand)]
    Catalog(crate::catalog_cli::CatalogCommand),
    /// The credential vault.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Run background jobs only (no HTTP), against the configured database; run any number.
    Worker(WorkerArgs),
    /// Chat with a running server in the terminal (as the local user unless --token is given).
    Chat(crate::client::ClientArgs),
    /// List, add, complete, update and delete your tasks on a running server.
    Tasks(crate::client::tasks::TasksArgs),
}

#[derive(Debug, Args, Serialize)]
pub struct WorkerArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub store: StoreArgs,
    /// Jobs run at once [env: SWITCHBOARD_WORKERS] [default: 2]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// redis://…, for the job queue on Redis Streams [env: SWITCHBOARD_REDIS_URL]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// How jobs reach workers: database or redis [env: SWITCHBOARD_JOB_QUEUE] [default: database]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_queue: Option<crate::config::JobQueue>,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Re-encrypt every stored credential under a new master key. With SWITCHBOARD_MASTER_KEY set,
    /// set the new key there and the old one in SWITCHBOARD_PREVIOUS_MASTER_KEYS first; with the
    /// key file, a new key is generated and replaces the old one once everything is re-encrypted.
    Rotate(StoreArgs),
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// The tasks server, acting for one user, against the configured database.
    Tasks(McpTasksArgs),
}

#[derive(Debug, Args, Serialize)]
pub struct McpTasksArgs {
    /// The user whose tasks to serve (the `sub` of their Switchboard tokens)
    #[arg(long)]
    #[serde(skip)]
    pub user: String,
    #[command(flatten)]
    #[serde(flatten)]
    pub store: StoreArgs,
}

/// Where a command finds the server's settings and database; each overrides the setting of the same name.
#[derive(Debug, Default, Args, Serialize)]
pub struct StoreArgs {
    /// TOML settings file [env: SWITCHBOARD_CONFIG]
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The server's data directory [env: SWITCHBOARD_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The database, when not SQLite in the data directory [env: SWITCHBOARD_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

const SERVE_AFTER_HELP: &str = "\
Every setting can also come from a TOML file (--config, same names as the flags with `_` for `-`)
and from SWITCHBOARD_<NAME> environment variables; flags beat the environment, which beats the file.
Lists in the environment are comma-separated. Settings without a flag:

  jwt_secret           SWITCHBOARD_JWT_SECRET      HS256 signing secret, at least 32 random bytes
                                                   (default: generated into <data-dir>/jwt_secret, 0600)
  oidc                 SWITCHBOARD_OIDC            OpenID Connect issuers whose tokens are accepted:
                                                   [{issuer=\"https://…\", audiences=[\"…\"], jwks_url=\"…\"}]
                                                   (jwks_url is discovered when absent; with client_id, and
                                                   client_secret if the issuer wants one, the web page offers
                                                   \"Sign in with <name>\": authorization code with PKCE)
  google_jwks_url      SWITCHBOARD_GOOGLE_JWKS_URL Google's signing keys (default: Google's public JWKS)
  jwks_refresh_secs    SWITCHBOARD_JWKS_REFRESH_SECS  minimum seconds between key refreshes [10]
  session_ttl_secs     SWITCHBOARD_SESSION_TTL_SECS   lifetime of tokens issued for a Google sign-in [86400]
  history_limit        SWITCHBOARD_HISTORY_LIMIT   earlier messages sent to the model per turn, with their tool calls [20]
  history_max_tokens   SWITCHBOARD_HISTORY_MAX_TOKENS  most tokens of history per turn (about 4 characters each);
                                                   the oldest turns go first [8000]
  llm_api_key          SWITCHBOARD_LLM_API_KEY     the model service's key (or OPENAI_API_KEY / ANTHROPIC_API_KEY); never logged
  embed_api_key        SWITCHBOARD_EMBED_API_KEY   the embeddings endpoint's key (default: the model service's key); never logged
  master_key           SWITCHBOARD_MASTER_KEY      the credential vault's key: 32+ random bytes or base64 of 32 bytes
                                                   (default: generated into <data-dir>/vault_key, 0600)
  previous_master_keys SWITCHBOARD_PREVIOUS_MASTER_KEYS  keys being rotated away from (`switchboard vault rotate`)
  mcp_call_timeout_secs SWITCHBOARD_MCP_CALL_TIMEOUT_SECS  longest an agent's MCP server may take to start or answer
                                                   (a call that reports progress may take ten times as long) [30]
  mcp_idle_secs        SWITCHBOARD_MCP_IDLE_SECS   an external MCP server unused this long is shut down [300]
  max_file_bytes       SWITCHBOARD_MAX_FILE_BYTES  largest file attached to POST /api/chat [262144]
  max_files            SWITCHBOARD_MAX_FILES       most files attached to one message [5]
  job_max_attempts     SWITCHBOARD_JOB_MAX_ATTEMPTS  attempts a job gets before it fails [3]
  job_lease_secs       SWITCHBOARD_JOB_LEASE_SECS  a running job's lease; a worker silent this long loses it [30]
  job_retry_backoff_ms SWITCHBOARD_JOB_RETRY_BACKOFF_MS  first retry delay, doubled per attempt (at most 60 s) [1000]
  job_poll_ms          SWITCHBOARD_JOB_POLL_MS     how often idle workers look for due jobs unwoken [1000]
  job_retention_days   SWITCHBOARD_JOB_RETENTION_DAYS  finished jobs created longer ago are deleted, with their
                                                   events (fractions allowed; 0 keeps them) [30]
  public_url           SWITCHBOARD_PUBLIC_URL      where people reach this server (OAuth callbacks, /mcp's resource)
                                                   [http://<addr>]
  oauth_clients        SWITCHBOARD_OAUTH_CLIENTS   OAuth clients registered with providers, named for catalog entries:
                                                   [{name=\"github\", client_id=\"…\", client_secret=\"…\"}]
                                                   (auth=\"client_secret_basic\" if the provider wants it; issuer=\"…\"
                                                   to use it for remote MCP servers of that authorization server)
  google_connection_server SWITCHBOARD_GOOGLE_CONNECTION_SERVER  the catalog server /auth/* connects [gmail]";

/// Flags of `serve`; each overrides the setting of the same name.
#[derive(Debug, Default, Args, Serialize)]
#[command(after_help = SERVE_AFTER_HELP)]
pub struct ServeArgs {
    /// TOML settings file [env: SWITCHBOARD_CONFIG]
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [env: SWITCHBOARD_ADDR] [default: 127.0.0.1:8080]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// Where the SQLite database and the signing secret live [env: SWITCHBOARD_DATA_DIR] [default: ./switchboard-data]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// postgres://… to run on PostgreSQL (or sqlite:…); SQLite in the data directory when absent [env: SWITCHBOARD_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// redis://… to share the per-user rate limit between servers (in memory per server otherwise) [env: SWITCHBOARD_REDIS_URL]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// How jobs reach workers: database (claims in the database) or redis (a Redis stream; needs --redis-url) [env: SWITCHBOARD_JOB_QUEUE] [default: database]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_queue: Option<crate::config::JobQueue>,
    /// Start of this deployment's Redis keys [env: SWITCHBOARD_REDIS_PREFIX] [default: switchboard]
    #[arg(long, value_name = "PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_prefix: Option<String>,
    /// How long to keep retrying an unreachable database at start before giving up [env: SWITCHBOARD_DB_CONNECT_TIMEOUT_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_connect_timeout_secs: Option<u64>,
    /// Most connections to PostgreSQL this process opens [env: SWITCHBOARD_DB_MAX_CONNECTIONS] [default: 20]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_max_connections: Option<u32>,
    /// Require this `aud` on HS256 tokens [env: SWITCHBOARD_JWT_AUDIENCE]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_audience: Option<String>,
    /// Requests per minute per user on /api/*; 0 turns the limit off [env: SWITCHBOARD_RATE_LIMIT_PER_MINUTE] [default: 60]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// Largest request body in bytes; larger ones get 413 [env: SWITCHBOARD_BODY_LIMIT_BYTES] [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit_bytes: Option<usize>,
    /// Longest chat message in characters [env: SWITCHBOARD_MAX_MESSAGE_CHARS] [default: 32000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_chars: Option<usize>,
    /// Browser origin allowed to call the API (repeatable; `*` for any); none means same origin only [env: SWITCHBOARD_CORS_ALLOWED_ORIGINS]
    #[arg(long = "cors-allowed-origin", value_name = "ORIGIN")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cors_allowed_origins: Vec<String>,
    /// Proxy network (CIDR) whose X-Forwarded-For is believed (repeatable) [env: SWITCHBOARD_TRUSTED_PROXIES]
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Host name `/mcp` answers to (repeatable; `*` for any); default: localhost, 127.0.0.1, ::1 and the listen address.
    /// Set it behind a reverse proxy [env: SWITCHBOARD_MCP_ALLOWED_HOSTS]
    #[arg(long = "mcp-allowed-host", value_name = "HOST")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mcp_allowed_hosts: Vec<String>,
    /// Google OAuth client id accepted by POST /api/auth/google (repeatable) [env: SWITCHBOARD_GOOGLE_CLIENT_IDS]
    #[arg(long = "google-client-id", value_name = "ID")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub google_client_ids: Vec<String>,
    /// Email of an administrator (repeatable) [env: SWITCHBOARD_ADMIN_EMAILS]
    #[arg(long = "admin-email", value_name = "EMAIL")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admin_emails: Vec<String>,
    /// Model service: offline (no model), openai (any OpenAI-compatible endpoint) or anthropic [env: SWITCHBOARD_LLM_PROVIDER] [default: offline]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_provider: Option<crate::config::LlmProvider>,
    /// Model endpoint, e.g. http://localhost:11434/v1 for Ollama [env: SWITCHBOARD_LLM_BASE_URL, or OPENAI_BASE_URL] [default: https://api.openai.com/v1 or https://api.anthropic.com/v1]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_base_url: Option<String>,
    /// Model name [env: SWITCHBOARD_LLM_MODEL] [default: gpt-4o-mini or claude-sonnet-4-5]
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_model: Option<String>,
    /// Another model a chat request may ask for with `"model"` (repeatable) [env: SWITCHBOARD_LLM_ALLOWED_MODELS]
    #[arg(long = "llm-allowed-model", value_name = "NAME")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub llm_allowed_models: Vec<String>,
    /// Sampling temperature [env: SWITCHBOARD_LLM_TEMPERATURE]
    #[arg(long, value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_temperature: Option<f32>,
    /// Most tokens a model answer may have [env: SWITCHBOARD_LLM_MAX_TOKENS]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_max_tokens: Option<u32>,
    /// Seconds one model call may take [env: SWITCHBOARD_LLM_TIMEOUT_SECS] [default: 60]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_timeout_secs: Option<u64>,
    /// Further attempts after a 429, 5xx or refused connection [env: SWITCHBOARD_LLM_MAX_RETRIES] [default: 2]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_max_retries: Option<u32>,
    /// Model calls one chat turn may make before it stops [env: SWITCHBOARD_MAX_AGENT_STEPS] [default: 8]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_agent_steps: Option<usize>,
    /// Directory of the all-MiniLM-L6-v2 sentence model (model.safetensors, tokenizer.json, config.json) for
    /// semantic catalog search; without it (and without --embed-base-url) search uses BM25 alone [env: SWITCHBOARD_EMBED_MODEL_DIR]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embed_model_dir: Option<PathBuf>,
    /// OpenAI-compatible embeddings endpoint, used when no model directory is set [env: SWITCHBOARD_EMBED_BASE_URL]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embed_base_url: Option<String>,
    /// Model asked of that endpoint [env: SWITCHBOARD_EMBED_MODEL] [default: text-embedding-3-small]
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embed_model: Option<String>,
    /// Internal network (CIDR) agents may reach on a user's behalf, e.g. a company's MCP servers (repeatable);
    /// loopback, private and link-local addresses are refused otherwise [env: SWITCHBOARD_OUTBOUND_ALLOW]
    #[arg(long = "outbound-allow", value_name = "CIDR")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outbound_allow: Vec<String>,
    /// Allow remote MCP servers over plain http (https only otherwise) [env: SWITCHBOARD_OUTBOUND_ALLOW_HTTP] [default: false]
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub outbound_allow_http: bool,
    /// Jobs this process runs at once; 0 leaves them to `switchboard worker` processes [env: SWITCHBOARD_WORKERS] [default: 2]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Seconds between checks for catalog changes made by other servers [env: SWITCHBOARD_CATALOG_REFRESH_SECS] [default: 5]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_refresh_secs: Option<u64>,
    /// Log format [env: SWITCHBOARD_LOG_FORMAT] [default: text]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `switchboard_api=debug` [env: SWITCHBOARD_LOG_LEVEL] [default: info]
    #[arg(long, value_name = "FILTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT [env: SWITCHBOARD_SHUTDOWN_GRACE_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token's subject (user name)
    #[arg(long)]
    pub user: String,
    /// How long the token is valid: 90s, 15m, 24h, 30d…
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub ttl: std::time::Duration,
    /// Mark the token as an administrator's
    #[arg(long)]
    pub admin: bool,
    /// The server's data directory (where its secret is) [env: SWITCHBOARD_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML settings file [env: SWITCHBOARD_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Serialize)]
struct TokenFlags {
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
}

#[allow(clippy::disallowed_methods)] // the one environment read outside figment: where the file is
pub(crate) fn config_file(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("SWITCHBOARD_CONFIG").map(PathBuf::from))
}

/// Sets the tensor library's thread count to one per operation, unless the environment already
/// sets it (see [`switchboard_embed::THREAD_COUNT_VARIABLE`]). The caller must still be
/// single-threaded: environment writes race with reads.
#[allow(clippy::disallowed_methods)] // not a setting of ours: the tensor library's own variable
pub fn settle_thread_count() {
    let variable = switchboard_embed::THREAD_COUNT_VARIABLE;
    if std::env::var_os(variable).is_none() {
        std::env::set_var(variable, "1");
    }
}

/// Runs the command line and returns the process exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Token(args) => token(args),
        Command::Mcp(McpCommand::Tasks(args)) => mcp_tasks(args).await,
        Command::Catalog(command) => crate::catalog_cli::run(command).await,
        Command::Vault(VaultCommand::Rotate(args)) => vault_rotate(args).await,
        Command::Worker(args) => worker(args).await,
        Command::Chat(args) => crate::client::chat::run(args).await,
        Command::Tasks(args) => crate::client::tasks::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = config_file(args.config.clone());
    let settings = Settings::load(file.as_deref(), &args)?;
    crate::telemetry::init(&settings);
    let app = Application::build(settings).await?;
    let url = format!("http://{}", app.address());
    println!("Switchboard listening on {url}");
    println!("Local user token (valid 30 days): {}", app.local_token());
    println!("Web page, signed in as the local user: {url}/#token={}", app.local_token());
    println!("Try: curl -H \"Authorization: Bearer $TOKEN\" {url}/api/v1/me");
    app.run_until(app::shutdown_signal()).await
}

async fn mcp_tasks(args: McpTasksArgs) -> anyhow::Result<()> {
    let file = config_file(args.store.config.clone());
    let mut settings = Settings::load(file.as_deref(), &args)?;
    // stdout carries the protocol: logs go to stderr, and only warnings by default.
    if settings.log_level == "info" {
        settings.log_level = "warn".into();
    }
    crate::telemetry::init(&settings);
    let store = app::open_store(&settings).await?;
    let identity = switchboard_store::Identity { issuer: LOCAL_ISSUER, subject: &args.user, email: None, name: None };
    let user = store.upsert_user(identity).await?;
    let server = switchboard_mcp::TasksServer::for_user(switchboard_tasks::TaskService::new(store.clone()), user.id);
    let served = switchboard_mcp::serve_stdio(server).await;
    store.close().await;
    Ok(served?)
}

async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let file = config_file(args.store.config.clone());
    let settings = Settings::load(file.as_deref(), &args)?;
    crate::telemetry::init(&settings);
    app::run_workers(settings, app::shutdown_signal()).await
}

async fn vault_rotate(args: StoreArgs) -> anyhow::Result<()> {
    let file = config_file(args.config.clone());
    let mut settings = Settings::load(file.as_deref(), &args)?;
    settings.validate()?;
    if settings.log_level == "info" {
        settings.log_level = "warn".into();
    }
    crate::telemetry::init(&settings);
    let store = app::open_store(&settings).await?;
    let outcome = crate::vault::rotate(&settings, store.clone()).await;
    store.close().await;
    let report = outcome?;
    println!(
        "re-encrypted {} credentials under key {:08x}; {} were already under it",
        report.resealed, report.key_id, report.current
    );
    Ok(())
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let file = config_file(args.config);
    let settings = Settings::load(file.as_deref(), TokenFlags { data_dir: args.data_dir })?;
    settings.validate()?;
    let secret = app::signing_secret(&settings)?;
    let mut new = NewToken::for_subject(args.user, args.ttl);
    new.admin = args.admin;
    println!("{}", TokenSigner::new(&secret).mint(new).0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn serve_help_documents_every_setting() {
        let mut cli = Cli::command();
        let help = cli.find_subcommand_mut("serve").unwrap().render_long_help().to_string();
        for key in crate::config::KEYS {
            let flag = format!("--{}", key.replace('_', "-"));
            let singular_flag = match flag.strip_suffix("ies") {
                Some(stem) => format!("{stem}y"),
                None => flag.trim_end_matches('s').to_string(),
            };
            let env = format!("SWITCHBOARD_{}", key.to_uppercase());
            assert!(
                help.contains(&flag) || help.contains(&singular_flag) || help.contains(&format!("  {key} ")),
                "`serve --help` does not document {key}"
            );
            assert!(help.contains(&env), "`serve --help` does not name {env}");
        }
    }

    #[test]
    fn flags_override_only_what_they_set() {
        let cli = Cli::try_parse_from(["switchboard", "serve", "--rate-limit-per-minute", "0"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let settings = Settings::load(None, &*args).unwrap();
        assert_eq!(settings.rate_limit_per_minute, 0);
        assert_eq!(settings.addr.port(), 8080);
    }
}
