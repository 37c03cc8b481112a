//! Settings: defaults in code, then a TOML file (`--config`), then `SWITCHBOARD_*` environment
//! variables (`__` separates nested keys), then command-line flags — each overriding the one before.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use switchboard_api::auth::OidcIssuerConfig;

/// Every setting of the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<DatabaseUrl>,
    pub db_connect_timeout_secs: u64,
    /// Most connections this process opens to PostgreSQL, the one listening for jobs included.
    pub db_max_connections: u32,
    /// Redis, for a per-user rate limit shared by every server, and the job queue if asked.
    pub redis_url: Option<DatabaseUrl>,
    /// Start of every Redis key of this deployment (several can share one Redis).
    pub redis_prefix: String,
    /// How jobs reach workers: the database, or Redis Streams.
    pub job_queue: JobQueue,
    pub jwt_secret: Option<SecretString>,
    pub jwt_audience: Option<String>,
    #[serde(deserialize_with = "list")]
    pub admin_emails: Vec<String>,
    pub oidc: Vec<OidcIssuerConfig>,
    #[serde(deserialize_with = "list")]
    pub google_client_ids: Vec<String>,
    pub google_jwks_url: String,
    pub jwks_refresh_secs: u64,
    pub session_ttl_secs: u64,
    pub rate_limit_per_minute: u32,
    pub body_limit_bytes: usize,
    pub max_message_chars: usize,
    pub history_limit: u32,
    /// Most tokens (about four characters each) of history sent to the model per turn.
    pub history_max_tokens: usize,
    #[serde(deserialize_with = "list")]
    pub cors_allowed_origins: Vec<String>,
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<IpNet>,
    #[serde(deserialize_with = "list")]
    pub mcp_allowed_hosts: Vec<String>,
    pub llm_provider: LlmProvider,
    pub llm_base_url: Option<String>,
    pub llm_model: Option<String>,
    #[serde(deserialize_with = "list")]
    pub llm_allowed_models: Vec<String>,
    pub llm_api_key: Option<SecretString>,
    pub llm_temperature: Option<f32>,
    pub llm_max_tokens: Option<u32>,
    pub llm_timeout_secs: u64,
    pub llm_max_retries: u32,
    pub max_agent_steps: usize,
    /// A directory holding all-MiniLM-L6-v2 (`model.safetensors`, `tokenizer.json`, `config.json`).
    pub embed_model_dir: Option<PathBuf>,
    /// An OpenAI-compatible embeddings endpoint, used when no model directory is set.
    pub embed_base_url: Option<String>,
    pub embed_model: String,
    pub embed_api_key: Option<SecretString>,
    pub catalog_refresh_secs: u64,
    /// The vault's master key (32+ bytes, or base64 of 32 bytes); a key file in the data
    /// directory when absent.
    pub master_key: Option<SecretString>,
    /// Keys being rotated away from, comma-separated: values sealed under them still open.
    pub previous_master_keys: Option<SecretString>,
    /// Internal networks agents may reach on a user's behalf (remote MCP servers).
    #[serde(deserialize_with = "list")]
    pub outbound_allow: Vec<IpNet>,
    /// Allow plain-http remote MCP servers.
    pub outbound_allow_http: bool,
    pub mcp_call_timeout_secs: u64,
    /// An external MCP server nobody used for this long is shut down.
    pub mcp_idle_secs: u64,
    /// Jobs this process runs at once (0: this process runs none; `switchboard worker` does).
    pub workers: usize,
    pub job_max_attempts: i32,
    pub job_lease_secs: u64,
    pub job_retry_backoff_ms: u64,
    pub job_poll_ms: u64,
    /// Finished jobs created more than this many days ago are deleted with their events (0 keeps
    /// them); the totals in the queue's figures keep counting them.
    pub job_retention_days: f64,
    pub max_file_bytes: usize,
    pub max_files: usize,
    /// Where people reach this server (`https://switchboard.example.com`): OAuth providers send
    /// them back to `<public_url>/api/v1/oauth/callback`. Default: `http://<addr>`.
    pub public_url: Option<String>,
    /// OAuth clients the operator registered with providers, named for catalog entries'
    /// `oauth.client`: `[{name, client_id, client_secret, auth?, issuer?}]`.
    pub oauth_clients: Vec<switchboard_agent::connections::ProviderClient>,
    /// The catalog server the original specification's `/auth/*` routes connect (Google).
    pub google_connection_server: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub shutdown_grace_secs: u64,
}

