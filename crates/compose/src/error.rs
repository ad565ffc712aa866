//! The one error type of this crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{command}` could not start: {source}; is the docker CLI installed and on PATH? (`make engine` installs it)"
    )]
    Spawn {
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
    #[error(
        "the Docker daemon does not answer (`docker info` failed: {detail}); start it, or run `make engine`"
    )]
    NoDaemon { detail: String },
    #[error(
        "Docker Compose v2 is missing: `docker compose version` failed{v1}; run `make engine` or install the compose plugin"
    )]
    NoCompose { v1: String },
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {first}{detail}")]
    UpFailed {
        command: String,
        first: String,
        detail: String,
    },
    #[error("service {service} failed: {detail}")]
    ServiceFailed { service: String, detail: String },
    #[error("not ready after {seconds} s, still waiting for: {waiting}")]
    NotReady { waiting: String, seconds: u64 },
    #[error(
        "host port {port} (published by service {service}) is taken by {holder}; free it or change the port"
    )]
    PortTaken {
        port: u16,
        service: String,
        holder: String,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("unexpected output from `{command}`: {detail}")]
    Parse { command: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A process error in Docker's words: a docker CLI that cannot start gets the
/// hint that installs it.
impl From<process::Error> for Error {
    fn from(e: process::Error) -> Error {
        match e {
            process::Error::Spawn {
                command, source, ..
            } => Error::Spawn { command, source },
            process::Error::Failed {
                command,
                status,
                stderr,
            } => Error::Failed {
                command,
                status,
                stderr,
            },
        }
    }
}
