//! The e2e pipeline: the user's workspace and its config file, the phases
//! put together, and the run report.

pub mod config;
pub mod disk;
pub mod e2e;
mod fingerprint;
pub mod git;
pub mod lock;
pub mod merge;
mod phases;
pub mod reap;
pub mod reaper;
pub mod report;
pub mod stage;
pub mod workspace;

pub use config::{Config, ConfigError};
pub use report::{Phase, RunReport, Verdict};
pub use workspace::{Workspace, WorkspaceError};
