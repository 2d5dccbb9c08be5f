//! What a kind of source or sink is to the runtime: a section type that
//! reads its YAML (serde, each field located), resolves it into a setting
//! (checked, errors at their lines), and says which streams it declares (a
//! source) or which names of the graph it reads (a sink); the setting
//! builds the component and describes it for the spec. Each connector
//! crate implements these for its own section; the runtime's table maps a
//! `kind:` to the section type.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{ConfigError, SectionContext};
use crate::{Route, Sink, Source};

/// A `sources:` entry of one kind, as written.
pub trait SourceSection: fmt::Debug + Send + Sync {
    /// The `name:` given, if any.
    fn name(&self) -> Option<&str>;
    /// Checks the section and resolves it into what the plan starts; `at`
    /// is its place (`sources[2]`), `kind` its `kind:` as written (where an
    /// error about the whole entry points), `name` the component's name.
    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        kind: &Spanned<String>,
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

impl<'a> Declared<'a> {
    /// The one stream of a section's `stream:` field.
    pub fn stream(written: &'a Spanned<String>, at: &str, frames: bool) -> Declared<'a> {
        Declared {
            stream: &written.value,
            written,
            field: format!("{at}.stream"),
            frames,
        }
    }
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
        context: &SectionContext,
        at: &str,
        kind: &Spanned<String>,
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
pub fn names_read<'a>(
    names: &'a [Spanned<String>],
    at: &str,
) -> Vec<(&'a Spanned<String>, String)> {
    (names.iter().enumerate())
        .map(|(j, name)| (name, format!("{at}.names[{j}]")))
        .collect()
}

/// The streams a broker source's routes name with `stream:` (a template's
/// `{stream}` names them per message), each located at its route in
/// `list` (`subscriptions`, `subjects`).
pub fn route_declares<'a>(
    routes: impl Iterator<Item = (&'a Spanned<String>, Option<&'a str>)>,
    at: &str,
    list: &str,
) -> Vec<Declared<'a>> {
    (routes.enumerate())
        .filter_map(|(j, (written, stream))| {
            Some(Declared {
                stream: stream?,
                written,
                field: format!("{at}.{list}[{j}].stream"),
                frames: false,
            })
        })
        .collect()
}

/// A source or sink, as the spec lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    /// Its name (its metrics label).
    pub name: String,
    /// Its kind (`http`, `mqtt`, `webhook`, ...).
    pub kind: String,
    /// Where it listens or connects.
    pub address: String,
    /// The streams a source writes (empty: named by each sample), or the
    /// names a sink reads (empty: every node, or every constraint for a
    /// webhook).
    pub names: Vec<String>,
    /// Whether a client needs the token (listeners only).
    pub token: Option<bool>,
}

/// A component as the spec lists it, at `address`.
pub fn component(name: &str, kind: &str, address: String, names: Vec<String>) -> ComponentSpec {
    ComponentSpec {
        name: name.to_string(),
        kind: kind.to_string(),
        address,
        names,
        token: None,
    }
}

/// A listener as the spec lists it: where it binds, whether it needs the token.
pub fn listener(
    name: &str,
    kind: &str,
    bind: std::net::SocketAddr,
    token: &Option<String>,
) -> ComponentSpec {
    ComponentSpec {
        token: Some(token.is_some()),
        ..component(name, kind, bind.to_string(), vec![])
    }
}

/// The subscription filters of broker routes, joined.
pub fn filters(routes: &[Route]) -> String {
    let filters: Vec<String> = routes.iter().map(|r| r.topic.filter()).collect();
    filters.join(", ")
}

/// The fixed streams of broker routes.
pub fn route_streams(routes: &[Route]) -> Vec<String> {
    let mut streams: Vec<String> = routes.iter().filter_map(|r| r.stream.clone()).collect();
    streams.dedup();
    streams
}

/// The error for an entry whose kind this build left out: located at its
/// `kind:`, saying what to build (see [`crate::built_without`]).
pub fn built_without_kind(
    context: &SectionContext,
    at: &str,
    kind: &Spanned<String>,
    part: &str,
    feature: &str,
) -> ConfigError {
    context.error_at(
        kind,
        format!("{at}.kind"),
        crate::built_without(part, feature),
    )
}
