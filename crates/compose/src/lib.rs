//! The only crate that starts `docker`: engine detection, the stack model,
//! build, up and readiness, teardown, failure bundles, the context oracle, and
//! the helpers Docker-backed tests use to skip or fail.

mod engine;
mod error;
pub mod interrupt;
pub mod model;
pub mod oracle;
mod project;
pub mod run;
pub mod testing;

pub use engine::{ComposeFlavor, Engine};
pub use error::{Error, Result};
pub use model::{ProjectSpec, Stack};
pub use project::{
    Container, ImageBuild, Leftovers, Policy, PortState, PortStatus, Project, UpOptions, UpSummary,
    leftovers,
};
pub use run::{Cmd, GroupOptions, GroupOutput};
