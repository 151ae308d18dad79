//! `opticlaw triage explain|train`: how a message is triaged and why, and
//! reproducible retraining of the intent classifier.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use opticlaw_intent::train::{TrainOptions, train};
use opticlaw_triage::rules::RuleAction;
use opticlaw_triage::{Triage, TriageDecision};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Show how a message would be triaged, and why
    Explain {
        /// The message (several words are joined with spaces)
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Print the explanation as JSON, as it is stored with the event
        #[arg(long)]
        json: bool,
    },
    /// Retrain the intent classifier (deterministic: seed 7) and write the model file
    Train {
        /// Where to write the model [default: the shipped model in this
        /// source tree, crates/intent/model/intent.ocm]
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
}

pub fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Explain { text, json } => explain(&text.join(" "), json),
        Command::Train { out } => train_model(out),
    }
}

fn explain(text: &str, json: bool) -> Result<ExitCode> {
    // Configured pattern rules are not loaded here: this shows the built-in
    // rules and the classifier.
    let triage = Triage::default();
    let decision = triage.decide(text, chrono::Local::now().fixed_offset());
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&decision.explanation_json())?
        );
    } else {
        print!("{}", render(&decision));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable explanation `opticlaw triage explain` prints.
fn render(d: &TriageDecision) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "route:  {}", d.route.as_str());
    let _ = writeln!(out, "rule:   {}", d.rule);
    let action = match &d.action {
        RuleAction::Reply(text) => format!("reply {text:?}"),
        RuleAction::Status => "status".into(),
        RuleAction::ScheduleReminder(r) => {
            format!(
                "schedule reminder {:?} at {}",
                r.task,
                r.wake_at.to_rfc3339()
            )
        }
        RuleAction::ListReminders => "list reminders".into(),
        RuleAction::CancelReminder(id) => format!("cancel reminder {id}"),
        RuleAction::NeedsModel => "needs a model (planner)".into(),
        RuleAction::Act(command) => format!("act through the orchestrator: {command:?}"),
    };
    let _ = writeln!(out, "action: {action}");
    let _ = writeln!(out, "why:    {}", d.why);
    match &d.intent {
        None => {
            let _ = writeln!(out, "model:  not consulted (a rule decided)");
        }
        Some(i) => {
            let _ = writeln!(
                out,
                "model:  intent={} confidence={:.3} in_scope={} confident={} urgency={:.2} tool_needed={:.2}",
                i.intent, i.confidence, i.in_scope, i.confident, i.urgency, i.tool_needed
            );
            let _ = writeln!(out, "  probabilities:");
            for (intent, p) in &i.top {
                let _ = writeln!(out, "    {p:.3} {intent}");
            }
            let _ = writeln!(out, "  top contributions (to the top class's logit):");
            if i.contributions.is_empty() {
                let _ = writeln!(
                    out,
                    "    (none: no feature of this message is known to the model)"
                );
            }
            for (feature, w) in &i.contributions {
                let _ = writeln!(out, "    {w:+.3} {feature}");
            }
        }
    }
    let h = &d.hints;
    let _ = writeln!(out, "hints:");
    let _ = writeln!(out, "  entities:   {:?}", h.entities);
    let range = h.time_range.map_or_else(
        || "-".to_owned(),
        |(start, end)| format!("{} .. {}", start.to_rfc3339(), end.to_rfc3339()),
    );
    let _ = writeln!(out, "  time range: {range}");
    let _ = writeln!(out, "  domain:     {}", h.domain.as_deref().unwrap_or("-"));
    out
}

/// Where the shipped model's source file lives in this checkout.
fn shipped_model_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../intent/model/intent.ocm");
    path.canonicalize().unwrap_or(path)
}

