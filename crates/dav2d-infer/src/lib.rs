//! Model inference for dav2d: the processor (`Dav2dProcessor` in Python)
//! and processor nodes.
//!
//! The key design decision: ONNX Runtime is not linked, nor downloaded at
//! build time. It is loaded at run time (ort's `load-dynamic`, through the
//! fallible `init_from`) from the `libonnxruntime` that the `onnxruntime`
//! wheel from PyPI ships, found through the installed Python package, the
//! config's `processing.runtime_library` or `ORT_DYLIB_PATH`
//! ([`library`]). Everything around the model is ours, in Rust: inputs are
//! borrowed (NumPy buffers, frames), resized with the SIMD resizer,
//! normalised into one reused NCHW tensor, run in chunks within
//! `max_batch` and a memory budget, then activated and thresholded
//! ([`pipeline`], [`Processor`]). A processor node ([`ProcessorNode`]) runs
//! offloaded on a frame stream's newest frame and publishes mask frames.

mod config;
pub mod library;
mod model;
mod node;
pub mod pipeline;
mod processor;
pub mod sweep;

pub use config::{
    Activation, OutputSize, ProcessingSection, ProcessorConfig, ProcessorSection, SettingError,
    UseGpu, UseGpuText, cores,
};
pub use model::check_model;
pub use node::ProcessorNode;
pub use pipeline::{Image2d, Input, Pixels};
pub use processor::{Output, Processor, ProcessorError};
