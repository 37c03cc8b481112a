//! Any OpenAI-compatible `/embeddings` endpoint (OpenAI, Ollama, vLLM, llama.cpp server, LM Studio…).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{normalize, EmbedError, Embedder};

/// Where the endpoint is and which model to ask for.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The API root, e.g. `https://api.openai.com/v1`; `/embeddings` is appended.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<SecretString>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RemoteEmbedder {
    config: RemoteConfig,
    client: reqwest::Client,
    model_id: String,
    dimension: usize,
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

/// Texts sent in one request; endpoints cap the batch size.
const BATCH: usize = 64;

impl RemoteEmbedder {
    /// Connects and embeds one probe text to learn the vector length, so a wrong URL or key fails at start.
    pub async fn connect(config: RemoteConfig) -> Result<Self, EmbedError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| EmbedError::Remote(e.to_string()))?;
        let model_id = format!("remote:{}", config.model);
        let mut this = Self { config, client, model_id, dimension: 0 };
        let probe = this.request(&["dimension probe".to_string()]).await?;
        this.dimension = probe.first().map_or(0, Vec::len);
        if this.dimension == 0 {
            return Err(EmbedError::Remote("the endpoint returned an empty vector".into()));
        }
        Ok(this)
    }

    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let url = format!("{}/embeddings", self.config.base_url.trim_end_matches('/'));
        let mut request = self.client.post(&url).json(&serde_json::json!({"model": self.config.model, "input": texts}));
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        // Errors name the status only: the body may echo the request, and the key stays out of messages.
        let response = request.send().await.map_err(|e| EmbedError::Remote(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(EmbedError::Remote(format!("{url} answered {status}")));
        }
        let answer: Answer =
            response.json().await.map_err(|e| EmbedError::Remote(format!("{url}: unreadable answer: {e}")))?;
        if answer.data.len() != texts.len() {
            return Err(EmbedError::Remote(format!(
                "{url} returned {} vectors for {} texts",
                answer.data.len(),
                texts.len()
            )));
        }
        let mut out = vec![Vec::new(); texts.len()];
        for item in answer.data {
            let slot = out.get_mut(item.index).ok_or_else(|| EmbedError::Remote(format!("{url}: bad index")))?;
            *slot = item.embedding;
            normalize(slot);
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Embedder for RemoteEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let vectors = self.request(chunk).await?;
            if vectors.iter().any(|v| v.len() != self.dimension) {
                return Err(EmbedError::Remote("the endpoint changed its vector length".into()));
            }
            out.extend(vectors);
        }
        Ok(out)
    }
}
