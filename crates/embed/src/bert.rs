//! A BERT encoder (the architecture of all-MiniLM-L6-v2) written against candle's building blocks.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{embedding, Embedding, VarBuilder};
use pulp::NullaryFnOnce;
use serde::Deserialize;

use crate::dense::Dense;

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
    /// The vocabulary's vectors in half precision (30,522 × 384: 23 MB instead of 47), widened to
    /// single precision as a text's tokens are looked up.
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        Ok(Self {
            words: {
                let table = vb.pp("word_embeddings").get((config.vocab_size, config.hidden_size), "weight")?;
                Embedding::new(table.to_dtype(DType::F16)?, config.hidden_size)
            },
            positions: embedding(config.max_position_embeddings, config.hidden_size, vb.pp("position_embeddings"))?,
            token_types: embedding(config.type_vocab_size, config.hidden_size, vb.pp("token_type_embeddings"))?,
            norm: LayerNorm::load(vb.pp("LayerNorm"), config)?,
        })
    }

    fn forward(&self, ids: &Tensor, type_ids: &Tensor) -> Result<Tensor> {
        let seq_len = ids.dim(1)?;
        let positions = Tensor::arange(0u32, seq_len as u32, ids.device())?.unsqueeze(0)?;
        let words = self.words.forward(ids)?.to_dtype(DType::F32)?;
        let sum = words.add(&self.token_types.forward(type_ids)?)?;
        let sum = sum.broadcast_add(&self.positions.forward(&positions)?)?;
        self.norm.forward(&sum)
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
            attention_norm: LayerNorm::load(attention.pp("output").pp("LayerNorm"), config)?,
            intermediate: Dense::load(&[(vb.pp("intermediate").pp("dense"), 1.0)], h, config.intermediate_size)?,
            output: Dense::load(&[(vb.pp("output").pp("dense"), 1.0)], config.intermediate_size, h)?,
            output_norm: LayerNorm::load(vb.pp("output").pp("LayerNorm"), config)?,
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
        let probs = softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch, seq, hidden))?;
        let attended = self.attention_norm.forward(&self.attention_out.forward(&context)?.add(x)?)?;
        let inner = gelu(&self.intermediate.forward(&attended)?)?;
        self.output_norm.forward(&self.output.forward(&inner)?.add(&attended)?)
    }
}

/// Layer normalisation over the hidden dimension: each token's values less their mean, over their
/// standard deviation, then scaled and shifted per dimension. The tensor library's own hands each
/// call to its thread pool and waits for it — a round trip between threads thirteen times a text,
/// which cost a search more than the arithmetic (and under load, the pool is busy scoring).
struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        let h = config.hidden_size;
        Ok(Self {
            weight: vb.get(h, "weight")?.to_vec1()?,
            bias: vb.get(h, "bias")?.to_vec1()?,
            eps: config.layer_norm_eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dim(D::Minus1)? != self.weight.len() {
            candle_core::bail!("layer norm of width {} over rows of {}", self.weight.len(), x.dim(D::Minus1)?);
        }
        map_values(x, self)
    }
}

impl Change for &LayerNorm {
    #[inline(always)]
    fn apply(self, values: &mut [f32]) {
        let width = self.weight.len();
        for row in values.chunks_exact_mut(width) {
            let mean = lanes(row, 0.0, |a, b| a + b).iter().sum::<f32>() / width as f32;
            row.iter_mut().for_each(|v| *v -= mean);
            let variance = lanes(row, 0.0, |a, v| a + v * v).iter().sum::<f32>() / width as f32;
            let scale = 1.0 / (variance + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = *v * scale * w + b;
            }
        }
    }
}

