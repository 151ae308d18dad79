//! The token signing key: generated on first use, kept in a 0600 file.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroize;

use libmacaroon::MacaroonKey;
use sha2::{Digest, Sha256};

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
    #[error("signing key file {path} does not hold a valid key (64 hex digits)")]
    Invalid { path: PathBuf },
}

/// The root key of capability tokens (256 random bits, the HMAC key of
/// every token's chain). Its `Debug` shows only a fingerprint.
pub struct SigningKey {
    key: Arc<MacaroonKey>,
}

/// What runners verify tokens with. Macaroons are symmetric: this is the
/// same secret as the [`SigningKey`], shared (not copied) with the runners
/// inside the daemon; it never leaves the process, and its `Debug` shows
/// only the fingerprint.
#[derive(Clone)]
pub struct VerifyingKey {
    key: Arc<MacaroonKey>,
}

impl VerifyingKey {
    pub(crate) fn macaroon_key(&self) -> &MacaroonKey {
        &self.key
    }

    /// A short public fingerprint of the key (hex), for logs and `doctor`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        // Constant time (MacaroonKey's own comparison).
        *self.key == *other.key
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

fn fingerprint(key: &MacaroonKey) -> String {
    let digest = Sha256::digest([b"opticlaw-token-key/".as_slice(), key.as_ref()].concat());
    hex::encode(&digest[..8])
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
        Self::from_bytes(random_key())
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            key: Arc::new(MacaroonKey::from(bytes)),
        }
    }

    /// The key runners verify with.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            key: self.key.clone(),
        }
    }

    pub(crate) fn macaroon_key(&self) -> &MacaroonKey {
        &self.key
    }

    fn read(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let text = Secret::new(fs::read_to_string(path).map_err(io)?);
        // 64 hex digits (also what earlier versions wrote: an Ed25519
        // secret, equally 256 random bits).
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.expose().trim(), &mut bytes).map_err(|_| KeyError::Invalid {
            path: path.to_owned(),
        })?;
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(key)
    }

    fn create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut bytes = random_key();
        let hex = Secret::new(hex::encode(bytes));
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
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
        Ok(key)
    }
}

/// 256 bits from the operating system's generator.
fn random_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    bytes
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &fingerprint(&self.key))
            .field("key", &"[redacted]")
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
        assert_eq!(first.verifying_key(), second.verifying_key());
        assert_ne!(
            first.verifying_key(),
            SigningKey::ephemeral().verifying_key()
        );
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
