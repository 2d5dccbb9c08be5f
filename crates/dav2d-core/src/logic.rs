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
    /// Change per second across the window, from the timestamps of its
    /// oldest and newest samples (the two newest, or a time window's ends).
    Rate,
    /// Difference between the newest and the oldest sample of the window
    /// (the two newest, or a time window's ends).
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

/// One parameter of a built-in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BuiltinParam {
    /// Its name, as YAML and Python spell it.
    pub name: &'static str,
    /// Its default; `None` when it is required.
    pub default: Option<f64>,
    /// Whether it must be a whole number (a window length).
    pub integer: bool,
}

/// One built-in as configs, Python and listings see it: the single table
/// YAML, `dav2d.nodes` and `dav2d check` read. Adding a built-in is its
/// kernel ([`Builtin`], [`Builtin::evaluate`], [`Builtin::window`]) and
/// one entry here.
#[derive(Clone, Copy)]
pub struct BuiltinDef {
    /// Its name, e.g. `moving_average`.
    pub kind: &'static str,
    /// Its parameters, in the order Python takes them positionally.
    pub params: &'static [BuiltinParam],
    /// One sentence for docs and docstrings.
    pub help: &'static str,
    /// Makes the built-in from its parameters, in `params` order.
    build: fn(&[f64]) -> Builtin,
}

impl fmt::Debug for BuiltinDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltinDef")
            .field("kind", &self.kind)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

const fn required(name: &'static str) -> BuiltinParam {
    BuiltinParam {
        name,
        default: None,
        integer: false,
    }
}

const fn window(name: &'static str, default: Option<f64>) -> BuiltinParam {
    BuiltinParam {
        name,
        default,
        integer: true,
    }
}

const fn optional(name: &'static str, default: f64) -> BuiltinParam {
    BuiltinParam {
        name,
        default: Some(default),
        integer: false,
    }
}

/// Every built-in.
pub const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        kind: "moving_average",
        params: &[window("n", None)],
        help: "Mean of the newest n samples (of those available while fewer).",
        build: |p| Builtin::MovingAverage { n: p[0] as usize },
    },
    BuiltinDef {
        kind: "ewma",
        params: &[required("alpha")],
        help: "Exponentially weighted moving average: alpha * x + (1 - alpha) * previous.",
        build: |p| Builtin::Ewma { alpha: p[0] },
    },
    BuiltinDef {
        kind: "min",
        params: &[window("n", None)],
        help: "Minimum of the newest n samples.",
        build: |p| Builtin::Min { n: p[0] as usize },
    },
    BuiltinDef {
        kind: "max",
        params: &[window("n", None)],
        help: "Maximum of the newest n samples.",
        build: |p| Builtin::Max { n: p[0] as usize },
    },
    BuiltinDef {
        kind: "sum",
        params: &[window("n", None)],
        help: "Sum of the newest n samples.",
        build: |p| Builtin::Sum { n: p[0] as usize },
    },
    BuiltinDef {
        kind: "rate",
        params: &[],
        help: "Change per second between the two newest samples (or across a time window), from their timestamps.",
        build: |_| Builtin::Rate,
    },
    BuiltinDef {
        kind: "delta",
        params: &[],
        help: "Difference between the two newest samples (or across a time window).",
        build: |_| Builtin::Delta,
    },
    BuiltinDef {
        kind: "clamp",
        params: &[required("lo"), required("hi")],
        help: "The newest sample limited to [lo, hi].",
        build: |p| Builtin::Clamp { lo: p[0], hi: p[1] },
    },
    BuiltinDef {
        kind: "scale",
        params: &[optional("a", 1.0), optional("b", 0.0)],
        help: "a * x + b of the newest sample.",
        build: |p| Builtin::Scale { a: p[0], b: p[1] },
    },
];

/// The names of the built-ins, as configs and Python spell them.
pub fn builtin_kinds() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|def| def.kind)
}

/// Why a built-in could not be made from a name and parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum BuiltinError {
    /// No built-in has this name.
    UnknownKind(String),
    /// A parameter this built-in does not take.
    UnknownParam {
        /// The built-in.
        kind: &'static str,
        /// The parameter given.
        param: String,
    },
    /// A required parameter is missing.
    Missing {
        /// The built-in.
        kind: &'static str,
        /// The parameter.
        param: &'static str,
    },
    /// A parameter is out of range.
    Invalid(String),
    /// Both a window and its length `n` were given.
    WindowAndN {
        /// The built-in.
        kind: &'static str,
    },
    /// A window was given to a built-in that reads only the newest sample.
    WindowNotRead {
        /// The built-in.
        kind: &'static str,
    },
}