/// GELU, x·Φ(x) with Φ from the error function, as the model was trained with. The tensor library
/// computes erf with a scalar call per element, which took a fifth of a search's time; this
/// rational approximation (the one Eigen uses for single precision) is plain arithmetic the compiler
/// vectorises, within 2e-6 of the exact function (relative to values above one; its erf is
/// within ~4e-7 of the exact one, which x/2 scales).
fn gelu(x: &Tensor) -> Result<Tensor> {
    map_values(x, Gelu)
}

struct Gelu;

impl Change for Gelu {
    #[inline(always)]
    fn apply(self, values: &mut [f32]) {
        for v in values {
            *v *= 0.5 * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Softmax over the last dimension, with [`exp`] in place of a scalar call per element (the
/// attention's scores: sequence² per head and layer).
fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    map_values(x, Softmax { width: x.dim(D::Minus1)?.max(1) })
}

struct Softmax {
    width: usize,
}

impl Change for Softmax {
    #[inline(always)]
    fn apply(self, values: &mut [f32]) {
        for row in values.chunks_exact_mut(self.width) {
            // Each step a loop of its own, and the reductions in sixteen lanes: a sum carried
            // through the exp loop, or one running maximum, would keep the compiler from
            // vectorising them.
            let max = lanes(row, f32::NEG_INFINITY, f32::max).into_iter().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|v| *v = exp(*v - max));
            let scale = 1.0 / lanes(row, 0.0, |a, b| a + b).iter().sum::<f32>();
            row.iter_mut().for_each(|v| *v *= scale);
        }
    }
}

/// `values` folded by `step` into sixteen independent lanes (which the compiler turns into one
/// vector register), the lanes left for the caller to combine.
#[inline(always)]
fn lanes(values: &[f32], start: f32, step: impl Fn(f32, f32) -> f32) -> [f32; 16] {
    let mut acc = [start; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = step(*a, v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a = step(*a, v);
    }
    acc
}

/// A rewrite of a tensor's values in place, as plain loops over a slice that the compiler
/// vectorises ([`map_values`] compiles them for the widest registers the processor has).
trait Change {
    fn apply(self, values: &mut [f32]);
}

/// A [`Change`] as a function `vectorize` inlines.
struct Apply<'a, C>(C, &'a mut [f32]);

impl<C: Change> pulp::NullaryFnOnce for Apply<'_, C> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        self.0.apply(self.1)
    }
}

/// A tensor of the same shape whose values `change` rewrote in place (row-major order), with
/// AVX-512 or AVX2 where the processor has them (found at run time): sixteen or eight values an
/// instruction, not four.
fn map_values(x: &Tensor, change: impl Change) -> Result<Tensor> {
    let mut values = x.flatten_all()?.to_vec1::<f32>()?;
    let apply = Apply(change, &mut values);
    #[cfg(target_arch = "x86_64")]
    if let Some(v4) = pulp::x86::V4::try_new() {
        v4.vectorize(apply);
    } else if let Some(v3) = pulp::x86::V3::try_new() {
        v3.vectorize(apply);
    } else {
        apply.call();
    }
    #[cfg(not(target_arch = "x86_64"))]
    apply.call();
    Tensor::from_vec(values, x.shape(), x.device())
}

/// e^x for the softmax's arguments (x ≤ 0): 2^k·e^r with x = k·ln 2 + r, |r| ≤ ln 2 / 2, e^r by its
/// Taylor series to r⁶ (relative error within 3e-7, as tested), and k rounded by adding and taking away
/// 1.5·2²³ so that the loop stays plain arithmetic. Below -87 (where e^x leaves single precision's
/// normal range) it gives e^-87.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    const LN_2_HIGH: f32 = 0.693_145_75;
    const LN_2_LOW: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    let k = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - k * LN_2_HIGH - k * LN_2_LOW;
    let series =
        [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0].iter().fold(0.0, |acc, c| acc * r + c);
    series * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// The error function: x·p(x²)/q(x²) inside (-4, 4), ±1 beyond (as single precision rounds it).
