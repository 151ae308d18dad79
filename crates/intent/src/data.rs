//! Labelled utterances: CLINC150 and the assistant-specific examples.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::IntentError;

/// The label of out-of-scope examples.
pub const OOS: &str = "oos";

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "(String, String)")]
pub struct Example {
    /// The message.
    pub text: String,
    /// Its intent, or [`OOS`].
    pub intent: String,
}

impl From<(String, String)> for Example {
    fn from((text, intent): (String, String)) -> Self {
        Self { text, intent }
    }
}

/// CLINC150's `data_full.json` splits.
#[derive(Debug, Clone, Deserialize)]
pub struct Clinc150 {
    /// 100 utterances for each of the 150 intents.
    pub train: Vec<Example>,
    /// 20 per intent.
    pub val: Vec<Example>,
    /// 30 per intent.
    pub test: Vec<Example>,
    /// 100 out-of-scope utterances.
    pub oos_train: Vec<Example>,
    /// 100 out-of-scope utterances.
    pub oos_val: Vec<Example>,
    /// 1,000 out-of-scope utterances.
    pub oos_test: Vec<Example>,
}

impl Clinc150 {
    /// Reads `data_full.json`.
    pub fn load(path: &Path) -> Result<Self, IntentError> {
        read_json(path)
    }
}

/// Where CLINC150 lives in a checkout: `$OPTICLAW_CLINC150` if set, else
/// `shared/data/clinc150/data_full.json` beside the repository.
pub fn default_clinc_path() -> PathBuf {
    if let Some(p) = std::env::var_os("OPTICLAW_CLINC150") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/clinc150/data_full.json")
}

/// The assistant-specific examples shipped in `data/assistant.json`.
pub fn assistant_examples() -> Vec<Example> {
    serde_json::from_str(include_str!("../data/assistant.json"))
        .expect("data/assistant.json is checked by a test")
}

/// Reads a file shaped like CLINC150's `test`: a list of `[utterance, intent]`.
pub fn load_examples(path: &Path) -> Result<Vec<Example>, IntentError> {
    read_json(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, IntentError> {
    let bytes = std::fs::read(path).map_err(|source| IntentError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| IntentError::Json {
        path: path.to_path_buf(),
        source,
    })
}
