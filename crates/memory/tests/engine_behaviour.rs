//! Behaviour of the memory engine on real SQLite files.

use chrono::{Duration, TimeZone, Utc};
use opticlaw_core::MemoryType;
use opticlaw_memory::budget::SliceSource;
use opticlaw_memory::{
    ContextRequest, DecayPolicy, EngineConfig, ExtractiveSummarizer, Level, MemoryEngine,
    MemoryError, NewMemory, Query, RetrievalHints, TimeRange, content_from_bytes,
};

fn engine() -> (tempfile::TempDir, MemoryEngine) {
    let dir = tempfile::tempdir().unwrap();
    let e = MemoryEngine::open(dir.path().join("memory.db")).unwrap();
    (dir, e)
}

fn engine_with(config: EngineConfig) -> (tempfile::TempDir, MemoryEngine) {
    let dir = tempfile::tempdir().unwrap();
    let e = MemoryEngine::open_with(dir.path().join("m.db"), config).unwrap();
    (dir, e)
}

fn count(e: &MemoryEngine, sql: &str) -> i64 {
    e.connection().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn day(d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, d, 10, 0, 0).unwrap()
}

#[test]
fn records_of_all_three_kinds_keep_their_fields() {
    let (_d, mut e) = engine();
    let ep = e
        .add(NewMemory::episodic(
            "t1",
            "Sam",
            "I booked the flight to Lisbon",
            day(3),
        ))
        .unwrap();
    let se = e
        .add(NewMemory::semantic("Sam prefers aisle seats", 0.8, "chat:t1").in_domain("travel"))
        .unwrap();
    let pr = e
        .add(NewMemory::procedural(
            "To deploy: run make release, then tag the commit",
        ))
        .unwrap();
    let ep = e.get(ep.id()).unwrap().unwrap();
    assert_eq!(ep.kind(), MemoryType::Episodic);
    assert_eq!(ep.speaker.as_deref(), Some("Sam"));
    assert_eq!(ep.record.thread_id.as_deref(), Some("t1"));
    assert_eq!(ep.occurred_at, day(3));
    assert!(ep.record.entities.contains(&"person:sam".to_string()));
    assert!(ep.record.entities.contains(&"name:lisbon".to_string()));
    let se = e.get(se.id()).unwrap().unwrap();
    assert_eq!(
        (se.confidence, se.source.as_deref(), se.domain.as_deref()),
        (Some(0.8), Some("chat:t1"), Some("travel"))
    );
    assert_eq!(
        e.get(pr.id()).unwrap().unwrap().kind(),
        MemoryType::Procedural
    );
    let s = e.stats().unwrap();
    assert_eq!((s.episodic, s.semantic, s.procedural), (1, 1, 1));
}

#[test]
fn what_add_batch_returns_is_what_the_store_reads_back() {
    let (_d, mut e) = engine();
    // Sub-millisecond times: the store keeps milliseconds.
    let at = day(4) + Duration::microseconds(1_234_567);
    let added = e
        .add_batch(vec![
            NewMemory::episodic("t1", "Sam", "We met Ana in Porto", at),
            NewMemory::semantic("Sam likes green tea", 0.7, "chat:t1")
                .in_domain("food")
                .pinned()
                .expires_at(at + Duration::days(30))
                .with_entity("topic:tea"),
            NewMemory::procedural("To brew: 80 degrees, two minutes"),
        ])
        .unwrap();
    assert_eq!(added.len(), 3);
    for m in added {
        let read = e.get(m.id()).unwrap().unwrap();
        assert_eq!(m, read);
    }
}

#[test]
fn data_survives_reopening_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let id = MemoryEngine::open(&path)
        .unwrap()
        .add(NewMemory::semantic("Sam likes tea", 0.9, "t"))
        .unwrap()
        .id();
    let e = MemoryEngine::open(&path).unwrap();
    assert!(e.get(id).unwrap().is_some());
    assert_eq!(
        count(&e, "SELECT COUNT(*) FROM memory_schema_version"),
        opticlaw_memory::MIGRATIONS.len() as i64
    );
}

