//! A dense (fully connected) layer whose weight is held in 16-bit integers.
//!
//! Nearly all of a sentence's time in the model is these layers' products. In floats they ran at
//! the matrix library's pace, and the weights (42 MB) did not stay in cache between texts. In
//! 16-bit integers the weights take half the memory, and on processors with AVX-512 VNNI one
//! instruction (`vpdpwssd`) multiplies and sums twice as many pairs as a float multiply-add does.
//!
//! How exact: each output's weights are scaled so the largest is ±[`WEIGHT_RANGE`] (one scale per
//! output). Each row of the input is cut in blocks of [`BLOCK`] inputs, and each block is scaled
//! as finely as 32-bit sums allow, up to ±32,767: the largest sum it could reach against any
//! output (from the largest weight integer of each input) stays below 2³⁰. A block's integer sums
//! are exact; each is scaled back into a float and added up. Blocks keep a large value in one part
//! of a row from coarsening the rest of it. Each row's outputs are within a thousandth of their
//! size of the float product's, as tested, and the encoder's vectors match the reference at
//! cosine ≥ 0.9999997.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// Outputs one pass of the kernel computes (four AVX-512 registers of 32-bit sums).
const PANEL: usize = 64;
/// Inputs summed in 32-bit integers before the sum is scaled into a float.
const BLOCK: usize = 64;
/// The largest magnitude of a weight's or an input's integer.
const RANGE: f32 = i16::MAX as f32;
/// The largest magnitude of a weight's integer.
const WEIGHT_RANGE: f32 = 8191.0;
/// A block's sums stay below this, whatever the output (2³⁰: rounding adds at most 2²⁰).
const SUM_BOUND: f32 = (1u32 << 30) as f32;

/// A dense layer: `out = x · W + b`, with `W` held in integers.
pub(crate) struct Dense {
    inputs: usize,
    outputs: usize,
    /// The weight in panels of [`PANEL`] outputs, inputs padded to whole blocks with zeros:
    /// (panels, inputs / 2, PANEL, 2) — for each pair of inputs, the pair's two integers for each
    /// output side by side, the order `vpdpwssd` multiplies them in.
    values: Vec<i16>,
    /// What each output's integer sums are multiplied by (padded to whole panels).
    scales: Vec<f32>,
    /// Padded to whole panels with zeros.
    bias: Vec<f32>,
    /// For each (padded) input, the largest magnitude of its integers over all outputs.
    largest: Vec<f32>,
}

