//! A BERT encoder (the architecture of all-MiniLM-L6-v2) written against candle's building blocks.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};
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

/// A dense layer holding its weight transposed, (in, out) row by row, so the matrix product reads
/// it in the order it is stored. (candle's `Linear` keeps the checkpoint's (out, in) and multiplies
/// by its transpose, which the product repacks on every call: for a short text that made each
/// product 1.6–3× slower on this machine.)
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    /// Several of the checkpoint's (out, in) layers side by side: one product computes them all.
    /// Each part's weight and bias are multiplied by its factor.
    fn load(parts: &[(VarBuilder, f64)], inputs: usize, outputs: usize) -> Result<Self> {
        let mut weights = Vec::with_capacity(parts.len());
        let mut biases = Vec::with_capacity(parts.len());
        for (vb, factor) in parts {
            weights.push((vb.get((outputs, inputs), "weight")? * *factor)?);
            biases.push((vb.get(outputs, "bias")? * *factor)?);
        }
        let weight = Tensor::cat(&weights, 0)?.t()?.contiguous()?;
        Ok(Self { weight, bias: Tensor::cat(&biases, 0)? })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_matmul(&self.weight)?.broadcast_add(&self.bias)
    }
}

struct Layer {
    /// Query, key and value in one product; the query's part already divided by √(head size).
    query_key_value: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
    heads: usize,
}

impl Layer {
    fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        let h = config.hidden_size;
        let attention = vb.pp("attention");
        let own = attention.pp("self");
        let scale = 1.0 / ((h / config.num_attention_heads) as f64).sqrt();
        let qkv = [(own.pp("query"), scale), (own.pp("key"), 1.0), (own.pp("value"), 1.0)];
        Ok(Self {
            query_key_value: Dense::load(&qkv, h, h)?,
            attention_out: Dense::load(&[(attention.pp("output").pp("dense"), 1.0)], h, h)?,
            attention_norm: layer_norm(h, config.layer_norm_eps, attention.pp("output").pp("LayerNorm"))?,
            intermediate: Dense::load(&[(vb.pp("intermediate").pp("dense"), 1.0)], h, config.intermediate_size)?,
            output: Dense::load(&[(vb.pp("output").pp("dense"), 1.0)], config.intermediate_size, h)?,
            output_norm: layer_norm(h, config.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: config.num_attention_heads,
        })
    }

    /// `mask_bias` is 0 for real tokens and a large negative number for padding, shaped (batch, 1, 1, seq).
    fn forward(&self, x: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let (batch, seq, hidden) = x.dims3()?;
        let head_dim = hidden / self.heads;
        let qkv = self.query_key_value.forward(x)?;
        let split = |part: usize| -> Result<Tensor> {
            qkv.narrow(2, part * hidden, hidden)?
                .reshape((batch, seq, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask_bias)?;
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
