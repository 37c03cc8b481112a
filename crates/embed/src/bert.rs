//! A BERT encoder (the architecture of all-MiniLM-L6-v2) over plain buffers of values: candle
//! loads the weights and looks up the tokens' vectors; the layers are ours (`dense.rs` for the
//! products, the attention, norms and activation below).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use rayon::prelude::*;
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

/// The token rows of several texts side by side, without padding: text `i` holds `lengths[i]`
/// rows, after those of the texts before it.
pub struct Tokens {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub lengths: Vec<usize>,
}

impl Tokens {
    /// Each text's first row and number of rows.
    fn spans(&self) -> Vec<(usize, usize)> {
        let mut start = 0;
        self.lengths
            .iter()
            .map(|&n| {
                start += n;
                (start - n, n)
            })
            .collect()
    }
}

struct Embeddings {
    /// The vocabulary's vectors in half precision (30,522 × 384: 23 MB instead of 47), widened to
    /// single precision as a text's tokens are looked up.
    words: Embedding,
    /// One row per position, and per token type.
    positions: Vec<f32>,
    token_types: Vec<f32>,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        let (h, table) = (config.hidden_size, |name: &str, rows: usize| -> Result<Vec<f32>> {
            vb.pp(name).get((rows, config.hidden_size), "weight")?.flatten_all()?.to_vec1()
        });
        Ok(Self {
            words: {
                let table = vb.pp("word_embeddings").get((config.vocab_size, h), "weight")?;
                Embedding::new(table.to_dtype(DType::F16)?, h)
            },
            positions: table("position_embeddings", config.max_position_embeddings)?,
            token_types: table("token_type_embeddings", config.type_vocab_size)?,
            norm: LayerNorm::load(vb.pp("LayerNorm"), config)?,
        })
    }

    /// One normalised row per token: its word's, position's and type's vectors added.
    fn forward(&self, tokens: &Tokens) -> Result<Vec<f32>> {
        let h = self.norm.weight.len();
        let ids = Tensor::from_slice(&tokens.ids, tokens.ids.len(), &candle_core::Device::Cpu)?;
        let mut rows: Vec<f32> = self.words.forward(&ids)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let positions = tokens.lengths.iter().flat_map(|&n| 0..n);
        fn row_of(table: &[f32], i: usize, width: usize) -> Option<&[f32]> {
            table.get(i * width..(i + 1) * width)
        }
        for ((row, position), &kind) in rows.chunks_exact_mut(h).zip(positions).zip(&tokens.type_ids) {
            let (Some(position), Some(kind)) =
                (row_of(&self.positions, position, h), row_of(&self.token_types, kind as usize, h))
            else {
                candle_core::bail!("a token at position {position} of type {kind} is beyond the model's tables");
            };
            for ((v, p), t) in row.iter_mut().zip(position).zip(kind) {
                *v += p + t;
            }
        }
        vectorized(Apply(&self.norm, &mut rows));
        Ok(rows)
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

    /// Every text's attention: each token's context, the values of its text's tokens weighted by
    /// how well their keys match its query, head by head. `qkv` holds each token's query, key and
    /// value side by side; the (text, head) pairs are spread over the pool.
    fn attention(&self, qkv: &[f32], spans: &[(usize, usize)]) -> Vec<f32> {
        let hidden = self.attention_norm.weight.len();
        let head = hidden / self.heads;
        let units: Vec<(usize, usize, usize)> =
            spans.iter().flat_map(|&(start, len)| (0..self.heads).map(move |h| (start, len, h))).collect();
        let done: Vec<Vec<f32>> = units
            .par_iter()
            .map(|&(start, len, h)| {
                let at = h * head;
                match head {
                    32 => vectorized(HeadAttention::<32> { qkv, hidden, start, len, at }),
                    _ => vectorized(HeadAttention::<64> { qkv, hidden, start, len, at }),
                }
            })
            .collect();
        let mut context = vec![0f32; qkv.len() / 3];
        for (&(start, len, h), values) in units.iter().zip(done) {
            for (row, values) in values.chunks_exact(head).enumerate().take(len) {
                context[(start + row) * hidden + h * head..][..head].copy_from_slice(values);
            }
        }
        context
    }

    /// What follows the attention, token by token: the attention's output added to the layer's
    /// input and normalised, the feed-forward block with GELU, added and normalised again — and
    /// `next`'s query, key and value, which need nothing but the token's own values. `x` and
    /// `context` hold the same rows; returns the new `x` and, with `next`, its products.
    fn tokens_forward(&self, x: &[f32], context: &[f32], next: Option<&Layer>) -> (Vec<f32>, Vec<f32>) {
        let mut attended = self.attention_out.product(context);
        add(&mut attended, x);
        vectorized(Apply(&self.attention_norm, &mut attended));
        let mut inner = self.intermediate.product(&attended);
        vectorized(Apply(Gelu, &mut inner));
        let mut out = self.output.product(&inner);
        add(&mut out, &attended);
        vectorized(Apply(&self.output_norm, &mut out));
        let qkv = next.map(|next| next.query_key_value.product(&out)).unwrap_or_default();
        (out, qkv)
    }
}

