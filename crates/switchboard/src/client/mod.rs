//! The terminal client: `switchboard chat` (interactive) and `switchboard tasks …`, both
//! speaking the HTTP API of a running server like any other client.

pub mod chat;
pub mod tasks;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::config::Settings;

/// Which server to talk to, and as whom.
#[derive(Debug, Default, Args, Serialize)]
pub struct ClientArgs {
    /// The server's address [env: SWITCHBOARD_URL] [default: the configured listen address, http://127.0.0.1:8080]
    #[arg(long, value_name = "URL", global = true)]
    #[serde(skip)]
    pub url: Option<String>,
    /// Bearer token [env: SWITCHBOARD_TOKEN] [default: the local user's, signed with the data directory's secret]
    #[arg(long, value_name = "JWT", global = true)]
    #[serde(skip)]
    pub token: Option<String>,
    /// The server's data directory, for the local user's token [env: SWITCHBOARD_DATA_DIR]
    #[arg(long, value_name = "DIR", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// TOML settings file [env: SWITCHBOARD_CONFIG]
    #[arg(long, value_name = "FILE", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// The URL of a server listening on `addr` (an unspecified address means this machine).
fn local_url(mut addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv6() {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}")
}

/// An API error as the server words it.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({code}, HTTP {status})")]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// A signed-in connection to a server.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// The server and token from the flags, the environment, or the local defaults.
    #[allow(clippy::disallowed_methods)] // SWITCHBOARD_URL and SWITCHBOARD_TOKEN are the client's, not server settings
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Client> {
        let url = args.url.clone().or_else(|| std::env::var("SWITCHBOARD_URL").ok().filter(|u| !u.is_empty()));
        let token = args.token.clone().or_else(|| std::env::var("SWITCHBOARD_TOKEN").ok().filter(|t| !t.is_empty()));
        let (base, token) = match (url, token) {
            (Some(url), Some(token)) => (url, token),
            (url, token) => {
                let file = crate::cli::config_file(args.config.clone());
                let settings = Settings::load(file.as_deref(), args)?;
                let base = url.unwrap_or_else(|| local_url(settings.addr));
                let token = match token {
                    Some(token) => token,
                    None => {
                        settings.validate()?;
                        let secret = crate::app::signing_secret(&settings)?;
                        crate::app::local_user_token(&switchboard_api::auth::TokenSigner::new(&secret))
                    }
                };
                (base, token)
            }
        };
        let http = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10)).build()?;
        Ok(Client { base: base.trim_end_matches('/').to_string(), token, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; an error answer becomes [`ApiFailure`].
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach Switchboard at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let mut message = body["error"]["message"].as_str().unwrap_or("the server refused the request").to_string();
        if let Some(retry) = retry {
            message.push_str(&format!("; try again in {retry} s"));
        }
        let code = body["error"]["code"].as_str().unwrap_or("error").to_string();
        Err(ApiFailure { status, code, message }.into())
    }

    /// Sends a request and reads its JSON answer (`null` for 204).
    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let response = self.send(method, path, body).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        response.json().await.context("the server's answer is not JSON")
    }
}
