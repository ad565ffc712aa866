//! nextest: filterset validation before anything starts, the invocation, and
//! its results. Processes start through `process::Cmd`, the workspace's one
//! process helper (process groups, interruption).

mod error;
pub mod filterset;
pub mod run;

pub use error::{Error, Result};
pub use filterset::Workspace;
pub use run::{
    Case, Counts, Failure, Invocation, Outcome, Reuse, TOOL, Verdict, cases, failed_filterset,
    failures, merge_junit, reusable_with, write_tool_config,
};