impl fmt::Display for BuiltinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuiltinError::UnknownKind(kind) => {
                let kinds: Vec<&str> = builtin_kinds().collect();
                write!(
                    f,
                    "unknown node kind '{kind}'; expected one of {}",
                    kinds.join(", ")
                )
            }
            BuiltinError::UnknownParam { kind, param } => {
                let takes: Vec<&str> = Builtin::def_of(kind)
                    .map(|d| d.params.iter().map(|p| p.name).collect())
                    .unwrap_or_default();
                match takes.is_empty() {
                    true => write!(f, "{kind} takes no parameters; remove `{param}`"),
                    false => write!(
                        f,
                        "{kind} takes {}; `{param}` is not one of its parameters",
                        takes.join(", ")
                    ),
                }
            }
            BuiltinError::Missing { kind, param } => write!(f, "{kind} needs `{param}`"),
            BuiltinError::Invalid(message) => f.write_str(message),
            BuiltinError::WindowAndN { kind } => {
                write!(f, "give `n` or `window` to {kind}, not both")
            }
            BuiltinError::WindowNotRead { kind } => {
                write!(f, "{kind} reads only the newest sample; remove `window`")
            }
        }
    }
}

impl Builtin {
    /// The table entry of `kind`, if there is one.
    pub fn def_of(kind: &str) -> Option<&'static BuiltinDef> {
        BUILTINS.iter().find(|def| def.kind == kind)
    }

    /// The built-in called `kind` with `params` (by name; a missing one
    /// takes its default), validated.
    pub fn from_params(kind: &str, params: &[(&str, f64)]) -> Result<Builtin, BuiltinError> {
        Self::from_params_in(kind, params, None)
    }

    /// As [`Builtin::from_params`], for a node given a window of
    /// `window_samples` (a count, or a time window's cap): a window length
    /// `n` left out is that; `n` beside it, or a window given to a built-in
    /// that reads only the newest sample, is an error.
    pub fn from_params_in(
        kind: &str,
        params: &[(&str, f64)],
        window_samples: Option<usize>,
    ) -> Result<Builtin, BuiltinError> {
        let def = Self::def_of(kind).ok_or_else(|| BuiltinError::UnknownKind(kind.to_string()))?;
        // The one place a built-in's window is checked (YAML's `window:`,
        // Python's `window=`): it is the length `n`, so not both, and only
        // for a built-in that reads a window.
        if window_samples.is_some() && params.iter().any(|(name, _)| *name == "n") {
            return Err(BuiltinError::WindowAndN { kind: def.kind });
        }
        if let Some((param, _)) = params
            .iter()
            .find(|(name, _)| !def.params.iter().any(|p| p.name == *name))
        {
            return Err(BuiltinError::UnknownParam {
                kind: def.kind,
                param: param.to_string(),
            });
        }
        let mut values = Vec::with_capacity(def.params.len());
        for param in def.params {
            let given = params.iter().find(|(name, _)| *name == param.name);
            let from_window = window_samples.filter(|_| param.integer).map(|n| n as f64);
            let value = given
                .map(|(_, v)| *v)
                .or(from_window)
                .or(param.default)
                .ok_or(BuiltinError::Missing {
                    kind: def.kind,
                    param: param.name,
                })?;
            if param.integer && !(value >= 0.0 && value.fract() == 0.0) {
                return Err(BuiltinError::Invalid(format!(
                    "{} needs `{}` to be a whole number >= 0, got {value}",
                    def.kind, param.name
                )));
            }
            if param.integer && value > crate::window::MAX_WINDOW as f64 {
                return Err(BuiltinError::Invalid(format!(
                    "{} `{}`={value} is more than the {} samples a key can keep",
                    def.kind,
                    param.name,
                    crate::window::MAX_WINDOW
                )));
            }
            values.push(value);
        }
        let builtin = (def.build)(&values);
        if window_samples.is_some() && !builtin.reads_window() {
            return Err(BuiltinError::WindowNotRead { kind: def.kind });
        }
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

    /// Whether it reads a window of samples (and so can take a time
    /// window); the others read only the newest sample.
    pub fn reads_window(&self) -> bool {
        matches!(
            self,
            Builtin::MovingAverage { .. }
                | Builtin::Min { .. }
                | Builtin::Max { .. }
                | Builtin::Sum { .. }
                | Builtin::Rate
                | Builtin::Delta
        )
    }

    /// The built-in's name as written in configs (its table entry's).
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
                let [t0, .., t1] = timestamps else {
                    return None;
                };
                let [v0, _, ..] = values else { return None };
                let dt = (t1 - t0) as f64 / 1e9;
                (dt > 0.0).then(|| (last - v0) / dt)
            }
            Builtin::Delta => {
                let [v0, _, ..] = values else { return None };
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
