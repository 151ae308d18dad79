//! The routing bench on the repository's mixed trace: at least 5x fewer
//! tokens than always calling the large model, and no idle calls.

#[test]
fn mixed_trace_spends_at_least_five_times_fewer_tokens_and_no_idle_calls() {
    let report = opticlaw_models::bench::routing(None).unwrap();
    println!("{report:?}");
    println!("{report}");
    assert_eq!(report.messages, 200);
    assert_eq!(report.idle_calls, 0);
    assert!(report.no_llm_share() > 0.5, "{report}");
    assert!(
        report.small_calls > 0 && report.large_calls > 0,
        "{report:?}"
    );
    assert!(report.ratio() >= 5.0, "{report}");
    let line = report.to_string();
    assert!(line.starts_with("no_llm_share="));
    assert!(line.ends_with("idle_calls=0"));
}