#[test]
fn forgetting_deletes_the_row_full_text_entry_entities_and_summaries() {
    let (_d, mut e) = engine();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            e.add(NewMemory::episodic(
                "t",
                "Ana",
                format!("turn {i} about the Zanzibar trip"),
                day(1) + Duration::minutes(i),
            ))
            .unwrap()
            .id(),
        );
    }
    let secret = e
        .add(NewMemory::episodic(
            "t",
            "Ana",
            "my bank PIN is 4321 for Quuxbank",
            day(2),
        ))
        .unwrap();
    e.compact_thread("t", &ExtractiveSummarizer, day(9))
        .unwrap();
    assert!(
        e.summaries("t", Some(Level::Macro)).unwrap()[0]
            .content
            .contains("4321")
    );
    e.forget(secret.id()).unwrap();
    assert!(e.get(secret.id()).unwrap().is_none());
    assert_eq!(
        count(
            &e,
            "SELECT COUNT(*) FROM memory_fts WHERE memory_fts MATCH '4321'"
        ),
        0
    );
    assert_eq!(
        count(
            &e,
            "SELECT COUNT(*) FROM memory_entities WHERE key = 'name:quuxbank'"
        ),
        0
    );
    assert!(
        e.summaries("t", None)
            .unwrap()
            .iter()
            .all(|s| !s.content.contains("4321"))
    );
    assert!(
        e.search(&Query::new("bank PIN", 10))
            .unwrap()
            .iter()
            .all(|h| h.memory.id() != secret.id())
    );
    assert!(matches!(
        e.forget(secret.id()),
        Err(MemoryError::NotFound(_))
    ));
    // The micro summary of the other eight turns is untouched.
    assert_eq!(e.summaries("t", Some(Level::Micro)).unwrap().len(), 1);
}

#[test]
fn forgotten_text_leaves_no_bytes_in_the_full_text_index() {
    let (_d, mut e) = engine();
    let mut turns = Vec::new();
    for i in 0..8 {
        let text = if i == 4 {
            "my locker combination is xylophone77".to_string()
        } else {
            format!("turn {i} about the harbour picnic")
        };
        turns.push(
            e.add(NewMemory::episodic(
                "t",
                "Ana",
                text,
                day(1) + Duration::minutes(i),
            ))
            .unwrap(),
        );
    }
    // Indexed as its own row, as the following turn of turn 3, and as the
    // context of turns 5 and 6.
    let matches = |e: &MemoryEngine| {
        count(
            e,
            "SELECT COUNT(*) FROM memory_fts WHERE memory_fts MATCH 'xylophone77'",
        )
    };
    assert_eq!(matches(&e), 4);
    let in_index_pages = |e: &MemoryEngine| {
        count(
            e,
            "SELECT COUNT(*) FROM memory_fts_data WHERE instr(block, CAST('xylophone' AS BLOB)) > 0",
        )
    };
    assert!(in_index_pages(&e) > 0, "the probe must see indexed terms");
    e.forget(turns[4].id()).unwrap();
    assert_eq!(matches(&e), 0);
    assert_eq!(in_index_pages(&e), 0, "secure-delete purges the terms");
    assert_eq!(
        count(
            &e,
            "SELECT COUNT(*) FROM memory_records WHERE instr(content || context, 'xylophone') > 0"
        ),
        0
    );
    // The neighbours are still found by their own words.
    let hits = e.search(&Query::new("harbour picnic turn 5", 3)).unwrap();
    assert_eq!(hits[0].memory.id(), turns[5].id());
}

