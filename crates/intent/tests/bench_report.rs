//! The bench runs on any file shaped like CLINC150's `test` and prints one
//! machine-readable line.

use std::path::Path;

use opticlaw_intent::IntentError;
use opticlaw_intent::bench;

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/triage_sample.json"
    ))
}

#[test]
fn bench_on_a_file_counts_in_scope_and_out_of_scope_messages() {
    let report = bench::run(Some(fixture())).expect("bench runs");
    assert_eq!((report.in_scope, report.out_of_scope), (4, 2));
    assert!((0.0..=1.0).contains(&report.in_scope_acc));
    assert!((0.0..=1.0).contains(&report.fast_path_share));
    assert_eq!(report.model_bytes, opticlaw_intent::SHIPPED_MODEL.len());
}

#[test]
fn bench_report_is_one_line_with_the_six_fields_in_order() {
    let line = bench::run(Some(fixture())).expect("bench runs").to_string();
    assert!(!line.contains('\n'));
    let keys: Vec<&str> = line
        .split(' ')
        .map(|kv| kv.split_once('=').expect("key=value").0)
        .collect();
    assert_eq!(
        keys,
        [
            "in_scope_acc",
            "oos_recall",
            "ece",
            "p95_us",
            "fast_path_share",
            "model_bytes"
        ]
    );
}

#[test]
fn a_missing_or_malformed_file_is_a_typed_error() {
    assert!(matches!(
        bench::run(Some(Path::new("/nonexistent/triage.json"))),
        Err(IntentError::Io { .. })
    ));
    let bad = std::env::temp_dir().join(format!("opticlaw-intent-bad-{}.json", std::process::id()));
    std::fs::write(&bad, r#"{"not": "a list"}"#).unwrap();
    let result = bench::run(Some(&bad));
    std::fs::remove_file(&bad).unwrap();
    assert!(matches!(result, Err(IntentError::Json { .. })));
}
