//! Runs a dav2d graph: the YAML config, resolved with overrides into a
//! [`Plan`], and the [`Runtime`] that starts and stops every component of it.
//!
//! This crate is the wiring shared by the `dav2d` binary and the Python
//! package; neither holds wiring of its own. The key design decision: the
//! config's DTOs live here and are converted by hand into core types and
//! component settings, so `dav2d-core` never sees serde, every config error
//! points at a file, line, column and field, and each component crate knows
//! only its own settings type.

mod components;
pub mod config;
pub mod engine;
pub mod plan;
pub mod reload;
pub mod replay;
pub mod runtime;
pub mod spec;
pub mod spec_build;

pub use config::{Config, ConfigError, DEMO_CONFIG, MAX_DURATION, parse_span, set_limit};
pub use dav2d_component::{
    Admission, ConfigReloader, HealthBoard, IngestReport, Intake, IntakeConfig, IntakeTotals,
    ListenConfig, Metrics, NativeSample, Outcome, ReloadLabel, StartError, body_ceiling,
};
pub use dav2d_http::HttpConfig;
/// The processor (ONNX models on images), for `dav2d processor sweep`.
pub use dav2d_infer as infer;
pub use dav2d_store::PersistenceConfig;
pub use dav2d_synthetic::SyntheticConfig;
pub use dav2d_tcp::TcpConfig;
pub use engine::{Engine, Timer, Workers};
pub use plan::{Overrides, Plan, Planned};
pub use reload::{Applied, Reloader};
pub use runtime::{Runtime, RuntimeError};
pub use spec::Spec;
pub use spec_build::{Resolve, SpecError};
