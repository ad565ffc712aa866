//! The only crate that starts `docker`: engine detection, the stack model,
//! build, up and readiness, teardown, failure bundles, the context oracle, and
//! the helpers Docker-backed tests use to skip or fail. Processes start through
//! the `process` crate; [`docker`] is the one way to name the CLI.

mod build;
pub mod develop;
mod disk;
mod engine;
mod error;
pub mod facts;
pub mod isolation;
mod leftovers;
pub mod model;
#[cfg(feature = "testing")]
pub mod oracle;
pub mod overrides;
mod ports;
mod project;
pub mod readiness;
pub mod signals;
mod sweep;
mod teardown;
#[cfg(feature = "testing")]
pub mod testing;
mod up;
pub mod versions;
mod volume;

pub use build::ImageBuild;
pub use disk::{ProjectImage, PrunedCache, project_images, prune_build_cache, remove_image};
pub use engine::{ComposeFlavor, Engine};
pub use error::{Error, Result};
pub use facts::{Facts, ImageStore, Product};
pub use leftovers::{LeftContainer, Leftovers, leftovers};
pub use model::{HealthTiming, ProjectSpec, Stack};
pub use ports::{PortState, PortStatus};
pub use project::{Container, Project, Publisher, image_ids, image_key};
pub use readiness::{HttpProbe, Probe};
pub use sweep::{Labelled, labelled_projects, remove_project};
pub use teardown::{Policy, Stopped};
pub use up::{POLL_INTERVAL, UpEvent, UpOptions, UpSummary};

use process::Cmd;

/// `docker ARGS`: every docker command of the workspace starts here.
pub fn docker<I, S>(args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Cmd::new("docker", args)
}