/// `a += b`, value by value.
fn add(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
}

/// Keys scored at once against a query: one register of sums.
const KEYS: usize = 16;

/// One head's attention over one text, as plain loops the compiler vectorises: for each token
/// (query), its scores against every key of the text, their softmax, and the values they weight.
/// Keys are copied dimension by dimension first (so [`KEYS`] scores sum in one register, with no
/// sum across a register's lanes) and values row by row; the sums stay in registers, for which
/// the head's width `W` is known when compiling.
struct HeadAttention<'a, const W: usize> {
    qkv: &'a [f32],
    hidden: usize,
    start: usize,
    len: usize,
    /// The head's first column within the query, the key and the value.
    at: usize,
}

impl<const W: usize> pulp::NullaryFnOnce for HeadAttention<'_, W> {
    /// The head's context for each token of the text, `W` values a token.
    type Output = Vec<f32>;

    #[inline(always)]
    fn call(self) -> Vec<f32> {
        let Self { qkv, hidden, start, len, at } = self;
        let row = |t: usize, part: usize| &qkv[(start + t) * 3 * hidden + part * hidden + at..][..W];
        // Keys padded with zeros to whole registers; their scores are left out below.
        let padded = len.next_multiple_of(KEYS);
        let mut keys = vec![0f32; W * padded];
        let mut values = Vec::with_capacity(len * W);
        for t in 0..len {
            for (d, &k) in row(t, 1).iter().enumerate() {
                keys[d * padded + t] = k;
            }
            values.extend_from_slice(row(t, 2));
        }
        let mut context = vec![0f32; len * W];
        let mut scores = vec![0f32; padded];
        for (t, out) in context.chunks_exact_mut(W).enumerate() {
            let query = row(t, 0);
            for (block, scores) in scores.chunks_exact_mut(KEYS).enumerate() {
                let mut sums = [0f32; KEYS];
                for (&q, keys) in query.iter().zip(keys.chunks_exact(padded)) {
                    let keys: &[f32; KEYS] = keys[block * KEYS..][..KEYS].try_into().expect("whole registers");
                    for (s, k) in sums.iter_mut().zip(keys) {
                        *s = q.mul_add(*k, *s);
                    }
                }
                scores.copy_from_slice(&sums);
            }
            let weights = &mut scores[..len];
            Softmax { width: len }.apply(weights);
            let mut sums = [0f32; W];
            for (&p, value) in weights.iter().zip(values.chunks_exact(W)) {
                let value: &[f32; W] = value.try_into().expect("whole rows");
                for (s, v) in sums.iter_mut().zip(value) {
                    *s = p.mul_add(*v, *s);
                }
            }
            out.copy_from_slice(&sums);
        }
        context
    }
}

/// Layer normalisation over the hidden dimension: each token's values less their mean, over their
/// standard deviation, then scaled and shifted per dimension. The tensor library's own hands each
/// call to its thread pool and waits for it — a round trip between threads thirteen times a text,
/// which cost a search more than the arithmetic.
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
struct Gelu;

