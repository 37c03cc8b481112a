//! Wiring: settings in, a running server out. Tests drive this same path on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use switchboard_agent::builder::Builder;
use switchboard_agent::connections::Connections;
use switchboard_agent::credentials::Credentials;
use switchboard_agent::Agent;
use switchboard_api::auth::{AuthConfig, Authenticator, NewToken, TokenSigner};
use switchboard_api::jobs::JobRunner;
use switchboard_api::mcp_endpoint::McpConfig;
use switchboard_api::metrics::Metrics;
use switchboard_api::ratelimit::{InMemoryRateLimiter, RateLimiter, RedisRateLimiter};
use switchboard_api::{ApiConfig, AppState, Services};
use switchboard_catalog::Catalog;
use switchboard_embed::{Embedder, MiniLm, RemoteConfig, RemoteEmbedder};
use switchboard_jobs::{WorkerConfig, Workers};
use switchboard_llm::{AnthropicProvider, HttpConfig, OfflineProvider, OpenAiProvider, Provider};
use switchboard_mcp::outbound::OutboundPolicy;
use switchboard_mcp::TasksServer;
use switchboard_store::Store;
use switchboard_tasks::TaskService;
use tokio::net::TcpListener;

use crate::config::{check_secret, JobQueue, LlmProvider, Settings};

/// Loads the configured embedding model, if any: the local model from its directory, else the
/// remote endpoint.
pub async fn embedder(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    if let Some(dir) = settings.embed_model_dir.clone() {
        let model = tokio::task::spawn_blocking(move || MiniLm::load(&dir)).await??;
        return Ok(Some(Arc::new(model)));
    }
    if let Some(base_url) = &settings.embed_base_url {
        let config = RemoteConfig {
            base_url: base_url.clone(),
            model: settings.embed_model.clone(),
            api_key: settings.embed_api_key.clone().or_else(|| settings.llm_api_key.clone()),
            timeout: Duration::from_secs(settings.llm_timeout_secs),
        };
        return Ok(Some(Arc::new(RemoteEmbedder::connect(config).await?)));
    }
    Ok(None)
}

