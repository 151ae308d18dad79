//! The plans' reasoning steps (a `reason` node: "summarize what was
//! read"): through the model router when a model is configured (the value
//! gate and accounting of every model call), else an extractive summary,
//! so "summarize FILE" answers without a model too.

use opticlaw_core::TaskNode;
use opticlaw_orchestrator::{BoxFuture, Reasoner};
use opticlaw_security::approval::Principal;
use serde_json::{Value, json};

use crate::model_answerer::ModelAnswerer;

/// Most characters of the inputs sent to the model.
const MAX_INPUT_CHARS: usize = 12_000;
/// Sentences kept by the extractive summary.
const EXTRACT_SENTENCES: usize = 3;

/// The daemon's [`Reasoner`].
pub struct DaemonReasoner {
    pub model: Option<ModelAnswerer>,
}

impl Reasoner for DaemonReasoner {
    fn reason<'a>(
        &'a self,
        task: &'a str,
        node: &'a TaskNode,
        inputs: Vec<(String, Value)>,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let material = material(&inputs);
            let Some(model) = &self.model else {
                return Ok(json!({ "text": extract(&material), "method": "extractive" }));
            };
            let instruction = node.params["prompt"]
                .as_str()
                .unwrap_or("Summarize the following in a few sentences.");
            let prompt = format!("{instruction}\n\n---\n{material}");
            let text = model
                .complete_text(&format!("{task}/{}", node.id), &principal.user_id, &prompt)
                .await?;
            Ok(json!({ "text": text, "method": "model" }))
        })
    }
}

/// The text of the dependencies' outputs (a file's `text`, a command's
/// `stdout`), cut to what a prompt may carry.
fn material(inputs: &[(String, Value)]) -> String {
    let text: Vec<&str> = inputs
        .iter()
        .filter_map(|(_, output)| output["text"].as_str().or(output["stdout"].as_str()))
        .collect();
    text.join("\n\n").chars().take(MAX_INPUT_CHARS).collect()
}

/// The first few sentences (or lines, for text without sentence ends).
fn extract(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut rest = line;
        while let Some(end) = rest.find(['.', '!', '?']) {
            kept.push(rest[..=end].trim().to_owned());
            rest = &rest[end + 1..];
            if kept.len() == EXTRACT_SENTENCES {
                return kept.join(" ");
            }
        }
        if !rest.trim().is_empty() {
            kept.push(rest.trim().to_owned());
        }
        if kept.len() >= EXTRACT_SENTENCES {
            break;
        }
    }
    if kept.is_empty() {
        return "(nothing to summarize: the file is empty)".to_owned();
    }
    kept.truncate(EXTRACT_SENTENCES);
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extract_keeps_the_first_sentences() {
        let text = "First point. Second point! Third? Fourth.\nFifth.";
        assert_eq!(extract(text), "First point. Second point! Third?");
        assert_eq!(extract("buy milk\ncall mum\n"), "buy milk call mum");
        assert!(extract("  \n").contains("empty"));
    }

    #[test]
    fn material_takes_text_and_stdout() {
        let inputs = vec![
            ("read".to_owned(), json!({ "text": "a file" })),
            ("run".to_owned(), json!({ "stdout": "a command" })),
            ("other".to_owned(), json!({ "note": "ignored" })),
        ];
        assert_eq!(material(&inputs), "a file\n\na command");
    }
}
