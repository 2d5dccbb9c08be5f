//! The components a runtime started, held where a hot reload can reach
//! them: a listed source or sink (`sources:`, `sinks:`), the top-level HTTP
//! API (on a port of its own) and TCP server, or the default store whose
//! settings a reload changes is stopped and started again alone, a new one
//! started and a dropped one stopped, while the others keep running. A
//! store started again records the live graph rather than restoring its own
//! state over it; an HTTP API stopped ends its `/events` streams (clients
//! reconnect) and finishes the request that asked for the reload. An HTTP
//! API on port 0 (it would come back on another port), turning the default
//! store on or off, and the cluster change only with a restart.

use std::sync::{Arc, Mutex};

use dav2d_component::{
    Context, Delivery, HealthBoard, Intake, Pin, Running, Sink, Source, StartError,
};

use crate::plan::Plan;

/// A started component with its name, its pin on the health board and, for
/// a listed one, the settings it started with (what a reload compares).
pub(crate) struct Started {
    pub(crate) name: String,
    pub(crate) running: Box<dyn Running>,
    pub(crate) pin: Pin,
    pub(crate) settings: Option<String>,
}

/// What a component needs to start: the runtime's I/O threads, intake and
/// health board.
pub(crate) struct Starter {
    pub(crate) io: tokio::runtime::Handle,
    pub(crate) intake: Intake,
    pub(crate) health: HealthBoard,
}

impl Starter {
    fn context(
        &self,
        name: &str,
        kind: &'static str,
        delivery: Delivery,
        joining: bool,
    ) -> Context {
        Context {
            intake: self.intake.for_component(name, kind),
            io: self.io.clone(),
            health: self.health.clone(),
            durability: Arc::clone(self.health.durability()),
            delivery,
            joining,
        }
    }

    /// Starts `sink` and pins its health; `joining` when the graph already
    /// runs (a reload starts it).
    pub(crate) fn start_sink(
        &self,
        sink: Box<dyn Sink>,
        settings: Option<String>,
        joining: bool,
    ) -> Result<Started, StartError> {
        let (name, kind, delivery) = (sink.name().to_string(), sink.kind(), sink.delivery());
        let running = sink.start(self.context(&name, kind, delivery, joining))?;
        Ok(self.pinned(name, kind, running, settings))
    }

    /// Starts `source` and pins its health.
    pub(crate) fn start_source(
        &self,
        source: Box<dyn Source>,
        settings: Option<String>,
        joining: bool,
    ) -> Result<Started, StartError> {
        let (name, kind) = (source.name().to_string(), source.kind());
        let context = self.context(&name, kind, Delivery::Conflating, joining);
        let running = source.start(context)?;
        Ok(self.pinned(name, kind, running, settings))
    }

    fn pinned(
        &self,
        name: String,
        kind: &'static str,
        running: Box<dyn Running>,
        settings: Option<String>,
    ) -> Started {
        let pin = self.health.pin(&name, kind, running.health());
        Started {
            name,
            running,
            pin,
            settings,
        }
    }

    /// Stops `started` and unpins it.
    pub(crate) fn stop(&self, started: Started) {
        started.running.stop();
        self.health.unpin(started.pin);
    }
}

/// Every component a runtime started, in start order, and what starts more.
pub(crate) struct Components {
    pub(crate) sources: Vec<Started>,
    pub(crate) sinks: Vec<Started>,
    pub(crate) starter: Starter,
    /// What only a restart changes (see the module's description), as
    /// started.
    pub(crate) fixed: String,
    /// The default store's statistics, which a store started again keeps
    /// reporting into (the summary and `/metrics` read them).
    pub(crate) store_stats: Option<Arc<dav2d_store::PersistStats>>,
}

/// The components, shared by a runtime and its reloaders.
pub(crate) type Shared = Arc<Mutex<Components>>;

/// A listed component's settings as compared across reloads: every
/// connector's resolved settings type is plain data deriving `Debug`.
fn settings_of(setting: &dyn std::fmt::Debug) -> String {
    format!("{setting:?}")
}

/// Restartable components' settings by name.
pub(crate) type Listed = Vec<(String, String)>;

/// The settings of what a reload may restart alone, by name: the top-level
/// TCP server and the listed sources; the default store and the listed
/// sinks.
pub(crate) fn listed(plan: &Plan) -> (Listed, Listed) {
    // The HTTP API on a port of its own: on port 0 it would come back on
    // another port, so that one changes only with a restart.
    let http = (plan.http.iter())
        .filter(|h| h.listen.bind.port() != 0)
        .map(|h| ("http".to_string(), settings_of(h)));
    let tcp = (plan.tcp.iter()).map(|t| ("tcp".to_string(), settings_of(t)));
    let sources = http
        .chain(tcp)
        .chain(
            plan.sources
                .iter()
                .map(|p| (p.name.clone(), settings_of(&p.spec))),
        )
        .collect();
    let store = (plan.persistence.iter()).map(|p| ("persistence".to_string(), settings_of(p)));
    let sinks = store
        .chain(
            plan.sinks
                .iter()
                .map(|p| (p.name.clone(), settings_of(&p.spec))),
        )
        .collect();
    (sources, sinks)
}

