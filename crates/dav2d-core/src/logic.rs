//! Node logic: the native built-ins and the trait for logic that lives
//! elsewhere (Python callables, later model runners).
//!
//! Built-ins are an enum evaluated on borrowed float slices, so the native
//! path never allocates. Custom logic is evaluated a whole batch of keys at a
//! time, which lets a Python implementation take the GIL once per batch.

use std::fmt;
use std::sync::Arc;

use crate::value::Value;
use crate::window::WindowSnapshot;

/// The native transforms dav2d ships. Each reads one input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Builtin {
    /// Mean of the newest `n` samples (of those available while fewer).
    MovingAverage {
        /// Window length.
        n: usize,
    },
    /// Exponentially weighted moving average: `alpha * x + (1 - alpha) * prev`.
    Ewma {
        /// Weight of the newest sample, in (0, 1].
        alpha: f64,
    },
    /// Minimum of the newest `n` samples.
    Min {
        /// Window length.
        n: usize,
    },
    /// Maximum of the newest `n` samples.
    Max {
        /// Window length.
        n: usize,
    },
    /// Sum of the newest `n` samples.
    Sum {
        /// Window length.
        n: usize,
    },
    /// Change per second between the two newest samples, from their timestamps.
    Rate,
    /// Difference between the two newest samples.
    Delta,
    /// The newest sample limited to `[lo, hi]`.
    Clamp {
        /// Lower limit.
        lo: f64,
        /// Upper limit.
        hi: f64,
    },
    /// `a * x + b` of the newest sample.
    Scale {
        /// Factor.
        a: f64,
        /// Offset.
        b: f64,
    },
}

/// The names of the built-ins, as configs and Python spell them.
pub const BUILTIN_KINDS: &[&str] = &[
    "moving_average",
    "ewma",
    "min",
    "max",
    "sum",
    "rate",
    "delta",
    "clamp",
    "scale",
];

/// The parameters a built-in may take, all optional until a kind needs one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BuiltinParams {
    /// Window length (moving_average, min, max, sum).
    pub n: Option<usize>,
    /// Weight of the newest sample (ewma).
    pub alpha: Option<f64>,
    /// Lower limit (clamp).
    pub lo: Option<f64>,
    /// Upper limit (clamp).
    pub hi: Option<f64>,
    /// Factor (scale, default 1).
    pub a: Option<f64>,
    /// Offset (scale, default 0).
    pub b: Option<f64>,
}

/// Why a built-in could not be made from a name and parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum BuiltinError {
    /// No built-in has this name.
    UnknownKind(String),
    /// A required parameter is missing.
    Missing {
        /// The built-in.
        kind: &'static str,
        /// The parameter.
        param: &'static str,
    },
    /// A parameter is out of range.
    Invalid(String),
}

impl fmt::Display for BuiltinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuiltinError::UnknownKind(kind) => {
                write!(
                    f,
                    "unknown node kind '{kind}'; expected one of {}",
                    BUILTIN_KINDS.join(", ")
                )
            }
            BuiltinError::Missing { kind, param } => write!(f, "{kind} needs `{param}`"),
            BuiltinError::Invalid(message) => f.write_str(message),
        }
    }
}

impl Builtin {
    /// The built-in called `kind` with `params`, validated.
    pub fn from_name(kind: &str, params: &BuiltinParams) -> Result<Builtin, BuiltinError> {
        fn need<T>(
            value: Option<T>,
            kind: &'static str,
            param: &'static str,
        ) -> Result<T, BuiltinError> {
            value.ok_or(BuiltinError::Missing { kind, param })
        }
        let builtin = match kind {
            "moving_average" => Builtin::MovingAverage {
                n: need(params.n, "moving_average", "n")?,
            },
            "min" => Builtin::Min {
                n: need(params.n, "min", "n")?,
            },
            "max" => Builtin::Max {
                n: need(params.n, "max", "n")?,
            },
            "sum" => Builtin::Sum {
                n: need(params.n, "sum", "n")?,
            },
            "ewma" => Builtin::Ewma {
                alpha: need(params.alpha, "ewma", "alpha")?,
            },
            "rate" => Builtin::Rate,
            "delta" => Builtin::Delta,
            "clamp" => Builtin::Clamp {
                lo: need(params.lo, "clamp", "lo")?,
                hi: need(params.hi, "clamp", "hi")?,
            },
            "scale" => Builtin::Scale {
                a: params.a.unwrap_or(1.0),
                b: params.b.unwrap_or(0.0),
            },
            other => return Err(BuiltinError::UnknownKind(other.to_string())),
        };
        builtin.validate().map_err(BuiltinError::Invalid)?;
        Ok(builtin)
    }

    /// How many samples of its input the built-in needs to see.
    pub fn window(&self) -> usize {
        match *self {
            Builtin::MovingAverage { n }
            | Builtin::Min { n }
            | Builtin::Max { n }
            | Builtin::Sum { n } => n,
            Builtin::Rate | Builtin::Delta => 2,
            Builtin::Ewma { .. } | Builtin::Clamp { .. } | Builtin::Scale { .. } => 1,
        }
    }

