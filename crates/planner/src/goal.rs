//! What the planner is asked to plan, and where its words came from.

use serde::{Deserialize, Serialize};

/// Where a piece of text came from. Only the user's own words are trusted:
/// everything else may carry instructions written by someone else (prompt
/// injection), so what derives from it never acts without approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Typed by the user in their own chat.
    User,
    /// The body or headers of an email.
    Email,
    /// A fetched web page.
    Web,
    /// The content of a file.
    File,
    /// What a tool printed or returned.
    ToolOutput,
}

impl Provenance {
    /// Whether instructions in such text may be followed without asking.
    pub fn is_trusted(self) -> bool {
        self == Provenance::User
    }

    /// The name used in params and decision records.
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::User => "user",
            Provenance::Email => "email",
            Provenance::Web => "web",
            Provenance::File => "file",
            Provenance::ToolOutput => "tool_output",
        }
    }
}

/// A piece of content the goal refers to (an email to handle, a page to
/// act on), passed to the model as data, never as instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub provenance: Provenance,
    pub text: String,
}

/// A goal to plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// The event id of the message that asked for it; decisions are kept
    /// under it (`opticlaw explain REQUEST_ID`).
    pub request_id: String,
    pub user_id: String,
    pub text: String,
    /// Where `text` came from: `User` for a chat message, something else
    /// when an automation turned an email or a page into a goal.
    pub provenance: Provenance,
    /// Triage's intent label, when it had one.
    pub intent: Option<String>,
    pub attachments: Vec<Attachment>,
    /// The whole task's budget: wall clock and model money.
    pub budget: TaskBudget,
}

impl Goal {
    /// A goal typed by the user, with no attachment and the default budget.
    pub fn from_user(request_id: &str, user_id: &str, text: &str) -> Self {
        Self {
            request_id: request_id.to_owned(),
            user_id: user_id.to_owned(),
            text: text.to_owned(),
            provenance: Provenance::User,
            intent: None,
            attachments: Vec::new(),
            budget: TaskBudget::default(),
        }
    }

    /// The untrusted sources this goal carries, in a stable order.
    pub fn untrusted_sources(&self) -> Vec<Provenance> {
        let mut sources: Vec<Provenance> = std::iter::once(self.provenance)
            .chain(self.attachments.iter().map(|a| a.provenance))
            .filter(|p| !p.is_trusted())
            .collect();
        sources.sort_by_key(|p| p.as_str());
        sources.dedup();
        sources
    }
}

/// What a whole task may spend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskBudget {
    pub max_ms: u64,
    pub max_cost: f64,
}

impl Default for TaskBudget {
    /// Two minutes and five cents: enough for a short plan on a local model
    /// and one cloud call.
    fn default() -> Self {
        Self {
            max_ms: 120_000,
            max_cost: 0.05,
        }
    }
}
