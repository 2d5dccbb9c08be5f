//! The processor's settings: the notes' YAML (`model_path` and a
//! `processing` section), read at the top level of a file or as a
//! `processor:` section, every field checked where it is written.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The YAML of a processor as written (`model_path`, `processing`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSection {
    /// The ONNX model file; absolute is expected (a relative path is
    /// resolved against the config file's directory, with a note).
    pub model_path: Option<Spanned<String>>,
    /// How inputs become model tensors and outputs become masks.
    #[serde(default)]
    pub processing: ProcessingSection,
}

/// `processing:` as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingSection {
    /// Probabilities above this are set in the mask, 0 to 1 (default 0.5).
    pub threshold: Option<Spanned<f64>>,
    /// The model's input size, `[height, width]`.
    pub resolution: Option<Spanned<Vec<i64>>>,
    /// `true` (CUDA when available, else CPU with one warning), `false`
    /// (default) or `require` (CUDA or an error).
    pub use_gpu: Option<Spanned<UseGpuText>>,
    /// Intra-op threads of the session (default: the machine's cores).
    pub threads: Option<Spanned<i64>>,
    /// Where `libonnxruntime` is, if not in the installed `onnxruntime` package.
    pub runtime_library: Option<Spanned<String>>,
    /// Per-channel mean subtracted after scaling (default 0): one value or
    /// one per channel.
    pub mean: Option<Spanned<OneOrMany>>,
    /// Per-channel standard deviation divided by (default 1): one value or
    /// one per channel.
    pub std: Option<Spanned<OneOrMany>>,
    /// `sigmoid` (default), `softmax` (over the output's channels) or `none`.
    pub activation: Option<Spanned<String>>,
    /// `model` (default: masks at the model's resolution) or `input`
    /// (resized back to each input's size).
    pub output_size: Option<Spanned<String>>,
    /// The most inputs run in one model call (default 8).
    pub max_batch: Option<Spanned<i64>>,
    /// The most bytes of input tensors in one model call (default 256 MiB).
    pub memory_budget: Option<Spanned<i64>>,
    /// `linear` (default: the four nearest pixels, as OpenCV's INTER_LINEAR)
    /// or `antialias` (averaged over each output pixel's footprint).
    pub resize: Option<Spanned<String>>,
}

/// A number, or a list of them (`std: 0.5` or `std: [0.2, 0.3, 0.4]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value for every channel.
    One(f64),
    /// One value per channel.
    Many(Vec<f64>),
}

impl OneOrMany {
    /// The values, as a list.
    pub fn values(&self) -> Vec<f64> {
        match self {
            OneOrMany::One(x) => vec![*x],
            OneOrMany::Many(xs) => xs.clone(),
        }
    }
}

/// `use_gpu` as written: a bool or the word `require`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum UseGpuText {
    /// `true` or `false`.
    Bool(bool),
    /// A word (only `require` is valid).
    Word(String),
}

/// Where to run the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseGpu {
    /// CPU only.
    No,
    /// CUDA if the library and the machine have it, else CPU (one warning).
    Prefer,
    /// CUDA, or the processor fails to start.
    Require,
}

/// The activation applied to the model's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `1 / (1 + e^-x)`, per value.
    Sigmoid,
    /// Softmax over the output's channel axis.
    Softmax,
    /// The output as it is.
    None,
}

impl Activation {
    /// Its name as written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Softmax => "softmax",
            Activation::None => "none",
        }
    }
}

/// The size masks are made at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputSize {
    /// The model's resolution.
    Model,
    /// Each input's own size.
    Input,
}

/// Resolved, checked settings of a processor.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessorConfig {
    /// The ONNX model file, absolute.
    pub model_path: PathBuf,
    /// Probabilities above this are set, in `[0, 1]`.
    pub threshold: f32,
    /// The model's input height and width.
    pub resolution: (u32, u32),
    /// Where to run.
    pub use_gpu: UseGpu,
    /// Intra-op threads.
    pub threads: usize,
    /// An explicit `libonnxruntime` path.
    pub runtime_library: Option<PathBuf>,
    /// Per-channel mean (empty: 0).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (empty: 1).
    pub std: Vec<f32>,
    /// The activation: written, or (`None`) chosen from the model when it
    /// is loaded: `none` for a model that ends in its own `Sigmoid` or
    /// `Softmax`, `sigmoid` otherwise.
    pub activation: Option<Activation>,
    /// The size of masks.
    pub output_size: OutputSize,
    /// The most inputs per model call.
    pub max_batch: usize,
    /// The most bytes of input tensors per model call.
    pub memory_budget: usize,
    /// Whether inputs are resized with antialiasing (`resize: antialias`).
    pub antialias: bool,
}

