//! all-MiniLM-L6-v2 run in process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{Bert, BertConfig, Tokens};
use crate::{normalize, EmbedError, Embedder};

/// The longest input, in tokens, the sentence encoder was trained on; longer texts are cut.
const MAX_TOKENS: usize = 256;
/// Tokens run through the model together at most (a longer text runs alone).
const BATCH_TOKENS: usize = 2048;

/// The all-MiniLM-L6-v2 sentence encoder, loaded from a directory.
#[derive(Clone)]
pub struct MiniLm {
    inner: Arc<Inner>,
}

struct Inner {
    model: Bert,
    tokenizer: Tokenizer,
    dimension: usize,
    model_id: String,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").field("model_id", &self.inner.model_id).finish()
    }
}

impl MiniLm {
    /// The files the model needs.
    pub const FILES: [&'static str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

    /// Checks that `dir` holds the model's files, without loading them (loading takes a while).
    pub fn check_dir(dir: &Path) -> Result<(), EmbedError> {
        match Self::FILES.iter().find(|name| !dir.join(name).is_file()) {
            Some(name) => {
                Err(EmbedError::Load { path: dir.display().to_string(), reason: format!("{name} is missing") })
            }
            None => Ok(()),
        }
    }

    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let fail = |reason: String| EmbedError::Load { path: dir.display().to_string(), reason };
        let file = |name: &str| -> Result<PathBuf, EmbedError> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(fail(format!("{name} is missing")))
            }
        };
        let config_text = std::fs::read_to_string(file("config.json")?).map_err(|e| fail(e.to_string()))?;
        let config: BertConfig = serde_json::from_str(&config_text).map_err(|e| fail(format!("config.json: {e}")))?;

        let mut tokenizer =
            Tokenizer::from_file(file("tokenizer.json")?).map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        // The shipped tokenizer pads every input to 128 tokens and cuts at 128: no padding (the
        // model takes texts side by side as they are), and cut at what the encoder was trained on.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| fail(format!("tokenizer.json: {e}")))?;

        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(file("model.safetensors")?, &device)
            .map_err(|e| fail(format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = Bert::load(vb, &config).map_err(|e| fail(format!("model.safetensors: {e}")))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                dimension: config.hidden_size,
                model_id: format!("minilm:{name}:{}", config.hidden_size),
            }),
        })
    }

    /// Embeds without yielding to an async runtime (the async [`Embedder::embed`] runs this off
    /// it). Texts go through the model side by side, up to [`BATCH_TOKENS`] at a time, each time
    /// spread over [`crate::pool`] (one thread per core): a lone request uses every core, and
    /// nothing is padded.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inner = &self.inner;
        // In the pool from the start: each parallel step of the model then hands work to a
        // thread that is awake, not to one woken from outside for each step.
        crate::pool().install(|| {
            let encodings = inner
                .tokenizer
                .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
                .map_err(|e| EmbedError::Compute(e.to_string()))?;
            let mut out = Vec::with_capacity(texts.len());
            for group in groups(&encodings) {
                out.extend(inner.run(group)?);
            }
            Ok(out)
        })
    }
}

/// Consecutive encodings of at most [`BATCH_TOKENS`] tokens together (a longer one alone).
fn groups(encodings: &[tokenizers::Encoding]) -> Vec<&[tokenizers::Encoding]> {
    let mut out = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, encoding) in encodings.iter().enumerate() {
        if i > start && tokens + encoding.len() > BATCH_TOKENS {
            out.push(&encodings[start..i]);
            (start, tokens) = (i, 0);
        }
        tokens += encoding.len();
    }
    if start < encodings.len() {
        out.push(&encodings[start..]);
    }
    out
}

impl Inner {
    /// Runs tokenized texts through the model together; one unit vector each.
    fn run(&self, encodings: &[tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let tokens = Tokens {
            ids: encodings.iter().flat_map(|e| e.get_ids().iter().copied()).collect(),
            type_ids: encodings.iter().flat_map(|e| e.get_type_ids().iter().copied()).collect(),
            lengths: encodings.iter().map(tokenizers::Encoding::len).collect(),
        };
        let mut vectors = self.model.forward(&tokens).map_err(|e| EmbedError::Compute(e.to_string()))?;
        vectors.iter_mut().for_each(|v| normalize(v));
        Ok(vectors)
    }
}

#[async_trait::async_trait]
impl Embedder for MiniLm {
    fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    fn dimension(&self) -> usize {
        self.inner.dimension
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let this = self.clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || this.embed_blocking(&texts))
            .await
            .map_err(|e| EmbedError::Compute(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::{groups, BATCH_TOKENS};

    #[test]
    fn texts_go_together_up_to_the_token_budget_in_order_and_a_long_one_alone() {
        let encoding = |n: usize| {
            tokenizers::Encoding::new(
                vec![1; n],
                vec![0; n],
                vec![String::new(); n],
                vec![None; n],
                vec![(0, 0); n],
                vec![0; n],
                vec![1; n],
                Vec::new(),
                Default::default(),
            )
        };
        let lengths = |gs: Vec<&[tokenizers::Encoding]>| -> Vec<Vec<usize>> {
            gs.iter().map(|g| g.iter().map(tokenizers::Encoding::len).collect()).collect()
        };
        let half = BATCH_TOKENS / 2;
        let encodings: Vec<_> = [10, half, half - 10, 1, BATCH_TOKENS + 5, 3].into_iter().map(encoding).collect();
        assert_eq!(
            lengths(groups(&encodings)),
            vec![vec![10, half, half - 10], vec![1], vec![BATCH_TOKENS + 5], vec![3]]
        );
        assert!(groups(&[]).is_empty());
    }
}