impl Change for Gelu {
    #[inline(always)]
    fn apply(self, values: &mut [f32]) {
        for v in values {
            *v *= 0.5 * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Softmax over rows of `width`, with [`exp`] in place of a scalar call per element (the
/// attention's scores: sequence² per head and layer).
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

/// A rewrite of values in place, as plain loops over a slice that the compiler vectorises
/// ([`vectorized`] compiles them for the widest registers the processor has).
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

/// Runs `f` compiled for AVX-512 or AVX2 where the processor has them (found at run time):
/// sixteen or eight values an instruction, not four.
fn vectorized<F: pulp::NullaryFnOnce>(f: F) -> F::Output {
    #[cfg(target_arch = "x86_64")]
    if let Some(v4) = pulp::x86::V4::try_new() {
        return v4.vectorize(f);
    } else if let Some(v3) = pulp::x86::V3::try_new() {
        return v3.vectorize(f);
    }
    f.call()
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

/// The most token rows one thread takes at a time (a catalog's texts embedded in bulk make many).
const CHUNK_ROWS: usize = 256;

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
        let head = config.hidden_size / config.num_attention_heads.max(1);
        if ![32, 64].contains(&head) || head * config.num_attention_heads != config.hidden_size {
            candle_core::bail!("unsupported attention heads of {head} values (only 32 or 64)");
        }
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings: Embeddings::load(vb.pp("embeddings"), config)?, layers })
    }

    /// Each text's vector: the mean of its tokens' final hidden states (not yet of unit length).
    ///
    /// Runs in the current thread pool, all texts together: what each token needs only its own
    /// values for in one chunk of rows per thread (a layer's products, norms and GELU, and the
    /// next layer's query, key and value), the attention by (text, head). A lone request is then
    /// spread over every core, in two steps a layer, and no text is padded to another's length.
    pub fn forward(&self, tokens: &Tokens) -> Result<Vec<Vec<f32>>> {
        let hidden = self.embeddings.norm.weight.len();
        let (spans, rows) = (tokens.spans(), tokens.ids.len());
        let (Some(first), false) = (self.layers.first(), rows == 0) else {
            candle_core::bail!("no tokens, or a model without layers");
        };
        let mut x = self.embeddings.forward(tokens)?;
        let chunk = rows.div_ceil(rayon::current_num_threads().max(1)).min(CHUNK_ROWS) * hidden;
        let mut qkv = x.par_chunks(chunk).map(|x| first.query_key_value.product(x)).collect::<Vec<_>>().concat();
        for (i, layer) in self.layers.iter().enumerate() {
            let context = layer.attention(&qkv, &spans);
            let next = self.layers.get(i + 1);
            let done: Vec<(Vec<f32>, Vec<f32>)> = x
                .par_chunks(chunk)
                .zip(context.par_chunks(chunk))
                .map(|(x, context)| layer.tokens_forward(x, context, next))
                .collect();
            let (xs, qkvs): (Vec<_>, Vec<_>) = done.into_iter().unzip();
            (x, qkv) = (xs.concat(), qkvs.concat());
        }
        Ok(spans
            .iter()
            .map(|&(start, len)| {
                let mut sum = vec![0f32; hidden];
                x[start * hidden..(start + len) * hidden].chunks_exact(hidden).for_each(|row| add(&mut sum, row));
                sum.iter_mut().for_each(|v| *v /= len.max(1) as f32);
                sum
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// `values` as `change` rewrites them, compiled as the model runs it.
    fn changed(mut values: Vec<f32>, change: impl Change) -> Vec<f32> {
        vectorized(Apply(change, &mut values));
        values
    }

    #[test]
    fn softmax_matches_the_exact_one_and_padding_gets_nothing() {
        // Attention scores: ordinary values, and padding's -10,000 bias.
        let xs: Vec<f32> =
            (0..4_000).map(|i| if i % 50 == 7 { -10_000.0 } else { ((i * 37) % 200) as f32 / 10.0 - 10.0 }).collect();
        let x = Tensor::from_vec(xs, (40, 100), &Device::Cpu).unwrap();
        let exact: Vec<f32> = candle_nn::ops::softmax_last_dim(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let ours = changed(x.flatten_all().unwrap().to_vec1().unwrap(), Softmax { width: 100 });
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
        let ours = changed(x.flatten_all().unwrap().to_vec1().unwrap(), &LayerNorm { weight, bias, eps: 1e-12 });
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
        let ours = changed(xs.clone(), Gelu);
        // Relative to the value's size where it is above one (single precision's own steps).
        let off = |i: usize| (exact[i] - ours[i]).abs() / exact[i].abs().max(1.0);
        let worst = (0..xs.len()).max_by(|&a, &b| off(a).total_cmp(&off(b))).unwrap();
        assert!(off(worst) < 2e-6, "off by {} at {}: {} against {}", off(worst), xs[worst], ours[worst], exact[worst]);
        assert_eq!((ours[0], ours[8000]), (0.0, 0.0), "gelu(-8) and gelu(0)");
    }
}
