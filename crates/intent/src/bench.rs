//! The triage bench: accuracy, out-of-scope recall, calibration, latency,
//! fast-path share and model size, printed as one line.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use crate::IntentError;
use crate::calibrate::expected_calibration_error;
use crate::classifier::{Classifier, SHIPPED_MODEL};
use crate::data::{Clinc150, Example, OOS, default_clinc_path, load_examples};

/// Figures of one bench run. Its `Display` is exactly one line:
/// `in_scope_acc=A oos_recall=B ece=C p95_us=D fast_path_share=E model_bytes=F`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchReport {
    /// Share of in-scope messages given their gold intent (a message pushed
    /// out of scope by the threshold counts as wrong).
    pub in_scope_acc: f64,
    /// Share of `oos` messages judged out of scope.
    pub oos_recall: f64,
    /// Expected calibration error (15 bins) of the top-class probability.
    pub ece: f64,
    /// 95th percentile of one classification's wall time, in microseconds.
    pub p95_us: f64,
    /// Share of all messages judged in scope with confidence at or above the
    /// gate threshold.
    pub fast_path_share: f64,
    /// Size of the model file.
    pub model_bytes: usize,
    /// In-scope messages scored.
    pub in_scope: usize,
    /// Out-of-scope messages scored.
    pub out_of_scope: usize,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in_scope_acc={:.4} oos_recall={:.4} ece={:.4} p95_us={:.1} fast_path_share={:.4} model_bytes={}",
            self.in_scope_acc,
            self.oos_recall,
            self.ece,
            self.p95_us,
            self.fast_path_share,
            self.model_bytes
        )
    }
}

/// Benches the shipped model on `path` (a JSON list of `[utterance,
/// intent]`, `oos` for out of scope), or by default on CLINC150's `test`
/// and `oos_test` (found as [`default_clinc_path`] says).
///
/// ```no_run
/// let report = opticlaw_intent::bench::run(None).unwrap();
/// println!("{report}");
/// ```
pub fn run(path: Option<&Path>) -> Result<BenchReport, IntentError> {
    let examples = match path {
        Some(p) => load_examples(p)?,
        None => {
            let data = Clinc150::load(&default_clinc_path())?;
            data.test.into_iter().chain(data.oos_test).collect()
        }
    };
    Ok(run_with(
        Classifier::shipped(),
        SHIPPED_MODEL.len(),
        &examples,
    ))
}

/// Benches `classifier` (whose file is `model_bytes` long) on `examples`.
pub fn run_with(classifier: &Classifier, model_bytes: usize, examples: &[Example]) -> BenchReport {
    let mut scratch = classifier.scratch();
    for e in examples.iter().take(200) {
        classifier.decide(&e.text, &mut scratch);
    }
    let (mut in_n, mut in_ok, mut oos_n, mut oos_ok, mut fast) = (0, 0, 0, 0, 0);
    let mut confidence = Vec::with_capacity(examples.len());
    let mut correct = Vec::with_capacity(examples.len());
    let mut micros = Vec::with_capacity(examples.len());
    for e in examples {
        let start = Instant::now();
        let d = classifier.decide(&e.text, &mut scratch);
        micros.push(start.elapsed().as_secs_f64() * 1e6);
        let top = classifier.class_name(d.class);
        confidence.push(d.confidence);
        correct.push(top == e.intent);
        fast += d.confident as usize;
        if e.intent == OOS {
            oos_n += 1;
            oos_ok += !d.in_scope as usize;
        } else {
            in_n += 1;
            in_ok += (d.in_scope && top == e.intent) as usize;
        }
    }
    micros.sort_by(f64::total_cmp);
    let p95 = micros
        .get(((micros.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    BenchReport {
        in_scope_acc: share(in_ok, in_n),
        oos_recall: share(oos_ok, oos_n),
        ece: expected_calibration_error(&confidence, &correct) as f64,
        p95_us: p95,
        fast_path_share: share(fast, examples.len()),
        model_bytes,
        in_scope: in_n,
        out_of_scope: oos_n,
    }
}
