//! API keys: loaded from the environment, the OS keyring or a 0600 file, and
//! impossible to print by accident.
//!
//! The keyring is the Linux kernel's key store (keyutils, through the
//! `keyring` crate's `linux-native` backend): no D-Bus or desktop session is
//! needed, so it works on a headless machine. An entry is named
//! `keyring-rs:<name>@opticlaw` (service [`KEYRING_SERVICE`], user `<name>`)
//! and kept in the user's keyring (`@u`), which every process of the user
//! shares: `opticlaw models add` stores a key there and a later `opticlaw
//! serve` finds it. (keyring's default, the session keyring linked to the
//! persistent one, fails where the persistent keyring cannot be linked, as
//! in a container.) Kernel keys live in memory: they are gone after a reboot
//! or once the user has no process left (keyutils(7), user-keyring(7)).

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

/// The keyring service every OptiClaw key is stored under.
pub const KEYRING_SERVICE: &str = "opticlaw";

/// Where a provider's key comes from (config: `api_key_env`,
/// `api_key_keyring` or `api_key_file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// The name of an entry in the OS keyring (under [`KEYRING_SERVICE`]).
    Keyring(String),
    /// A file holding only the key; it must not be readable by group or others.
    File(PathBuf),
}

/// The keyring entry `name` under [`KEYRING_SERVICE`], in the user keyring.
#[cfg(target_os = "linux")]
fn keyring_entry(name: &str) -> Result<keyring::Entry, SecretError> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    let user = KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(|err| {
        SecretError::Keyring {
            name: name.to_owned(),
            detail: format!("the kernel user keyring is unavailable: {err}"),
        }
    })?;
    let credential = keyring::keyutils::KeyutilsCredential {
        session: user,
        persistent: None,
        description: format!("keyring-rs:{name}@{KEYRING_SERVICE}"),
    };
    Ok(keyring::Entry::new_with_credential(Box::new(credential)))
}

/// The keyring entry `name` under [`KEYRING_SERVICE`], in the platform's store.
#[cfg(not(target_os = "linux"))]
fn keyring_entry(name: &str) -> Result<keyring::Entry, SecretError> {
    keyring::Entry::new(KEYRING_SERVICE, name).map_err(|err| keyring_error(name, &err))
}

/// A keyring error as text that cannot hold the key: `BadEncoding` carries
/// the stored bytes, so it is named, never shown.
fn keyring_error(name: &str, err: &keyring::Error) -> SecretError {
    let detail = match err {
        keyring::Error::NoEntry => {
            return SecretError::MissingKeyring(name.to_owned());
        }
        keyring::Error::BadEncoding(_) => "the stored key is not UTF-8".to_owned(),
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            inner.to_string()
        }
        keyring::Error::TooLong(what, limit) => format!("{what} is longer than {limit}"),
        keyring::Error::Invalid(what, why) => format!("{what}: {why}"),
        _ => "unexpected keyring error".to_owned(),
    };
    SecretError::Keyring {
        name: name.to_owned(),
        detail,
    }
}

/// Stores `key` in the OS keyring as entry `name` (replacing any key there).
pub fn store_in_keyring(name: &str, key: &Secret) -> Result<(), SecretError> {
    if key.expose().trim().is_empty() {
        return Err(SecretError::Empty(format!(
            "the key for keyring entry {name}"
        )));
    }
    keyring_entry(name)?
        .set_password(key.expose().trim())
        .map_err(|err| keyring_error(name, &err))
}

/// Removes entry `name` from the OS keyring; `false` if there was none.
pub fn delete_from_keyring(name: &str) -> Result<bool, SecretError> {
    match keyring_entry(name)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(err) => Err(keyring_error(name, &err)),
    }
}

/// Whether the OS keyring holds entry `name` (the key itself is dropped).
pub fn keyring_has(name: &str) -> Result<bool, SecretError> {
    match SecretSource::Keyring(name.to_owned()).load() {
        Ok(_) => Ok(true),
        Err(SecretError::MissingKeyring(_)) => Ok(false),
        Err(err) => Err(err),
    }
}

impl SecretSource {
    /// Loads the key. Surrounding whitespace is trimmed.
    pub fn load(&self) -> Result<Secret, SecretError> {
        let raw = match self {
            Self::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?
            }
            Self::Keyring(name) => keyring_entry(name)?
                .get_password()
                .map_err(|err| keyring_error(name, &err))?,
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
                Self::Keyring(name) => format!("keyring entry {name}"),
                Self::File(path) => format!("the key file {}", path.display()),
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
