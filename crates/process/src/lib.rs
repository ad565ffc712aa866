//! Child processes for every crate of the workspace: a command is a value
//! (shown, logged, tested), every child runs in its own process group, and
//! [`interrupt`] decides which of them a Ctrl-C or SIGTERM stops.

mod cargo;
mod cmd;
mod error;
mod group;
pub mod interrupt;

pub use cargo::{CargoProgress, cargo_progress};
pub use cmd::{CARGO_RUN_VARS, Cmd, Detached};
pub use error::{Error, Result};
pub use group::{Group, GroupOptions, GroupOutput, Scope, Stream};
