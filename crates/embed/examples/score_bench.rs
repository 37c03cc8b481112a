//! Times scoring query vectors against many rows (figures, not a test).
use std::time::Instant;
use switchboard_embed::Matrix;

fn main() {
    let rows = 100_000;
    let dim = 384;
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let flat: Vec<f32> = (0..rows * dim).map(|_| next()).collect();
    let m = Matrix::new(flat, dim).unwrap();
    for k in [1usize, 2, 4, 8, 16] {
        let queries: Vec<Vec<f32>> = (0..k).map(|_| (0..dim).map(|_| next()).collect()).collect();
        let _ = m.dots(&queries).unwrap();
        let t = Instant::now();
        let n = 20;
        for _ in 0..n {
            let _ = m.dots(&queries).unwrap();
        }
        println!("k={k}: {:.2} ms", t.elapsed().as_secs_f64() * 1000.0 / n as f64);
    }
}