/// What only a restart changes of a plan built into `graph`: the spec's
/// components less the restartable ones, and whether the default store is
/// on.
pub(crate) fn fixed_of(graph: &dav2d_core::Graph, plan: &Plan) -> String {
    let mut spec = crate::Spec::of_plan(graph, plan);
    let (sources, sinks) = listed(plan);
    let restartable: Vec<&str> = (sources.iter().chain(&sinks))
        .map(|(name, _)| name.as_str())
        .collect();
    spec.sources
        .retain(|c| !restartable.contains(&c.name.as_str()));
    spec.sinks
        .retain(|c| !restartable.contains(&c.name.as_str()));
    let store_on = spec.persistence.take().is_some();
    spec.metrics = crate::spec::MetricsSpec::default();
    format!("{} store={store_on}", spec.components_json())
}

impl Components {
    /// Brings the restartable sources and sinks (see [`listed`]) to what
    /// `plan` has: each one
    /// whose settings changed is stopped and started again, a new one
    /// started, one `plan` lacks stopped; the others are untouched. Returns
    /// a line per change (a start that failed says so: that component is
    /// then not running).
    pub(crate) fn restart_changed(&mut self, plan: &Plan) -> Vec<String> {
        let (sources, sinks) = listed(plan);
        // Sources stop first, so nothing more arrives from a dropped one;
        // sinks start before sources, as at start.
        let gone_sources = stop_changed(&mut self.sources, &sources, &self.starter);
        let gone_sinks = stop_changed(&mut self.sinks, &sinks, &self.starter);
        let mut changes = Vec::new();
        for (name, settings) in &sinks {
            if !self.sinks.iter().any(|s| s.name == *name) {
                let sink = match (&plan.persistence, name.as_str()) {
                    (Some(store), "persistence") => {
                        let sink = store.clone().build("persistence");
                        let sink = match &self.store_stats {
                            Some(stats) => sink.with_stats(Arc::clone(stats)),
                            None => sink,
                        };
                        Box::new(sink) as Box<dyn Sink>
                    }
                    _ => match plan.sinks.iter().find(|p| p.name == *name) {
                        Some(planned) => planned.spec.build(name),
                        None => continue,
                    },
                };
                let started = self.starter.start_sink(sink, Some(settings.clone()), true);
                let line = report("sink", name, &gone_sinks, &started);
                self.sinks.extend(started);
                changes.push(line);
            }
        }
        for (name, settings) in &sources {
            if !self.sources.iter().any(|s| s.name == *name) {
                let source: Box<dyn Source> = match (name.as_str(), &plan.http, &plan.tcp) {
                    ("http", Some(http), _) => Box::new(http.clone().build("http", "http.bind")),
                    ("tcp", _, Some(tcp)) => Box::new(tcp.clone().build("tcp", "tcp.bind")),
                    _ => match plan.sources.iter().find(|p| p.name == *name) {
                        Some(planned) => {
                            let setting = format!("{}.bind", planned.setting);
                            planned.spec.build(name, &setting)
                        }
                        None => continue,
                    },
                };
                let started = (self.starter).start_source(source, Some(settings.clone()), true);
                let line = report("source", name, &gone_sources, &started);
                self.sources.extend(started);
                changes.push(line);
            }
        }
        for (kind, gone, listed) in [
            ("source", gone_sources, sources),
            ("sink", gone_sinks, sinks),
        ] {
            for name in gone.iter().filter(|n| !listed.iter().any(|(l, _)| l == *n)) {
                changes.push(format!("{kind} {name}: stopped"));
            }
        }
        changes
    }
}

/// Stops the listed components of `running` that `wanted` changes or
/// lacks; their names.
fn stop_changed(running: &mut Vec<Started>, wanted: &Listed, starter: &Starter) -> Vec<String> {
    let stale = changed(running, wanted);
    for name in &stale {
        if let Some(at) = running.iter().position(|s| &s.name == name) {
            starter.stop(running.remove(at));
        }
    }
    stale
}

/// The change line of a component started again (or for the first time).
fn report(
    kind: &str,
    name: &str,
    stopped: &[String],
    started: &Result<Started, StartError>,
) -> String {
    match (started, stopped.iter().any(|n| n == name)) {
        (Ok(_), true) => format!("{kind} {name}: restarted with its new settings"),
        (Ok(_), false) => format!("{kind} {name}: started"),
        (Err(error), _) => format!("{kind} {name}: failed to start, not running: {error}"),
    }
}

/// The listed components of `running` that `wanted` changes or lacks.
fn changed(running: &[Started], wanted: &[(String, String)]) -> Vec<String> {
    (running.iter())
        .filter_map(|s| {
            let settings = s.settings.as_ref()?;
            let same = wanted.iter().any(|(n, w)| *n == s.name && w == settings);
            (!same).then(|| s.name.clone())
        })
        .collect()
}
