//! The one error type of the command line: every failure becomes one readable line.

use std::path::PathBuf;

/// Everything a `quiver` command can fail with. `Display` is the whole message the binary
/// prints after `error: `; no variant needs its `Debug` form to be understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The database refused or failed the call (its message is already readable).
    #[error(transparent)]
    Db(#[from] quiverdb::Error),
    /// The collection does not exist.
    #[error("unknown collection {name:?} (collections: {available})")]
    UnknownCollection {
        /// The name asked for.
        name: String,
        /// The existing collections, comma-separated (or `none`).
        available: String,
    },
    /// A read-only command on a directory that holds no database.
    #[error(
        "database directory {path} does not exist (create a collection or import to make one)"
    )]
    NoDatabase {
        /// The directory.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`cannot read`, `cannot write`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Writing the command's output failed (a closed pipe, a full disk).
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    /// An argument that parses but makes no sense here.
    #[error("{0}")]
    InvalidArgument(String),
    /// `check` found problems (they were printed before this).
    #[error("integrity check found {problems} problem(s) in {collections} collection(s)")]
    IntegrityProblems {
        /// How many problems in all.
        problems: usize,
        /// How many collections had any.
        collections: usize,
    },
    /// The bench workload saw a result it did not expect.
    #[error("bench: {0}")]
    Bench(String),
    /// An async task died.
    #[error("task failed: {0}")]
    Task(String),
}

impl CliError {
    /// Whether this is output cut short by a closed pipe (`quiver export c - | head`),
    /// which the binary does not treat as a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// An I/O failure reading `path`.
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CliError::Io {
            action: "cannot read",
            path: path.into(),
            source,
        }
    }

    /// An I/O failure writing `path`.
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CliError::Io {
            action: "cannot write",
            path: path.into(),
            source,
        }
    }
}

impl From<tokio::task::JoinError> for CliError {
    fn from(e: tokio::task::JoinError) -> Self {
        CliError::Task(e.to_string())
    }
}

/// `Result` with [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;
