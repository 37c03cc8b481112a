//! Many vectors of one length, scored against a few query vectors at once.
//!
//! Held as 8-bit integers, one scale per row: scoring reads the whole matrix for every search, so
//! its size is the cost (100,000 rows of 384: 38 MB, a quarter of what `f32` takes). A query is
//! held as 16-bit integers, so the products are exact integer sums; a cosine moves by about 1e-3
//! — far less than the gaps between ranked entries. The loops are plain Rust compiled for the
//! vector instructions the processor has (AVX-512, with VNNI or not, or AVX2 where present, found at run time, with a
//! portable fallback) and split across the machine's cores ([`crate::pool`]). A row is read once for all queries.

use pulp::NullaryFnOnce;
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

    /// Every row's dot product with each query, row by row: `out[row * queries.len() + q]`.
    pub fn dots(&self, queries: &[Vec<f32>]) -> Result<Vec<f32>, EmbedError> {
        let (rows, dimension, k) = (self.rows(), self.dimension, queries.len());
        if rows == 0 || k == 0 {
            return Ok(Vec::new());
        }
        if let Some(q) = queries.iter().find(|q| q.len() != dimension) {
            return Err(EmbedError::Compute(format!("a query of {} against vectors of {dimension}", q.len())));
        }
        // A query's range keeps every sum within an i32: |row| ≤ 127 in each of `dimension` components.
        let query_range = (i32::MAX as f32 / (ROW_RANGE * dimension as f32)).min(i16::MAX as f32).floor();
        let mut quantized = Vec::with_capacity(k * dimension);
        let query_scales: Vec<f32> = queries.iter().map(|q| quantize(q, query_range, &mut quantized)).collect();

        // Each block's integer sums are scaled back where they were computed, while in cache.
        let mut out = vec![0f32; rows * k];
        crate::pool().install(|| {
            out.par_chunks_mut(CHUNK_ROWS * k)
                .zip(self.values.par_chunks(CHUNK_ROWS * dimension))
                .zip(self.scales.par_chunks(CHUNK_ROWS))
                .for_each(|((out, values), row_scales)| {
                    let mut sums = vec![0i32; out.len()];
                    score_block(values, &quantized, dimension, &mut sums);
                    for ((out, sums), row_scale) in out.chunks_exact_mut(k).zip(sums.chunks_exact(k)).zip(row_scales) {
                        for ((slot, &sum), query_scale) in out.iter_mut().zip(sums).zip(&query_scales) {
                            *slot = sum as f32 * row_scale * query_scale;
                        }
                    }
                })
        });
        Ok(out)
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
/// with AVX-512 or AVX2 where the processor has them, otherwise a portable loop.
fn score_block(rows: &[i8], queries: &[i16], dimension: usize, out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(lanes) = crate::simd::V4Vnni::try_new() {
            return lanes.vectorize(Kernel { lanes, rows, queries, dimension, out });
        }
        if let Some(lanes) = pulp::x86::V4::try_new() {
            return lanes.vectorize(Kernel { lanes, rows, queries, dimension, out });
        }
        if let Some(lanes) = pulp::x86::V3::try_new() {
            return lanes.vectorize(Kernel { lanes, rows, queries, dimension, out });
        }
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

/// Queries scored together against a row: its block of components is widened once and multiplied
/// with each of them, each into a sum of its own (independent chains of additions).
const GROUP: usize = 4;

/// One register's worth of a row: its bytes widened to 16 bits, multiplied with a query's and
/// summed in pairs into 32 bits (`vpmaddwd`).
trait Lanes: Copy {
    type Wide: Copy;
    type Sum: Copy;
    /// Components per register.
    const LANES: usize;
    fn zero(self) -> Self::Sum;
    fn widen(self, row: &[i8]) -> Self::Wide;
    fn add_product(self, sum: Self::Sum, row: Self::Wide, query: &[i16]) -> Self::Sum;
    fn total(self, sum: Self::Sum) -> i32;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use pulp::bytemuck::cast;
    use std::arch::x86_64::{__m256i, __m512i};

    /// AVX2: sixteen components at a time.
    impl Lanes for pulp::x86::V3 {
        type Wide = __m256i;
        type Sum = __m256i;
        const LANES: usize = 16;

        #[inline(always)]
        fn zero(self) -> __m256i {
            cast([0i32; 8])
        }

        #[inline(always)]
        fn widen(self, row: &[i8]) -> __m256i {
            let bytes: [i8; 16] = row.try_into().expect("a block of the row");
            self.avx2._mm256_cvtepi8_epi16(cast(bytes))
        }

        #[inline(always)]
        fn add_product(self, sum: __m256i, row: __m256i, query: &[i16]) -> __m256i {
            let query: [i16; 16] = query.try_into().expect("a block of the query");
            self.avx2._mm256_add_epi32(sum, self.avx2._mm256_madd_epi16(row, cast(query)))
        }

        #[inline(always)]
        fn total(self, sum: __m256i) -> i32 {
            let lanes: [i32; 8] = cast(sum);
            lanes.iter().sum()
        }
    }

    /// AVX-512 (with VNNI, a multiply and add is one instruction): thirty-two components at a time.
    impl<A: crate::simd::Avx512> Lanes for A {
        type Wide = __m512i;
        type Sum = __m512i;
        const LANES: usize = 32;

        #[inline(always)]
        fn zero(self) -> __m512i {
            cast([0i32; 16])
        }

        #[inline(always)]
        fn widen(self, row: &[i8]) -> __m512i {
            let bytes: [i8; 32] = row.try_into().expect("a block of the row");
            self.bw()._mm512_cvtepi8_epi16(cast(bytes))
        }

        #[inline(always)]
        fn add_product(self, sum: __m512i, row: __m512i, query: &[i16]) -> __m512i {
            let query: [i16; 32] = query.try_into().expect("a block of the query");
            self.f()._mm512_add_epi32(sum, self.bw()._mm512_madd_epi16(row, cast(query)))
        }

        #[inline(always)]
        fn total(self, sum: __m512i) -> i32 {
            self.f()._mm512_reduce_add_epi32(sum)
        }
    }
}

/// A block of rows scored with one instruction set: inlined into a function compiled for it
/// (`vectorize`), so the intrinsics are single instructions.
struct Kernel<'a, L> {
    lanes: L,
    rows: &'a [i8],
    queries: &'a [i16],
    dimension: usize,
    out: &'a mut [i32],
}

impl<L: Lanes> NullaryFnOnce for Kernel<'_, L> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self { lanes, rows, queries, dimension, out } = self;
        let k = queries.len() / dimension;
        let queries: Vec<&[i16]> = queries.chunks_exact(dimension).collect();
        for (row, out) in rows.chunks_exact(dimension).zip(out.chunks_exact_mut(k)) {
            let mut groups = queries.chunks_exact(GROUP);
            let mut slots = out.chunks_exact_mut(GROUP);
            for (group, slots) in (&mut groups).zip(&mut slots) {
                slots.copy_from_slice(&row_dots(lanes, row, [group[0], group[1], group[2], group[3]]));
            }
            match (groups.remainder(), slots.into_remainder()) {
                ([a], slots) => slots.copy_from_slice(&row_dots(lanes, row, [*a])),
                ([a, b], slots) => slots.copy_from_slice(&row_dots(lanes, row, [*a, *b])),
                ([a, b, c], slots) => slots.copy_from_slice(&row_dots(lanes, row, [*a, *b, *c])),
                _ => {}
            }
        }
    }
}

