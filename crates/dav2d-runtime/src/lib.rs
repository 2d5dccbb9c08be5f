//! Runs a dav2d graph: the YAML config, the synthetic sensor fleet, and the
//! runner that drives sources and constraint timers on threads.
//!
//! This crate is the wiring shared by the `dav2d` binary and the Python
//! package. The key design decision: the config's DTOs live here and are
//! converted by hand into core types, so `dav2d-core` never sees serde, and
//! every config error points at a file, line, column and field.

pub mod config;
pub mod fleet;
pub mod runner;

pub use config::PersistenceConfig;
pub use config::{Config, ConfigError, DEMO_CONFIG};
pub use dav2d_ingest::{HttpConfig, IngestConfig, IngestServer, TcpConfig};
pub use fleet::SyntheticFleet;
pub use runner::{
    Overrides, PersistenceStatus, RunnerStats, Runtime, RuntimeError, start_persistence,
};
