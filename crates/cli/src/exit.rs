//! Exit codes, one table in one place (as nextest's `NextestExitCode`): one
//! constant per code with its meaning; [`of_verdict`], the one conversion of
//! a run's verdict; and [`code`], which finds the class of a failure in its
//! chain of causes.

use pipeline::{Failure, Verdict};

/// The run did what was asked: tests passed, nothing over a limit.
pub const OK: u8 = 0;
/// Tests failed (e2e); a limit was exceeded (`clean-context` budget or a lint
/// error); `certs --check` found work to do; a `ci` step failed.
pub const FAILED: u8 = 1;
/// Bad usage, config or input, found before anything ran: a flag value, a
/// config key (with its line), a filterset, a package that is not a member,
/// an ignore-file line, a file `init` would overwrite.
pub const USAGE: u8 = 2;
/// The environment or the stack failed: no engine or Compose, a taken port,
/// a failed build, a service that failed or never got ready.
pub const ENVIRONMENT: u8 = 3;
/// Interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// A failure the CLI classified itself: its message and its code from the
/// table above. Library errors keep their own types and are classified by
/// [`code`] where they surface.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    /// Tests failed, a limit was exceeded, a check found work: [`FAILED`].
    pub fn failed(message: impl Into<String>) -> Exit {
        Exit::new(FAILED, message)
    }

    /// Bad usage or input that the flags did not catch: [`USAGE`].
    pub fn usage(message: impl Into<String>) -> Exit {
        Exit::new(USAGE, message)
    }

    /// The environment or the stack failed: [`ENVIRONMENT`].
    pub fn environment(message: impl Into<String>) -> Exit {
        Exit::new(ENVIRONMENT, message)
    }

    /// Ctrl-C or SIGTERM: [`INTERRUPTED`].
    pub fn interrupted(message: impl Into<String>) -> Exit {
        Exit::new(INTERRUPTED, message)
    }

    fn new(code: u8, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: message.into(),
        }
    }
}

/// How a run's verdict ends the command: `Ok` when it passed, else the
/// failure with its code.
pub fn of_verdict(verdict: Verdict) -> Result<(), Exit> {
    match verdict {
        Verdict::Passed => Ok(()),
        Verdict::Failed(f) => Err(of_failure(f)),
        Verdict::Interrupted => Err(Exit::interrupted("interrupted; teardown done")),
    }
}

fn of_failure(failure: Failure) -> Exit {
    match failure {
        Failure::Tests(e) => Exit::failed(format!("tests failed: {e}")),
        Failure::OverBudget(e) => Exit::failed(e),
        Failure::BadInput(e) => Exit::usage(e),
        Failure::Stack(e) => Exit::environment(e),
    }
}

/// The code for a failure: the first cause in its chain that has a class.
pub fn code(err: &anyhow::Error) -> u8 {
    err.chain().find_map(class).unwrap_or(ENVIRONMENT)
}

fn class(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(e) = cause.downcast_ref::<Exit>() {
        return Some(e.code);
    }
    if cause.is::<pipeline::ConfigError>() || cause.is::<pipeline::WorkspaceError>() {
        return Some(USAGE);
    }
    if let Some(e) = cause.downcast_ref::<pipeline::Error>() {
        return Some(of_failure(e.failure()).code);
    }
    if let Some(e) = cause.downcast_ref::<build_context::Error>() {
        use build_context::Error as E;
        return Some(match e {
            E::Io { source, .. } if source.kind() != std::io::ErrorKind::NotFound => ENVIRONMENT,
            _ => USAGE,
        });
    }
    if let Some(certs::Error::BadHost { .. } | certs::Error::KeyInMountedDir { .. }) =
        cause.downcast_ref()
    {
        return Some(USAGE);
    }
    match cause.downcast_ref::<compose::Error>() {
        Some(compose::Error::Refused { .. }) => Some(USAGE),
        Some(_) => Some(ENVIRONMENT),
        None => None,
    }
}
