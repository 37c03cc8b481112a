//! Many vectors of one length, scored against a few query vectors at once.
//!
//! Held as 8-bit integers, one scale per row: scoring reads the whole matrix for every search, so
//! its size is the cost (100,000 rows of 384: 38 MB, a quarter of what `f32` takes). A query is
//! held as 16-bit integers, so the products are exact integer sums; a cosine moves by about 1e-3
//! — far less than the gaps between ranked entries. The loops are plain Rust compiled for the
//! vector instructions the processor has (AVX2 where present, found at run time, with a portable
//! fallback) and split across the machine's cores.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::EmbedError;

/// Rows one thread scores at a time.
const CHUNK_ROWS: usize = 4096;
/// The largest magnitude a row's component is scaled to.
const ROW_RANGE: f32 = i8::MAX as f32;

/// A matrix of vectors (rows), each of `dimension` components.
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    dimension: usize,
    /// Row-major; each row scaled so its largest component is ±127.
    values: Vec<i8>,
    /// What each row's integers are multiplied by to give back its components.
    scales: Vec<f32>,
}

impl Matrix {
    /// `flat` holds `flat.len() / dimension` vectors back to back.
    pub fn new(flat: Vec<f32>, dimension: usize) -> Result<Self, EmbedError> {
        if dimension == 0 || flat.is_empty() {
            return Ok(Self { dimension, ..Self::default() });
        }
        if !flat.len().is_multiple_of(dimension) {
            return Err(EmbedError::Compute(format!("{} numbers do not make vectors of {dimension}", flat.len())));
        }
        let mut values = Vec::with_capacity(flat.len());
        let mut scales = Vec::with_capacity(flat.len() / dimension);
        for row in flat.chunks_exact(dimension) {
            let scale = quantize(row, ROW_RANGE, &mut values);
            scales.push(scale);
        }
        Ok(Self { dimension, values, scales })
    }

    /// The number of vectors.
    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// For each query, its dot product with every row: `out[q][row]`.
    pub fn dots(&self, queries: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (rows, dimension, k) = (self.rows(), self.dimension, queries.len());
        if rows == 0 || k == 0 {
            return Ok(vec![Vec::new(); k]);
        }
        if let Some(q) = queries.iter().find(|q| q.len() != dimension) {
            return Err(EmbedError::Compute(format!("a query of {} against vectors of {dimension}", q.len())));
        }
        // A query's range keeps every sum within an i32: |row| ≤ 127 in each of `dimension` components.
        let query_range = (i32::MAX as f32 / (ROW_RANGE * dimension as f32)).min(i16::MAX as f32).floor();
        let mut quantized = Vec::with_capacity(k * dimension);
        let query_scales: Vec<f32> = queries.iter().map(|q| quantize(q, query_range, &mut quantized)).collect();

        let mut raw = vec![0i32; rows * k];
        raw.par_chunks_mut(CHUNK_ROWS * k)
            .zip(self.values.par_chunks(CHUNK_ROWS * dimension))
            .for_each(|(out, rows)| score_block(rows, &quantized, dimension, out));

        Ok(query_scales
            .iter()
            .enumerate()
            .map(|(q, query_scale)| {
                raw.chunks_exact(k)
                    .zip(&self.scales)
                    .map(|(dots, row_scale)| dots[q] as f32 * row_scale * query_scale)
                    .collect()
            })
            .collect())
    }
}

/// Appends `v` scaled to integers within ±`range` (rounded) and returns the scale that gives back
/// its components. A zero vector stays zero, with scale 0.
fn quantize<T: TryFrom<i32> + Default>(v: &[f32], range: f32, out: &mut Vec<T>) -> f32 {
    let largest = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if largest == 0.0 || !largest.is_finite() {
        out.extend(v.iter().map(|_| T::default()));
        return 0.0;
    }
    let factor = range / largest;
    out.extend(v.iter().map(|x| T::try_from((x * factor).round() as i32).unwrap_or_default()));
    largest / range
}

/// Integer dot products of a block of rows with every query, written row by row (`out[row * k + q]`):
/// with AVX2 where the processor has it, otherwise a portable loop.
fn score_block(rows: &[i8], queries: &[i16], dimension: usize, out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = pulp::x86::V3::try_new() {
        return Simd::vectorize(v3, Avx2Kernel { v3, rows, queries, dimension, out });
    }
    portable(rows, queries, dimension, out);
}

/// The dot product of a row's integers with a query's, one component at a time.
#[inline(always)]
fn integer_dot(row: &[i8], query: &[i16]) -> i32 {
    row.iter().zip(query).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum()
}

#[inline(always)]
fn portable(rows: &[i8], queries: &[i16], dimension: usize, out: &mut [i32]) {
    let k = queries.len() / dimension;
    for (row, out) in rows.chunks_exact(dimension).zip(out.chunks_exact_mut(k)) {
        for (query, slot) in queries.chunks_exact(dimension).zip(out) {
            *slot = integer_dot(row, query);
        }
    }
}

