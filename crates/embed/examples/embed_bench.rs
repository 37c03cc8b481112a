//! Times embedding texts of several lengths (figures, not a test). Argument: the model directory.
use std::time::Instant;
use switchboard_embed::MiniLm;

/// The binary's allocator: the model allocates a few buffers per layer, and the system
/// allocator's fresh pages would be timed too.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let dir = std::env::args().nth(1).expect("the model directory");
    let model = MiniLm::load(std::path::Path::new(&dir)).unwrap();
    let long = "Find today's LeetCode Daily Challenge and generate a detailed markdown document in /root/markdown/leetcode_daily.md with the problem statement, constraints, examples and a worked solution, then send me a summary";
    for text in ["send a slack message", "weather forecast for paris next week please", long] {
        let texts = vec![text.to_string()];
        let _ = model.embed_blocking(&texts).unwrap();
        let n = 30;
        let t = Instant::now();
        for _ in 0..n {
            let _ = model.embed_blocking(&texts).unwrap();
        }
        println!("{} chars: {:.2} ms", text.len(), t.elapsed().as_secs_f64() * 1000.0 / n as f64);
    }
}
