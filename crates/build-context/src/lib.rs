//! Docker build contexts: which files a build sends, exactly as BuildKit
//! decides it, how big that is, what to clean, and what to lint.
//!
//! Nothing here starts a process: callers hand in what they learned from git
//! or Docker, which keeps every rule testable on a plain folder.

mod context;
mod error;
mod goclean;
pub mod ignorefile;
pub mod matcher;
pub mod pattern;
pub mod walk;

pub use context::{Context, Explanation, IgnoreFile};
pub use error::{Error, Result};
pub use matcher::{BadPattern, Decision, Matcher};
pub use walk::{Entry, EntryKind, Problem, Walk, WalkOptions};