    /// The built-in's name as written in configs.
    pub fn kind(&self) -> &'static str {
        match self {
            Builtin::MovingAverage { .. } => "moving_average",
            Builtin::Ewma { .. } => "ewma",
            Builtin::Min { .. } => "min",
            Builtin::Max { .. } => "max",
            Builtin::Sum { .. } => "sum",
            Builtin::Rate => "rate",
            Builtin::Delta => "delta",
            Builtin::Clamp { .. } => "clamp",
            Builtin::Scale { .. } => "scale",
        }
    }

    /// Checks the parameters, returning what is wrong with them.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Builtin::MovingAverage { n }
            | Builtin::Min { n }
            | Builtin::Max { n }
            | Builtin::Sum { n }
                if n == 0 =>
            {
                Err(format!("{} needs n >= 1, got 0", self.kind()))
            }
            Builtin::Ewma { alpha } if !(alpha > 0.0 && alpha <= 1.0) => {
                Err(format!("ewma needs 0 < alpha <= 1, got {alpha}"))
            }
            Builtin::Clamp { lo, hi } if lo > hi || lo.is_nan() || hi.is_nan() => {
                Err(format!("clamp needs lo <= hi, got lo={lo} hi={hi}"))
            }
            _ => Ok(()),
        }
    }

    /// Evaluates on the newest samples (`values`, `timestamps`, oldest
    /// first). `state` carries the per-key memory of stateful built-ins
    /// (ewma); `None` output means "nothing to say yet".
    #[inline]
    pub fn evaluate(
        &self,
        values: &[f64],
        timestamps: &[i64],
        state: &mut Option<f64>,
    ) -> Option<f64> {
        let last = *values.last()?;
        match *self {
            Builtin::MovingAverage { .. } => Some(values.iter().sum::<f64>() / values.len() as f64),
            Builtin::Sum { .. } => Some(values.iter().sum()),
            Builtin::Min { .. } => Some(values.iter().copied().fold(f64::INFINITY, f64::min)),
            Builtin::Max { .. } => Some(values.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            Builtin::Ewma { alpha } => {
                let next = match *state {
                    Some(previous) => alpha * last + (1.0 - alpha) * previous,
                    None => last,
                };
                *state = Some(next);
                Some(next)
            }
            Builtin::Rate => {
                let [.., t0, t1] = timestamps else {
                    return None;
                };
                let [.., v0, _] = values else { return None };
                let dt = (t1 - t0) as f64 / 1e9;
                (dt > 0.0).then(|| (last - v0) / dt)
            }
            Builtin::Delta => {
                let [.., v0, _] = values else { return None };
                Some(last - v0)
            }
            Builtin::Clamp { lo, hi } => Some(last.clamp(lo, hi)),
            Builtin::Scale { a, b } => Some(a * last + b),
        }
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Builtin::MovingAverage { n } => write!(f, "moving_average(n={n})"),
            Builtin::Ewma { alpha } => write!(f, "ewma(alpha={alpha})"),
            Builtin::Min { n } => write!(f, "min(n={n})"),
            Builtin::Max { n } => write!(f, "max(n={n})"),
            Builtin::Sum { n } => write!(f, "sum(n={n})"),
            Builtin::Rate => write!(f, "rate"),
            Builtin::Delta => write!(f, "delta"),
            Builtin::Clamp { lo, hi } => write!(f, "clamp(lo={lo}, hi={hi})"),
            Builtin::Scale { a, b } => write!(f, "scale(a={a}, b={b})"),
        }
    }
}

/// What one evaluation of a (node, key) produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A new output value.
    Output(Value),
    /// Nothing to say (not enough data, or the logic returned nothing).
    Skip,
    /// The logic failed; the text (a traceback for Python) becomes the
    /// (node, key)'s error state.
    Failed(Arc<str>),
}

/// One (node, key) to evaluate in a custom logic batch.
#[derive(Debug)]
pub struct Evaluation {
    /// The key being evaluated.
    pub key: Arc<str>,
    /// One window per input, in input order.
    pub inputs: Vec<WindowSnapshot>,
    /// Set by the logic; starts as [`Outcome::Skip`].
    pub outcome: Outcome,
}

/// Logic implemented outside the engine. The engine calls it once per wave
/// with every key of the node that needs evaluating.
pub trait CustomLogic: Send {
    /// Evaluates every item of `batch`, setting each `outcome`.
    fn evaluate_batch(&mut self, node: &str, batch: &mut [Evaluation]);

    /// A short description for graph listings, e.g. `python:moving_average`.
    fn describe(&self) -> String;
}

/// A stateless built-in run as an offloaded job (`offload: true` on a
/// built-in node): the same kernel, over the window snapshot the job got.
pub(crate) struct BuiltinJob(pub(crate) Builtin);

impl CustomLogic for BuiltinJob {
    fn evaluate_batch(&mut self, node: &str, batch: &mut [Evaluation]) {
        for evaluation in batch {
            let Some(window) = evaluation.inputs.first() else {
                continue;
            };
            evaluation.outcome = if !window.is_all_float() {
                Outcome::Failed(Arc::from(format!(
                    "node '{node}' ({}) needs numbers; its input window holds other values",
                    self.0
                )))
            } else {
                match self
                    .0
                    .evaluate(window.numbers(), window.timestamps(), &mut None)
                {
                    Some(value) => Outcome::Output(Value::Float(value)),
                    None => Outcome::Skip,
                }
            };
        }
    }

    fn describe(&self) -> String {
        format!("{} (offloaded)", self.0)
    }
}