/// In the background: loads the embedding model, embeds the catalog, then picks up catalog
/// changes made by other servers until shutdown.
async fn keep_catalog_fresh(catalog: Catalog, settings: Settings, shutdown: tokio_util::sync::CancellationToken) {
    match embedder(&settings).await {
        Ok(Some(embedder)) => {
            tracing::info!(model = embedder.model_id(), "embedding model loaded; catalog search becomes hybrid");
            catalog.set_embedder(embedder);
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "the embedding model failed to load; catalog search uses BM25 alone"),
    }
    let every = Duration::from_secs(settings.catalog_refresh_secs.max(1));
    loop {
        if let Err(e) = catalog.refresh().await {
            tracing::warn!(error = %e, "refreshing the catalog failed; retrying");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Subject of the user that `serve` prints a token for.
pub const LOCAL_SUBJECT: &str = "local";
/// Lifetime of that token.
pub const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Parts a caller may supply instead of the ones built from settings (tests inject a limiter
/// with a manual clock this way).
#[derive(Default)]
pub struct Parts {
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
}

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
    local_token: String,
    settings: Settings,
}

impl Application {
    /// Opens the database (applying migrations), loads or creates the signing secret and binds
    /// the listener. Nothing is served until [`Application::run_until`].
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Application::build_with(settings, Parts::default()).await
    }

    /// [`Application::build`] with some parts supplied by the caller.
    pub async fn build_with(settings: Settings, parts: Parts) -> anyhow::Result<Application> {
        let listener =
            TcpListener::bind(settings.addr).await.with_context(|| format!("cannot listen on {}", settings.addr))?;
        let public_url = settings.public_url(listener.local_addr()?);
        let state = build_state(&settings, parts, &public_url).await?;
        let local_token = local_user_token(state.auth.signer());
        Ok(Application { listener, state, grace: settings.shutdown_grace(), local_token, settings })
    }

    /// Where the server listens (the real port when 0 was asked).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// A bearer token for the local administrator, valid 30 days.
    pub fn local_token(&self) -> &str {
        &self.local_token
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (for at most the
    /// grace period) and closes the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let mcp_pool = self.state.mcp_pool.clone();
        let streams = self.state.shutdown.clone();
        tokio::spawn(keep_catalog_fresh(
            self.state.catalog.clone(),
            self.settings.clone(),
            self.state.shutdown.clone(),
        ));
        let jobs = (self.settings.workers > 0)
            .then(|| tokio::spawn(workers(&self.settings, &self.state).run(self.state.shutdown.clone())));
        let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            streams.cancel();
            let _ = stopping_tx.send(true);
        };
        let service = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(
            switchboard_api::service(self.state),
        );
        let server = axum::serve(self.listener, service).with_graceful_shutdown(signal);
        let grace = self.grace;
        let deadline = async move {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = server => served.context("the HTTP server failed")?,
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping the remaining connections"),
        }
        // Jobs still running stop here and go back to the queue for another worker.
        if let Some(jobs) = jobs {
            let _ = jobs.await;
        }
        mcp_pool.shutdown().await;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Everything the handlers and workers share: the database (migrated), keys, catalog, agent.
async fn build_state(settings: &Settings, parts: Parts, public_url: &str) -> anyhow::Result<AppState> {
    settings.validate()?;
    create_private_dir(&settings.data_dir)
        .with_context(|| format!("cannot create the data directory {}", settings.data_dir.display()))?;
    let store = open_store(settings).await?;
    let secret = signing_secret(settings)?;

    let auth = Authenticator::new(
        AuthConfig {
            secret: secret.clone(),
            audience: settings.jwt_audience.clone(),
            oidc: settings.oidc.clone(),
            google_client_ids: settings.google_client_ids.clone(),
            google_jwks_url: settings.google_jwks_url.clone(),
            admin_emails: settings.admin_emails.clone(),
            session_ttl: Duration::from_secs(settings.session_ttl_secs),
            jwks_refresh_interval: Duration::from_secs(settings.jwks_refresh_secs),
        },
        store.clone(),
    );
    let limiter = match (parts.rate_limiter, NonZeroU32::new(settings.rate_limit_per_minute)) {
        (Some(given), _) => Some(given),
        (None, None) => None,
        (None, Some(n)) => Some(match &settings.redis_url {
            Some(url) => {
                let connect = RedisRateLimiter::connect(url.expose(), &settings.redis_prefix, n);
                let limiter = tokio::time::timeout(Duration::from_secs(10), connect)
                    .await
                    .map_err(|_| anyhow::anyhow!("timed out connecting to Redis at {}", url.redacted()))?
                    .with_context(|| format!("cannot use Redis at {}", url.redacted()))?;
                tracing::info!("rate limits are shared through Redis");
                Arc::new(limiter) as Arc<dyn RateLimiter>
            }
            None => Arc::new(InMemoryRateLimiter::per_minute(n)) as Arc<dyn RateLimiter>,
        }),
    };
    let catalog = Catalog::new(store.clone(), None);
    catalog.seed_builtin().await.context("cannot load the built-in catalog")?;
    if let Some(dir) = &settings.embed_model_dir {
        MiniLm::check_dir(dir)?;
    }
    let keyring = Arc::new(crate::vault::keyring(settings)?);
    let outbound =
        Arc::new(OutboundPolicy { allow: settings.outbound_allow.clone(), allow_http: settings.outbound_allow_http });
    let connections = Connections::new(
        store.clone(),
        keyring.clone(),
        catalog.clone(),
        switchboard_oauth::Http::new(outbound.clone()),
        settings.oauth_clients.clone(),
        format!("{public_url}/api/v1/oauth/callback"),
    );
    let credentials = Credentials::new(store.clone(), keyring, catalog.clone(), outbound, connections);
    let state = AppState::new(Services {
        builder: Builder::new(store.clone(), catalog.clone(), credentials),
        catalog,
        tasks: TaskService::new(store.clone()),
        tasks_server: Arc::new(TasksServer::for_signed_in_users(TaskService::new(store.clone()))),
        mcp_pool: switchboard_mcp::pool::ClientPool::new(Duration::from_secs(settings.mcp_idle_secs.max(1))),
        mcp_sessions: Default::default(),
        shutdown: tokio_util::sync::CancellationToken::new(),
        store,
        auth: Arc::new(auth),
        limiter,
        agent: agent(settings),
        jobs: job_queue(settings).await?,

        metrics: Arc::new(Metrics::new()),
        config: Arc::new(ApiConfig {
            body_limit: settings.body_limit_bytes,
            max_message_chars: settings.max_message_chars,
            history_limit: settings.history_limit,
            history_max_tokens: settings.history_max_tokens,
            cors_allowed_origins: settings.cors_allowed_origins.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            mcp: McpConfig {
                allowed_hosts: mcp_allowed_hosts(settings),
                allowed_origins: settings.cors_allowed_origins.clone(),
            },
            models: chat_models(settings),
            mcp_call_timeout: Duration::from_secs(settings.mcp_call_timeout_secs.max(1)),
            job_max_attempts: settings.job_max_attempts,
            max_file_bytes: settings.max_file_bytes,
            max_files: settings.max_files,
            public_url: public_url.to_owned(),
            google_connection_server: settings.google_connection_server.clone(),
        }),
    });
    Ok(state)
}

/// The workers of this process, over its state.
fn workers(settings: &Settings, state: &AppState) -> Workers {
    let config = WorkerConfig {
        concurrency: settings.workers.max(1),
        lease: Duration::from_secs(settings.job_lease_secs),
        renew_every: Duration::from_millis(500).min(Duration::from_secs(settings.job_lease_secs) / 3),
        poll_every: Duration::from_millis(settings.job_poll_ms.max(10)),
        backoff: Duration::from_millis(settings.job_retry_backoff_ms),
        max_backoff: Duration::from_secs(60),
        name: "sb".into(),
        retention: (settings.job_retention_days > 0.0)
            .then(|| Duration::from_secs_f64(settings.job_retention_days * 86_400.0)),
    };
    Workers::new(state.store.clone(), Arc::new(JobRunner { state: state.clone() }), config, state.jobs.clone())
}

/// The job queue the settings ask for: the database, or Redis Streams.
async fn job_queue(settings: &Settings) -> anyhow::Result<switchboard_jobs::Queue> {
    let (JobQueue::Redis, Some(url)) = (settings.job_queue, &settings.redis_url) else {
        return Ok(switchboard_jobs::Queue::database());
    };
    let connect = switchboard_jobs::streams::RedisStreams::connect(url.expose(), &settings.redis_prefix);
    let streams = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Redis at {}", url.redacted()))?
        .with_context(|| format!("cannot use Redis at {} for the job queue", url.redacted()))?;
    tracing::info!(stream = streams.stream_key(), "jobs go through Redis Streams");
    Ok(switchboard_jobs::Queue::redis(Arc::new(streams)))
}

/// `switchboard worker`: runs jobs until `shutdown`, with no HTTP server.
pub async fn run_workers(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let public_url = settings.public_url(settings.addr);
    let state = build_state(&settings, Parts::default(), &public_url).await?;
    let stop = state.shutdown.clone();
    tokio::spawn(keep_catalog_fresh(state.catalog.clone(), settings.clone(), stop.clone()));
    let workers = workers(&settings, &state);
    println!("Switchboard worker {} running {} jobs at a time", workers.id(), settings.workers.max(1));
    let running = tokio::spawn(workers.run(stop.clone()));
    shutdown.await;
    tracing::info!("stopping the workers");
    stop.cancel();
    let _ = running.await;
    state.mcp_pool.shutdown().await;
    state.store.close().await;
    Ok(())
}

/// The agent with the configured model provider.
fn agent(settings: &Settings) -> Agent {
    let http = |default_url: &str| {
        let model = default_model(settings.llm_provider).unwrap_or_default();
        let mut config = HttpConfig::new(
            settings.llm_base_url.clone().unwrap_or_else(|| default_url.into()),
            settings.llm_model.clone().unwrap_or_else(|| model.into()),
        );
        config.api_key = settings.llm_api_key.clone();
        config.temperature = settings.llm_temperature;
        config.max_tokens = settings.llm_max_tokens;
        config.timeout = Duration::from_secs(settings.llm_timeout_secs);
        config.max_retries = settings.llm_max_retries;
        config
    };
    let provider: Arc<dyn Provider> = match settings.llm_provider {
        LlmProvider::Offline => Arc::new(OfflineProvider),
        LlmProvider::Openai => Arc::new(OpenAiProvider::new(http("https://api.openai.com/v1"))),
        LlmProvider::Anthropic => Arc::new(AnthropicProvider::new(http("https://api.anthropic.com/v1"))),
    };
    tracing::info!(provider = provider.name(), "model provider ready");
    let mut agent = Agent::new(provider);
    agent.max_steps = settings.max_agent_steps;
    agent
}

/// The model used when none is configured.
fn default_model(provider: LlmProvider) -> Option<&'static str> {
    match provider {
        LlmProvider::Offline => None,
        LlmProvider::Openai => Some("gpt-4o-mini"),
        LlmProvider::Anthropic => Some("claude-sonnet-4-5"),
    }
}

/// Models a chat request may name: the configured one, then the allow-list; none when offline.
fn chat_models(settings: &Settings) -> Vec<String> {
    let Some(default) = default_model(settings.llm_provider) else { return Vec::new() };
    let mut models = vec![settings.llm_model.clone().unwrap_or_else(|| default.into())];
    models.extend(settings.llm_allowed_models.iter().filter(|m| !models.contains(m)).cloned().collect::<Vec<_>>());
    models
}

/// Hosts `/mcp` answers to: the configured list, or loopback names plus the listen address.
fn mcp_allowed_hosts(settings: &Settings) -> Vec<String> {
    if !settings.mcp_allowed_hosts.is_empty() {
        return settings.mcp_allowed_hosts.clone();
    }
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let ip = settings.addr.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        hosts.push(ip.to_string());
    }
    hosts
}

pub(crate) async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let timeout = Duration::from_secs(settings.db_connect_timeout_secs);
    let store: Arc<dyn Store> = match &settings.database_url {
        None => Arc::new(
            switchboard_store_sqlite::open(&settings.data_dir.join("switchboard.db"))
                .await
                .context("cannot open the SQLite database")?,
        ),
        Some(url) if url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://") => {
            let connect = switchboard_store_postgres::connect(url.expose(), timeout, settings.db_max_connections);
            let store = tokio::time::timeout(timeout + Duration::from_secs(5), connect)
                .await
                .map_err(|_| anyhow::anyhow!("timed out connecting to {}", url.redacted()))?
                .with_context(|| format!("cannot use the database at {}", url.redacted()))?;
            Arc::new(store)
        }
        Some(url) if url.expose().starts_with("sqlite:") => Arc::new(
            switchboard_store_sqlite::open_url(url.expose())
                .await
                .with_context(|| format!("cannot open {}", url.redacted()))?,
        ),
        Some(url) => anyhow::bail!("unsupported database URL {}; use postgres://… or sqlite:…", url.redacted()),
    };
    tracing::info!(backend = store.backend(), "database ready");
    Ok(store)
}

