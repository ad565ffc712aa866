//! Docker build contexts: which files a build sends, exactly as BuildKit
//! decides it, how big that is, what to clean, and what to lint.
//!
//! Nothing here starts a process: callers hand in what they learned from git
//! or Docker, which keeps every rule testable on a plain folder.

mod goclean;
pub mod ignorefile;
pub mod matcher;
pub mod pattern;

pub use matcher::{BadPattern, Decision, Matcher};
