//! The e2e pipeline: the user's workspace and its config file, the phases
//! put together, and the run report.

pub mod config;
pub mod disk;
pub mod e2e;
mod error;
mod fingerprint;
pub mod git;
pub mod guard;
pub mod lock;
pub mod merge;
mod phases;
mod probed;
pub mod reap;
pub mod reaper;
pub mod report;
pub mod secrets;
pub mod session;
pub mod shard;
mod sources;
pub mod stage;
pub mod trace;
pub mod watch;
pub mod workspace;

pub use config::{Config, ConfigError};
pub use error::{Error, Result};

/// Writes beside `path`, then renames over it: a reader (another run) sees
/// the old file or the new one, never half of one.
pub(crate) fn write_whole(path: &camino::Utf8Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(camino::Utf8Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
pub use report::{Failure, Phase, RunReport, Verdict};
pub use workspace::{Workspace, WorkspaceError};