/// Sixteen components at a time: a row's bytes are widened to 16 bits, multiplied with the
/// query's and summed in pairs into 32 bits (`vpmaddwd`), into four independent sums (one chain
/// of additions would wait on itself).
#[cfg(target_arch = "x86_64")]
struct Avx2Kernel<'a> {
    v3: pulp::x86::V3,
    rows: &'a [i8],
    queries: &'a [i16],
    dimension: usize,
    out: &'a mut [i32],
}

#[cfg(target_arch = "x86_64")]
impl WithSimd for Avx2Kernel<'_> {
    type Output = ();

    /// Inlined into a function compiled for AVX2 (`V3::vectorize`), so the intrinsics below are
    /// single instructions.
    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        use pulp::bytemuck::cast;
        use std::arch::x86_64::__m256i;
        const LANES: usize = 16;
        let Self { v3, rows, queries, dimension, out } = self;
        let avx2 = v3.avx2;
        let k = queries.len() / dimension;
        let zero: __m256i = cast([0i32; 8]);
        let product = |row: &[i8], query: &[i16]| -> __m256i {
            let bytes: [i8; LANES] = row.try_into().expect("a block of the row");
            let q: [i16; LANES] = query.try_into().expect("a block of the query");
            avx2._mm256_madd_epi16(avx2._mm256_cvtepi8_epi16(cast(bytes)), cast(q))
        };
        for (row, out) in rows.chunks_exact(dimension).zip(out.chunks_exact_mut(k)) {
            for (query, slot) in queries.chunks_exact(dimension).zip(out) {
                let mut sums = [zero; 4];
                let mut row_blocks = row.chunks_exact(4 * LANES);
                let mut query_blocks = query.chunks_exact(4 * LANES);
                for (r, q) in (&mut row_blocks).zip(&mut query_blocks) {
                    for (i, sum) in sums.iter_mut().enumerate() {
                        let at = i * LANES;
                        *sum = avx2._mm256_add_epi32(*sum, product(&r[at..at + LANES], &q[at..at + LANES]));
                    }
                }
                let (row_rest, query_rest) = (row_blocks.remainder(), query_blocks.remainder());
                let mut row_blocks = row_rest.chunks_exact(LANES);
                let mut query_blocks = query_rest.chunks_exact(LANES);
                for (r, q) in (&mut row_blocks).zip(&mut query_blocks) {
                    sums[0] = avx2._mm256_add_epi32(sums[0], product(r, q));
                }
                let total = avx2
                    ._mm256_add_epi32(avx2._mm256_add_epi32(sums[0], sums[1]), avx2._mm256_add_epi32(sums[2], sums[3]));
                let lanes: [i32; 8] = cast(total);
                *slot = lanes.iter().sum::<i32>() + integer_dot(row_blocks.remainder(), query_blocks.remainder());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_vectors(count: usize, dimension: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        (0..count)
            .map(|_| {
                let mut v: Vec<f32> = (0..dimension).map(|_| next()).collect();
                crate::normalize(&mut v);
                v
            })
            .collect()
    }

    #[test]
    fn dots_match_exact_cosines_closely() {
        // A row's components move by at most half a step (1/254 of its largest); few components are
        // large ones, so short vectors move most.
        for (dimension, rows, tolerance) in [(384, 10_000, 2e-3), (1536, 700, 2e-3), (3, 5, 1e-2)] {
            let vectors = unit_vectors(rows, dimension, dimension as u64);
            let queries = unit_vectors(7, dimension, 99);
            let matrix = Matrix::new(vectors.iter().flatten().copied().collect(), dimension).unwrap();
            assert_eq!(matrix.rows(), rows);
            let got = matrix.dots(&queries).unwrap();
            assert_eq!(got.len(), queries.len());
            let mut worst = 0f32;
            for (q, scores) in queries.iter().zip(&got) {
                assert_eq!(scores.len(), rows);
                for (v, &score) in vectors.iter().zip(scores) {
                    worst = worst.max((crate::dot(q, v) - score).abs());
                }
            }
            assert!(worst < tolerance, "dimension {dimension}: a cosine moved by {worst}");
        }
    }

    #[test]
    fn a_vector_scores_one_with_itself_and_zero_vectors_score_zero() {
        let vectors = unit_vectors(3, 384, 5);
        let mut flat: Vec<f32> = vectors.iter().flatten().copied().collect();
        flat.extend(std::iter::repeat_n(0.0, 384));
        let matrix = Matrix::new(flat, 384).unwrap();
        let got = matrix.dots(&[vectors[1].clone(), vec![0.0; 384]]).unwrap();
        assert!((got[0][1] - 1.0).abs() < 2e-3, "{}", got[0][1]);
        assert_eq!(got[0][3], 0.0);
        assert!(got[1].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn empty_matrices_and_mismatched_queries() {
        let empty = Matrix::new(Vec::new(), 384).unwrap();
        assert_eq!(empty.rows(), 0);
        assert_eq!(empty.dots(&[vec![0.5; 384]]).unwrap(), vec![Vec::<f32>::new()]);
        assert!(Matrix::new(vec![1.0; 10], 4).is_err(), "10 numbers are not vectors of 4");
        let matrix = Matrix::new(vec![1.0; 8], 4).unwrap();
        assert!(matrix.dots(&[vec![1.0; 3]]).is_err(), "a query of the wrong length is refused");
        assert!(matrix.dots(&[]).unwrap().is_empty());
    }
}
