//! The only crate that starts `docker`: engine detection, the stack model,
//! build, up and readiness, teardown, failure bundles, the context oracle, and
//! the helpers Docker-backed tests use to skip or fail. Processes start through
//! the `process` crate; [`docker`] is the one way to name the CLI.

mod engine;
mod error;
pub mod model;
#[cfg(feature = "testing")]
pub mod oracle;
mod project;
pub mod readiness;
#[cfg(feature = "testing")]
pub mod testing;

pub use engine::{ComposeFlavor, Engine};
pub use error::{Error, Result};
pub use model::{ProjectSpec, Stack};
pub use project::{
    Container, ImageBuild, LeftContainer, Leftovers, POLL_INTERVAL, Policy, PortState, PortStatus,
    Project, UpOptions, UpSummary, leftovers,
};
pub use readiness::{HttpProbe, Probe};

use process::Cmd;

/// `docker ARGS`: every docker command of the workspace starts here.
pub fn docker<I, S>(args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Cmd::new("docker", args)
}
