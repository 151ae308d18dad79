//! `opticlaw bench locomo [FILE...]`: the memory engine on LoCoMo. Every
//! turn goes through the real ingestion path, every question with evidence
//! through the real retrieval path (see `opticlaw_memory::bench::locomo`);
//! the dataset's summaries, observations and events are never read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use opticlaw_memory::EngineConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Conversations in LoCoMo's format (default: every *.json in
    /// shared/data/locomo beside the repository, or $OPTICLAW_LOCOMO_DIR)
    files: Vec<PathBuf>,
    /// The embedding model directory (default: .cache/models/all-MiniLM-L6-v2
    /// or $OPTICLAW_EMBEDDING_MODEL_DIR)
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Full text + graph only, no embedding model
    #[arg(long)]
    no_embeddings: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let files = if args.files.is_empty() {
        default_files()?
    } else {
        args.files
    };
    eprintln!("LoCoMo: {} conversation file(s)", files.len());
    let model_dir = args.model_dir;
    let no_embeddings = args.no_embeddings;
    let embedder = move || {
        if no_embeddings {
            return Err("--no-embeddings".to_owned());
        }
        opticlaw_memory::embed::local_embedder_from(model_dir.as_deref())
    };
    let report = opticlaw_memory::bench::locomo_with(&files, &EngineConfig::default(), &embedder)
        .context("running the LoCoMo benchmark")?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// Every `*.json` of the LoCoMo directory, sorted.
fn default_files() -> Result<Vec<PathBuf>> {
    let relative = Path::new("shared/data/locomo");
    let mut candidates: Vec<PathBuf> = std::env::var_os("OPTICLAW_LOCOMO_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../..")
            .join(relative),
    );
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|d| d.join(relative)));
    }
    let Some(dir) = candidates.iter().find(|d| d.is_dir()) else {
        bail!(
            "LoCoMo not found (looked for {} beside the repository and the current directory); give FILE... or set OPTICLAW_LOCOMO_DIR",
            relative.display()
        );
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.json conversation in {}", dir.display());
    }
    Ok(files)
}
