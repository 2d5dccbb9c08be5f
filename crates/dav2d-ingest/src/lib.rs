//! Ingestion for dav2d: the HTTP and TCP servers, the parser pool, the wire
//! DTOs and the metrics.
//!
//! This is the only crate that knows wire formats. The key design decision:
//! I/O runs on a small tokio runtime, while parsing runs on a separate rayon
//! pool sized to the machine's cores, so a 10 MB body is split and parsed on
//! every core without stalling the sockets; decoded records are applied to
//! the engine under its lock in one batch per body.

mod http;
pub mod metrics;
pub mod pipeline;
pub mod scan;
pub mod server;
pub mod tcp;
pub mod wire;

pub use metrics::Metrics;
pub use pipeline::{Format, IngestReport, ParseOptions, Parsed, apply, decompress, parse};
pub use scan::BodyError;
pub use server::{HttpConfig, IngestConfig, IngestServer, StartError, StatusSource, TcpConfig};