impl Dense {
    /// Several of the checkpoint's (out, in) layers side by side: one product computes them all.
    /// Each part's weight and bias are multiplied by its factor.
    pub(crate) fn load(parts: &[(VarBuilder, f64)], inputs: usize, outputs: usize) -> Result<Self> {
        let mut weights = Vec::with_capacity(parts.len());
        let mut biases = Vec::with_capacity(parts.len());
        for (vb, factor) in parts {
            weights.push((vb.get((outputs, inputs), "weight")? * *factor)?);
            biases.push((vb.get(outputs, "bias")? * *factor)?);
        }
        let weight = Tensor::cat(&weights, 0)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self::new(&weight, Tensor::cat(&biases, 0)?.to_vec1::<f32>()?, inputs))
    }

    /// `weight` holds each output's `inputs` weights in turn (the checkpoint's (out, in) layout).
    fn new(weight: &[f32], bias: Vec<f32>, inputs: usize) -> Self {
        let outputs = bias.len();
        let (padded_inputs, padded_outputs) = (inputs.next_multiple_of(BLOCK), outputs.next_multiple_of(PANEL));
        let mut values = vec![0i16; padded_outputs * padded_inputs];
        let mut scales = vec![0f32; padded_outputs];
        let mut largest = vec![0f32; padded_inputs];
        for (output, w) in weight.chunks_exact(inputs.max(1)).enumerate().take(outputs) {
            let Some(factor) = factor(w, WEIGHT_RANGE) else { continue };
            scales[output] = 1.0 / factor;
            let (panel, lane) = (output / PANEL, output % PANEL);
            for (input, x) in w.iter().enumerate() {
                let q = (x * factor).round().clamp(-WEIGHT_RANGE, WEIGHT_RANGE);
                largest[input] = largest[input].max(q.abs());
                values[((panel * padded_inputs / 2 + input / 2) * PANEL + lane) * 2 + input % 2] = q as i16;
            }
        }
        let mut padded_bias = bias;
        padded_bias.resize(padded_outputs, 0.0);
        Self { inputs, outputs, values, scales, bias: padded_bias, largest }
    }

    /// `x · W + b` for `x` holding rows of `inputs` values, row by row, with the instructions the
    /// processor has (found at run time).
    pub(crate) fn product(&self, x: &[f32]) -> Vec<f32> {
        assert!(x.len().is_multiple_of(self.inputs.max(1)), "whole rows of {} inputs", self.inputs);
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(lanes) = crate::simd::V4Vnni::try_new() {
                return lanes.vectorize(Product::<_, 4> { dense: self, lanes, x });
            }
            if let Some(lanes) = pulp::x86::V4::try_new() {
                return lanes.vectorize(Product::<_, 4> { dense: self, lanes, x });
            }
            if let Some(lanes) = pulp::x86::V3::try_new() {
                return lanes.vectorize(Product::<_, 8> { dense: self, lanes, x });
            }
        }
        self.product_in::<_, PANEL>(Scalar, x)
    }

    /// The product with one kind of lanes, `REGS` of which make a panel's width; inlined into a
    /// function compiled for their instructions.
    #[inline(always)]
    fn product_in<L: Lanes, const REGS: usize>(&self, lanes: L, x: &[f32]) -> Vec<f32> {
        assert_eq!(REGS * L::WIDTH, PANEL, "a panel is a whole number of registers");
        let rows = x.len() / self.inputs.max(1);
        let padded_outputs = self.scales.len();
        let input = Input::new(x, self.inputs, &self.largest);
        // Each block of a panel's weights (8 KB) stays in the fastest cache while every row passes
        // over it; the rows' totals wait in `out`, then take the outputs' scales and biases.
        let mut out = vec![0f32; rows * padded_outputs];
        let blocks = self.largest.len() / BLOCK;
        // Rows in passes of at most ROWS, as even as can be (8 rows: two of 4, not 6 and 2).
        let passes = rows.div_ceil(ROWS);
        let sizes = (0..passes).map(|i| rows / passes + usize::from(i < rows % passes));
        let block_len = BLOCK * PANEL;
        for (g, weights) in self.values.chunks_exact(block_len).enumerate() {
            let (panel, block) = (g / blocks, g % blocks);
            let weights: &[i16; BLOCK * PANEL] = weights.try_into().expect("whole blocks");
            // The first pass also asks for the next block, so it is in cache when its turn comes.
            let mut ahead = self.values.get((g + 1) * block_len..(g + 2) * block_len).unwrap_or(&[]);
            let (mut first, mut rest) = (0, &mut out[..]);
            for size in sizes.clone() {
                let (group, later) = std::mem::take(&mut rest).split_at_mut(size * padded_outputs);
                let at = Totals { first, block, stride: padded_outputs, column: panel * PANEL };
                match size {
                    6 => pass::<L, 6, REGS>(lanes, weights, ahead, &input, at, group),
                    5 => pass::<L, 5, REGS>(lanes, weights, ahead, &input, at, group),
                    4 => pass::<L, 4, REGS>(lanes, weights, ahead, &input, at, group),
                    3 => pass::<L, 3, REGS>(lanes, weights, ahead, &input, at, group),
                    2 => pass::<L, 2, REGS>(lanes, weights, ahead, &input, at, group),
                    _ => pass::<L, 1, REGS>(lanes, weights, ahead, &input, at, group),
                }
                (first, rest, ahead) = (first + size, later, &[]);
            }
            if block + 1 == blocks {
                let columns = panel * PANEL..(panel + 1) * PANEL;
                let (scales, bias) = (&self.scales[columns.clone()], &self.bias[columns.clone()]);
                for row in out.chunks_exact_mut(padded_outputs) {
                    for (i, out) in row[columns.clone()].chunks_exact_mut(L::WIDTH).enumerate() {
                        let at = i * L::WIDTH..(i + 1) * L::WIDTH;
                        lanes.finish(out, &scales[at.clone()], &bias[at]);
                    }
                }
            }
        }
        if padded_outputs != self.outputs {
            out = out.chunks_exact(padded_outputs).flat_map(|row| &row[..self.outputs]).copied().collect();
        }
        out
    }
}

/// [`Dense::product_in`] as a function `vectorize` inlines (a closure it would not).
struct Product<'a, L, const REGS: usize> {
    dense: &'a Dense,
    lanes: L,
    x: &'a [f32],
}