/// Names of the settings, as keys of the file and (upper-cased, prefixed) of the environment.
pub(crate) const KEYS: &[&str] = &[
    "addr",
    "data_dir",
    "database_url",
    "db_connect_timeout_secs",
    "db_max_connections",
    "redis_url",
    "redis_prefix",
    "job_queue",
    "jwt_secret",
    "jwt_audience",
    "admin_emails",
    "oidc",
    "google_client_ids",
    "google_jwks_url",
    "jwks_refresh_secs",
    "session_ttl_secs",
    "rate_limit_per_minute",
    "body_limit_bytes",
    "max_message_chars",
    "history_limit",
    "history_max_tokens",
    "cors_allowed_origins",
    "trusted_proxies",
    "mcp_allowed_hosts",
    "llm_provider",
    "llm_base_url",
    "llm_model",
    "llm_allowed_models",
    "llm_api_key",
    "llm_temperature",
    "llm_max_tokens",
    "llm_timeout_secs",
    "llm_max_retries",
    "max_agent_steps",
    "embed_model_dir",
    "embed_base_url",
    "embed_model",
    "embed_api_key",
    "catalog_refresh_secs",
    "master_key",
    "previous_master_keys",
    "outbound_allow",
    "outbound_allow_http",
    "mcp_call_timeout_secs",
    "mcp_idle_secs",
    "workers",
    "job_max_attempts",
    "job_lease_secs",
    "job_retry_backoff_ms",
    "job_poll_ms",
    "job_retention_days",
    "max_file_bytes",
    "max_files",
    "public_url",
    "oauth_clients",
    "google_connection_server",
    "log_format",
    "log_level",
    "shutdown_grace_secs",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("switchboard-data"),
            database_url: None,
            db_connect_timeout_secs: 30,
            db_max_connections: 20,
            redis_url: None,
            redis_prefix: "switchboard".into(),
            job_queue: JobQueue::Database,
            jwt_secret: None,
            jwt_audience: None,
            admin_emails: Vec::new(),
            oidc: Vec::new(),
            google_client_ids: Vec::new(),
            google_jwks_url: "https://www.googleapis.com/oauth2/v3/certs".into(),
            jwks_refresh_secs: 10,
            session_ttl_secs: 24 * 3600,
            rate_limit_per_minute: 60,
            body_limit_bytes: 1024 * 1024,
            max_message_chars: 32_000,
            history_limit: 20,
            history_max_tokens: 8000,
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            mcp_allowed_hosts: Vec::new(),
            llm_provider: LlmProvider::Offline,
            llm_base_url: None,
            llm_model: None,
            llm_allowed_models: Vec::new(),
            llm_api_key: None,
            llm_temperature: None,
            llm_max_tokens: None,
            llm_timeout_secs: 60,
            llm_max_retries: 2,
            max_agent_steps: 8,
            embed_model_dir: None,
            embed_base_url: None,
            embed_model: "text-embedding-3-small".into(),
            embed_api_key: None,
            catalog_refresh_secs: 5,
            master_key: None,
            previous_master_keys: None,
            outbound_allow: Vec::new(),
            outbound_allow_http: false,
            mcp_call_timeout_secs: 30,
            mcp_idle_secs: 300,
            workers: 2,
            job_max_attempts: 3,
            job_lease_secs: 30,
            job_retry_backoff_ms: 1000,
            job_poll_ms: 1000,
            job_retention_days: 30.0,
            max_file_bytes: 256 * 1024,
            max_files: 5,
            public_url: None,
            oauth_clients: Vec::new(),
            google_connection_server: "gmail".into(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            shutdown_grace_secs: 30,
        }
    }
}

/// Which model service answers chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    /// No model: plain task commands only.
    Offline,
    /// Any OpenAI-compatible Chat Completions endpoint.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

/// How jobs reach workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JobQueue {
    /// Workers claim jobs from the database (PostgreSQL: SKIP LOCKED and LISTEN/NOTIFY).
    Database,
    /// Job ids go through a Redis stream with a consumer group (needs `redis_url`).
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A database URL; its password never appears in `Debug` output.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &self.0[scheme_end + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{}{}:***{}", &self.0[..scheme_end + 3], user, &self.0[at..])
            }
            _ => self.0.clone(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// Accepts a list either as a sequence or as one comma-separated string (handy in env vars).
fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + Deserialize<'de>,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        Text(String),
    }
    match OneOrMany::<T>::deserialize(d)? {
        OneOrMany::Many(v) => Ok(v),
        OneOrMany::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect(),
    }
}

/// Why settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Load(#[from] Box<figment::Error>),
}