/// A setting that is wrong, where it is written and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}{field}: {message}", location(*line, *column))]
pub struct SettingError {
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// The field path, e.g. `processing.threshold`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

fn location(line: u64, column: u64) -> String {
    if line > 0 {
        format!("{line}:{column}: ")
    } else {
        String::new()
    }
}

fn at<T>(spanned: &Spanned<T>, field: String, message: String) -> SettingError {
    SettingError {
        line: spanned.referenced.line(),
        column: spanned.referenced.column(),
        field,
        message,
    }
}

/// The bytes one input takes in a model call at `resolution` with
/// `channels`: its float32 tensor and one float32 output plane.
pub fn per_input_bytes((h, w): (u32, u32), channels: usize) -> usize {
    (channels + 1)
        .saturating_mul(h as usize)
        .saturating_mul(w as usize)
        .saturating_mul(4)
}

/// Why a resolution does not fit `memory_budget`, and what to do.
pub(crate) fn budget_message(
    (h, w): (u32, u32),
    channels: usize,
    needed: usize,
    budget: usize,
) -> String {
    format!(
        "resolution [{h}, {w}] with {channels} channel(s) needs {:.1} MiB per input (its float32 tensor and one output plane), more than processing.memory_budget ({:.1} MiB); lower the resolution or raise memory_budget",
        needed as f64 / (1 << 20) as f64,
        budget as f64 / (1 << 20) as f64
    )
}

/// The machine's cores (the default thread count).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ProcessorSection {
    /// Whether the section says anything.
    pub fn is_set(&self) -> bool {
        self.model_path.is_some()
    }

    /// Checks every field and resolves the model path against `base` (the
    /// config file's directory); `prefix` is the section's path for errors
    /// (`""` at the top level, `processor.` or `nodes[2].processor.`).
    pub fn resolve(&self, base: &Path, prefix: &str) -> Result<ProcessorConfig, SettingError> {
        let p = &self.processing;
        let field = |name: &str| format!("{prefix}{name}");
        let model = self.model_path.as_ref().ok_or_else(|| SettingError {
            line: 0,
            column: 0,
            field: field("model_path"),
            message: "a processor needs model_path: the absolute path of an ONNX model".to_string(),
        })?;
        let written = PathBuf::from(model.value.trim());
        let model_path = if written.as_os_str().is_empty() {
            return Err(at(
                model,
                field("model_path"),
                "is empty; give the absolute path of an ONNX model".to_string(),
            ));
        } else if written.is_absolute() {
            written
        } else {
            let resolved = base.join(&written);
            tracing::info!(
                given = %written.display(),
                resolved = %resolved.display(),
                "model_path is relative (an absolute path was expected); it is resolved against the config file's directory."
            );
            resolved
        };
        let threshold = match &p.threshold {
            Some(t) if !(0.0..=1.0).contains(&t.value) || t.value.is_nan() => {
                return Err(at(
                    t,
                    field("processing.threshold"),
                    format!(
                        "{} is outside [0, 1]; give a probability such as 0.45",
                        t.value
                    ),
                ));
            }
            Some(t) => t.value as f32,
            None => 0.5,
        };
        let resolution = match &p.resolution {
            Some(r) => match r.value.as_slice() {
                [h, w] if (1..=16384).contains(h) && (1..=16384).contains(w) => {
                    (*h as u32, *w as u32)
                }
                other => {
                    return Err(at(
                        r,
                        field("processing.resolution"),
                        format!(
                            "{other:?} is not [height, width] with each from 1 to 16384 (e.g. [1024, 1024])"
                        ),
                    ));
                }
            },
            None => {
                return Err(SettingError {
                    line: model.referenced.line(),
                    column: model.referenced.column(),
                    field: field("processing.resolution"),
                    message: "a processor needs processing.resolution: [height, width] of the model's input"
                        .to_string(),
                });
            }
        };
        let use_gpu = match &p.use_gpu {
            None => UseGpu::No,
            Some(s) => match &s.value {
                UseGpuText::Bool(false) => UseGpu::No,
                UseGpuText::Bool(true) => UseGpu::Prefer,
                UseGpuText::Word(w) if w == "require" => UseGpu::Require,
                UseGpuText::Word(w) => {
                    return Err(at(
                        s,
                        field("processing.use_gpu"),
                        format!("'{w}' is not true, false or require"),
                    ));
                }
            },
        };
        let count =
            |value: &Option<Spanned<i64>>, name: &str, most: i64, default: usize| match value {
                Some(v) if !(1..=most).contains(&v.value) => Err(at(
                    v,
                    field(name),
                    format!("{} is out of range; give 1 to {most}", v.value),
                )),
                Some(v) => Ok(v.value as usize),
                None => Ok(default),
            };
        let threads = count(&p.threads, "processing.threads", 1024, cores())?;
        let max_batch = count(&p.max_batch, "processing.max_batch", 4096, 8)?;
        let memory_budget = count(
            &p.memory_budget,
            "processing.memory_budget",
            1 << 40,
            256 << 20,
        )?;
        let channels = |value: &Option<Spanned<OneOrMany>>, name: &str, positive: bool| {
            let Some(v) = value else {
                return Ok(Vec::new());
            };
            let values = v.value.values();
            if values.is_empty()
                || values.len() > 4
                || values
                    .iter()
                    .any(|x| !x.is_finite() || (positive && *x <= 0.0))
            {
                return Err(at(
                    v,
                    field(name),
                    format!(
                        "{values:?} is not 1 to 4 finite numbers{}",
                        if positive { ", each above 0" } else { "" }
                    ),
                ));
            }
            Ok(values.iter().map(|x| *x as f32).collect())
        };
        let mean = channels(&p.mean, "processing.mean", false)?;
        let std = channels(&p.std, "processing.std", true)?;
        let activation = match &p.activation {
            None => None,
            Some(a) => Some(match a.value.as_str() {
                "sigmoid" => Activation::Sigmoid,
                "softmax" => Activation::Softmax,
                "none" => Activation::None,
                other => {
                    return Err(at(
                        a,
                        field("processing.activation"),
                        format!("'{other}' is not sigmoid, softmax or none"),
                    ));
                }
            }),
        };
        let output_size = match &p.output_size {
            None => OutputSize::Model,
            Some(o) => match o.value.as_str() {
                "model" => OutputSize::Model,
                "input" => OutputSize::Input,
                other => {
                    return Err(at(
                        o,
                        field("processing.output_size"),
                        format!("'{other}' is not model or input"),
                    ));
                }
            },
        };
        let antialias = match &p.resize {
            None => false,
            Some(r) => match r.value.as_str() {
                "linear" => false,
                "antialias" => true,
                other => {
                    return Err(at(
                        r,
                        field("processing.resize"),
                        format!("'{other}' is not linear or antialias"),
                    ));
                }
            },
        };
        // One input's tensor and one output channel must fit the budget;
        // the model's own channel count is checked again when it is loaded.
        let channels = mean.len().max(std.len()).max(1);
        let needed = per_input_bytes(resolution, channels);
        if needed > memory_budget {
            let message = budget_message(resolution, channels, needed, memory_budget);
            return Err(match (&p.resolution, &p.memory_budget) {
                (Some(r), _) => at(r, field("processing.resolution"), message),
                (None, Some(m)) => at(m, field("processing.memory_budget"), message),
                (None, None) => SettingError {
                    line: 0,
                    column: 0,
                    field: field("processing.resolution"),
                    message,
                },
            });
        }
        Ok(ProcessorConfig {
            antialias,
            model_path,
            threshold,
            resolution,
            use_gpu,
            threads,
            runtime_library: p
                .runtime_library
                .as_ref()
                .map(|r| base.join(r.value.trim())),
            mean,
            std,
            activation,
            output_size,
            max_batch,
            memory_budget,
        })
    }
}