impl<L: Lanes, const REGS: usize> pulp::NullaryFnOnce for Product<'_, L, REGS> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn call(self) -> Vec<f32> {
        self.dense.product_in::<L, REGS>(self.lanes, self.x)
    }
}

/// The factor that scales `values` so the largest is ±`range`, or `None` when all are zero (or
/// not finite).
#[inline(always)]
fn factor(values: &[f32], range: f32) -> Option<f32> {
    let largest = values.iter().fold(0f32, |m, x| m.max(x.abs()));
    (largest > 0.0 && largest.is_finite()).then(|| range / largest)
}

/// `v` (within ±2²²) rounded to the nearest integer, ties to even: added to 1.5·2²³, a float whose
/// step is one rounds it, and its bits less those of 1.5·2²³ are the integer. Plain integer
/// arithmetic the compiler vectorises (a float-to-integer cast it would not: it saturates).
#[inline(always)]
fn round(v: f32) -> i16 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits()) as i16
}

/// The input rows in integers, block by block.
struct Input {
    /// Row by row, the inputs padded to whole blocks with zeros, each pair of integers in one
    /// 32-bit word (the first in the low half), as the kernels read them.
    pairs: Vec<i32>,
    /// What each (row, block)'s sums are multiplied by.
    scales: Vec<f32>,
    /// Blocks per row.
    blocks: usize,
}

impl Input {
    /// `largest` is the weight's largest integer for each (padded) input.
    #[inline(always)]
    fn new(x: &[f32], inputs: usize, largest: &[f32]) -> Self {
        let blocks = largest.len() / BLOCK;
        let rows = x.len() / inputs.max(1);
        let mut pairs = vec![0i32; rows * blocks * BLOCK / 2];
        let mut scales = vec![0f32; rows * blocks];
        let integers: &mut [i16] = pulp::bytemuck::cast_slice_mut(&mut pairs);
        let mut block = [0f32; BLOCK];
        for (row, values) in x.chunks_exact(inputs.max(1)).enumerate() {
            for (b, limits) in largest.chunks_exact(BLOCK).enumerate() {
                let at = b * BLOCK;
                let part = &values[at.min(inputs)..(at + BLOCK).min(inputs)];
                block[..part.len()].copy_from_slice(part);
                block[part.len()..].fill(0.0);
                let limits: &[f32; BLOCK] = limits.try_into().expect("whole blocks");
                // The block's largest value, and its largest sum against any output at a factor
                // of one — each in sixteen lanes, which the compiler turns into one register.
                let (mut most, mut reach) = ([0f32; 16], [0f32; 16]);
                for (values, limits) in block.chunks_exact(16).zip(limits.chunks_exact(16)) {
                    for i in 0..16 {
                        most[i] = most[i].max(values[i].abs());
                        reach[i] += values[i].abs() * limits[i];
                    }
                }
                let most = most.into_iter().fold(0f32, f32::max);
                if most == 0.0 || !most.is_finite() {
                    continue;
                }
                let factor = (RANGE / most).min(SUM_BOUND / reach.into_iter().sum::<f32>());
                scales[row * blocks + b] = 1.0 / factor;
                let out = &mut integers[(row * blocks + b) * BLOCK..][..BLOCK];
                for (slot, v) in out.iter_mut().zip(block) {
                    *slot = round(v * factor);
                }
            }
        }
        Self { pairs, scales, blocks }
    }

    /// One row's pairs and block scales.
    #[inline(always)]
    fn row(&self, row: usize) -> (&[i32], &[f32]) {
        let len = self.blocks * BLOCK / 2;
        (&self.pairs[row * len..][..len], &self.scales[row * self.blocks..][..self.blocks])
    }
}

/// One register's worth of outputs: 32-bit integer sums of pairs of 16-bit products, and the
/// float totals they are scaled into.
trait Lanes: Copy {
    type Int: Copy;
    /// Outputs per register.
    const WIDTH: usize;
    fn zero_int(self) -> Self::Int;
    /// `2 * WIDTH` integers: a pair of inputs' weights for each of `WIDTH` outputs.
    fn load(self, weights: &[i16]) -> Self::Int;
    /// A pair of inputs (packed as in [`Input::pairs`]) in every lane.
    fn splat(self, pair: i32) -> Self::Int;
    /// `sum + x₀·w₀ + x₁·w₁` in each lane, wrapping.
    fn add_products(self, sum: Self::Int, x: Self::Int, w: Self::Int) -> Self::Int;
    /// `totals += sum · scale`, fused, `WIDTH` of each; for the `first` block, `totals` is
    /// taken as zero and not read (a fresh buffer's first touch is then a write: reading it first
    /// maps the shared zero page, and the write after costs a copy and a TLB flush on every core).
    fn add_scaled(self, totals: &mut [f32], sum: Self::Int, scale: f32, first: bool);
    /// `out = out · scales + bias`, fused, `WIDTH` of each.
    fn finish(self, out: &mut [f32], scales: &[f32], bias: &[f32]);
    /// Asks for the cache line holding `values[0]` to be brought into the fastest cache.
    fn prefetch(self, values: &[i16]);
}

