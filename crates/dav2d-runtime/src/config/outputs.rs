//! The names a config reads back from its graph (what sinks publish, what
//! `/metrics` exports, what persistence stores), checked against the built
//! graph with the closest name suggested, so `dav2d check` refuses exactly
//! what `dav2d run` would.

use dav2d_core::Graph;

use super::{Config, ConfigError, SinkSection, Spanned};

impl Config {
    /// Every name the config's sinks, metrics and persistence read must be
    /// a stream, node or constraint of `graph`; the first that is not is an
    /// error at its line, with the closest name. Called at the end of
    /// [`Config::build`], so every face that builds a config checks it.
    pub(crate) fn check_outputs(&self, graph: &Graph) -> Result<(), ConfigError> {
        let mut read: Vec<(&Spanned<String>, String)> = Vec::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            read.extend(sink.section.reads(&format!("sinks[{i}]")));
        }
        // The top-level store reads as a `kind: persistence` sink does.
        read.extend(self.persistence.reads("persistence"));
        for (j, name) in self.metrics.values.iter().enumerate() {
            read.push((name, format!("metrics.values[{j}]")));
        }
        for (name, field) in read {
            graph
                .check_name(&name.value)
                .map_err(|error| self.error_at(name, field, error.to_string()))?;
        }
        Ok(())
    }
}
