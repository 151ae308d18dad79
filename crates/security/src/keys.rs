//! The token signing key: generated on first use, kept in a 0600 file.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use biscuit_auth::builder::Algorithm;
use biscuit_auth::{KeyPair, PrivateKey, PublicKey};

use crate::secret::Secret;

/// Errors reading or creating the signing key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing key file {path} is readable by others (mode {mode:o}); it must be 0600")]
    Insecure { path: PathBuf, mode: u32 },
    #[error("signing key file {path} does not hold a valid Ed25519 key")]
    Invalid { path: PathBuf },
}

/// The root key that signs capability tokens. Its `Debug` shows only the
/// public half.
pub struct SigningKey {
    keypair: KeyPair,
}

impl SigningKey {
    /// Loads the key from `path`, or generates one and writes it there with
    /// mode 0600 when the file does not exist. A key file that group or
    /// others may read is refused rather than used.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Insecure {
                        path: path.to_owned(),
                        mode,
                    });
                }
                Self::read(path)
            }
            Err(error) if error.kind() == ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(KeyError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// A fresh key that lives only in memory (tests, benches).
    pub fn ephemeral() -> Self {
        Self {
            keypair: KeyPair::new_with_algorithm(Algorithm::Ed25519),
        }
    }

    /// The public half, which verifiers use.
    pub fn public(&self) -> PublicKey {
        self.keypair.public()
    }

    pub(crate) fn keypair(&self) -> &KeyPair {
        &self.keypair
    }

    fn read(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let text = Secret::new(fs::read_to_string(path).map_err(io)?);
        let key =
            PrivateKey::from_bytes_hex(text.expose().trim(), Algorithm::Ed25519).map_err(|_| {
                KeyError::Invalid {
                    path: path.to_owned(),
                }
            })?;
        Ok(Self {
            keypair: KeyPair::from(&key),
        })
    }

    fn create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let keypair = KeyPair::new_with_algorithm(Algorithm::Ed25519);
        let hex = Secret::new(keypair.private().to_bytes_hex());
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => file,
            // Another process created it between our check and our open.
            Err(error) if error.kind() == ErrorKind::AlreadyExists => return Self::read(path),
            Err(source) => return Err(io(source)),
        };
        file.write_all(hex.expose().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self { keypair })
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.keypair.public().to_bytes_hex())
            .field("private", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_creates_a_0600_key_file_and_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let first = SigningKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(first.public(), second.public());
    }

    #[test]
    fn a_world_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        SigningKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SigningKey::load_or_create(&path),
            Err(KeyError::Insecure { .. })
        ));
    }

    #[test]
    fn debug_output_never_contains_the_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let key = SigningKey::load_or_create(&path).unwrap();
        let private_hex = fs::read_to_string(&path).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(private_hex.trim()));
        assert!(shown.contains("[redacted]"));
    }
}