/// Rows carried in registers together against a block of weights: their sums (4 registers a
/// row with AVX-512) and the block's weights for a pair of inputs fill 29 of its 32 registers.
const ROWS: usize = 6;

/// 16-bit integers in a cache line.
const CACHE_LINE: usize = 32;

/// Where a pass's rows are: the first one's index, the block, and their totals' place in `out`.
#[derive(Clone, Copy)]
struct Totals {
    first: usize,
    block: usize,
    stride: usize,
    column: usize,
}

/// `R` rows against one block of a panel's weights: the integer sums in registers, then scaled
/// into the rows' totals (`out` holds the `R` rows, `stride` apart).
#[inline(always)]
fn pass<L: Lanes, const R: usize, const REGS: usize>(
    lanes: L,
    weights: &[i16; BLOCK * PANEL],
    ahead: &[i16],
    input: &Input,
    at: Totals,
    out: &mut [f32],
) {
    let rows: [(&[i32], &[f32]); R] = std::array::from_fn(|r| input.row(at.first + r));
    let pairs: [&[i32; BLOCK / 2]; R] =
        std::array::from_fn(|r| rows[r].0[at.block * BLOCK / 2..][..BLOCK / 2].try_into().expect("whole blocks"));
    let mut sums = [[lanes.zero_int(); REGS]; R];
    for p in 0..BLOCK / 2 {
        if let Some(next) = ahead.get(p * 2 * PANEL..(p + 1) * 2 * PANEL) {
            next.chunks(CACHE_LINE).for_each(|line| lanes.prefetch(line));
        }
        let w: [L::Int; REGS] =
            std::array::from_fn(|i| lanes.load(&weights[(p * PANEL + i * L::WIDTH) * 2..][..2 * L::WIDTH]));
        for (sums, pairs) in sums.iter_mut().zip(&pairs) {
            let x = lanes.splat(pairs[p]);
            for (sum, w) in sums.iter_mut().zip(w) {
                *sum = lanes.add_products(*sum, x, w);
            }
        }
    }
    for (r, (sums, row)) in sums.into_iter().zip(rows).enumerate() {
        let totals = &mut out[r * at.stride + at.column..][..PANEL];
        for (totals, sum) in totals.chunks_exact_mut(L::WIDTH).zip(sums) {
            lanes.add_scaled(totals, sum, row.1[at.block], at.block == 0);
        }
    }
}

/// Plain arithmetic, one output at a time: where the processor has none of the instructions
/// below, and what the tests hold them to.
#[derive(Clone, Copy)]
struct Scalar;

impl Lanes for Scalar {
    /// Two 16-bit integers, packed as in [`Input::pairs`].
    type Int = i32;
    const WIDTH: usize = 1;

    fn zero_int(self) -> i32 {
        0
    }

    fn load(self, weights: &[i16]) -> i32 {
        i32::from(weights[0] as u16) | i32::from(weights[1]) << 16
    }

    fn splat(self, pair: i32) -> i32 {
        pair
    }

    fn add_products(self, sum: i32, x: i32, w: i32) -> i32 {
        let low = |v: i32| i32::from(v as i16);
        sum.wrapping_add(low(x) * low(w)).wrapping_add((x >> 16) * (w >> 16))
    }

    fn add_scaled(self, totals: &mut [f32], sum: i32, scale: f32, first: bool) {
        totals[0] = (sum as f32).mul_add(scale, if first { 0.0 } else { totals[0] });
    }

    fn finish(self, out: &mut [f32], scales: &[f32], bias: &[f32]) {
        out[0] = out[0].mul_add(scales[0], bias[0]);
    }

    fn prefetch(self, _values: &[i16]) {}
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use crate::simd::Avx512;
    use pulp::bytemuck::cast;
    use std::arch::x86_64::{__m256i, __m512i};

    /// AVX-512: sixteen outputs a register.
    impl<A: Avx512> Lanes for A {
        type Int = __m512i;
        const WIDTH: usize = 16;

