//! A BERT encoder (the architecture of all-MiniLM-L6-v2) written against candle's building blocks.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

/// The fields of a Hugging Face `config.json` this encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_activation")]
    pub hidden_act: String,
}

fn default_activation() -> String {
    "gelu".into()
}

struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        Ok(Self {
            words: embedding(config.vocab_size, config.hidden_size, vb.pp("word_embeddings"))?,
            positions: embedding(config.max_position_embeddings, config.hidden_size, vb.pp("position_embeddings"))?,
            token_types: embedding(config.type_vocab_size, config.hidden_size, vb.pp("token_type_embeddings"))?,
            norm: layer_norm(config.hidden_size, config.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    fn forward(&self, ids: &Tensor, type_ids: &Tensor) -> Result<Tensor> {
        let seq_len = ids.dim(1)?;
        let positions = Tensor::arange(0u32, seq_len as u32, ids.device())?.unsqueeze(0)?;
        let sum = self.words.forward(ids)?.add(&self.token_types.forward(type_ids)?)?;
        let sum = sum.broadcast_add(&self.positions.forward(&positions)?)?;
        self.norm.forward(&sum)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    heads: usize,
}

impl Layer {
    fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        let h = config.hidden_size;
        let attention = vb.pp("attention");
        Ok(Self {
            query: linear(h, h, attention.pp("self").pp("query"))?,
            key: linear(h, h, attention.pp("self").pp("key"))?,
            value: linear(h, h, attention.pp("self").pp("value"))?,
            attention_out: linear(h, h, attention.pp("output").pp("dense"))?,
            attention_norm: layer_norm(h, config.layer_norm_eps, attention.pp("output").pp("LayerNorm"))?,
            intermediate: linear(h, config.intermediate_size, vb.pp("intermediate").pp("dense"))?,
            output: linear(config.intermediate_size, h, vb.pp("output").pp("dense"))?,
            output_norm: layer_norm(h, config.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: config.num_attention_heads,
        })
    }

    /// `mask_bias` is 0 for real tokens and a large negative number for padding, shaped (batch, 1, 1, seq).
    fn forward(&self, x: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let (batch, seq, hidden) = x.dims3()?;
        let head_dim = hidden / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((batch, seq, self.heads, head_dim))?.transpose(1, 2)?.contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(mask_bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch, seq, hidden))?;
        let attended = self.attention_norm.forward(&self.attention_out.forward(&context)?.add(x)?)?;
        let inner = self.intermediate.forward(&attended)?.gelu_erf()?;
        self.output_norm.forward(&self.output.forward(&inner)?.add(&attended)?)
    }
}

/// The encoder: token ids in, one hidden state per token out.
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Bert {
    pub fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        if config.hidden_act != "gelu" {
            candle_core::bail!("unsupported activation {:?} (only gelu)", config.hidden_act);
        }
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings: Embeddings::load(vb.pp("embeddings"), config)?, layers })
    }

    /// Hidden states shaped (batch, seq, hidden); `mask` is 1 for real tokens and 0 for padding.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mask_bias = ((1.0 - mask.to_dtype(DType::F32)?)? * -10_000.0)?.unsqueeze(1)?.unsqueeze(1)?;
        let mut hidden = self.embeddings.forward(ids, type_ids)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &mask_bias)?;
        }
        Ok(hidden)
    }
}

/// Averages the hidden states of the real tokens: (batch, seq, hidden) → (batch, hidden).
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    summed.broadcast_div(&counts)
}
