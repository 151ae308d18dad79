//! Deterministic decomposition for intents a rule recognises: no model is
//! called for "run X", "read FILE", "summarize FILE" or "save a note".

use std::sync::LazyLock;

use opticlaw_core::TaskNode;
use regex::Regex;
use serde_json::json;

use crate::nodes;

/// Where notes go ("save a note ..."), relative to the user's workspace.
pub const NOTES_FILE: &str = "notes/inbox.md";

/// What the rules made of a goal.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleMatch {
    /// A plan, and the name of the rule that made it.
    Plan {
        rule: &'static str,
        nodes: Vec<TaskNode>,
    },
    /// Triage's reminder path handles this; no task graph.
    StaysInTriage { rule: &'static str },
}

static RUN: LazyLock<Regex> = LazyLock::new(|| {
    // A command wholly inside one pair of quotes loses them; any other
    // command is taken verbatim (`sh -c 'x'` keeps its closing quote).
    Regex::new(r"(?is)^\s*(?:please\s+)?(?:run|execute)\s+(?:the\s+command\s+)?(?:`(?P<bq>[^`]+)`|'(?P<sq>[^']+)'|\x22(?P<dq>[^\x22]+)\x22|(?P<cmd>.+?))\s*$")
        .expect("static regex")
});
static READ: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:please\s+)?(?P<verb>summari[sz]e|read|show(?:\s+me)?|open|cat)\s+(?:the\s+)?(?:file\s+)?[`'\x22]?(?P<path>[~./\w-]*[/.][\w./~-]+?)[`'\x22]?\s*[.!?]?\s*$")
        .expect("static regex")
});
static NOTE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)^\s*(?:please\s+)?(?:save|take|write|make|add)\s+(?:a\s+|this\s+)?note\s*(?:that|saying|:|-)?\s*(?P<text>.+?)\s*$")
        .expect("static regex")
});
static REMIND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*(?:please\s+)?remind\s+me\b").expect("static regex"));

fn read_node(path: &str) -> TaskNode {
    nodes::tool(
        "read",
        &[],
        "file.read",
        "read",
        path,
        json!({"path": path}),
    )
}

/// The plan of "read FILE" (and of the `/read FILE` command): read it,
/// reply with its content.
pub fn read_file(path: &str) -> Vec<TaskNode> {
    vec![
        read_node(path),
        nodes::message("reply", &["read"], "{read.output}"),
    ]
}

/// The plan of "run COMMAND" (and of the `/run COMMAND` command): run it in
/// the sandbox, reply with its output.
pub fn run_command(command: &str) -> Vec<TaskNode> {
    vec![
        nodes::tool(
            "run",
            &[],
            "shell",
            "run",
            "workspace",
            json!({"command": command}),
        ),
        nodes::message("reply", &["run"], "{run.output}"),
    ]
}

/// Applies the rules in order; `None` when no rule matches (the model plans).
pub fn decompose(text: &str, intent: Option<&str>) -> Option<RuleMatch> {
    if intent == Some("reminder") || REMIND.is_match(text) {
        return Some(RuleMatch::StaysInTriage { rule: "reminder" });
    }
    if let Some(caps) = READ.captures(text) {
        let path = &caps["path"];
        let verb = caps["verb"].to_lowercase();
        if verb.starts_with("summar") {
            let prompt = format!("Summarize the content of {path} in a few sentences.");
            return Some(RuleMatch::Plan {
                rule: "summarize_file",
                nodes: vec![
                    read_node(path),
                    nodes::reason("summarize", &["read"], &prompt),
                    nodes::message("reply", &["summarize"], "{summarize.output}"),
                ],
            });
        }
        return Some(RuleMatch::Plan {
            rule: "read_file",
            nodes: read_file(path),
        });
    }
    if let Some(caps) = NOTE.captures(text) {
        let note = caps["text"].to_owned();
        return Some(RuleMatch::Plan {
            rule: "save_note",
            nodes: vec![
                nodes::tool(
                    "save",
                    &[],
                    "file.write",
                    "append",
                    NOTES_FILE,
                    json!({"path": NOTES_FILE, "content": note, "mode": "append"}),
                ),
                nodes::message("reply", &["save"], "Saved to your notes."),
            ],
        });
    }
    if let Some(caps) = RUN.captures(text) {
        return Some(RuleMatch::Plan {
            rule: "run_command",
            nodes: run_command(
                ["bq", "sq", "dq", "cmd"]
                    .iter()
                    .find_map(|name| caps.name(name))
                    .map_or("", |m| m.as_str()),
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use opticlaw_core::NodeKind;

    fn plan(text: &str) -> (&'static str, Vec<TaskNode>) {
        match decompose(text, None) {
            Some(RuleMatch::Plan { rule, nodes }) => (rule, nodes),
            other => panic!("{text:?}: expected a plan, got {other:?}"),
        }
    }

    #[test]
    fn run_becomes_one_shell_node_and_a_reply() {
        let (rule, nodes) = plan("run `ls -la /tmp`");
        assert_eq!(rule, "run_command");
        assert_eq!(nodes[0].params["tool"], "shell");
        assert_eq!(nodes[0].params["args"]["command"], "ls -la /tmp");
        assert_eq!(nodes[1].deps, vec!["run"]);
    }

    #[test]
    fn run_keeps_quotes_that_belong_to_the_command() {
        let (_, nodes) = plan("run sh -c 'echo x | tee out'");
        assert_eq!(
            nodes[0].params["args"]["command"],
            "sh -c 'echo x | tee out'"
        );
        let (_, nodes) = plan("run \"ls -l\"");
        assert_eq!(nodes[0].params["args"]["command"], "ls -l");
    }

    #[test]
    fn summarize_reads_then_reasons_then_replies() {
        let (rule, nodes) = plan("Summarize notes/today.md");
        assert_eq!(rule, "summarize_file");
        let kinds: Vec<NodeKind> = nodes.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, [NodeKind::Tool, NodeKind::Reason, NodeKind::Message]);
        assert_eq!(nodes[0].params["resource"], "notes/today.md");
        assert_eq!(nodes[1].deps, vec!["read"]);
    }

    #[test]
    fn read_file_without_summary_has_no_reason_node() {
        let (rule, nodes) = plan("read ~/todo.txt");
        assert_eq!(rule, "read_file");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].params["tool"], "file.read");
    }

    #[test]
    fn save_a_note_writes_the_notes_file() {
        let (rule, nodes) = plan("save a note: buy milk and eggs");
        assert_eq!(rule, "save_note");
        assert_eq!(nodes[0].params["tool"], "file.write");
        assert_eq!(nodes[0].params["args"]["content"], "buy milk and eggs");
    }

    #[test]
    fn reminders_stay_in_triage() {
        assert_eq!(
            decompose("remind me to call mum at 5", None),
            Some(RuleMatch::StaysInTriage { rule: "reminder" })
        );
        assert!(matches!(
            decompose("at 5 ping me about mum", Some("reminder")),
            Some(RuleMatch::StaysInTriage { .. })
        ));
    }

    #[test]
    fn open_questions_go_to_the_model() {
        assert_eq!(decompose("plan my trip to Lisbon next week", None), None);
        assert_eq!(decompose("read me a poem", None), None);
    }
}