/// One row's dot products with `G` queries.
#[inline(always)]
fn row_dots<L: Lanes, const G: usize>(lanes: L, row: &[i8], queries: [&[i16]; G]) -> [i32; G] {
    let mut sums = [lanes.zero(); G];
    let mut blocks = row.chunks_exact(L::LANES);
    for (b, block) in (&mut blocks).enumerate() {
        let (at, wide) = (b * L::LANES, lanes.widen(block));
        for (sum, query) in sums.iter_mut().zip(&queries) {
            *sum = lanes.add_product(*sum, wide, &query[at..at + L::LANES]);
        }
    }
    let tail = row.len() - blocks.remainder().len();
    let mut out = [0; G];
    for ((slot, sum), query) in out.iter_mut().zip(sums).zip(&queries) {
        *slot = lanes.total(sum) + integer_dot(&row[tail..], &query[tail..]);
    }
    out
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
            assert_eq!(got.len(), rows * queries.len());
            let mut worst = 0f32;
            for (v, scores) in vectors.iter().zip(got.chunks_exact(queries.len())) {
                for (q, &score) in queries.iter().zip(scores) {
                    worst = worst.max((crate::dot(q, v) - score).abs());
                }
            }
            assert!(worst < tolerance, "dimension {dimension}: a cosine moved by {worst}");
        }
    }

    /// Every kernel this processor can run gives exactly the portable loop's integer sums, for any
    /// number of queries (whole groups and what is left) and any length (whole registers and a tail).
    #[test]
    fn each_instruction_set_gives_the_portable_sums_exactly() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as i32
        };
        for dimension in [384, 40, 3, 1536] {
            for k in 1..=9 {
                let rows = 37;
                let row_values: Vec<i8> = (0..rows * dimension).map(|_| (next() % 255 - 127) as i8).collect();
                let queries: Vec<i16> = (0..k * dimension).map(|_| (next() % 65_535 - 32_767) as i16).collect();
                let mut want = vec![0; rows * k];
                portable(&row_values, &queries, dimension, &mut want);
                let mut kernels = 0;
                #[cfg(target_arch = "x86_64")]
                {
                    let mut got = vec![0; rows * k];
                    if let Some(lanes) = pulp::x86::V3::try_new() {
                        let (rows, queries, out) = (&row_values[..], &queries[..], &mut got[..]);
                        lanes.vectorize(Kernel { lanes, rows, queries, dimension, out });
                        assert_eq!(got, want, "AVX2, {k} queries of {dimension}");
                        kernels += 1;
                    }
                    if let Some(lanes) = pulp::x86::V4::try_new() {
                        let (rows, queries, out) = (&row_values[..], &queries[..], &mut got[..]);
                        lanes.vectorize(Kernel { lanes, rows, queries, dimension, out });
                        assert_eq!(got, want, "AVX-512, {k} queries of {dimension}");
                        kernels += 1;
                    }
                    if let Some(lanes) = crate::simd::V4Vnni::try_new() {
                        let (rows, queries, out) = (&row_values[..], &queries[..], &mut got[..]);
                        lanes.vectorize(Kernel { lanes, rows, queries, dimension, out });
                        assert_eq!(got, want, "AVX-512 VNNI, {k} queries of {dimension}");
                        kernels += 1;
                    }
                }
                let mut got = vec![0; rows * k];
                score_block(&row_values, &queries, dimension, &mut got);
                assert_eq!(got, want, "the kernel chosen here ({kernels} available)");
            }
        }
    }

    #[test]
    fn a_vector_scores_one_with_itself_and_zero_vectors_score_zero() {
        let vectors = unit_vectors(3, 384, 5);
        let mut flat: Vec<f32> = vectors.iter().flatten().copied().collect();
        flat.extend(std::iter::repeat_n(0.0, 384));
        let matrix = Matrix::new(flat, 384).unwrap();
        let got = matrix.dots(&[vectors[1].clone(), vec![0.0; 384]]).unwrap();
        assert_eq!(got.len(), 4 * 2);
        assert!((got[2] - 1.0).abs() < 2e-3, "{}", got[2]);
        assert_eq!(got[3 * 2], 0.0);
        assert!(got.iter().skip(1).step_by(2).all(|&s| s == 0.0));
    }

    #[test]
    fn empty_matrices_and_mismatched_queries() {
        let empty = Matrix::new(Vec::new(), 384).unwrap();
        assert_eq!(empty.rows(), 0);
        assert!(empty.dots(&[vec![0.5; 384]]).unwrap().is_empty());
        assert!(Matrix::new(vec![1.0; 10], 4).is_err(), "10 numbers are not vectors of 4");
        let matrix = Matrix::new(vec![1.0; 8], 4).unwrap();
        assert!(matrix.dots(&[vec![1.0; 3]]).is_err(), "a query of the wrong length is refused");
        assert!(matrix.dots(&[]).unwrap().is_empty());
    }
}