#[test]
fn expired_records_are_never_returned_and_are_purged() {
    let (_d, mut e) = engine();
    let soon = Utc::now() + Duration::hours(1);
    e.add(NewMemory::semantic("the door code is 1234", 0.9, "t").expires_at(soon))
        .unwrap();
    let mut q = Query::new("door code", 5);
    assert_eq!(e.search(&q).unwrap().len(), 1);
    q.now = Some(soon + Duration::minutes(1));
    assert!(e.search(&q).unwrap().is_empty());
    assert_eq!(e.purge_expired(soon + Duration::minutes(1)).unwrap(), 1);
    assert_eq!(e.stats().unwrap().semantic, 0);
}

#[test]
fn decay_forgets_idle_low_salience_records_but_never_pinned_ones() {
    let (_d, mut e) = engine();
    let old = day(1) - Duration::days(400);
    let mut plain = NewMemory::episodic("t", "Bo", "ok cool", old);
    plain.salience = Some(0.2);
    let plain = e.add(plain).unwrap();
    let mut pinned = NewMemory::episodic("t", "Bo", "ok sure", old + Duration::minutes(1)).pinned();
    pinned.salience = Some(0.2);
    let pinned = e.add(pinned).unwrap();
    e.compact_thread("t", &ExtractiveSummarizer, day(1))
        .unwrap();
    let gone = e.decay_and_forget(&DecayPolicy::default(), day(1)).unwrap();
    assert_eq!(gone, 1);
    assert!(e.get(plain.id()).unwrap().is_none());
    assert!(e.get(pinned.id()).unwrap().is_some());
    // The gist stays in the summaries after decay.
    assert!(!e.summaries("t", Some(Level::Macro)).unwrap().is_empty());
}

#[test]
fn oversized_and_invalid_records_are_refused_and_nothing_is_written() {
    let (_dir, mut e) = engine_with(EngineConfig {
        max_record_bytes: 100,
        ..EngineConfig::default()
    });
    let err = e.add(NewMemory::procedural("x".repeat(101))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record content is 101 bytes, over the limit of 100 bytes"
    );
    let batch = vec![
        NewMemory::procedural("fine"),
        NewMemory::procedural("y".repeat(500)),
    ];
    assert!(e.add_batch(batch).is_err());
    assert_eq!(
        e.stats().unwrap().procedural,
        0,
        "a failed batch writes nothing"
    );
    let mut bad = NewMemory::semantic("fact", 1.5, "t");
    bad.confidence = Some(1.5);
    assert!(
        e.add(bad)
            .unwrap_err()
            .to_string()
            .contains("confidence 1.5 is outside 0..=1")
    );
    let utf8 = content_from_bytes(vec![b'o', b'k', 0xff, b'!']).unwrap_err();
    assert_eq!(
        utf8.to_string(),
        "record content is not valid UTF-8 (first bad byte at offset 2)"
    );
}

#[test]
fn graph_traversal_follows_relations_both_ways() {
    let (_d, mut e) = engine();
    e.relate("person:sam", "works_at", "org:acme").unwrap();
    e.relate("org:acme", "located_in", "place:berlin").unwrap();
    e.relate("person:kim", "works_at", "org:acme").unwrap();
    let one = e.neighbours("person:sam", 1).unwrap();
    assert_eq!(
        one.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(),
        vec!["org:acme"]
    );
    let two: Vec<String> = e
        .neighbours("person:sam", 2)
        .unwrap()
        .into_iter()
        .map(|n| n.key)
        .collect();
    assert!(two.contains(&"place:berlin".to_string()) && two.contains(&"person:kim".to_string()));
}

#[test]
fn speaker_mentions_build_the_entity_graph_at_ingest() {
    let (_d, mut e) = engine();
    e.add(NewMemory::episodic(
        "t",
        "Sam",
        "I went hiking with Priya near Zermatt",
        day(4),
    ))
    .unwrap();
    let n: Vec<String> = e
        .neighbours("person:sam", 1)
        .unwrap()
        .into_iter()
        .map(|n| n.key)
        .collect();
    assert_eq!(n, vec!["name:priya", "name:zermatt"]);
}