impl Settings {
    /// Loads settings from the layers: defaults < `file` < environment < `flags`.
    pub fn load(file: Option<&std::path::Path>, flags: impl Serialize) -> Result<Settings, SettingsError> {
        Self::figment(file, flags).extract().map_err(|e| SettingsError::Load(Box::new(e)))
    }

    fn figment(file: Option<&std::path::Path>, flags: impl Serialize) -> Figment {
        let mut figment = Figment::new();
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("SWITCHBOARD_").split("__").filter(|key| {
                let top = key.as_str().split('.').next().unwrap_or("").to_ascii_lowercase();
                KEYS.contains(&top.as_str())
            }))
            .merge(Serialized::defaults(flags))
    }

    /// Refuses settings that would run insecurely or not at all.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(secret) = &self.jwt_secret {
            check_secret(secret).map_err(SettingsError::Invalid)?;
        }
        for issuer in &self.oidc {
            if issuer.audiences.is_empty() {
                return Err(SettingsError::Invalid(format!(
                    "OIDC issuer {} needs at least one audience",
                    issuer.issuer
                )));
            }
        }
        if let Some(key) = &self.master_key {
            switchboard_vault::MasterKey::from_material(key.expose_secret())
                .map_err(|e| SettingsError::Invalid(format!("SWITCHBOARD_MASTER_KEY: {e}")))?;
        }
        for key in self.previous_master_keys.iter().flat_map(|k| k.expose_secret().split(',')) {
            switchboard_vault::MasterKey::from_material(key)
                .map_err(|e| SettingsError::Invalid(format!("SWITCHBOARD_PREVIOUS_MASTER_KEYS: {e}")))?;
        }
        if self.db_max_connections < switchboard_store_postgres::MIN_CONNECTIONS {
            return Err(SettingsError::Invalid(format!(
                "db_max_connections must be at least {}",
                switchboard_store_postgres::MIN_CONNECTIONS
            )));
        }
        if self.job_max_attempts < 1 || self.job_lease_secs < 2 {
            return Err(SettingsError::Invalid(
                "job_max_attempts must be at least 1 and job_lease_secs at least 2".into(),
            ));
        }
        if !(self.job_retention_days >= 0.0 && self.job_retention_days.is_finite()) {
            return Err(SettingsError::Invalid("job_retention_days must be 0 (keep jobs) or a positive number".into()));
        }
        if self.job_queue == JobQueue::Redis && self.redis_url.is_none() {
            return Err(SettingsError::Invalid("job_queue = redis needs redis_url (SWITCHBOARD_REDIS_URL)".into()));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.chars().any(|c| c.is_whitespace()) {
            return Err(SettingsError::Invalid("redis_prefix must be a non-empty word".into()));
        }
        if let Some(url) = &self.public_url {
            let parsed =
                url::Url::parse(url).map_err(|_| SettingsError::Invalid(format!("public_url {url:?} is not a URL")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
                return Err(SettingsError::Invalid("public_url must be an http(s) URL without a query".into()));
            }
        }
        for client in &self.oauth_clients {
            if client.name.is_empty() || client.client_id.is_empty() {
                return Err(SettingsError::Invalid("every oauth_clients entry needs a name and a client_id".into()));
            }
        }
        if self.max_agent_steps == 0 {
            return Err(SettingsError::Invalid("max_agent_steps must be at least 1".into()));
        }
        if self.body_limit_bytes == 0 || self.max_message_chars == 0 {
            return Err(SettingsError::Invalid("body_limit_bytes and max_message_chars must be above 0".into()));
        }
        Ok(())
    }

    /// Where people reach this server, for links that come back to it.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Secrets that are published in examples and documentation, and so protect nothing.
const PUBLISHED_SECRETS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "secret",
    "your-secret-key",
    "your-256-bit-secret",
    "your_jwt_secret",
    "jwt-secret",
    "supersecret",
    "please-change-me",
    "super-secret-jwt-token-with-at-least-32-characters-long",
    "your-super-secret-jwt-token-with-at-least-32-characters-long",
    "16f8c0ef4a5d391b26034086c628469d3f9f497f08163ab9b40137092f2909ef",
    "eaa5191f2914e30b9387fd84e254e4ba6f22bd7c4b7a4d27a6c4b3cd6a6e6dd6",
    "f34be427ebb29de8d88c107a71546019685ed8b241d8f2ed00c3df97ad2566f0",
];

