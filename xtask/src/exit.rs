//! Exit codes, one table in one place (design.md):
//! 0 success; 1 tests failed or a limit exceeded; 2 bad usage, config or input;
//! 3 environment or stack failure; 130 interrupted.

use std::process::ExitCode;

/// A limit was exceeded or a check found work to do: exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Limit(pub String);

/// Bad usage or input that the flags did not catch: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The run was interrupted (Ctrl-C, SIGTERM): exit 130.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The environment or the stack failed (no engine, build, readiness): exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stack(pub String);

pub fn code(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if cause.is::<Interrupted>() {
            return ExitCode::from(130);
        }
        if cause.is::<Stack>() {
            return ExitCode::from(3);
        }
        if cause.is::<Limit>() {
            return ExitCode::from(1);
        }
        if cause.is::<Usage>() || cause.is::<pipeline::ConfigError>() {
            return ExitCode::from(2);
        }
        if let Some(e) = cause.downcast_ref::<build_context::Error>() {
            use build_context::Error as E;
            return match e {
                E::Io { source, .. } if source.kind() != std::io::ErrorKind::NotFound => {
                    ExitCode::from(3)
                }
                _ => ExitCode::from(2),
            };
        }
        if let Some(certs::Error::BadHost { .. } | certs::Error::KeyInMountedDir { .. }) =
            cause.downcast_ref()
        {
            return ExitCode::from(2);
        }
        if cause.is::<compose::Error>() {
            return ExitCode::from(3);
        }
    }
    ExitCode::from(3)
}
