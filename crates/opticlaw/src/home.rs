//! Where OptiClaw keeps its files: `$OPTICLAW_HOME`, else `~/.opticlaw`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// `override_dir`, else `$OPTICLAW_HOME`, else `~/.opticlaw`.
    pub fn locate(override_dir: Option<&Path>) -> Result<Self> {
        if let Some(dir) = override_dir {
            return Ok(Self {
                root: dir.to_path_buf(),
            });
        }
        if let Some(dir) = std::env::var_os("OPTICLAW_HOME").filter(|d| !d.is_empty()) {
            return Ok(Self {
                root: PathBuf::from(dir),
            });
        }
        let home = std::env::var_os("HOME")
            .filter(|d| !d.is_empty())
            .context("neither OPTICLAW_HOME nor HOME is set; set OPTICLAW_HOME to a directory")?;
        Ok(Self {
            root: PathBuf::from(home).join(".opticlaw"),
        })
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn store_file(&self) -> PathBuf {
        self.data_dir().join("opticlaw.db")
    }

    /// The bearer token local clients present to the daemon's API.
    pub fn token_file(&self) -> PathBuf {
        self.root.join("api_token")
    }

    pub fn read_token(&self) -> Result<String> {
        let path = self.token_file();
        let token = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read the API token at {} (run `opticlaw init`)",
                path.display()
            )
        })?;
        Ok(token.trim().to_owned())
    }

    /// Writes a new random token readable by the owner only.
    pub fn write_new_token(&self) -> Result<()> {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let path = self.token_file();
        write_private(&path, &token)
            .with_context(|| format!("cannot write the API token to {}", path.display()))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