/// Minimum secret length in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Refuses short, published or trivially guessable secrets.
pub fn check_secret(secret: &SecretString) -> Result<(), String> {
    let s = secret.expose_secret();
    let lower = s.to_ascii_lowercase();
    if PUBLISHED_SECRETS.contains(&lower.as_str()) || lower.contains("changeme") || lower.contains("change-me") {
        return Err("the JWT secret is a published sample value; generate your own, e.g. `openssl rand -hex 32`".into());
    }
    if s.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the JWT secret is {} bytes long; use at least {MIN_SECRET_BYTES} random bytes, e.g. `openssl rand -hex 32`",
            s.len()
        ));
    }
    let mut distinct: Vec<char> = s.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return Err("the JWT secret repeats too few characters to be random; use `openssl rand -hex 32`".into());
    }
    Ok(())
}

/// Parses `90s`, `15m`, `24h`, `30d` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("invalid duration {text:?}; use e.g. 90s, 15m, 24h or 30d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("invalid duration unit in {text:?}; use s, m, h or d")),
    };
    if secs == 0 {
        return Err("the duration must be above zero".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
// figment's Jail returns its own large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[derive(Serialize, Default)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        rate_limit_per_minute: Option<u32>,
    }

    #[test]
    fn each_layer_overrides_the_one_before() {
        Jail::expect_with(|jail| {
            jail.create_file("sb.toml", "rate_limit_per_minute = 10\nmax_message_chars = 5\nlog_level = \"debug\"")?;
            jail.set_env("SWITCHBOARD_RATE_LIMIT_PER_MINUTE", "20");
            jail.set_env("SWITCHBOARD_MAX_MESSAGE_CHARS", "7");
            let s = Settings::load(Some("sb.toml".as_ref()), Flags { rate_limit_per_minute: Some(30) }).unwrap();
            assert_eq!(s.rate_limit_per_minute, 30, "flag beats env");
            assert_eq!(s.max_message_chars, 7, "env beats file");
            assert_eq!(s.log_level, "debug", "file beats default");
            assert_eq!(s.history_limit, 20, "default");
            Ok(())
        });
    }

    #[test]
    fn lists_come_from_comma_separated_env_values_and_nested_keys_use_double_underscores() {
        Jail::expect_with(|jail| {
            jail.set_env("SWITCHBOARD_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.0.0/16");
            jail.set_env("SWITCHBOARD_OIDC", r#"[{issuer="https://id.example", audiences=["app"]}]"#);
            jail.set_env("SWITCHBOARD_TEST_POSTGRES_URL", "ignored: not a setting");
            let s = Settings::load(None, Flags::default()).unwrap();
            assert_eq!(s.trusted_proxies.len(), 2);
            assert_eq!(s.oidc[0].audiences, vec!["app".to_string()]);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("sb.toml", "rate_limit_per_mnute = 10")?;
            assert!(Settings::load(Some("sb.toml".as_ref()), Flags::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn fewer_than_four_database_connections_are_refused() {
        let settings = |n| Settings { db_max_connections: n, ..Settings::default() };
        let refused = settings(3).validate().unwrap_err().to_string();
        assert!(refused.contains("db_max_connections must be at least 4"), "{refused}");
        assert!(settings(4).validate().is_ok());
    }

    #[test]
    fn job_retention_is_zero_or_a_positive_number_of_days() {
        Jail::expect_with(|jail| {
            jail.set_env("SWITCHBOARD_JOB_RETENTION_DAYS", "0.5");
            let settings = Settings::load(None, Flags::default()).unwrap();
            assert_eq!(settings.job_retention_days, 0.5);
            Ok(())
        });
        let settings = |days| Settings { job_retention_days: days, ..Settings::default() };
        for refused in [-1.0, f64::NAN, f64::INFINITY] {
            let error = settings(refused).validate().unwrap_err().to_string();
            assert!(error.contains("job_retention_days"), "{refused}: {error}");
        }
        assert!(settings(0.0).validate().is_ok() && settings(30.0).validate().is_ok());
    }

    #[test]
    fn weak_and_sample_secrets_are_refused() {
        for weak in [
            "short",
            "changeme",
            "your-super-secret-jwt-token-with-at-least-32-characters-long",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "16f8c0ef4a5d391b26034086c628469d3f9f497f08163ab9b40137092f2909ef",
        ] {
            assert!(check_secret(&SecretString::from(weak)).is_err(), "{weak} must be refused");
        }
        assert!(check_secret(&SecretString::from("b1946ac92492d2347c6235b4d2611184a8f6c1f0e2b2c3d4")).is_ok());
    }

    #[test]
    fn database_urls_hide_their_password() {
        let url = DatabaseUrl::new("postgres://app:hunter2-password@db:5432/sb");
        assert_eq!(url.redacted(), "postgres://app:***@db:5432/sb");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn durations_read_the_usual_units() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("h").is_err());
    }
}
