//! all-MiniLM-L6-v2 run in process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::bert::{mean_pool, Bert, BertConfig};
use crate::{normalize, EmbedError, Embedder};

/// The longest input, in tokens, the sentence encoder was trained on; longer texts are cut.
const MAX_TOKENS: usize = 256;
/// Texts run through the model together; sorted by length first, so padding stays small.
const BATCH: usize = 32;

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
        // The shipped tokenizer pads every input to 128 tokens and cuts at 128; pad to the longest
        // in each batch instead and allow what the encoder was trained on.
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
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

    /// Embeds on the calling thread; the async [`Embedder::embed`] runs this off the async runtime.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            for (slot, vector) in chunk.iter().zip(self.inner.run(&batch)?) {
                out[*slot] = vector;
            }
        }
        Ok(out)
    }
}

impl Inner {
    fn run(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let compute = |e: candle_core::Error| EmbedError::Compute(e.to_string());
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedError::Compute(e.to_string()))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| pick(e).iter().copied()).collect()
        };
        let device = Device::Cpu;
        let ids = Tensor::from_vec(flat(|e| e.get_ids()), (rows, width), &device).map_err(compute)?;
        let types = Tensor::from_vec(flat(|e| e.get_type_ids()), (rows, width), &device).map_err(compute)?;
        let mask = Tensor::from_vec(flat(|e| e.get_attention_mask()), (rows, width), &device).map_err(compute)?;
        let hidden = self.model.forward(&ids, &types, &mask).map_err(compute)?;
        let pooled = mean_pool(&hidden, &mask).map_err(compute)?;
        let mut vectors: Vec<Vec<f32>> = pooled.to_vec2().map_err(compute)?;
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
