//! Training is reproducible: the default options give the shipped bytes.
//!
//! Training takes about a minute in release mode and far longer in debug,
//! so this test is ignored by default; run it with
//! `cargo test --release -p opticlaw-intent -- --ignored`.

use opticlaw_intent::SHIPPED_MODEL;
use opticlaw_intent::train::{TrainOptions, train};

#[test]
#[ignore = "trains the model: run with --release -- --ignored"]
fn training_with_default_options_reproduces_the_shipped_model_bit_for_bit() {
    let options = TrainOptions::default();
    if !options.data.exists() {
        eprintln!("skipped: CLINC150 not found at {}", options.data.display());
        return;
    }
    let trained = train(&options).expect("training succeeds");
    println!("{}", trained.report);
    assert!(
        trained.bytes == SHIPPED_MODEL,
        "retrained model differs from model/intent.ocm"
    );
}