#[test]
fn hybrid_search_finds_facts_by_words_and_respects_hints() {
    let (_d, mut e) = engine();
    e.add(NewMemory::episodic(
        "t",
        "Sam",
        "We adopted a puppy named Biscuit",
        day(2),
    ))
    .unwrap();
    e.add(NewMemory::episodic(
        "t",
        "Sam",
        "The puppy chewed my shoes",
        day(20),
    ))
    .unwrap();
    e.add(NewMemory::semantic("Sam's puppy is a beagle", 0.9, "t").in_domain("pets"))
        .unwrap();
    let hits = e
        .search(&Query::new("what is the puppy called?", 3))
        .unwrap();
    assert!(hits.iter().any(|h| h.memory.content().contains("Biscuit")));
    assert!(hits.iter().all(|h| h.sources.fulltext.is_some()));
    let mut q = Query::new("puppy", 5);
    q.hints = RetrievalHints {
        time_range: Some(TimeRange {
            from: day(1),
            to: day(10),
        }),
        kinds: vec![MemoryType::Episodic],
        ..RetrievalHints::default()
    };
    let hits = e.search(&q).unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].memory.content().contains("Biscuit"));
}

#[test]
fn a_word_in_every_record_keeps_them_found_but_does_not_rank_them() {
    // "caroline" is in every record (BM25 gives it no weight): the records
    // stay full-text candidates, and the rarer word decides the order.
    let (_d, mut e) = engine();
    for (i, text) in [
        "Caroline went to the beach",
        "Caroline took a pottery class",
        "Caroline read a book",
        "Caroline painted the fence",
    ]
    .into_iter()
    .enumerate()
    {
        // Threads of their own: no record's words reach another's row as
        // context.
        e.add(NewMemory::episodic(
            format!("t{i}"),
            "Mel",
            text,
            day(1 + i as u32),
        ))
        .unwrap();
    }
    let hits = e.search(&Query::new("caroline pottery", 10)).unwrap();
    assert_eq!(hits.len(), 4, "every record with the common word is found");
    assert!(hits[0].memory.content().contains("pottery"));
    assert!(hits.iter().all(|h| h.sources.fulltext.is_some()));
    let hits = e.search(&Query::new("caroline", 10)).unwrap();
    assert_eq!(hits.len(), 4, "a query of only that word still finds them");
}

#[test]
fn time_words_in_a_query_prefer_records_from_that_time() {
    let (_d, mut e) = engine();
    e.add(NewMemory::episodic(
        "t",
        "Li",
        "we talked about the garden plan",
        Utc.with_ymd_and_hms(2024, 4, 10, 9, 0, 0).unwrap(),
    ))
    .unwrap();
    e.add(NewMemory::episodic(
        "t",
        "Li",
        "we talked about the garden plan again",
        Utc.with_ymd_and_hms(2024, 5, 10, 9, 0, 0).unwrap(),
    ))
    .unwrap();
    let mut q = Query::new("what did we say about the garden in April?", 2);
    q.now = Some(day(20));
    assert!(
        e.search(&q).unwrap()[0]
            .memory
            .occurred_at
            .to_rfc3339()
            .starts_with("2024-04-10")
    );
    q.text = "what did we say about the garden last week?".into();
    q.now = Some(day(17));
    assert!(
        e.search(&q).unwrap()[0]
            .memory
            .occurred_at
            .to_rfc3339()
            .starts_with("2024-05-10")
    );
}

#[test]
fn compaction_writes_micro_meso_and_macro_summaries_incrementally() {
    let (_d, mut e) = engine();
    for s in 0..2 {
        for i in 0..10 {
            e.add(NewMemory::episodic(
                "t",
                "Jo",
                format!("session {s} turn {i} about Project Falcon milestones"),
                day(1 + s * 3) + Duration::minutes(i as i64),
            ))
            .unwrap();
        }
    }
    let r = e
        .compact_thread("t", &ExtractiveSummarizer, day(20))
        .unwrap();
    assert_eq!((r.micro, r.meso, r.macro_), (2, 2, 1));
    let again = e
        .compact_thread("t", &ExtractiveSummarizer, day(20))
        .unwrap();
    assert_eq!(
        (again.micro, again.meso, again.macro_),
        (0, 0, 1),
        "rolling: only new windows"
    );
    for s in e.summaries("t", None).unwrap() {
        assert!(opticlaw_memory::text::estimate_tokens(&s.content) <= s.level.budget_tokens());
    }
}