/// A processor file: the notes' keys at the top level, or a `processor:`
/// section inside a full graph config (whose other sections are not this
/// crate's to read).
#[derive(Debug, Default, Deserialize)]
struct ProcessorFile {
    model_path: Option<Spanned<String>>,
    #[serde(default)]
    processing: ProcessingSection,
    processor: Option<ProcessorSection>,
}

impl ProcessorConfig {
    /// Reads the processor settings of the YAML file at `path` and checks
    /// that its model file is there; an error names the file, line and field.
    pub fn load(path: &Path) -> Result<ProcessorConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::read(&text, path, true)
    }

    /// The settings of `text`, said to come from `path` (the model file is
    /// not looked at).
    pub fn parse(text: &str, path: &Path) -> Result<ProcessorConfig, String> {
        Self::read(text, path, false)
    }

    fn read(text: &str, path: &Path, check: bool) -> Result<ProcessorConfig, String> {
        let file: ProcessorFile =
            serde_saphyr::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
        let (section, prefix) = match file.processor {
            Some(section) => (section, "processor."),
            None => (
                ProcessorSection {
                    model_path: file.model_path,
                    processing: file.processing,
                },
                "",
            ),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        let located = |e: SettingError| {
            if e.line > 0 {
                format!("{}:{e}", path.display())
            } else {
                format!("{}: {e}", path.display())
            }
        };
        let config = section.resolve(base, prefix).map_err(located)?;
        // The model file is checked where it is named, as `dav2d check` does.
        if let (true, Some(written)) = (check, &section.model_path)
            && let Err(message) = crate::model::check_model(&config.model_path)
        {
            return Err(located(at(written, format!("{prefix}model_path"), message)));
        }
        Ok(config)
    }
}