        #[inline(always)]
        fn zero_int(self) -> __m512i {
            cast([0i32; 16])
        }

        #[inline(always)]
        fn load(self, weights: &[i16]) -> __m512i {
            let weights: [i16; 32] = weights.try_into().expect("a register of weights");
            cast(weights)
        }

        #[inline(always)]
        fn splat(self, pair: i32) -> __m512i {
            self.f()._mm512_set1_epi32(pair)
        }

        #[inline(always)]
        fn add_products(self, sum: __m512i, x: __m512i, w: __m512i) -> __m512i {
            self.f()._mm512_add_epi32(sum, self.bw()._mm512_madd_epi16(x, w))
        }

        #[inline(always)]
        fn add_scaled(self, totals: &mut [f32], sum: __m512i, scale: f32, first: bool) {
            let f = self.f();
            let old: [f32; 16] = if first { [0.0; 16] } else { (&*totals).try_into().expect("a register of totals") };
            let new: [f32; 16] = cast(f._mm512_fmadd_ps(f._mm512_cvtepi32_ps(sum), f._mm512_set1_ps(scale), cast(old)));
            totals.copy_from_slice(&new);
        }

        #[inline(always)]
        fn finish(self, out: &mut [f32], scales: &[f32], bias: &[f32]) {
            let total: [f32; 16] = (&*out).try_into().expect("a register of totals");
            let scales: [f32; 16] = scales.try_into().expect("a register of scales");
            let bias: [f32; 16] = bias.try_into().expect("a register of biases");
            let result: [f32; 16] = cast(self.f()._mm512_fmadd_ps(cast(total), cast(scales), cast(bias)));
            out.copy_from_slice(&result);
        }

        #[inline(always)]
        fn prefetch(self, values: &[i16]) {
            self.sse()._mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(values.as_ptr().cast());
        }
    }

    /// AVX2: eight outputs a register.
    impl Lanes for pulp::x86::V3 {
        type Int = __m256i;
        const WIDTH: usize = 8;

        #[inline(always)]
        fn zero_int(self) -> __m256i {
            cast([0i32; 8])
        }

        #[inline(always)]
        fn load(self, weights: &[i16]) -> __m256i {
            let weights: [i16; 16] = weights.try_into().expect("a register of weights");
            cast(weights)
        }

        #[inline(always)]
        fn splat(self, pair: i32) -> __m256i {
            self.avx._mm256_set1_epi32(pair)
        }

        #[inline(always)]
        fn add_products(self, sum: __m256i, x: __m256i, w: __m256i) -> __m256i {
            self.avx2._mm256_add_epi32(sum, self.avx2._mm256_madd_epi16(x, w))
        }

        #[inline(always)]
        fn add_scaled(self, totals: &mut [f32], sum: __m256i, scale: f32, first: bool) {
            let old: [f32; 8] = if first { [0.0; 8] } else { (&*totals).try_into().expect("a register of totals") };
            let scaled = self.avx._mm256_cvtepi32_ps(sum);
            let new: [f32; 8] = cast(self.fma._mm256_fmadd_ps(scaled, self.avx._mm256_set1_ps(scale), cast(old)));
            totals.copy_from_slice(&new);
        }

        #[inline(always)]
        fn finish(self, out: &mut [f32], scales: &[f32], bias: &[f32]) {
            let total: [f32; 8] = (&*out).try_into().expect("a register of totals");
            let scales: [f32; 8] = scales.try_into().expect("a register of scales");
            let bias: [f32; 8] = bias.try_into().expect("a register of biases");
            let result: [f32; 8] = cast(self.fma._mm256_fmadd_ps(cast(total), cast(scales), cast(bias)));
            out.copy_from_slice(&result);
        }

