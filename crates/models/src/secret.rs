//! API keys: loaded from the environment or a 0600 file, and impossible to
//! print by accident.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::SecretError;

/// A secret string. `Debug` and `Display` print `[REDACTED]`; the value is
/// only reachable through [`Secret::expose`], which the HTTP layer calls to
/// set a header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value. Only for building an authentication header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of this secret replaced by `[REDACTED]`.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "[REDACTED]")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Where a provider's key comes from (config: `api_key_env` or `api_key_file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file holding only the key; it must not be readable by group or others.
    File(PathBuf),
}

impl SecretSource {
    /// Loads the key. Surrounding whitespace is trimmed.
    pub fn load(&self) -> Result<Secret, SecretError> {
        let raw = match self {
            Self::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?
            }
            Self::File(path) => {
                let shown = path.display().to_string();
                check_mode(path, &shown)?;
                std::fs::read_to_string(path).map_err(|err| SecretError::File {
                    path: shown.clone(),
                    detail: err.kind().to_string(),
                })?
            }
        };
        let value = raw.trim();
        if value.is_empty() {
            let origin = match self {
                Self::Env(name) => format!("${name}"),
                Self::File(path) => path.display().to_string(),
            };
            return Err(SecretError::Empty(origin));
        }
        Ok(Secret::new(value))
    }
}

#[cfg(unix)]
fn check_mode(path: &std::path::Path, shown: &str) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|err| SecretError::File {
        path: shown.to_owned(),
        detail: err.kind().to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            path: shown.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &std::path::Path, _shown: &str) -> Result<(), SecretError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let key = Secret::new("sk-live-123");
        assert_eq!(format!("{key:?}"), "Secret([REDACTED])");
        assert_eq!(format!("{key}"), "[REDACTED]");
        assert_eq!(key.scrub("bad key sk-live-123!"), "bad key [REDACTED]!");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-file-secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretSource::File(path.clone()).load().unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(!err.to_string().contains("sk-file-secret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = SecretSource::File(path).load().unwrap();
        assert_eq!(key.expose(), "sk-file-secret");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = SecretSource::Env("OPTICLAW_TEST_SURELY_UNSET".into())
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("OPTICLAW_TEST_SURELY_UNSET"));
    }
}