/// Both are computed and one chosen, which the compiler vectorises (a branch it would not).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let beyond = x.abs() >= 4.0;
    let sign = x.signum();
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600_2e-3,
        -1.609_603_3e-2,
    ]
    .iter()
    .fold(0.0, |acc, c| acc * x2 + c);
    let q = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2]
        .iter()
        .fold(0.0, |acc, c| acc * x2 + c);
    if beyond {
        sign
    } else {
        x * p / q
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn softmax_matches_the_exact_one_and_padding_gets_nothing() {
        // Attention scores: ordinary values, and padding's -10,000 bias.
        let xs: Vec<f32> =
            (0..4_000).map(|i| if i % 50 == 7 { -10_000.0 } else { ((i * 37) % 200) as f32 / 10.0 - 10.0 }).collect();
        let x = Tensor::from_vec(xs, (40, 100), &Device::Cpu).unwrap();
        let exact: Vec<f32> = candle_nn::ops::softmax_last_dim(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let ours: Vec<f32> = softmax_last_dim(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let worst = exact.iter().zip(&ours).map(|(a, b)| (a - b).abs() / a.max(1e-3)).fold(0f32, f32::max);
        assert!(worst < 1e-5, "off by {worst}");
        assert!(ours.iter().skip(7).step_by(50).all(|&p| p < 1e-30), "padding takes no attention");
        for row in ours.chunks(100) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn layer_norm_matches_the_tensor_librarys() {
        let width = 384;
        let xs: Vec<f32> =
            (0..width * 7).map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0 + (i / width) as f32).collect();
        let weight: Vec<f32> = (0..width).map(|i| 0.5 + (i % 13) as f32 / 10.0).collect();
        let bias: Vec<f32> = (0..width).map(|i| (i % 5) as f32 / 4.0 - 0.5).collect();
        let x = Tensor::from_vec(xs, (7, width), &Device::Cpu).unwrap();
        let (w, b) = (
            Tensor::new(weight.as_slice(), &Device::Cpu).unwrap(),
            Tensor::new(bias.as_slice(), &Device::Cpu).unwrap(),
        );
        let exact: Vec<f32> =
            candle_nn::ops::layer_norm(&x, &w, &b, 1e-12).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let ours: Vec<f32> =
            LayerNorm { weight, bias, eps: 1e-12 }.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let worst = exact.iter().zip(&ours).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "off by {worst}");
    }

    #[test]
    fn exp_stays_within_a_few_ten_millionths_of_the_exact_function() {
        for i in 0..=87_000 {
            let x = -(i as f32) / 1000.0;
            let (ours, exact) = (exp(x), x.exp());
            assert!((ours - exact).abs() <= 3e-7 * exact, "e^{x}: {ours} against {exact}");
        }
        assert!(exp(-10_000.0) > 0.0 && exp(-10_000.0) < 1e-37);
    }

    #[test]
    fn gelu_stays_within_two_millionths_of_the_exact_function() {
        let xs: Vec<f32> = (0..=16_000).map(|i| -8.0 + i as f32 / 1000.0).collect();
        let x = Tensor::from_vec(xs.clone(), xs.len(), &Device::Cpu).unwrap();
        let exact: Vec<f32> = x.gelu_erf().unwrap().to_vec1().unwrap();
        let ours: Vec<f32> = gelu(&x).unwrap().to_vec1().unwrap();
        // Relative to the value's size where it is above one (single precision's own steps).
        let off = |i: usize| (exact[i] - ours[i]).abs() / exact[i].abs().max(1.0);
        let worst = (0..xs.len()).max_by(|&a, &b| off(a).total_cmp(&off(b))).unwrap();
        assert!(off(worst) < 2e-6, "off by {} at {}: {} against {}", off(worst), xs[worst], ours[worst], exact[worst]);
        assert_eq!((ours[0], ours[8000]), (0.0, 0.0), "gelu(-8) and gelu(0)");
    }
}
