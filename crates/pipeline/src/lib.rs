//! The e2e pipeline's shared pieces; so far the config file (`docker/e2e.yaml`).

pub mod config;

pub use config::{Config, ConfigError};