fn train_model(out: Option<PathBuf>) -> Result<ExitCode> {
    let shipped = shipped_model_path();
    let out = match out {
        Some(path) => path,
        None if shipped.parent().is_some_and(Path::is_dir) => shipped.clone(),
        None => bail!(
            "the source tree this binary was built from is not here ({}); pass --out PATH",
            shipped.display()
        ),
    };
    let data = clinc150_path()?;
    eprintln!(
        "The shipped model is {} (embedded in the binary at build time).",
        shipped.display()
    );
    eprintln!(
        "Training on {} (deterministic, seed 7; about 15 s in a release build, much longer in a debug one)…",
        data.display()
    );
    let options = TrainOptions {
        data,
        ..TrainOptions::default()
    };
    let started = Instant::now();
    let trained = with_progress(|| train(&options)).context("training the intent model")?;
    std::fs::write(&out, &trained.bytes)
        .with_context(|| format!("writing the model to {}", out.display()))?;
    println!(
        "wrote {} bytes to {} in {:.1}s",
        trained.bytes.len(),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", trained.report);
    let same = trained.bytes == opticlaw_intent::SHIPPED_MODEL;
    println!(
        "identical to the model in this binary: {}",
        if same { "yes" } else { "no" }
    );
    let is_shipped = out.canonicalize().ok() == shipped.canonicalize().ok();
    if is_shipped {
        println!("Rebuild (cargo build --release) to embed it in the binary.");
    } else {
        println!(
            "To ship it, copy it to {} and rebuild: the model is embedded at build time.",
            shipped.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` while printing the elapsed time to stderr once a second
/// (on one updating line when stderr is a terminal).
fn with_progress<T>(work: impl FnOnce() -> T) -> T {
    let (done, finished) = mpsc::channel::<()>();
    let terminal = std::io::stderr().is_terminal();
    let ticker = std::thread::spawn(move || {
        let started = Instant::now();
        let mut last_line = 0;
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(Duration::from_secs(1))
        {
            let secs = started.elapsed().as_secs();
            if terminal {
                eprint!("\rtraining… {secs}s");
            } else if secs >= last_line + 10 {
                last_line = secs;
                eprintln!("training… {secs}s");
            }
        }
        if terminal {
            eprintln!(
                "\rtraining… done after {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
    });
    let result = work();
    drop(done);
    let _ = ticker.join();
    result
}

/// CLINC150's `data_full.json`: `$OPTICLAW_CLINC150` if set, else
/// `shared/data/clinc150/data_full.json` beside the repository this binary
/// was built from, else beside the current directory or one of its parents.
pub fn clinc150_path() -> Result<PathBuf> {
    const HELP: &str = "set OPTICLAW_CLINC150 to the path of CLINC150's data_full.json (see crates/intent/README.md)";
    if let Some(p) = std::env::var_os("OPTICLAW_CLINC150") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!(
                "OPTICLAW_CLINC150 is {}, which is not a file; {HELP}",
                p.display()
            );
        }
        return Ok(p);
    }
    let relative = Path::new("shared/data/clinc150/data_full.json");
    let mut candidates = vec![opticlaw_intent::data::default_clinc_path()];
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            candidates.push(dir.join(relative));
        }
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.canonicalize().unwrap_or_else(|_| found.clone()));
    }
    bail!(
        "CLINC150 not found (looked for {} beside the repository and the current directory); {HELP}",
        relative.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_shows_route_rule_probabilities_and_hints() {
        let triage = Triage::default();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T15:00:00+01:00").unwrap();
        let text = render(&triage.decide("book me a flight to Paris next week", now));
        assert!(text.contains("route:  PLAN_AND_EXECUTE"), "{text}");
        assert!(text.contains("book_flight"), "{text}");
        assert!(text.contains("top contributions"), "{text}");
        assert!(text.contains("\"Paris\""), "{text}");
        assert!(text.contains("domain:     travel"), "{text}");
        let text = render(&triage.decide("/help", now));
        assert!(text.contains("rule:   help"), "{text}");
        assert!(text.contains("not consulted"), "{text}");
    }
}
