//! `file.read` and `file.write`: files beneath granted directories only.

use std::io::Read;
use std::os::unix::fs::FileExt;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde_json::{Value, json};

use super::{GrantedDirs, Tool, ToolCall, ToolError, arg};

/// Most bytes `file.read` returns.
pub const MAX_READ_BYTES: u64 = 1 << 20;

/// Reads a file beneath a granted directory.
#[derive(Debug, Clone)]
pub struct FileRead {
    grants: GrantedDirs,
}

impl FileRead {
    pub fn new(grants: GrantedDirs) -> Self {
        Self { grants }
    }
}

impl Tool for FileRead {
    fn name(&self) -> &'static str {
        "file.read"
    }

    fn scope(&self) -> &'static str {
        "read"
    }

    fn resource(&self, args: &Value) -> Result<String, ToolError> {
        Ok(self.grants.locate(arg("file.read", args, "path")?)?.full)
    }

    fn replay_safe(&self) -> bool {
        true
    }

    fn run(&self, call: &ToolCall<'_>) -> Result<Value, ToolError> {
        let located = self.grants.locate(arg("file.read", call.args, "path")?)?;
        let file = located.open(OFlag::O_RDONLY, Mode::empty())?;
        let mut bytes = Vec::new();
        let read = file
            .take(MAX_READ_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ToolError::Failed(format!("reading {}: {e}", located.full)))?;
        let truncated = read as u64 > MAX_READ_BYTES;
        bytes.truncate(MAX_READ_BYTES as usize);
        Ok(json!({
            "path": located.full,
            "text": String::from_utf8_lossy(&bytes),
            "bytes": bytes.len(),
            "truncated": truncated,
        }))
    }
}

/// Writes a file beneath a granted directory: `mode = "overwrite"`
/// (default) replaces its content, `mode = "append"` adds to its end.
///
/// An append is prepared into a positioned write at the file's length when
/// the call is recorded, so running it again after a crash writes the same
/// bytes at the same place instead of appending them twice.
#[derive(Debug, Clone)]
pub struct FileWrite {
    grants: GrantedDirs,
}

impl FileWrite {
    pub fn new(grants: GrantedDirs) -> Self {
        Self { grants }
    }
}

impl Tool for FileWrite {
    fn name(&self) -> &'static str {
        "file.write"
    }

    fn scope(&self) -> &'static str {
        "write"
    }

    fn resource(&self, args: &Value) -> Result<String, ToolError> {
        Ok(self.grants.locate(arg("file.write", args, "path")?)?.full)
    }

    fn prepare(&self, args: &Value) -> Result<Value, ToolError> {
        let located = self.grants.locate(arg("file.write", args, "path")?)?;
        arg("file.write", args, "content")?;
        let mut prepared = args.clone();
        match args["mode"].as_str().unwrap_or("overwrite") {
            "overwrite" => {}
            "append" => {
                let offset = match located.open(OFlag::O_RDONLY, Mode::empty()) {
                    Ok(file) => file
                        .metadata()
                        .map_err(|e| ToolError::Failed(e.to_string()))?
                        .len(),
                    Err(ToolError::Refused(message)) if message.ends_with("does not exist") => 0,
                    Err(other) => return Err(other),
                };
                prepared["offset"] = json!(offset);
            }
            other => {
                return Err(ToolError::InvalidArgs {
                    tool: "file.write",
                    message: format!("mode {other:?} is neither \"overwrite\" nor \"append\""),
                });
            }
        }
        Ok(prepared)
    }

    fn replay_safe(&self) -> bool {
        true
    }

    fn run(&self, call: &ToolCall<'_>) -> Result<Value, ToolError> {
        let located = self.grants.locate(arg("file.write", call.args, "path")?)?;
        let content = arg("file.write", call.args, "content")?;
        let failed =
            |e: std::io::Error| ToolError::Failed(format!("writing {}: {e}", located.full));
        let mode = Mode::from_bits_truncate(0o644);
        let offset = match call.args["offset"].as_u64() {
            Some(offset) => {
                let file = located.open(OFlag::O_WRONLY | OFlag::O_CREAT, mode)?;
                // The same bytes at the same place, however often it runs.
                file.write_all_at(content.as_bytes(), offset)
                    .map_err(failed)?;
                offset
            }
            None => {
                let file = located.open(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC, mode)?;
                file.write_all_at(content.as_bytes(), 0).map_err(failed)?;
                0
            }
        };
        Ok(json!({ "path": located.full, "bytes": content.len(), "offset": offset }))
    }
}
