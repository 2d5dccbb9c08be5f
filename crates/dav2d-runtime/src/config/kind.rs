//! What a kind of source or sink is to the runtime: a section type that
//! reads its YAML (serde, each field located), resolves it into a setting
//! (checked, errors at their lines), and says which streams it declares (a
//! source) or which names of the graph it reads (a sink); the setting
//! builds the component and describes it for the spec. The table of kinds
//! is `kinds.rs`.

use std::fmt;

use dav2d_component::{Sink, Source};
use serde_saphyr::Spanned;

use super::{Config, ConfigError};
use crate::spec::ComponentSpec;

/// A `sources:` entry of one kind, as written.
pub trait SourceSection: fmt::Debug + Send + Sync {
    /// The `name:` given, if any.
    fn name(&self) -> Option<&str>;
    /// Checks the section and resolves it into what the plan starts; `at`
    /// is its place (`sources[2]`), `_kind` its `kind:` as written (where an
    /// error about the whole entry points), `name` the component's name.
    fn resolve(
        &self,
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError>;
    /// The streams it writes that the graph declares for it, as if written
    /// in `streams:` (a topic template's `{stream}` names them per message:
    /// those are not here).
    fn declares(&self, _at: &str) -> Vec<Declared<'_>> {
        Vec::new()
    }
}

/// A stream a source declares.
#[derive(Debug)]
pub struct Declared<'a> {
    /// The stream.
    pub stream: &'a str,
    /// Where it is written, for errors.
    pub written: &'a Spanned<String>,
    /// Its field, e.g. `sources[0].stream`.
    pub field: String,
    /// Whether it carries frames (declared `type: frame`).
    pub frames: bool,
}

/// A source resolved: what the plan starts.
pub trait SourceSetting: fmt::Debug + Send + Sync {
    /// The component, named `name`; `setting` names its address setting in
    /// errors (`sources[1].bind`).
    fn build(&self, name: &str, setting: &str) -> Box<dyn Source>;
    /// How the spec lists it.
    fn describe(&self, name: &str) -> ComponentSpec;
}

/// A `sinks:` entry of one kind, as written.
pub trait SinkSection: fmt::Debug + Send + Sync {
    /// The `name:` given, if any.
    fn name(&self) -> Option<&str>;
    /// Checks the section and resolves it (see [`SourceSection::resolve`]).
    fn resolve(
        &self,
        config: &Config,
        at: &str,
        _kind: &Spanned<String>,
        name: &str,
    ) -> Result<Box<dyn SinkSetting>, ConfigError>;
    /// The names of the graph it reads, each with its field, checked
    /// against the built graph.
    fn reads(&self, _at: &str) -> Vec<(&Spanned<String>, String)> {
        Vec::new()
    }
}

/// A sink resolved: what the plan starts.
pub trait SinkSetting: fmt::Debug + Send + Sync {
    /// The component, named `name`.
    fn build(&self, name: &str) -> Box<dyn Sink>;
    /// How the spec lists it.
    fn describe(&self, name: &str) -> ComponentSpec;
    /// Whether it writes to disk (`--data off` turns it off).
    fn is_store(&self) -> bool {
        false
    }
}

/// A sink's `names:`, each with its field.
pub(crate) fn names_read<'a>(
    names: &'a [Spanned<String>],
    at: &str,
) -> Vec<(&'a Spanned<String>, String)> {
    (names.iter().enumerate())
        .map(|(j, name)| (name, format!("{at}.names[{j}]")))
        .collect()
}
