//! The LoCoMo bench runs on files in LoCoMo's format and prints the
//! machine-readable last line.

use std::path::PathBuf;

use opticlaw_memory::EngineConfig;
use opticlaw_memory::bench::locomo_with;

fn conversation() -> serde_json::Value {
    serde_json::json!({
        "speaker_a": "Ann",
        "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Ann", "dia_id": "D1:1", "text": "Hi Ben! I adopted a kitten called Miso yesterday."},
            {"speaker": "Ben", "dia_id": "D1:2", "text": "Congrats! What colour is she?"},
            {"speaker": "Ann", "dia_id": "D1:3", "text": "Ginger with white paws."}
        ],
        "session_2_date_time": "10:00 am on 20 June, 2023",
        "session_2": [
            {"speaker": "Ben", "dia_id": "D2:1", "text": "I started learning the cello last week.", "blip_caption": "a photo of a cello"},
            {"speaker": "Ann", "dia_id": "D2:2", "text": "That's lovely, how is it going?"}
        ],
        "session_1_summary": "MUST NOT BE READ: Ann adopted a kitten.",
        "session_1_observation": {"Ann": [["MUST NOT BE READ", "D1:1"]]},
        "qa": [
            {"question": "What is the name of Ann's kitten?", "answer": "Miso", "evidence": ["D1:1"], "category": 4},
            {"question": "When did Ben start learning the cello?", "answer": "June 2023", "evidence": ["D2:1"], "category": 2},
            {"question": "What is Ben's favourite food?", "adversarial_answer": "pizza", "evidence": [], "category": 5}
        ]
    })
}

#[test]
fn locomo_bench_scores_evidence_turns_and_ends_with_the_summary_line() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("tiny.json");
    std::fs::write(&path, conversation().to_string()).unwrap();
    let no_model = || Err("none in this test".to_string());
    let report = locomo_with(&[path], &EngineConfig::default(), &no_model).unwrap();
    assert_eq!(
        report.overall.questions, 2,
        "category 5 and questions without evidence are skipped"
    );
    assert_eq!(report.turns, 5);
    assert_eq!(report.overall.recall[1], 1.0);
    let text = report.to_string();
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("questions=2 recall@1="), "{last}");
    assert!(
        last.contains(" recall@10=") && last.contains(" query_p95_ms="),
        "{last}"
    );
}

#[test]
fn malformed_locomo_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, r#"{"session_1": [], "qa": []}"#).unwrap();
    let no_model = || Err("none".to_string());
    let err = locomo_with(&[path], &EngineConfig::default(), &no_model)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.json") && err.contains("session_1_date_time"),
        "{err}"
    );
}
