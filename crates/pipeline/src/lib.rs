//! The e2e pipeline: the config file (`docker/e2e.yaml`), the phases put
//! together, and the run report.

pub mod config;
pub mod e2e;
pub mod git;
pub mod report;
pub mod stage;

pub use config::{Config, ConfigError};
pub use report::{Phase, RunReport, Verdict};
