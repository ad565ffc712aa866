//! The one error type of this crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` could not start: {source}; is `{program}` installed and on PATH?")]
    Spawn {
        program: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
