//! The directories tools may touch, and resolving a requested path to one
//! of them without trusting string checks for containment.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use super::ToolError;

/// Why a configured grant is unusable.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("granted directory {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Canonical, existing directories granted to tools.
#[derive(Debug, Clone, Default)]
pub struct GrantedDirs {
    dirs: Vec<PathBuf>,
}

/// A requested path split into the grant it lies in and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<'a> {
    pub dir: &'a Path,
    pub relative: PathBuf,
    /// `dir` joined with `relative`: what a token names.
    pub full: String,
}

impl GrantedDirs {
    /// Checks every directory exists and is given canonically (no symlink,
    /// no `..`), so that what a token names is what gets opened.
    pub fn new(dirs: &[PathBuf]) -> Result<Self, GrantError> {
        let mut out = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let invalid = |message: String| GrantError::Invalid {
                path: dir.clone(),
                message,
            };
            let canonical = dir.canonicalize().map_err(|e| invalid(e.to_string()))?;
            if &canonical != dir {
                return Err(invalid(format!(
                    "is not canonical: it resolves to {}; grant that path instead",
                    canonical.display()
                )));
            }
            if !canonical.is_dir() || canonical == Path::new("/") {
                return Err(invalid("must be a directory other than /".into()));
            }
            out.push(canonical);
        }
        Ok(Self { dirs: out })
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether some grant is `dir` itself or lies beneath it.
    pub fn any_inside(&self, dir: &Path) -> bool {
        self.dirs.iter().any(|grant| grant.starts_with(dir))
    }

    /// Finds the grant a path lies in: an absolute path must lie in one
    /// (component-wise); a relative one is taken in the first grant.
    /// `..` components are refused outright.
    pub fn locate(&self, requested: &str) -> Result<Located<'_>, ToolError> {
        let path = Path::new(requested);
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(ToolError::Refused(format!(
                "path {requested:?} contains `..`"
            )));
        }
        let found = if path.is_absolute() {
            self.dirs.iter().find_map(|dir| {
                path.strip_prefix(dir)
                    .ok()
                    .map(|rest| (dir.as_path(), rest.to_path_buf()))
            })
        } else {
            self.dirs
                .first()
                .map(|dir| (dir.as_path(), path.to_path_buf()))
        };
        let (dir, relative) = found.ok_or_else(|| {
            ToolError::Refused(format!(
                "path {requested:?} is outside every granted directory"
            ))
        })?;
        let relative: PathBuf = relative
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect();
        let full = dir.join(&relative).display().to_string();
        Ok(Located {
            dir,
            relative,
            full,
        })
    }

    /// The granted directory `requested` names, or the first one.
    pub fn directory(&self, requested: Option<&str>) -> Result<&Path, ToolError> {
        match requested {
            None => self
                .dirs
                .first()
                .map(PathBuf::as_path)
                .ok_or_else(|| ToolError::Refused("no directory is granted to tools".into())),
            Some(text) => self
                .dirs
                .iter()
                .find(|d| d.as_os_str() == text)
                .map(PathBuf::as_path)
                .ok_or_else(|| ToolError::Refused(format!("{text:?} is not a granted directory"))),
        }
    }
}

impl Located<'_> {
    /// Opens the file with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`
    /// relative to the granted directory: the kernel refuses any `..`,
    /// absolute symlink or symlink that would leave the directory, at every
    /// step of the walk, so a symlink planted inside a grant cannot reach
    /// outside it (see openat2(2)).
    pub fn open(&self, flags: OFlag, mode: Mode) -> Result<File, ToolError> {
        if self.relative.as_os_str().is_empty() {
            return Err(ToolError::Refused(format!(
                "{} is a granted directory, not a file",
                self.full
            )));
        }
        let dir = nix::fcntl::open(
            self.dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ToolError::Failed(format!("opening {}: {e}", self.dir.display())))?;
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd: OwnedFd = openat2(&dir, &self.relative, how).map_err(|errno| match errno {
            nix::errno::Errno::EXDEV | nix::errno::Errno::ELOOP => ToolError::Refused(format!(
                "{} resolves outside its granted directory",
                self.full
            )),
            nix::errno::Errno::ENOENT => {
                ToolError::Refused(format!("{} does not exist", self.full))
            }
            other => ToolError::Failed(format!("opening {}: {other}", self.full)),
        })?;
        Ok(File::from(fd))
    }
}