/// The configured secret, or the one kept in the data directory (created on first use, 0600).
pub fn signing_secret(settings: &Settings) -> anyhow::Result<SecretString> {
    if let Some(secret) = &settings.jwt_secret {
        return Ok(secret.clone());
    }
    load_or_create_secret(&settings.data_dir.join("jwt_secret"))
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = SecretString::from(text.trim().to_owned());
            check_secret(&secret).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut bytes = [0u8; 32];
            rand::Rng::fill(&mut rand::rng(), &mut bytes);
            let secret = SecretString::from(hex::encode(bytes));
            write_private(path, secret.expose_secret().as_bytes())
                .with_context(|| format!("cannot write the signing secret to {}", path.display()))?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the signing secret {}", path.display())),
    }
}

/// Creates the data directory readable by its owner only (it holds messages and the secret).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

pub(crate) fn local_user_token(signer: &TokenSigner) -> String {
    let mut token = NewToken::for_subject(LOCAL_SUBJECT, LOCAL_TOKEN_TTL);
    token.name = Some("Local user".into());
    token.admin = true;
    signer.mint(token).0
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed by this call, not when the
/// future is first polled: a SIGTERM that arrives while the server is starting to serve must stop
/// it gracefully, not kill it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (term, interrupt) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = interrupt.recv() => {},
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM/SIGINT; stop the process by other means");
                    std::future::pending::<()>().await
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
