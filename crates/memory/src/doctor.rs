//! `doctor`: what the memory engine has and what it is missing.

use serde::Serialize;

use crate::embed::{DEFAULT_MODEL_DIR, MODEL_FILES, find_model_dir};
use crate::engine::MemoryEngine;

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it is fine.
    pub ok: bool,
    /// What was found, or what to do.
    pub detail: String,
}

/// Checks of the engine and its environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DoctorReport {
    /// All checks.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// Whether every check passed.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

impl std::fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "[{}] {}: {}",
                if c.ok { "ok" } else { "missing" },
                c.name,
                c.detail
            )?;
        }
        Ok(())
    }
}

fn check(name: &str, ok: bool, detail: String) -> Check {
    Check {
        name: name.into(),
        ok,
        detail,
    }
}

/// Environment checks that need no engine: the embeddings feature and the
/// local model files.
pub fn doctor_environment() -> DoctorReport {
    let mut checks = Vec::new();
    checks.push(check(
        "embeddings feature",
        cfg!(feature = "embeddings"),
        if cfg!(feature = "embeddings") {
            "built with in-process embeddings (candle)".into()
        } else {
            "built without `embeddings`: only full-text and graph retrieval, or an HTTP embedder"
                .into()
        },
    ));
    match find_model_dir() {
        Some(dir) => {
            let missing: Vec<&str> = MODEL_FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
            checks.push(check(
                "embedding model",
                missing.is_empty(),
                if missing.is_empty() {
                    format!("all-MiniLM-L6-v2 at {}", dir.display())
                } else {
                    format!("{} lacks {}: run scripts/fetch-embedding-model", dir.display(), missing.join(", "))
                },
            ));
        }
        None => checks.push(check(
            "embedding model",
            false,
            format!(
                "not found (looked for $OPTICLAW_EMBEDDING_MODEL_DIR and {DEFAULT_MODEL_DIR}): run scripts/fetch-embedding-model; retrieval works without it (full-text + graph)"
            ),
        )),
    }
    DoctorReport { checks }
}

impl MemoryEngine {
    /// Environment checks plus the engine's own: full-text index, attached
    /// embedder, vectors missing for records.
    pub fn doctor(&self) -> DoctorReport {
        let mut report = doctor_environment();
        let fts = self
            .conn
            .query_row("SELECT COUNT(*) FROM memory_fts", [], |r| {
                r.get::<_, i64>(0)
            });
        report.checks.push(check(
            "full-text index",
            fts.is_ok(),
            match fts {
                Ok(n) => format!("FTS5 with {n} rows"),
                Err(e) => format!("FTS5 unavailable: {e}"),
            },
        ));
        match self.embedder_model() {
            Some(m) => {
                let missing: i64 = self
                    .conn
                    .query_row(
                        "SELECT COUNT(*) FROM memory_records r WHERE NOT EXISTS (SELECT 1 FROM memory_vectors v WHERE v.seq = r.seq)",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap_or(-1);
                report.checks.push(check(
                    "embedder",
                    missing == 0,
                    format!("{m}; {missing} records without a vector"),
                ));
            }
            None => report.checks.push(check(
                "embedder",
                false,
                "none attached: vector retrieval is off (full-text + graph only)".into(),
            )),
        }
        report
    }
}
