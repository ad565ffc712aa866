//! The one error type of this crate.

use camino::Utf8PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Io {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("build context {path} is not a folder; pass the folder a Dockerfile builds from")]
    NotADir { path: Utf8PathBuf },
    #[error(
        "{path}:{line}: {message} in pattern `{pattern}`; the engine refuses to build with this ignore file, so fix or delete that line"
    )]
    BadPattern {
        path: Utf8PathBuf,
        line: usize,
        pattern: String,
        message: String,
    },
    #[error("{path}:{line}: line longer than 64 KiB; the engine refuses to read it")]
    LineTooLong { path: Utf8PathBuf, line: usize },
    #[error("{path} is not inside the repository root {root}; refusing to clean outside it")]
    OutsideRoot {
        path: Utf8PathBuf,
        root: Utf8PathBuf,
    },
    #[error("artifact pattern {index} `{pattern}`: {message}")]
    BadArtifactPattern {
        index: usize,
        pattern: String,
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<Utf8PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
