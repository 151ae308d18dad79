//! `opticlaw memory search|add|show|pin|forget|export|import|stats`: the
//! memory store (`data/memory.db`) from the command line. It works with the
//! daemon running (SQLite WAL); the daemon sees CLI additions through full
//! text at once and through vectors after its next start.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use opticlaw_core::MemoryType;
use opticlaw_memory::{MemoryEngine, NewMemory, Query};
use uuid::Uuid;

use crate::config::Config;
use crate::home::Home;
use crate::memory::{Scope, memory_file, one_line};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Hybrid search (full text, vectors, entity graph)
    Search {
        /// What to look for; may name times ("last week", "in May")
        query: String,
        /// How many results
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print JSON instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Remember something
    Add {
        /// The text (or use --file)
        text: Option<String>,
        /// Read the text from FILE (`-` for standard input)
        #[arg(long, value_name = "FILE", conflicts_with = "text")]
        file: Option<PathBuf>,
        /// episodic, semantic or procedural
        #[arg(long, default_value = "semantic")]
        kind: String,
        /// The conversation it belongs to
        #[arg(long)]
        thread: Option<String>,
        /// Who said it (episodic)
        #[arg(long)]
        speaker: Option<String>,
        /// Never forgotten by decay
        #[arg(long)]
        pin: bool,
    },
    /// Show one record by id, as JSON
    Show { id: Uuid },
    /// Pin a record (kept forever) or, with --unpin, release it
    Pin {
        id: Uuid,
        #[arg(long)]
        unpin: bool,
    },
    /// Delete for good: the record, its full-text entry, its vector, the
    /// summaries quoting it. By id, or every record containing TEXT
    Forget {
        /// A record id, or text the records to forget contain
        target: String,
    },
    /// Write every record as JSON Lines (to FILE, or standard output)
    Export { file: Option<PathBuf> },
    /// Add the records of a JSON Lines file, all or nothing
    Import { file: PathBuf },
    /// Counts of records, vectors, entities, summaries
    Stats,
}

/// Commands that rank by meaning or add text load the embedding model.
fn needs_model(command: &Command) -> bool {
    matches!(
        command,
        Command::Search { .. }
            | Command::Add { .. }
            | Command::Forget { .. }
            | Command::Import { .. }
    )
}

pub fn run(home: Option<&Path>, command: Command) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    let config = Config::load(&home.config_file())?;
    if !home.data_dir().is_dir() {
        bail!(
            "{} does not exist: run `opticlaw init` first",
            home.data_dir().display()
        );
    }
    let path = memory_file(&home.data_dir());
    let mut engine = MemoryEngine::open(&path)
        .with_context(|| format!("opening the memory store {}", path.display()))?;
    if needs_model(&command)
        && let Some(why) = crate::memory::attach_embedder(&mut engine, &config.memory)?
    {
        eprintln!("note: {why}; searching full text + graph only");
    }
    let mut out = std::io::stdout().lock();
    match command {
        Command::Search { query, limit, json } => {
            let hits = engine.search(&Query::new(query, limit))?;
            if json {
                serde_json::to_writer_pretty(&mut out, &hits)?;
                writeln!(out)?;
            } else if hits.is_empty() {
                writeln!(out, "no memory matches")?;
            }
            for h in hits.iter().filter(|_| !json) {
                let m = &h.memory;
                writeln!(out, "{:.3}  {:?}  {}", h.score, m.kind(), one_line(m))?;
            }
        }
        Command::Add {
            text,
            file,
            kind,
            thread,
            speaker,
            pin,
        } => {
            let content = match (text, file) {
                (Some(text), _) => text,
                (None, Some(file)) => read_text(&file)?,
                (None, None) => bail!("give the text to remember, or --file FILE"),
            };
            let kind = match kind.as_str() {
                "episodic" => MemoryType::Episodic,
                "semantic" => MemoryType::Semantic,
                "procedural" => MemoryType::Procedural,
                other => bail!("--kind {other}: use episodic, semantic or procedural"),
            };
            let mut new = NewMemory::new(kind, content);
            new.thread_id = thread;
            new.speaker = speaker;
            new.pinned = pin;
            if kind == MemoryType::Semantic {
                new.source = Some("opticlaw memory add".into());
            }
            let stored = engine.add(new)?;
            writeln!(out, "{}", stored.id())?;
        }
        Command::Show { id } => {
            let m = engine
                .get(id)?
                .with_context(|| format!("no memory record {id}"))?;
            serde_json::to_writer_pretty(&mut out, &m)?;
            writeln!(out)?;
        }
        Command::Pin { id, unpin } => {
            engine.pin(id, !unpin)?;
            writeln!(out, "{} {id}", if unpin { "unpinned" } else { "pinned" })?;
        }
        Command::Forget { target } => {
            let owner = Scope {
                thread_prefix: None,
                thread_id: String::new(),
            };
            // The daemon's event log and outbox lose the text too.
            let store_file = home.store_file();
            let store = store_file
                .is_file()
                .then(|| crate::memory::open_store_for_redaction(&store_file))
                .transpose()?;
            let gone = crate::memory::forget(&mut engine, store.as_ref(), &owner, &target)
                .map_err(anyhow::Error::msg)?;
            if gone.is_empty() {
                writeln!(
                    out,
                    "nothing matched: give an id (see `opticlaw memory search`) or text the records contain"
                )?;
                return Ok(ExitCode::from(1));
            }
            for m in &gone {
                writeln!(out, "forgot {}", m.id())?;
            }
        }
        Command::Export { file } => {
            let n = match file {
                Some(file) => {
                    let f = std::fs::File::create(&file)
                        .with_context(|| format!("creating {}", file.display()))?;
                    engine.export_jsonl(std::io::BufWriter::new(f))?
                }
                None => engine.export_jsonl(&mut out)?,
            };
            eprintln!("exported {n} records");
        }
        Command::Import { file } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let n = engine
                .import_jsonl(BufReader::new(f))
                .with_context(|| format!("{}: nothing was imported", file.display()))?;
            writeln!(out, "imported {n} records")?;
        }
        Command::Stats => {
            let stats = engine.stats()?;
            serde_json::to_writer_pretty(&mut out, &stats)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A file's (or stdin's) bytes as text, refusing invalid UTF-8 by offset.
fn read_text(file: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    opticlaw_memory::content_from_bytes(bytes).with_context(|| format!("{}", file.display()))
}