        #[inline(always)]
        fn prefetch(self, values: &[i16]) {
            self.sse._mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(values.as_ptr().cast());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    /// The float product, for comparison.
    fn exact(weight: &[f32], bias: &[f32], x: &[f32], inputs: usize) -> Vec<f32> {
        x.chunks_exact(inputs)
            .flat_map(|row| {
                weight.chunks_exact(inputs).zip(bias).map(move |(w, b)| {
                    row.iter().zip(w).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() as f32 + b
                })
            })
            .collect()
    }

    #[test]
    fn the_integer_product_stays_within_a_thousandth_of_the_float_one() {
        // Whole panels and blocks, and sizes that are not. The first row has one value 80 times
        // the others' largest (the encoder's hidden states have a few large ones), which coarsens
        // the rest of its block. Each row is held to its own outputs' size.
        for (rows, inputs, outputs) in [(7, 384, 1152), (13, 1536, 384), (3, 100, 70), (1, 1, 1), (65, 384, 384)] {
            let weight = values(inputs * outputs, inputs as u64);
            let bias = values(outputs, 3);
            let mut x = values(rows * inputs, rows as u64);
            x[0] = 40.0;
            let dense = Dense::new(&weight, bias.clone(), inputs);
            let got = dense.product(&x);
            let want = exact(&weight, &bias, &x, inputs);
            assert_eq!(got.len(), want.len());
            for (row, (got, want)) in got.chunks_exact(outputs).zip(want.chunks_exact(outputs)).enumerate() {
                let size = (want.iter().map(|v| v * v).sum::<f32>() / outputs as f32).sqrt();
                let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
                assert!(
                    worst <= 1e-3 * size,
                    "{rows}×{inputs}×{outputs}, row {row}: off by {worst} in outputs of size {size}"
                );
            }
        }
    }

    #[test]
    fn a_layer_loaded_from_several_parts_computes_them_side_by_side() {
        use candle_core::{DType, Device};
        let device = Device::Cpu;
        let (inputs, outputs) = (24, 40);
        let parts: Vec<(Tensor, Tensor)> = (0..3)
            .map(|_| {
                let weight = Tensor::randn(0f32, 1.0, (outputs, inputs), &device).unwrap();
                (weight, Tensor::randn(0f32, 1.0, outputs, &device).unwrap())
            })
            .collect();
        let builders: Vec<(VarBuilder, f64)> = parts
            .iter()
            .zip([0.5, 1.0, 2.0])
            .map(|((weight, bias), factor)| {
                let tensors = [("weight".to_string(), weight.clone()), ("bias".to_string(), bias.clone())];
                (VarBuilder::from_tensors(tensors.into_iter().collect(), DType::F32, &device), factor)
            })
            .collect();
        let dense = Dense::load(&builders, inputs, outputs).unwrap();
        let x = Tensor::randn(0f32, 1.0, (10, inputs), &device).unwrap();
        let ours =
            Tensor::from_vec(dense.product(&x.flatten_all().unwrap().to_vec1().unwrap()), (10, 3 * outputs), &device)
                .unwrap();
        for (i, ((weight, bias), factor)) in parts.iter().zip([0.5, 1.0, 2.0]).enumerate() {
            let plain = (x.matmul(&weight.t().unwrap()).unwrap().broadcast_add(bias).unwrap() * factor).unwrap();
            let part = ours.narrow(1, i * outputs, outputs).unwrap();
            let size = plain.sqr().unwrap().mean_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
            let off = (part - plain).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(off < 1e-3 * size, "part {i}: off by {off} in outputs of size {size}");
        }
    }

    /// Every kernel this processor can run gives the plain arithmetic's outputs bit for bit, for
    /// whole groups of rows and what is left, whole panels and blocks and what is left.
    #[test]
    fn each_instruction_set_gives_the_plain_arithmetics_outputs_exactly() {
        for (rows, inputs, outputs) in [(7, 384, 128), (13, 100, 70), (1, 64, 64), (20, 130, 200)] {
            let dense = Dense::new(&values(inputs * outputs, 11), values(outputs, 5), inputs);
            let x = values(rows * inputs, 9);
            let want = dense.product_in::<_, PANEL>(Scalar, &x);
            assert_eq!(want.len(), rows * outputs);
            #[cfg(target_arch = "x86_64")]
            {
                if let Some(lanes) = crate::simd::V4Vnni::try_new() {
                    let got = lanes.vectorize(Product::<_, 4> { dense: &dense, lanes, x: &x });
                    assert_eq!(got, want, "AVX-512 VNNI, {rows}×{inputs}×{outputs}");
                }
                if let Some(lanes) = pulp::x86::V4::try_new() {
                    let got = lanes.vectorize(Product::<_, 4> { dense: &dense, lanes, x: &x });
                    assert_eq!(got, want, "AVX-512, {rows}×{inputs}×{outputs}");
                }
                if let Some(lanes) = pulp::x86::V3::try_new() {
                    let got = lanes.vectorize(Product::<_, 8> { dense: &dense, lanes, x: &x });
                    assert_eq!(got, want, "AVX2, {rows}×{inputs}×{outputs}");
                }
            }
            assert_eq!(dense.product(&x), want);
        }
    }
}
