//! The one table from a `kind:` of `sources:` and `sinks:` to its section
//! type (what a section type does is `dav2d_component::section`; each
//! connector crate owns its own). Adding a kind is its
//! section type plus one line in `source_kinds!`/`sink_kinds!`; nothing
//! else in the runtime names it (the test kind `counter` at the end is
//! added that way).

use serde::Deserialize;

use dav2d_component::section::{SinkSection, SourceSection};
use dav2d_frames::FramesSection;
use dav2d_http::HttpSection;
use dav2d_mqtt::{MqttSinkSection, MqttSourceSection};
use dav2d_nats::{NatsSinkSection, NatsSourceSection};
use dav2d_store::PersistenceSection;
use dav2d_synthetic::SyntheticSection;
use dav2d_tcp::TcpSection;
use dav2d_webhook::WebhookSinkSection;

/// The table of source kinds: `"kind" => SectionType`, one line each.
macro_rules! source_kinds {
    ($($(#[$meta:meta])* $kind:literal => $section:ty),* $(,)?) => {
        /// The source kinds a config can name.
        // Pushed one by one: an entry may be behind `cfg`, which `vec![]` cannot take.
        #[allow(clippy::vec_init_then_push)]
        pub fn source_kinds() -> Vec<&'static str> {
            let mut kinds = Vec::new();
            $($(#[$meta])* kinds.push($kind);)*
            kinds
        }

        /// Reads the rest of a `sources:` entry of `kind`; `None` for an
        /// unknown kind.
        pub(crate) fn read_source<'de, D: serde::Deserializer<'de>>(
            kind: &str,
            rest: D,
        ) -> Result<Option<Box<dyn SourceSection>>, D::Error> {
            $($(#[$meta])* if kind == $kind {
                return Ok(Some(Box::new(<$section>::deserialize(rest)?)));
            })*
            Ok(None)
        }
    };
}

/// The table of sink kinds: `"kind" => SectionType`, one line each.
macro_rules! sink_kinds {
    ($($(#[$meta:meta])* $kind:literal => $section:ty),* $(,)?) => {
        /// The sink kinds a config can name.
        // Pushed one by one: an entry may be behind `cfg`, which `vec![]` cannot take.
        #[allow(clippy::vec_init_then_push)]
        pub fn sink_kinds() -> Vec<&'static str> {
            let mut kinds = Vec::new();
            $($(#[$meta])* kinds.push($kind);)*
            kinds
        }

        /// Reads the rest of a `sinks:` entry of `kind`; `None` for an
        /// unknown kind.
        pub(crate) fn read_sink<'de, D: serde::Deserializer<'de>>(
            kind: &str,
            rest: D,
        ) -> Result<Option<Box<dyn SinkSection>>, D::Error> {
            $($(#[$meta])* if kind == $kind {
                return Ok(Some(Box::new(<$section>::deserialize(rest)?)));
            })*
            Ok(None)
        }
    };
}

source_kinds! {
    "synthetic" => SyntheticSection,
    "http" => HttpSection,
    "tcp" => TcpSection,
    "frames" => FramesSection,
    "mqtt" => MqttSourceSection,
    "nats" => NatsSourceSection,
    #[cfg(test)]
    "counter" => tests::CounterSection,
}

sink_kinds! {
    "persistence" => PersistenceSection,
    "mqtt" => MqttSinkSection,
    "nats" => NatsSinkSection,
    "webhook" => WebhookSinkSection,
}

#[cfg(test)]
mod tests {
    //! A test-only source added the way every kind is: its section type
    //! and one line in the table. It pushes `count` numbers to `stream`
    //! through the intake, then idles.

    use std::sync::Arc;

    use dav2d_component::{Admission, Context, Health, Running, Source, StartError, ThreadTask};
    use dav2d_core::{Graph, GraphOptions, Keys, SharedGraph, SystemClock};
    use serde::Deserialize;
    use serde_saphyr::Spanned;

    use dav2d_component::section::{
        ComponentSpec, ConfigError, Declared, SectionContext, SourceSection, SourceSetting,
        component,
    };

    use crate::config::Config;
    use crate::{Overrides, Plan, Runtime};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct CounterSection {
        name: Option<String>,
        stream: Spanned<String>,
        count: u32,
    }

    #[derive(Debug, Clone)]
    struct Counter {
        stream: String,
        count: u32,
    }

    impl SourceSection for CounterSection {
        fn name(&self) -> Option<&str> {
            self.name.as_deref()
        }

        fn resolve(
            &self,
            _context: &SectionContext,
            _at: &str,
            _kind: &Spanned<String>,
            _name: &str,
        ) -> Result<Box<dyn SourceSetting>, ConfigError> {
            Ok(Box::new(Counter {
                stream: self.stream.value.clone(),
                count: self.count,
            }))
        }

        fn declares(&self, at: &str) -> Vec<Declared<'_>> {
            vec![Declared::stream(&self.stream, at, false)]
        }
    }

    impl SourceSetting for Counter {
        fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
            Box::new(CounterSource {
                name: name.to_string(),
                counter: self.clone(),
            })
        }

        fn describe(&self, name: &str) -> ComponentSpec {
            component(name, "counter", String::new(), vec![self.stream.clone()])
        }
    }

    struct CounterSource {
        name: String,
        counter: Counter,
    }

    #[derive(Debug)]
    struct Fine;

    impl Health for Fine {
        fn status(&self) -> Result<(), String> {
            Ok(())
        }
    }

    impl Source for CounterSource {
        fn name(&self) -> &str {
            &self.name
        }

        fn kind(&self) -> &'static str {
            "counter"
        }

        fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
            let values: Vec<f64> = (0..self.counter.count).map(f64::from).collect();
            let keys: Vec<String> = (0..self.counter.count).map(|i| format!("k{i}")).collect();
            let stream = self.counter.stream.clone();
            let intake = context.intake.clone();
            let task = ThreadTask::spawn("dav2d-counter", Arc::new(Fine), move |_stop| {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                intake.push_numbers(&stream, Keys::Many(&keys), &values, None, Admission::Wait);
            })?;
            Ok(Box::new(task))
        }
    }

    #[test]
    fn a_source_kind_added_by_one_table_line_is_read_checked_declared_and_run() {
        let yaml = "sources:\n  - kind: counter\n    stream: ticks\n    count: 5\nnodes:\n  - name: doubled\n    kind: scale\n    input: ticks\n    a: 2\nhttp:\n  enabled: false\ntcp:\n  enabled: false\npersistence:\n  enabled: false\n";
        let config = Config::parse(yaml, std::path::Path::new("counter.yaml"))
            .expect("the counter kind reads");
        let plan = Plan::new(config, Overrides::default()).expect("and plans");
        let options = GraphOptions {
            auto_create_streams: false,
            ..GraphOptions::default()
        };
        let graph = SharedGraph::new(Graph::new(options, Arc::new(SystemClock)));
        let runtime = Runtime::start(plan, graph.clone()).expect("and runs");
        dav2d_testkit::wait_for("the counter's five samples, doubled", || {
            graph
                .lock()
                .latest("doubled", "k4")
                .ok()
                .flatten()
                .and_then(|r| r.sample)
                .is_some_and(|s| s.value.as_f64() == Some(8.0))
        });
        // Counted for the source once its batch's report is made (just
        // after the wave the graph shows).
        dav2d_testkit::wait_for("the five samples counted for the source", || {
            runtime.metrics().totals().accepted == 5
        });
        runtime.stop();
        // A mistake in its section is located like any other.
        let error = Config::parse(
            "sources:\n  - kind: counter\n    stream: ticks\n    cont: 5\n",
            std::path::Path::new("counter.yaml"),
        )
        .expect_err("an unknown field")
        .to_string();
        assert!(error.contains("unknown field `cont`"), "{error}");
        assert!(super::source_kinds().contains(&"counter"));
    }
}
