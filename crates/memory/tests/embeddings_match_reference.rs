//! The in-process MiniLM embedder matches reference vectors recorded from
//! the model (tests/fixtures/make_minilm_reference.py) to cosine >= 0.999.

#![cfg(feature = "embeddings")]

use opticlaw_memory::Embedder;
use opticlaw_memory::embed::{MiniLmEmbedder, find_model_dir};

#[test]
fn minilm_embeddings_match_the_reference_implementation() {
    let Some(dir) = find_model_dir().filter(|d| d.join("model.safetensors").is_file()) else {
        eprintln!(
            "SKIPPED minilm_embeddings_match_the_reference_implementation: no model \
             (run scripts/fetch-embedding-model or set OPTICLAW_EMBEDDING_MODEL_DIR)"
        );
        return;
    };
    let embedder = MiniLmEmbedder::load(&dir).expect("model loads");
    assert_eq!(embedder.dim(), 384);
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let got = embedder.embed(&texts).unwrap();
    for (s, v) in sentences.iter().zip(&got) {
        let want: Vec<f32> = s["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let cos: f32 = want.iter().zip(v).map(|(a, b)| a * b).sum();
        assert!(cos >= 0.999, "{:?}: cosine {cos}", s["text"]);
    }
    // One at a time (no padding, no attention mask: the query path) matches
    // the reference and the batch.
    for (i, s) in sentences.iter().enumerate() {
        let single = embedder.embed(&texts[i..=i]).unwrap();
        let want: Vec<f32> = s["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let cos: f32 = want.iter().zip(&single[0]).map(|(a, b)| a * b).sum();
        assert!(cos >= 0.999, "{:?} alone: cosine {cos}", s["text"]);
        let cos: f32 = single[0].iter().zip(&got[i]).map(|(a, b)| a * b).sum();
        assert!(cos > 0.9999, "{:?} alone vs in the batch: {cos}", s["text"]);
    }
}
