//! The semantic cache layer with a deterministic embedder: a paraphrase is
//! answered from the cache, an unrelated request is not, the threshold is
//! the configured one, and a changed source invalidates (the real
//! all-MiniLM-L6-v2 is exercised by the daemon's tests in `crates/opticlaw`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{ladder, request, text_turn, trace};
use opticlaw_models::replay::{ReplayServer, Trace};
use opticlaw_models::{ContextSource, ModelRouter, Providers, RequestEmbedder, Task};

/// Bag of content words hashed into 64 dimensions: sentences with the same
/// content words embed identically, whatever their filler words.
struct BagOfWords {
    calls: AtomicUsize,
    fail: bool,
}

const FILLER: &[&str] = &[
    "what's", "what", "how", "is", "the", "in", "like", "a", "tell", "me", "about", "please",
];

impl RequestEmbedder for BagOfWords {
    fn model_id(&self) -> &str {
        "test-bag-of-words"
    }
    fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err("the embedding model is not loaded".into());
        }
        let mut vector = vec![0.0; 64];
        for word in text.split(|c: char| !c.is_alphanumeric() && c != '\'') {
            if word.is_empty() || FILLER.contains(&word) {
                continue;
            }
            let slot = word
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31) ^ u32::from(b));
            vector[slot as usize % 64] += 1.0;
        }
        Ok(vector)
    }
}

fn embedder(fail: bool) -> Arc<BagOfWords> {
    Arc::new(BagOfWords {
        calls: AtomicUsize::new(0),
        fail,
    })
}

async fn setup(
    threshold: f32,
    embedder: Arc<BagOfWords>,
) -> (ReplayServer, ModelRouter, Providers) {
    let server = ReplayServer::start(Trace {
        repeat: true,
        ..trace(vec![text_turn("Sunny, 21 °C.")])
    })
    .await
    .unwrap();
    let mut config = ladder(&server.base_url(), 5_000);
    config.cache.semantic = true;
    config.cache.semantic_threshold = threshold;
    let providers = Providers::from_config(&config).unwrap();
    let router = ModelRouter::new(config).unwrap().with_embedder(embedder);
    (server, router, providers)
}

fn task_reading(version: &str) -> Task {
    let mut task = Task::new("t", "alice", "chat", 0.2);
    task.context = vec![ContextSource {
        source_id: "weather-feed".into(),
        version: version.into(),
    }];
    task
}

#[tokio::test]
async fn paraphrase_hits_unrelated_misses_and_a_changed_source_invalidates() {
    let embedder = embedder(false);
    let (server, router, providers) = setup(0.92, embedder.clone()).await;
    let task = task_reading("v1");

    let first = router
        .complete(
            &task,
            &request("What's the weather in Paris today?"),
            &providers,
        )
        .await;
    assert!(!first.result.unwrap().from_cache);
    assert_eq!(server.request_count(), 1);

    // Same meaning, other words: answered from the cache, no call.
    let paraphrase = router
        .complete(
            &task,
            &request("How is the weather like in Paris today"),
            &providers,
        )
        .await;
    let done = paraphrase.result.unwrap();
    assert!(done.from_cache);
    assert_eq!(done.response.text, "Sunny, 21 °C.");
    assert!(done.similarity.unwrap() >= 0.92);
    assert_eq!(paraphrase.usage.len(), 1);
    assert_eq!(paraphrase.usage[0].reason, "semantic cache");
    assert_eq!(paraphrase.usage[0].outcome, "cache_hit");
    assert_eq!(
        paraphrase.usage[0].input_tokens + paraphrase.usage[0].output_tokens,
        0
    );
    assert_eq!(server.request_count(), 1);

    // Unrelated: a real call.
    let unrelated = router
        .complete(&task, &request("Write a haiku about my cat"), &providers)
        .await;
    assert!(!unrelated.result.unwrap().from_cache);
    assert_eq!(server.request_count(), 2);

    // The same paraphrase over a newer version of the source it read: a call.
    let newer = router
        .complete(
            &task_reading("v2"),
            &request("how is the weather in paris today"),
            &providers,
        )
        .await;
    assert!(!newer.result.unwrap().from_cache);
    assert_eq!(server.request_count(), 3);

    // Invalidating the source drops the semantic entries that read it.
    assert_eq!(router.invalidate_source("weather-feed"), 3);
    let after = router
        .complete(
            &task,
            &request("Tell me the weather in Paris today"),
            &providers,
        )
        .await;
    assert!(!after.result.unwrap().from_cache);
    assert_eq!(server.request_count(), 4);
    assert!(embedder.calls.load(Ordering::SeqCst) >= 5);
}

#[tokio::test]
async fn the_configured_threshold_decides_how_close_is_close_enough() {
    // {weather, paris} against {weather, paris, tomorrow}: cosine 0.816.
    for (threshold, hit) in [(0.8, true), (0.92, false)] {
        let (server, router, providers) = setup(threshold, embedder(false)).await;
        let task = task_reading("v1");
        router
            .complete(&task, &request("weather in Paris"), &providers)
            .await
            .result
            .unwrap();
        let second = router
            .complete(&task, &request("weather in Paris tomorrow"), &providers)
            .await;
        assert_eq!(
            second.result.unwrap().from_cache,
            hit,
            "threshold {threshold}"
        );
        assert_eq!(server.request_count(), if hit { 1 } else { 2 });
    }
}

#[tokio::test]
async fn a_failing_embedder_only_skips_the_semantic_layer() {
    let embedder = embedder(true);
    let (server, router, providers) = setup(0.92, embedder.clone()).await;
    let task = task_reading("v1");
    let req = request("What's the weather in Paris today?");
    assert!(
        !router
            .complete(&task, &req, &providers)
            .await
            .result
            .unwrap()
            .from_cache
    );
    // The exact layer still works, without asking the embedder again.
    let calls = embedder.calls.load(Ordering::SeqCst);
    let again = router.complete(&task, &req, &providers).await;
    assert!(again.result.unwrap().from_cache);
    assert_eq!(again.usage[0].reason, "cache");
    assert_eq!(embedder.calls.load(Ordering::SeqCst), calls);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_threshold_outside_zero_to_one_is_refused() {
    let mut config = ladder("http://127.0.0.1:9", 1_000);
    config.cache.semantic_threshold = 1.5;
    let err = ModelRouter::new(config).err().unwrap().to_string();
    assert!(err.contains("models.cache.semantic_threshold"), "{err}");
}

#[tokio::test]
async fn another_users_paraphrase_and_private_tasks_never_hit() {
    let (server, router, providers) = setup(0.92, embedder(false)).await;
    let alice = task_reading("v1");
    router
        .complete(
            &alice,
            &request("What's the weather in Paris today?"),
            &providers,
        )
        .await
        .result
        .unwrap();
    // Bob's near-duplicate may differ in his own details: no reuse.
    let bob = Task {
        user_id: "bob".into(),
        ..task_reading("v1")
    };
    let other = router
        .complete(
            &bob,
            &request("How is the weather in Paris today"),
            &providers,
        )
        .await;
    assert!(!other.result.unwrap().from_cache);
    assert_eq!(server.request_count(), 2);
    // Private data: only an exact repeat may be reused.
    let private = Task {
        private: true,
        ..task_reading("v1")
    };
    let first = router
        .complete(&private, &request("My account 123 balance?"), &providers)
        .await;
    assert!(!first.result.unwrap().from_cache);
    let paraphrase = router
        .complete(&private, &request("balance of my account 123"), &providers)
        .await;
    assert!(!paraphrase.result.unwrap().from_cache);
    assert_eq!(server.request_count(), 4);
}
