//! Sentence embeddings for catalog search.
//!
//! Two sources behind one trait: [`MiniLm`], the all-MiniLM-L6-v2 sentence encoder run in process
//! from a directory holding its `model.safetensors`, `tokenizer.json` and `config.json`, and
//! [`RemoteEmbedder`], any OpenAI-compatible `/embeddings` endpoint. Vectors come back L2-normalised,
//! so a dot product is their cosine similarity.

mod bert;
mod dense;
mod matrix;
mod minilm;
mod remote;
mod simd;

pub use matrix::Matrix;
pub use minilm::MiniLm;
pub use remote::{RemoteConfig, RemoteEmbedder};

/// The environment variable the tensor library reads for the number of threads each of its
/// operations uses (and the size of the process's global thread pool).
///
/// The binary sets it to 1 at start, before any thread exists: the model's steps and the scoring
/// run in [`pool`], and the few tensor operations left (loading, looking up a text's tokens) are
/// too small to split. And set at all: unset, the library looks the number up again for every
/// operation — reading `/proc/cpuinfo` to count physical cores.
pub const THREAD_COUNT_VARIABLE: &str = "RAYON_NUM_THREADS";

/// The number of physical cores: the size of [`pool`]. Counted once: counting reads `/proc/cpuinfo`.
fn physical_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| num_cpus::get_physical().max(1))
}

/// The threads [`MiniLm`] and [`Matrix`] run on, one per physical core. One pool for both: a
/// pool's idle threads spin for a while after their work, and two pools' threads took turns
/// slowing each other down between a search's embedding and its scoring.
pub(crate) fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(physical_cores())
            .thread_name(|i| format!("embed-{i}"))
            .build()
            .expect("the embedding threads start")
    })
}

/// Something that turns texts into unit-length vectors.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// A stable name of the model, stored beside document vectors so a model change recomputes them.
    fn model_id(&self) -> &str;
    /// The length of every vector this embedder returns.
    fn dimension(&self) -> usize;
    /// One unit vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The model directory is missing a file or holds something that is not this model.
    #[error("cannot load the embedding model from {path}: {reason}")]
    Load { path: String, reason: String },
    /// Running the model failed.
    #[error("embedding failed: {0}")]
    Compute(String),
    /// The embeddings endpoint could not be reached or answered with an error.
    #[error("the embeddings endpoint failed: {0}")]
    Remote(String),
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The dot product of two vectors of the same length; their cosine when both are unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise the loop.
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for (lane, slot) in acc.iter_mut().enumerate() {
            *slot += a[i * 8 + lane] * b[i * 8 + lane];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}
