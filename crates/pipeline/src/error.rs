//! The pipeline's one error type. Each error knows which kind of failure it
//! is ([`Error::failure`]): the kind a run's verdict records and the CLI
//! turns into an exit code, in one place (`cli/src/exit.rs`).

use camino::Utf8PathBuf;

use crate::report::Failure;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad config, flag, filterset or compose file, found before anything
    /// ran; the message names the file, line or flag, and the fix.
    #[error("{0}")]
    BadInput(String),
    /// A build context sends more than `context.budget`.
    #[error("{0}")]
    OverBudget(String),
    /// Tests failed, or none ran.
    #[error("{0}")]
    Tests(String),
    /// The stack or the machine, said in the pipeline's own words.
    #[error("{0}")]
    Stack(String),
    #[error(transparent)]
    Compose(#[from] compose::Error),
    #[error(transparent)]
    Process(#[from] process::Error),
    #[error(transparent)]
    TestRunner(#[from] test_runner::Error),
    #[error(transparent)]
    Certs(#[from] certs::Error),
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    #[error("{path}: {source}")]
    Io {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<Utf8PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// The kind of failure this is, with its message.
    pub fn failure(&self) -> Failure {
        let message = self.to_string();
        match self {
            Error::BadInput(_)
            | Error::Config(_)
            | Error::Compose(compose::Error::Refused { .. }) => Failure::BadInput(message),
            Error::Certs(certs::Error::BadHost { .. } | certs::Error::KeyInMountedDir { .. }) => {
                Failure::BadInput(message)
            }
            Error::OverBudget(_) => Failure::OverBudget(message),
            Error::Tests(_) => Failure::Tests(message),
            _ => Failure::Stack(message),
        }
    }
}