#[test]
fn budgeter_prefers_summaries_stays_in_budget_and_explains_itself() {
    let (_d, mut e) = engine();
    for i in 0..24 {
        e.add(NewMemory::episodic(
            "t",
            "Max",
            format!("note {i}: the Orion launch moved to week {i}"),
            day(1) + Duration::minutes(i),
        ))
        .unwrap();
    }
    e.compact_thread("t", &ExtractiveSummarizer, day(20))
        .unwrap();
    let pack = e
        .build_context(&ContextRequest::new("when is the Orion launch?", 300))
        .unwrap();
    assert!(pack.tokens <= 300);
    assert!(!pack.slices.is_empty());
    assert!(
        pack.slices
            .iter()
            .any(|s| matches!(s.source, SliceSource::Summary { .. })),
        "{pack:#?}"
    );
    assert!(!pack.stop_reason.is_empty());
    assert!(pack.slices.iter().all(|s| !s.why.is_empty()));
    let tiny = e
        .build_context(&ContextRequest::new("when is the Orion launch?", 5))
        .unwrap();
    assert!(tiny.slices.is_empty() && !tiny.target_met);
    let none = e
        .build_context(&ContextRequest::new("zebra quantum", 300))
        .unwrap();
    assert!(none.slices.is_empty());
}

#[test]
fn export_then_import_reproduces_the_records() {
    let (_d, mut e) = engine();
    e.add(NewMemory::episodic("t", "Sam", "first line", day(1)))
        .unwrap();
    e.add(NewMemory::semantic("Sam is vegetarian", 0.7, "t").pinned())
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(e.export_jsonl(&mut buf).unwrap(), 2);
    let (_d2, mut other) = engine();
    assert_eq!(other.import_jsonl(&buf[..]).unwrap(), 2);
    let mut again = Vec::new();
    other.export_jsonl(&mut again).unwrap();
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        String::from_utf8(again).unwrap()
    );
}

#[test]
fn corrupt_import_names_the_line_and_imports_nothing() {
    let (_d, mut e) = engine();
    let good = r#"{"memory_id":"0190a0a0-0000-7000-8000-000000000001","type":"semantic","content":"ok","salience":0.5,"occurred_at":"2024-05-01T00:00:00Z"}"#;
    let input = format!("{good}\n\n{{\"memory_id\": 3}}\n");
    let err = e.import_jsonl(input.as_bytes()).unwrap_err();
    assert!(err.to_string().starts_with("import line 3:"), "{err}");
    assert_eq!(e.stats().unwrap().semantic, 0);
    let mut bytes = format!("{good}\n").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\n");
    assert!(
        e.import_jsonl(&bytes[..])
            .unwrap_err()
            .to_string()
            .contains("line 2: not valid UTF-8")
    );
    let dup = format!("{good}\n{good}\n");
    assert!(
        e.import_jsonl(dup.as_bytes())
            .unwrap_err()
            .to_string()
            .starts_with("import line 2:")
    );
    assert_eq!(e.stats().unwrap().semantic, 0);
}

#[test]
fn hot_cache_holds_recent_thread_turns_within_its_budget() {
    let (_dir, mut e) = engine_with(EngineConfig {
        hot_cache_bytes: 4_000,
        ..EngineConfig::default()
    });
    for i in 0..200 {
        e.add(NewMemory::episodic(
            format!("t{}", i % 3),
            "A",
            format!("message number {i}"),
            day(1),
        ))
        .unwrap();
        assert!(e.hot_cache_bytes() <= 4_000);
    }
    let recent = e.recent("t2", 2);
    assert_eq!(recent.last().unwrap().content(), "message number 197");
}

