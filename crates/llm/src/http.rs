//! What the HTTP providers share: settings, and one request with timeouts and retries.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use secrecy::SecretString;

use crate::ProviderError;

/// Settings of an HTTP model provider.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// e.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`.
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Per attempt.
    pub timeout: Duration,
    /// Further attempts after a 429, a 5xx or a refused connection.
    pub max_retries: u32,
    /// A `Retry-After` longer than this is not waited for: the caller is told to come back.
    pub max_retry_wait: Duration,
}

impl HttpConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> HttpConfig {
        HttpConfig {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            temperature: None,
            max_tokens: None,
            timeout: Duration::from_secs(60),
            max_retries: 2,
            max_retry_wait: Duration::from_secs(5),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), path.trim_start_matches('/'))
    }
}

/// How a provider presents its key.
#[derive(Clone, Copy)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the value of this header (`x-api-key`).
    Named(&'static str),
}

/// A request builder for `path` with `body` (JSON), made anew for every attempt.
pub(crate) fn poster<'a>(
    http: &'a reqwest::Client,
    config: &'a HttpConfig,
    path: &str,
    body: bytes::Bytes,
    key_header: KeyHeader,
    extra: &'a [(&'static str, &'static str)],
) -> impl Fn() -> reqwest::RequestBuilder + 'a {
    use secrecy::ExposeSecret;
    let url = config.url(path);
    move || {
        let mut builder = http.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        match (&config.api_key, key_header) {
            (Some(key), KeyHeader::Bearer) => builder.bearer_auth(key.expose_secret()),
            (Some(key), KeyHeader::Named(name)) => builder.header(name, key.expose_secret()),
            (None, _) => builder,
        }
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("an HTTP client with default settings")
}

/// Sends the request built by `build`, retrying transient failures with exponential backoff
/// (honouring `Retry-After`), and returns the first successful response.
pub(crate) async fn send_with_retries(
    config: &HttpConfig,
    build: impl Fn() -> reqwest::RequestBuilder,
    classify_error: impl Fn(StatusCode, &str) -> Option<ProviderError>,
) -> Result<Response, ProviderError> {
    let mut attempt = 0;
    loop {
        let outcome = build().timeout(config.timeout).send().await;
        let (retryable, wait) = match outcome {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(&response);
                let body = response.text().await.unwrap_or_default();
                if let Some(error) = classify_error(status, &body) {
                    return Err(error);
                }
                match status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(ProviderError::Authentication),
                    StatusCode::TOO_MANY_REQUESTS => {
                        if retry_after.is_some_and(|w| w > config.max_retry_wait) || attempt >= config.max_retries {
                            return Err(ProviderError::RateLimited { retry_after });
                        }
                        (ProviderError::RateLimited { retry_after }, retry_after)
                    }
                    s if s.is_server_error() => (ProviderError::Unavailable(format!("status {s}")), retry_after),
                    s => return Err(ProviderError::Rejected(format!("status {s}"))),
                }
            }
            Err(e) if e.is_timeout() => {
                return Err(ProviderError::Unavailable(format!("no answer within {} s", config.timeout.as_secs())))
            }
            Err(e) => (ProviderError::Unavailable(connection_error(&e)), None),
        };
        if attempt >= config.max_retries {
            return Err(retryable);
        }
        attempt += 1;
        let wait = wait.unwrap_or_else(|| backoff(attempt)).min(config.max_retry_wait);
        tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %retryable, "retrying the model call");
        tokio::time::sleep(wait).await;
    }
}

/// Reads a whole (non-streamed) answer with `parse`, naming the configured model when the
/// service did not.
pub(crate) async fn read_answer(
    config: &HttpConfig,
    response: Response,
    parse: fn(&str) -> Result<crate::ChatResponse, ProviderError>,
) -> Result<crate::ChatResponse, ProviderError> {
    let text =
        response.text().await.map_err(|e| ProviderError::Malformed(format!("the body could not be read: {e}")))?;
    let mut parsed = parse(&text)?;
    if parsed.model.is_empty() {
        parsed.model = config.model.clone();
    }
    Ok(parsed)
}

/// A streamed answer; a service that answered a stream request with one JSON body (some
/// OpenAI-compatible servers ignore `stream`) is read whole and replayed as events.
pub(crate) async fn read_stream(
    config: &HttpConfig,
    response: Response,
    parse: fn(&str) -> Result<crate::ChatResponse, ProviderError>,
    parse_stream: fn(futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>, String) -> crate::EventStream,
) -> Result<crate::EventStream, ProviderError> {
    use futures::StreamExt;
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Ok(parse_stream(response.bytes_stream().boxed(), config.model.clone()));
    }
    let answer = read_answer(config, response, parse).await?;
    let mut events = Vec::new();
    if !answer.content.is_empty() {
        events.push(Ok(crate::StreamEvent::TextDelta(answer.content)));
    }
    events.extend(answer.tool_calls.into_iter().map(|call| Ok(crate::StreamEvent::ToolCall(call))));
    events.push(Ok(crate::StreamEvent::Usage(answer.usage)));
    events.push(Ok(crate::StreamEvent::Finish { model: answer.model, reason: answer.finish_reason }));
    Ok(futures::stream::iter(events).boxed())
}

fn connection_error(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "the connection was refused".into()
    } else {
        "the connection failed".into()
    }
}

/// 250 ms, 500 ms, 1 s … with up to 20 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250) * 2u32.saturating_pow(attempt.saturating_sub(1));
    let jitter = rand::random::<f64>() * 0.2;
    base.mul_f64(1.0 + jitter)
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}
