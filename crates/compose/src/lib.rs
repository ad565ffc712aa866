//! The only crate that starts `docker`: engine detection, the context oracle,
//! and the helpers Docker-backed tests use to skip or fail.

mod engine;
mod error;
pub mod model;
pub mod oracle;
pub mod run;
pub mod testing;

pub use engine::{ComposeFlavor, Engine};
pub use error::{Error, Result};
pub use model::{ProjectSpec, Stack};
pub use run::Cmd;