#[test]
fn doctor_says_what_is_missing_without_a_model() {
    let (_d, e) = engine();
    let report = e.doctor();
    let embedder = report.checks.iter().find(|c| c.name == "embedder").unwrap();
    assert!(!embedder.ok && embedder.detail.contains("full-text + graph"));
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "full-text index" && c.ok)
    );
    assert!(report.to_string().contains("[missing] embedder"));
}

#[test]
fn search_ends_its_read_transaction_and_leaves_a_callers_one_open() {
    let (_d, mut e) = engine();
    e.add(NewMemory::episodic("t", "Sam", "The kayak is blue", day(3)))
        .unwrap();
    let hits = e.search(&Query::new("kayak", 3)).unwrap();
    assert_eq!(hits.len(), 1);
    // Back in autocommit: a write right after the search commits.
    assert!(e.connection().is_autocommit());
    e.add(NewMemory::episodic("t", "Sam", "The kayak leaks", day(4)))
        .unwrap();
    // Inside a caller's transaction the search neither ends nor nests one.
    e.connection().execute_batch("BEGIN").unwrap();
    assert_eq!(e.search(&Query::new("kayak", 3)).unwrap().len(), 2);
    assert!(!e.connection().is_autocommit());
    e.connection().execute_batch("COMMIT").unwrap();
}

