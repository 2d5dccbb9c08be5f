//! The entries of `sources:` and `sinks:`: a list entry names its `kind`
//! first; the rest of the entry is then read as that kind's section (by
//! the table in `kinds.rs`), so an unknown field is located on its own line
//! and an unknown kind is an error listing the known ones.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::kinds::{read_sink, read_source, sink_kinds, source_kinds};
use super::{Config, ConfigError, SinkSection, SourceSection};

/// One entry of `sources:`: its kind and its section, read by the kind's
/// section type from the table in `kinds.rs`.
#[derive(Debug)]
pub struct SourceEntry {
    /// The `kind:` as written.
    pub kind: Spanned<String>,
    /// The component's name (its metrics label); defaults to the kind.
    pub name: Option<String>,
    /// The kind's section.
    pub section: Box<dyn SourceSection>,
}

/// One entry of `sinks:` (see [`SourceEntry`]).
#[derive(Debug)]
pub struct SinkEntry {
    /// The `kind:` as written.
    pub kind: Spanned<String>,
    /// The component's name; defaults to the kind.
    pub name: Option<String>,
    /// The kind's section.
    pub section: Box<dyn SinkSection>,
}

/// Reads `kind` (which must come first), then hands the rest of the map
/// to the kind's section.
fn read_entry<'de, A, T>(
    what: &'static str,
    kinds: Vec<&'static str>,
    mut map: A,
    read: impl FnOnce(&str, de::value::MapAccessDeserializer<A>) -> Result<Option<T>, A::Error>,
) -> Result<(Spanned<String>, T), A::Error>
where
    A: MapAccess<'de>,
{
    let key: Option<String> = map.next_key()?;
    if key.as_deref() != Some("kind") {
        return Err(de::Error::custom(format!(
            "each entry of {what} starts with `kind:` (one of {}); got `{}` first",
            kinds.join(", "),
            key.unwrap_or_default()
        )));
    }
    let kind: Spanned<String> = map.next_value()?;
    let name = kind.value.clone();
    match read(&name, de::value::MapAccessDeserializer::new(map))? {
        Some(spec) => Ok((kind, spec)),
        None => Err(de::Error::custom(format!(
            "unknown {what} kind '{name}'; expected one of: {}",
            kinds.join(", ")
        ))),
    }
}

impl<'de> Deserialize<'de> for SourceEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = SourceEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a source: a map starting with `kind:`")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SourceEntry, A::Error> {
                let (kind, section) = read_entry("sources", source_kinds(), map, read_source)?;
                let name = section.name().map(str::to_string);
                Ok(SourceEntry {
                    kind,
                    name,
                    section,
                })
            }
        }
        deserializer.deserialize_map(EntryVisitor)
    }
}

impl<'de> Deserialize<'de> for SinkEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = SinkEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sink: a map starting with `kind:`")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SinkEntry, A::Error> {
                let (kind, section) = read_entry("sinks", sink_kinds(), map, read_sink)?;
                let name = section.name().map(str::to_string);
                Ok(SinkEntry {
                    kind,
                    name,
                    section,
                })
            }
        }
        deserializer.deserialize_map(EntryVisitor)
    }
}

impl Config {
    /// Checks every source and sink entry: each name once, and each entry
    /// resolved as the plan will, every mistake at its line.
    pub(crate) fn validate_components(&self) -> Result<(), ConfigError> {
        // Names label metrics and health: two components may not share one.
        let mut named: Vec<(&str, String)> = ["http", "tcp", "persistence"]
            .iter()
            .map(|n| (*n, format!("the top-level `{n}` section")))
            .collect();
        let entries = (self.sources.iter().enumerate())
            .map(|(i, e)| (&e.kind, &e.name, format!("sources[{i}]")))
            .chain(
                (self.sinks.iter().enumerate())
                    .map(|(i, e)| (&e.kind, &e.name, format!("sinks[{i}]"))),
            );
        for (kind, name, field) in entries {
            let Some(name) = name else { continue };
            if let Some((_, first)) = named.iter().find(|(n, _)| *n == name) {
                return Err(self.error_at(
                    kind,
                    format!("{field}.name"),
                    format!(
                        "'{name}' is already the name of {first}; a component's name labels its metrics and health, give each its own"
                    ),
                ));
            }
            named.push((name, field));
        }
        let context = self.sections()?;
        for (i, source) in self.sources.iter().enumerate() {
            let name = source.name.as_deref().unwrap_or(&source.kind.value);
            (source.section).resolve(&context, &format!("sources[{i}]"), &source.kind, name)?;
        }
        for (i, sink) in self.sinks.iter().enumerate() {
            let name = sink.name.as_deref().unwrap_or(&sink.kind.value);
            (sink.section).resolve(&context, &format!("sinks[{i}]"), &sink.kind, name)?;
        }
        self.http()?;
        self.tcp()?;
        Ok(())
    }
}
