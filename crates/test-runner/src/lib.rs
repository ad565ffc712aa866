//! nextest: filterset validation before anything starts, the invocation, and
//! its results. Processes start through `process::Cmd`, the workspace's one
//! process helper (process groups, interruption).

mod error;
pub mod filterset;
mod junit;
pub mod run;

pub use error::{Error, Result};
pub use filterset::Workspace;
pub use junit::{Case, Failure, cases, failed_filterset, failures, merge_junit};
pub use run::{
    Archive, Counts, Invocation, Outcome, Reuse, TOOL, Verdict, reusable_with, write_tool_config,
};
