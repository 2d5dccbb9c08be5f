//! The processor: an ONNX session and the pipeline around it. `run` takes
//! one input or a batch, cuts a batch into chunks within `max_batch` and
//! the memory budget, and returns 0/1 masks (and probabilities if asked).

use std::path::Path;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::config::{Activation, OutputSize, ProcessorConfig, UseGpu};
use crate::model::check_model;
use crate::pipeline::{Input, Preprocess, activate, resize_plane, threshold_into};

/// Why a processor could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The model, the library or a setting is wrong; the message says how to fix it.
    #[error("{0}")]
    Setup(String),
    /// An input is wrong; the message names the argument and the value.
    #[error("{0}")]
    Input(String),
    /// ONNX Runtime failed while running.
    #[error("running the model: {0}")]
    Run(String),
}

/// The results of one `run`, item by item in input order.
#[derive(Debug, Default)]
pub struct Output {
    /// Each item's (channels, height, width); one channel for a
    /// single-channel model.
    pub sizes: Vec<(usize, usize, usize)>,
    /// The masks of every item, one after the other, 0 or 1.
    pub masks: Vec<u8>,
    /// The probabilities, laid out as the masks (when asked for).
    pub probabilities: Option<Vec<f32>>,
    /// Time spent before the model (resize, normalise, layout).
    pub preprocess: std::time::Duration,
    /// Time spent in the model.
    pub inference: std::time::Duration,
    /// Time spent after it (activation, resize back, threshold).
    pub postprocess: std::time::Duration,
}

/// A loaded model with its settings.
pub struct Processor {
    config: ProcessorConfig,
    session: Session,
    input_name: String,
    /// The channels the model takes (`None`: any).
    channels: Option<usize>,
    device: &'static str,
    /// Why CUDA was not used although `use_gpu: true` asked for it.
    fallback: Option<String>,
    library: std::path::PathBuf,
    preprocess: Preprocess,
    tensor: Vec<f32>,
    /// The activation applied (written, or chosen from the model).
    activation: Activation,
    /// Why it is the one applied, e.g. `the model ends in Sigmoid`.
    activation_reason: String,
    /// Model outputs that held NaN (their masks are empty).
    nan_outputs: u64,
    /// The model's input and first output shapes, e.g. `[?, 3, ?, ?] -> [?, 1, ?, ?]`.
    shapes: String,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("model", &self.config.model_path)
            .field("device", &self.device)
            .finish()
    }
}

/// The activation to apply: the written one, or `none` for a model whose
/// first output is made by `Sigmoid` or `Softmax` (activating it again
/// would push every value above 0.5), `sigmoid` otherwise; and why.
fn choose_activation(written: Option<Activation>, model: &[u8]) -> (Activation, String) {
    if let Some(activation) = written {
        return (activation, "processing.activation".to_string());
    }
    match crate::model::last_operator(model) {
        Some(op) if op == "Sigmoid" || op == "Softmax" => (
            Activation::None,
            format!("the model ends in {op}, so its output is probabilities already"),
        ),
        Some(op) => (
            Activation::Sigmoid,
            format!("the model ends in {op}, so its output is logits"),
        ),
        None => (
            Activation::Sigmoid,
            "the model's last operator could not be read; logits assumed".to_string(),
        ),
    }
}