#[test]
fn a_summary_is_rewritten_in_place_and_a_rebuilt_one_refuses_a_late_rewrite() {
    let (_d, mut e) = engine();
    for i in 0..8 {
        e.add(NewMemory::episodic(
            "t",
            "Jo",
            format!("turn {i} about the Falcon launch"),
            day(1) + Duration::minutes(i),
        ))
        .unwrap();
    }
    let tail = e.thread_tail("t").unwrap();
    assert_eq!(tail.records, 8);
    assert_eq!(tail.last_at, Some(day(1) + Duration::minutes(7)));
    let first = e
        .compact_thread("t", &ExtractiveSummarizer, day(20))
        .unwrap();
    let (macro_id, _) = *first
        .written
        .iter()
        .find(|(_, level)| *level == Level::Macro)
        .unwrap();
    let sources = e.summary_sources(macro_id).unwrap().unwrap();
    assert_eq!(sources.len(), 8);
    assert!(
        sources
            .windows(2)
            .all(|w| w[0].occurred_at <= w[1].occurred_at)
    );

    assert!(
        e.rewrite_summary(macro_id, "Jo planned the Falcon launch.", "model:m")
            .unwrap()
    );
    let method: String = e
        .connection()
        .query_row(
            "SELECT method FROM memory_summaries WHERE summary_id = ?1",
            [macro_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(method, "model:m");
    let thread = e.summaries("t", Some(Level::Macro)).unwrap();
    assert_eq!(thread[0].content, "Jo planned the Falcon launch.");

    // The next compaction rebuilds the thread summary under a new id: a
    // rewrite of the old one that arrives late changes nothing.
    e.compact_thread("t", &ExtractiveSummarizer, day(20))
        .unwrap();
    assert_eq!(e.summary_sources(macro_id).unwrap(), None);
    assert!(!e.rewrite_summary(macro_id, "stale", "model:m").unwrap());
    assert_ne!(
        e.summaries("t", Some(Level::Macro)).unwrap()[0].content,
        "stale"
    );
}

#[test]
fn compaction_merges_the_full_text_segments_that_ingestion_left() {
    let (_d, mut e) = engine();
    // Each batch is its own transaction, so its own full-text segment.
    for b in 0..12 {
        e.add_batch(
            (0..4)
                .map(|i| {
                    NewMemory::episodic(
                        "t",
                        "Jo",
                        format!("batch {b} turn {i} about the harbour"),
                        day(1) + Duration::minutes(b * 4 + i),
                    )
                })
                .collect(),
        )
        .unwrap();
    }
    // Segments counted by their distinct ids in FTS5's index table.
    let segments =
        |e: &MemoryEngine| -> i64 { count(e, "SELECT COUNT(DISTINCT segid) FROM memory_fts_idx") };
    let before = segments(&e);
    assert!(before > 1, "{before} segments");
    e.compact_thread("t", &ExtractiveSummarizer, day(20))
        .unwrap();
    let after = segments(&e);
    assert!(after < before, "{before} -> {after} segments");
    let hits = e.search(&Query::new("harbour", 50)).unwrap();
    assert_eq!(hits.len(), 48, "every turn is still found after the merge");
}

#[test]
fn the_forgetting_pass_runs_at_most_once_a_day_and_spares_pinned_records() {
    let (_d, mut e) = engine();
    let policy = DecayPolicy::default();
    let expiring = e
        .add(NewMemory::semantic("the door code is 9911 this week", 1.0, "chat").expires_at(day(3)))
        .unwrap();
    let mut turns = Vec::new();
    for i in 0..8 {
        let mut new = NewMemory::episodic("t", "Jo", format!("small talk {i}"), day(1));
        new.salience = Some(0.2);
        if i == 0 {
            new = new.pinned();
        }
        turns.push(e.add(new).unwrap());
    }
    e.compact_thread("t", &ExtractiveSummarizer, day(2))
        .unwrap();
    // A year later: the expired fact and the faded, summarised turns go.
    let later = day(1) + Duration::days(365);
    let (expired, decayed) = e.forget_if_due(&policy, later).unwrap().unwrap();
    assert_eq!((expired, decayed), (1, 7));
    assert!(e.get(expiring.id()).unwrap().is_none());
    assert!(e.get(turns[0].id()).unwrap().is_some(), "pinned stays");
    assert!(e.get(turns[1].id()).unwrap().is_none());
    // Not again within the day, even with something new to forget.
    e.add(NewMemory::semantic("parking is on level 2", 1.0, "chat").expires_at(later))
        .unwrap();
    assert_eq!(
        e.forget_if_due(&policy, later + Duration::hours(23))
            .unwrap(),
        None
    );
    assert_eq!(
        e.forget_if_due(&policy, later + Duration::hours(25))
            .unwrap(),
        Some((1, 0))
    );
}

#[test]
fn a_large_memory_finds_vector_candidates_on_its_second_thread() {
    // Past the HNSW threshold the vector tier runs beside full text, on
    // its own thread, whether the query comes as text or with its vector.
    let (_dir, mut e) = engine_with(EngineConfig {
        hnsw_threshold: 100,
        ..EngineConfig::default()
    });
    let mut news: Vec<NewMemory> = (0..300)
        .map(|i| {
            NewMemory::episodic(
                "t",
                "Ana",
                format!("errand number {i} about groceries and the car"),
                day(1) + Duration::minutes(i),
            )
        })
        .collect();
    news.push(NewMemory::episodic(
        "t",
        "Ana",
        "the violin lesson moved to thursday evening",
        day(2),
    ));
    e.add_batch(news).unwrap();
    e.set_embedder(Box::new(opticlaw_memory::embed::HashingEmbedder::new(64)))
        .unwrap();
    assert!(
        e.uses_hnsw(),
        "301 vectors with a threshold of 100 use HNSW"
    );

    let text = "violin lesson thursday";
    let by_text = e.search(&Query::new(text, 5)).unwrap();
    let mut with_vector = Query::new(text, 5);
    with_vector.vector = e.embed_query(text).unwrap();
    assert!(with_vector.vector.is_some());
    let by_vector = e.search(&with_vector).unwrap();
    for hits in [&by_text, &by_vector] {
        let top = &hits[0];
        assert_eq!(
            top.memory.content(),
            "the violin lesson moved to thursday evening"
        );
        assert_eq!(
            top.sources.vector,
            Some(0),
            "the vector tier ranked it first"
        );
        assert_eq!(top.sources.fulltext, Some(0));
    }
}