impl Processor {
    /// Loads the model `config` names, on the device it asks for.
    pub fn new(config: ProcessorConfig) -> Result<Processor, ProcessorError> {
        let path = config.model_path.clone();
        check_model(&path).map_err(ProcessorError::Setup)?;
        if !dav2d_frames::resize::AVAILABLE {
            return Err(ProcessorError::Setup(dav2d_frames::resize::refused()));
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            ProcessorError::Setup(format!("cannot read model_path {}: {e}", path.display()))
        })?;
        let (built, library) =
            crate::library::with_environment(config.runtime_library.as_deref(), |env| {
                Self::session(env, &config, &bytes)
            })
            .map_err(ProcessorError::Setup)?;
        let (session, device, fallback) = built?;
        let input = session.inputs().first().ok_or_else(|| {
            ProcessorError::Setup(format!("the model {} has no input", path.display()))
        })?;
        let input_name = input.name().to_string();
        if session.inputs().len() > 1 {
            let names: Vec<String> = session
                .inputs()
                .iter()
                .map(|i| format!("'{}'", i.name()))
                .collect();
            return Err(ProcessorError::Setup(format!(
                "the model {} takes {} inputs ({}); dav2d feeds one image tensor (N x C x H x W): export a model with one input",
                path.display(),
                names.len(),
                names.join(", ")
            )));
        }
        let mut config = config;
        let channels = match input.dtype() {
            ValueType::Tensor { ty, shape, .. } => {
                if *ty != TensorElementType::Float32 {
                    return Err(ProcessorError::Setup(format!(
                        "the model's input '{input_name}' takes {ty}; dav2d feeds float32 NCHW tensors"
                    )));
                }
                let dims: Vec<i64> = shape.iter().copied().collect();
                if dims.len() != 4 {
                    return Err(ProcessorError::Setup(format!(
                        "the model's input '{input_name}' has shape {dims:?}; dav2d feeds N x C x H x W"
                    )));
                }
                let (rh, rw) = config.resolution;
                if (dims[2] > 0 && dims[2] != i64::from(rh))
                    || (dims[3] > 0 && dims[3] != i64::from(rw))
                {
                    return Err(ProcessorError::Setup(format!(
                        "processing.resolution: the model takes {}x{} (height x width), not [{rh}, {rw}]; set resolution: [{}, {}]",
                        dims[2],
                        dims[3],
                        dims[2].max(1),
                        dims[3].max(1)
                    )));
                }
                if dims[1] > 0 {
                    let needed =
                        crate::config::per_input_bytes(config.resolution, dims[1] as usize);
                    if needed > config.memory_budget {
                        return Err(ProcessorError::Setup(format!(
                            "processing.resolution: {}",
                            crate::config::budget_message(
                                config.resolution,
                                dims[1] as usize,
                                needed,
                                config.memory_budget
                            )
                        )));
                    }
                }
                if dims[0] > 0 && (dims[0] as usize) < config.max_batch {
                    // A batch dimension fixed by the model: chunks of that size.
                    config.max_batch = dims[0] as usize;
                }
                (dims[1] > 0).then_some(dims[1] as usize)
            }
            other => {
                return Err(ProcessorError::Setup(format!(
                    "the model's input '{input_name}' is {other}, not a tensor"
                )));
            }
        };
        let Some(output) = session.outputs().first() else {
            return Err(ProcessorError::Setup(format!(
                "the model {} has no output",
                path.display()
            )));
        };
        let (activation, activation_reason) = choose_activation(config.activation, &bytes);
        let shape_of = |value: &ValueType| match value {
            ValueType::Tensor { shape, .. } => {
                let dims: Vec<String> = shape
                    .iter()
                    .map(|d| {
                        if *d > 0 {
                            d.to_string()
                        } else {
                            "?".to_string()
                        }
                    })
                    .collect();
                format!("[{}]", dims.join(", "))
            }
            other => other.to_string(),
        };
        let shapes = format!(
            "{} -> {}",
            shape_of(input.dtype()),
            shape_of(output.dtype())
        );
        if let ValueType::Tensor { shape, .. } = output.dtype() {
            let dims: Vec<i64> = shape.iter().copied().collect();
            // N x K x H x W with one channel, or N x H x W.
            let one_channel = dims.len() == 3 || dims.get(1) == Some(&1);
            if activation == Activation::Softmax && one_channel {
                return Err(ProcessorError::Setup(format!(
                    "processing.activation: softmax over the model's one output channel (shape {dims:?}) is 1 everywhere; use sigmoid for logits, or none for probabilities"
                )));
            }
        }
        config.activation = Some(activation);
        Ok(Processor {
            activation,
            activation_reason,
            nan_outputs: 0,
            shapes,
            config,
            session,
            input_name,
            channels,
            device,
            fallback,
            library,
            preprocess: Preprocess::default(),
            tensor: Vec::new(),
        })
    }

    /// A session on the device asked for: CUDA registered with
    /// `error_on_failure`, so a fallback to the CPU never goes unnoticed.
    fn session(
        env: &ort::environment::Environment,
        config: &ProcessorConfig,
        model: &[u8],
    ) -> Result<(Session, &'static str, Option<String>), ProcessorError> {
        let setup = |e: ort::Error| {
            ProcessorError::Setup(format!("model_path {}: {e}", config.model_path.display()))
        };
        let builder = || -> Result<ort::session::builder::SessionBuilder, ProcessorError> {
            Session::builder(env)
                .map_err(setup)?
                .with_intra_threads(config.threads)
                .map_err(|e| setup(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| setup(e.into()))?
                // Its threads spin while a run is under way (the spin is what
                // makes its parallel sections fast) and stop when it returns,
                // so they do not take the cores the pipeline's own
                // preprocessing runs on between calls.
                .with_config_entry("session.force_spinning_stop", "1")
                .map_err(|e| setup(e.into()))?
                .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level3)
                .map_err(|e| setup(e.into()))
        };
        if config.use_gpu != UseGpu::No {
            let cuda = ort::ep::CUDA::default().build().error_on_failure();
            let attempt = builder()?
                .with_execution_providers([cuda])
                .map_err(|e| e.to_string())
                .and_then(|mut b| b.commit_from_memory(model).map_err(|e| e.to_string()));
            match attempt {
                Ok(session) => return Ok((session, "cuda", None)),
                Err(error) if config.use_gpu == UseGpu::Require => {
                    return Err(ProcessorError::Setup(format!(
                        "processing.use_gpu: require, but CUDA is not available: {error}; install onnxruntime-gpu on a machine with an NVIDIA GPU, or set use_gpu: true to fall back to the CPU"
                    )));
                }
                Err(error) => {
                    let message = format!(
                        "use_gpu: CUDA is not available ({error}); the model runs on the CPU"
                    );
                    tracing::warn!("{message}");
                    let session = builder()?.commit_from_memory(model).map_err(setup)?;
                    return Ok((session, "cpu", Some(message)));
                }
            }
        }
        let session = builder()?.commit_from_memory(model).map_err(setup)?;
        Ok((session, "cpu", None))
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// The activation applied, and why it is the one: written in the config,
    /// or chosen from how the model ends.
    pub fn activation(&self) -> (Activation, &str) {
        (self.activation, &self.activation_reason)
    }

    /// The model's input and first output shapes (`?`: any), e.g.
    /// `[?, 3, ?, ?] -> [?, 1, ?, ?]`.
    pub fn shapes(&self) -> &str {
        &self.shapes
    }

    /// Model outputs that held NaN so far (each gave an empty mask).
    pub fn nan_outputs(&self) -> u64 {
        self.nan_outputs
    }

    /// `cpu` or `cuda`: where the model runs.
    pub fn device(&self) -> &'static str {
        self.device
    }

    /// Why CUDA was not used although `use_gpu: true` asked for it (the
    /// one warning the caller shows).
    pub fn gpu_fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The `libonnxruntime` it runs on.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// How many inputs go into one model call for inputs of `channels`.
    fn chunk(&self, channels: usize) -> usize {
        let (rh, rw) = self.config.resolution;
        let item = channels * rh as usize * rw as usize * 4;
        (self.config.memory_budget / item.max(1)).clamp(1, self.config.max_batch)
    }

    /// The model's input tensor for `inputs`, NCHW, at the model's resolution.
    pub fn preprocess(
        &mut self,
        inputs: &[Input<'_>],
    ) -> Result<(Vec<usize>, &[f32]), ProcessorError> {
        let channels = self.check(inputs)?;
        let (shape, range) = self.fill_tensor(inputs, channels)?;
        Ok((shape, &self.tensor[range]))
    }

    /// Writes the tensor for `inputs` (checked, with `channels` each); its
    /// shape and where it is in `self.tensor`.
    fn fill_tensor(
        &mut self,
        inputs: &[Input<'_>],
        channels: usize,
    ) -> Result<(Vec<usize>, std::ops::Range<usize>), ProcessorError> {
        let (rh, rw) = (
            self.config.resolution.0 as usize,
            self.config.resolution.1 as usize,
        );
        let item = channels * rh * rw;
        // 16 floats of slack so the tensor can start on a 64-byte boundary
        // (what NumPy gives onnxruntime, and what its kernels like).
        self.tensor.resize(inputs.len() * item + 16, 0.0);
        let start = self.tensor.as_ptr().align_offset(64).min(16);
        let range = start..start + inputs.len() * item;
        let tensor = &mut self.tensor[range.clone()];
        for (i, input) in inputs.iter().enumerate() {
            self.preprocess
                .run(input, &self.config, &mut tensor[i * item..(i + 1) * item])
                .map_err(ProcessorError::Input)?;
        }
        Ok((vec![inputs.len(), channels, rh, rw], range))
    }

    /// Checks every input; the channels they share.
    fn check(&self, inputs: &[Input<'_>]) -> Result<usize, ProcessorError> {
        let first = inputs
            .first()
            .ok_or_else(|| ProcessorError::Input("run() got an empty batch".to_string()))?;
        let channels = first.dims().2;
        for (i, input) in inputs.iter().enumerate() {
            let at = if inputs.len() > 1 {
                format!("input {i}: ")
            } else {
                String::new()
            };
            input
                .check()
                .map_err(|m| ProcessorError::Input(format!("{at}{m}")))?;
            let c = input.dims().2;
            if c != channels {
                return Err(ProcessorError::Input(format!(
                    "{at}{c} channels, the batch's first input has {channels}; a batch shares its channels"
                )));
            }
            if let Some(model) = self.channels
                && model != c
            {
                return Err(ProcessorError::Input(format!(
                    "{at}{c} channels, but the model takes {model} (its input is N x {model} x H x W)"
                )));
            }
        }
        Ok(channels)
    }

    /// Runs the model on `inputs` (in chunks) and thresholds the outputs.
    pub fn run(
        &mut self,
        inputs: &[Input<'_>],
        probabilities: bool,
    ) -> Result<Output, ProcessorError> {
        let channels = self.check(inputs)?;
        let chunk = self.chunk(channels);
        let mut output = Output {
            probabilities: probabilities.then(Vec::new),
            ..Output::default()
        };
        for part in inputs.chunks(chunk) {
            self.run_chunk(part, channels, &mut output)?;
        }
        Ok(output)
    }

    fn run_chunk(
        &mut self,
        inputs: &[Input<'_>],
        channels: usize,
        output: &mut Output,
    ) -> Result<(), ProcessorError> {
        let started = std::time::Instant::now();
        let (shape, range) = self.fill_tensor(inputs, channels)?;
        let preprocessed = std::time::Instant::now();
        let tensor = TensorRef::from_array_view((shape, &self.tensor[range]))
            .map_err(|e| ProcessorError::Run(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| ProcessorError::Run(e.to_string()))?;
        let (shape, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| ProcessorError::Run(format!("the model's first output: {e}")))?;
        let inferred = std::time::Instant::now();
        output.preprocess += preprocessed - started;
        output.inference += inferred - preprocessed;
        let dims: Vec<i64> = shape.iter().copied().collect();
        let (k, h, w) = match dims.as_slice() {
            [n, k, h, w] if *n as usize == inputs.len() => (*k as usize, *h as usize, *w as usize),
            [n, h, w] if *n as usize == inputs.len() => (1, *h as usize, *w as usize),
            other => {
                return Err(ProcessorError::Run(format!(
                    "the model's first output has shape {other:?}; dav2d reads N x K x H x W or N x H x W"
                )));
            }
        };
        let area = h * w;
        let mut item = Vec::new();
        let threshold = self.config.threshold;
        let wants_probabilities = output.probabilities.is_some();
        for (i, input) in inputs.iter().enumerate() {
            let (oh, ow) = match self.config.output_size {
                OutputSize::Model => (h, w),
                OutputSize::Input => (input.dims().0, input.dims().1),
            };
            let raw = &values[i * k * area..(i + 1) * k * area];
            // NaN spreads through a network: a sample of the output (every
            // 4096th value, and the last) finds it without a pass over all.
            if raw
                .iter()
                .step_by(4096)
                .chain(raw.last())
                .any(|x| x.is_nan())
            {
                // The mask of NaN is empty: say so rather than quietly.
                self.nan_outputs += 1;
                if self.nan_outputs.is_power_of_two() {
                    tracing::warn!(
                        model = %self.config.model_path.display(),
                        outputs_with_nan = self.nan_outputs,
                        "The model's output holds NaN; its mask is empty there. Check the model and its inputs (mean and std)."
                    );
                }
            }
            if self.activation == Activation::Softmax && k == 1 {
                return Err(ProcessorError::Run(
                    "softmax over the model's one output channel is 1 everywhere; set processing.activation to sigmoid (logits) or none (probabilities)".to_string(),
                ));
            }
            // The fast path: a per-value monotonic activation, no resize and
            // no probabilities asked for: threshold the model's output where
            // it is, against the threshold mapped back through the activation.
            let cut = match self.activation {
                Activation::Sigmoid => Some((threshold / (1.0 - threshold)).ln()),
                Activation::None => Some(threshold),
                Activation::Softmax => None,
            };
            if let (Some(cut), false, true) = (cut, wants_probabilities, (oh, ow) == (h, w)) {
                threshold_into(raw, cut, &mut output.masks);
                output.sizes.push((k, oh, ow));
                continue;
            }
            item.clear();
            item.extend_from_slice(raw);
            activate(&mut item, k, area, self.activation);
            let (resizer, resized) = self.preprocess.output_planes();
            resized.resize(k * oh * ow, 0.0);
            for c in 0..k {
                resize_plane(
                    resizer,
                    &item[c * area..(c + 1) * area],
                    (h, w),
                    &mut resized[c * oh * ow..(c + 1) * oh * ow],
                    (oh, ow),
                )
                .map_err(ProcessorError::Run)?;
            }
            threshold_into(resized, threshold, &mut output.masks);
            if let Some(probabilities) = &mut output.probabilities {
                probabilities.extend_from_slice(resized);
            }
            output.sizes.push((k, oh, ow));
        }
        output.postprocess += inferred.elapsed();
        Ok(())
    }
}
