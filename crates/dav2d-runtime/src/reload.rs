//! Hot reload: a new config (or a spec held as data) applied to a running
//! graph as a diff of specs.
//!
//! The new config is validated completely first (built into a scratch
//! graph, exactly as `dav2d check` does); an invalid one is refused whole,
//! with its located error, and the running graph is untouched. A valid one
//! is compared with what runs, spec against spec:
//! - nodes and constraints whose spec is unchanged keep everything;
//! - a built-in or constraint whose parameters changed (a threshold, a
//!   reset level, `for:`, alpha, `n`) is retuned in place, keeping its
//!   windows and alert states ([`dav2d_core::Graph::retune`]); its keys now
//!   across a new threshold transition once, with the cause `reload`;
//! - a node re-wired (its inputs, edge policy, time window, priority,
//!   deadband, or its logic for another kind) is changed in place, keeping
//!   its keys, readers and (staying a constraint) alert states
//!   ([`dav2d_core::Graph::rewire`]), and evaluated again at once;
//! - a new node or constraint is registered and evaluated from the windows
//!   its inputs already hold; a new stream is declared, and a changed one
//!   takes its new bounds, late policy and longer history in place;
//! - a node or constraint the new config lacks is retired
//!   ([`dav2d_core::Graph::retire`]): reading it says it was removed;
//! - then a listed source or sink (`sources:`, `sinks:`), the top-level
//!   HTTP API (on a port of its own) and TCP server, or the default store
//!   whose settings changed is restarted alone, a new one started and a dropped one stopped
//!   ([`crate::components`]); the others keep running; the metrics export
//!   the new values at once.
//!
//! What this does not change live is refused, naming it, and changes
//! nothing: an offloaded node's change, a node re-wired onto a node
//! evaluated after it (registered later, or added by the same reload), a
//! stream's type, the HTTP API while it listens on port 0, turning the
//! default store on or off, and the cluster. Those need a restart.

use dav2d_core::{CustomLogic, Graph, GraphOptions, NodeSpec, SystemClock};

use crate::plan::Plan;
use crate::spec::{NodeEntry, Spec};

/// What a reload applied: one line per change (empty when the new config
/// describes what already runs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// The spec version now running (1 at start, one more per reload that
    /// changed something).
    pub version: u64,
    /// The changes, e.g. `overheat: constraint(above trip=80 ...) -> constraint(above trip=85 ...)`.
    pub changes: Vec<String>,
}

/// What differs between two specs' nodes, or why it cannot be applied live.
enum Step {
    Declare(crate::spec::StreamSpec, String),
    Retune(String, String, String),
    Rewire(String, String),
    Add(String, String),
    Remove(String),
}

/// The steps from `old` to `new`, or what needs a restart.
fn diff(old: &Spec, new: &Spec) -> Result<Vec<Step>, String> {
    // A stream the new config no longer declares stays (it may hold
    // pushed data); a new one is declared; a changed one takes its new
    // bounds, late policy and longer history live (a shorter one keeps
    // what it holds: the rings only grow), while its type needs a restart.
    let mut steps = Vec::new();
    let mut refused = Vec::new();
    for stream in new.streams.iter().filter(|s| !old.streams.contains(s)) {
        match old.streams.iter().find(|o| o.name == stream.name) {
            None => steps.push(Step::Declare(stream.clone(), "added".to_string())),
            // `number` and `any` are also what a stream's readers make of an
            // undeclared type (a built-in reads numbers): either way is live.
            Some(before)
                if before.value_type != stream.value_type
                    && !(numeric_or_any(&before.value_type)
                        && numeric_or_any(&stream.value_type)) =>
            {
                refused.push(format!(
                    "'{}' from type {} to {}",
                    stream.name, before.value_type, stream.value_type
                ))
            }
            Some(before) => {
                let wanted = crate::spec::StreamSpec {
                    keep: stream.keep.max(before.keep),
                    ..stream.clone()
                };
                if wanted != *before {
                    let what = stream_changes(before, &wanted);
                    steps.push(Step::Declare(wanted, what));
                }
            }
        }
    }
    if !refused.is_empty() {
        return Err(format!(
            "the new config changes the streams {}; that changes only with a restart",
            refused.join(", ")
        ));
    }
    for entry in &new.nodes {
        match old.nodes.iter().position(|o| o.name == entry.name) {
            None => steps.push(Step::Add(entry.name.clone(), entry.logic.clone())),
            Some(at) if old.nodes[at] == *entry => {}
            Some(at)
                if same_wiring(&old.nodes[at], entry)
                    && retunable(&old.nodes[at])
                    && retunable(entry) =>
            {
                steps.push(Step::Retune(
                    entry.name.clone(),
                    old.nodes[at].logic.clone(),
                    entry.logic.clone(),
                ))
            }
            Some(at) => {
                rewirable(old, new, at, entry)?;
                let what = wiring_changes(&old.nodes[at], entry);
                steps.push(Step::Rewire(entry.name.clone(), what));
            }
        }
    }
    // Readers before what they read: the reverse of evaluation order.
    for gone in old.nodes.iter().rev() {
        if !new.nodes.iter().any(|n| n.name == gone.name) {
            steps.push(Step::Remove(gone.name.clone()));
        }
    }
    Ok(steps)
}

/// Whether a stream type is `number` or `any`.
fn numeric_or_any(value_type: &str) -> bool {
    matches!(value_type, "number" | "any")
}

/// What differs between two declarations of one stream, as a change line
/// says it.
fn stream_changes(before: &crate::spec::StreamSpec, after: &crate::spec::StreamSpec) -> String {
    let show = |x: Option<f64>| x.map_or("none".to_string(), |x| x.to_string());
    let mut parts = Vec::new();
    if before.value_type != after.value_type {
        parts.push(format!(
            "type {} -> {}",
            before.value_type, after.value_type
        ));
    }
    if before.min != after.min {
        parts.push(format!("min {} -> {}", show(before.min), show(after.min)));
    }
    if before.max != after.max {
        parts.push(format!("max {} -> {}", show(before.max), show(after.max)));
    }
    if before.finite_only != after.finite_only {
        parts.push(format!(
            "finite_only {} -> {}",
            before.finite_only, after.finite_only
        ));
    }
    if before.keep != after.keep {
        parts.push(format!("keep {} -> {}", before.keep, after.keep));
    }
    if (before.late.as_str(), before.allowed_lateness_seconds)
        != (after.late.as_str(), after.allowed_lateness_seconds)
    {
        parts.push(format!("late {} -> {}", before.late, after.late));
    }
    parts.join(", ")
}

/// Whether a node's parameters can be retuned in place: a built-in or a
/// constraint, not offloaded.
fn retunable(entry: &NodeEntry) -> bool {
    !entry.offload
        && (entry.kind == "constraint"
            || matches!(
                dav2d_core::builtin_from_description(&entry.logic),
                Ok(Some(_))
            ))
}

/// Whether the running node `old.nodes[at]` can become `entry` in place:
/// not offloaded, and every input an input stream or a node evaluated
/// before it (so no cycle can form and the evaluation order holds).
fn rewirable(old: &Spec, new: &Spec, at: usize, entry: &NodeEntry) -> Result<(), String> {
    if old.nodes[at].offload || entry.offload {
        return Err(format!(
            "'{}' is offloaded (or becomes so); changing an offloaded node needs a restart",
            entry.name
        ));
    }
    for input in &entry.inputs {
        let stream = (new.streams.iter().chain(&old.streams)).any(|s| s.name == input.name);
        let earlier = old.nodes[..at].iter().any(|n| n.name == input.name);
        if !stream && !earlier {
            return Err(format!(
                "'{}' would read '{}', which is evaluated after it (a node registered later, or one this reload adds); re-wiring onto it needs a restart",
                entry.name, input.name
            ));
        }
    }
    Ok(())
}

/// A node's logic without the time window the engine adds (` over 5s`).
fn bare_logic(logic: &str) -> &str {
    logic.split_once(" over ").map_or(logic, |(l, _)| l)
}

/// Whether `entry` is custom logic (a Python, frame or processor node) and
/// `running` runs the same logic: re-wiring it keeps the running object.
fn same_custom_logic(running: &NodeEntry, entry: &NodeEntry) -> bool {
    let custom = |e: &NodeEntry| {
        e.kind == "node" && matches!(dav2d_core::builtin_from_description(&e.logic), Ok(None))
    };
    custom(running) && custom(entry) && bare_logic(&running.logic) == bare_logic(&entry.logic)
}

/// What a re-wiring changes, as a change line says it.
fn wiring_changes(before: &NodeEntry, after: &NodeEntry) -> String {
    fn inputs(e: &NodeEntry) -> String {
        let one = |i: &crate::spec::InputEntry| match i.span_seconds {
            Some(span) => format!("{} ({span}s, {})", i.name, i.policy),
            None => format!("{} ({}, {})", i.name, i.window, i.policy),
        };
        e.inputs.iter().map(one).collect::<Vec<_>>().join(", ")
    }
    let show = |x: Option<f64>| x.map_or("none".to_string(), |x| x.to_string());
    let mut parts = Vec::new();
    let (was, is) = (bare_logic(&before.logic), bare_logic(&after.logic));
    if was != is {
        parts.push(format!("{was} -> {is}"));
    }
    if inputs(before) != inputs(after) {
        parts.push(format!("inputs {} -> {}", inputs(before), inputs(after)));
    }
    if before.priority != after.priority {
        parts.push(format!(
            "priority {} -> {}",
            before.priority, after.priority
        ));
    }
    if before.deadband != after.deadband {
        parts.push(format!(
            "deadband {} -> {}",
            show(before.deadband),
            show(after.deadband)
        ));
    }
    format!("re-wired: {}", parts.join(", "))
}

/// Whether two entries of one name differ at most in their logic's
/// parameters (and the window a built-in's `n` implies), over count
/// windows.
fn same_wiring(a: &NodeEntry, b: &NodeEntry) -> bool {
    fn wiring(e: &NodeEntry) -> (String, Vec<(String, String)>, i32, Option<u64>, bool) {
        let inputs = (e.inputs.iter())
            .map(|i| (i.name.clone(), i.policy.clone()))
            .collect();
        (
            e.kind.clone(),
            inputs,
            e.priority,
            e.deadband.map(f64::to_bits),
            e.offload,
        )
    }
    let counted = |e: &NodeEntry| e.inputs.iter().all(|i| i.span_seconds.is_none());
    wiring(a) == wiring(b) && counted(a) && counted(b)
}

/// Validates `plan` completely and applies it to `graph` as a diff against
/// what runs; `fixed` is what only a restart changes of the running plan
/// (`None`: the graph alone is compared). On an error nothing changed.
pub(crate) fn apply(
    graph: &mut Graph,
    plan: &Plan,
    fixed: Option<&str>,
    before_changing: impl FnOnce(),
) -> Result<Vec<String>, String> {
    let mut scratch = scratch_of(graph);
    plan.build(&mut scratch)
        .map_err(|error| error.to_string())?;
    if fixed.is_some_and(|old| old != crate::components::fixed_of(&scratch, plan)) {
        return Err(
            "the new config changes the HTTP API while it listens on port 0 (started again, it would come back on another port), turns the default store on or off, or changes the cluster; those change only with a restart (the HTTP API on a port of its own, the TCP server, the store's settings, the metrics and listed sources and sinks change live)"
                .to_string(),
        );
    }
    // Logic the spec cannot carry (Python, frame and processor nodes) comes
    // from the config that names it, made only when an added entry needs it
    // (a processor loads its model; the scratch build above checked them).
    let mut custom: Option<Vec<NodeSpec>> = None;
    apply_spec(
        graph,
        &Spec::of_graph(&scratch),
        before_changing,
        &mut |entry| {
            let specs = custom.get_or_insert_with(|| {
                (plan.graph.as_ref())
                    .and_then(|config| config.node_specs().ok())
                    .unwrap_or_default()
            });
            let at = specs.iter().position(|s| s.name == entry.name)?;
            match specs.swap_remove(at).logic {
                dav2d_core::LogicSpec::Custom(logic) => Some(logic),
                _ => None,
            }
        },
    )
}

/// A graph to validate a new spec in: the running one's options, with no
/// stream created by use.
fn scratch_of(graph: &Graph) -> Graph {
    let options = GraphOptions {
        auto_create_streams: false,
        ..graph.options().clone()
    };
    Graph::new(options, std::sync::Arc::new(SystemClock))
}

/// Validates `spec` (held as data: Python's `Graph.apply(graph.spec())`
/// edited) by building it whole, then applies it to `graph` as a diff. Its
/// entries that data cannot carry must be what already runs.
pub(crate) fn apply_data(
    graph: &mut Graph,
    spec: &Spec,
    before_changing: impl FnOnce(),
) -> Result<Vec<String>, String> {
    let running = Spec::of_graph(graph);
    let mut scratch = scratch_of(graph);
    spec.build(&mut scratch, &mut |entry| {
        (running.nodes.iter())
            .any(|r| r == entry || r.name == entry.name && same_custom_logic(r, entry))
            .then(|| Box::new(Running(entry.logic.clone())) as Box<dyn CustomLogic>)
    })
    .map_err(|error| format!("the spec does not build: {error}"))?;
    apply_spec(
        graph,
        &Spec::of_graph(&scratch),
        before_changing,
        &mut |_| None,
    )
}

/// Stands for logic that already runs while a spec is validated (never
/// evaluated; describes itself as the entry did).
struct Running(String);

impl CustomLogic for Running {
    fn evaluate_batch(&mut self, _node: &str, _batch: &mut [dav2d_core::Evaluation]) {}

    fn describe(&self) -> String {
        // The engine adds the time window again.
        bare_logic(&self.0).to_string()
    }
}

/// Applies the validated spec `new` to `graph` as a diff against what
/// runs; `custom` supplies the logic of added entries the spec cannot
/// carry. Everything is resolved before the first change, so on an error
/// nothing changed.
fn apply_spec(
    graph: &mut Graph,
    new: &Spec,
    before_changing: impl FnOnce(),
    custom: &mut crate::Resolve<'_>,
) -> Result<Vec<String>, String> {
    let old = Spec::of_graph(graph);
    let steps = diff(&old, new)?;
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let mut take = |name: &str| -> Result<NodeSpec, String> {
        let entry = (new.nodes.iter().find(|n| n.name == name))
            .ok_or_else(|| format!("'{name}' is not in the new spec"))?;
        entry
            .node_spec(custom)
            .map_err(|e| format!("'{name}' {}: {}", e.field, e.message))
    };
    let mut retunes = Vec::new();
    let mut rewires = Vec::new();
    let mut declared = Vec::new();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changes = Vec::new();
    for step in steps {
        match step {
            Step::Declare(stream, what) => {
                changes.push(format!("stream {}: {what}", stream.name));
                declared.push(stream);
            }
            Step::Remove(name) => {
                changes.push(format!("{name}: removed"));
                removed.push(name);
            }
            Step::Retune(name, before, after) => {
                retunes.push((name.clone(), take(&name)?));
                changes.push(format!("{name}: {before} -> {after}"));
            }
            Step::Rewire(name, what) => {
                let entry = (new.nodes.iter().find(|n| n.name == name))
                    .ok_or_else(|| format!("'{name}' is not in the new spec"))?;
                // Custom logic that did not change stays the object running.
                let keep =
                    (old.nodes.iter()).any(|r| r.name == name && same_custom_logic(r, entry));
                let spec = if keep {
                    let mut running = |e: &NodeEntry| {
                        Some(Box::new(Running(e.logic.clone())) as Box<dyn CustomLogic>)
                    };
                    entry
                        .node_spec(&mut running)
                        .map_err(|e| format!("'{name}' {}: {}", e.field, e.message))?
                } else {
                    take(&name)?
                };
                rewires.push((spec, keep));
                changes.push(format!("{name}: {what}"));
            }
            Step::Add(name, logic) => {
                added.push(take(&name)?);
                changes.push(format!("{name}: added ({logic})"));
            }
        }
    }
    // The new version is out before the first change, so the updates and
    // transitions the changes make come after it.
    before_changing();
    for stream in declared {
        stream.declare(graph).map_err(|e| e.to_string())?;
    }
    for (name, spec) in retunes {
        graph.retune(&name, spec.logic).map_err(|e| e.to_string())?;
    }
    for (spec, keep) in rewires {
        graph.rewire(spec, keep).map_err(|e| e.to_string())?;
    }
    // After the re-wiring, which may have left what goes.
    for name in removed {
        graph.retire(&name).map_err(|e| e.to_string())?;
    }

    if !added.is_empty() {
        graph.register_all(added).map_err(|e| e.to_string())?;
        graph.run_wave();
    }
    Ok(changes)
}

/// What applies a new plan to a running graph: a runtime's
/// [`crate::Runtime::reloader`], which a face that outlives a borrow of the
/// runtime (`POST /config`) can hold.
#[derive(Clone)]
pub struct Reloader {
    /// The runtime's components, which a reload may restart; `None`: the
    /// graph alone is compared (Python's `Graph.apply`: the components
    /// `serve()` started are not the config's).
    components: Option<crate::components::Shared>,
    graph: dav2d_core::SharedGraph,
    health: dav2d_component::HealthBoard,
    metrics: std::sync::Arc<dav2d_component::Metrics>,
}

impl crate::Runtime {
    /// What reloads this runtime's graph.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            components: self.components(),
            graph: self.graph().clone(),
            health: self.health().clone(),
            metrics: std::sync::Arc::clone(self.metrics()),
        }
    }

    /// Applies `plan` (the new config with the same overrides as at start)
    /// to the running graph; see [`Reloader::reload`].
    pub fn reload(&self, plan: &Plan) -> Result<Applied, String> {
        self.reloader().reload(plan)
    }
}

impl Reloader {
    /// What reloads `engine`'s graph (Python's `Graph.apply`).
    pub fn of_engine(engine: &crate::Engine) -> Reloader {
        Reloader {
            components: None,
            graph: engine.graph().clone(),
            health: engine.health().clone(),
            metrics: std::sync::Arc::clone(engine.metrics()),
        }
    }

    /// Plans `config` (as read, or why it could not be read) with
    /// `overrides` and reloads it: what every trigger does (the file on
    /// SIGHUP or `--watch`, `POST /config`, Python's `Graph.apply`). A config
    /// that does not read or plan is refused and counted like one that does
    /// not build.
    pub fn reload_config(
        &self,
        config: Result<crate::Config, String>,
        overrides: &crate::Overrides,
    ) -> Result<Applied, String> {
        let plan = config.and_then(|config| {
            Plan::new(config, overrides.clone()).map_err(|error| error.to_string())
        });
        match plan {
            Ok(plan) => self.reload(&plan),
            Err(error) => {
                self.refused(&error);
                Err(error)
            }
        }
    }

    /// Counts and logs a refused reload.
    fn refused(&self, error: &str) {
        self.count("refused");
        tracing::error!("The new config was refused; the running graph is unchanged: {error}");
    }

    fn count(&self, result: &str) {
        self.metrics
            .reloads
            .get_or_create(&dav2d_component::ReloadLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// Applies `plan` (the new config with the same overrides as at start)
    /// to the running graph: validated whole first, then applied as a diff
    /// (see the module's description). Counted in `dav2d_reloads_total`,
    /// logged with its changes, and the spec's version (in `/graph` and
    /// `/healthz`) goes up by one when something changed. On an error,
    /// nothing changed.
    pub fn reload(&self, plan: &Plan) -> Result<Applied, String> {
        let Some(components) = &self.components else {
            return self.applying(|graph, before_changing| {
                apply(&mut graph.lock(), plan, None, before_changing)
            });
        };
        self.applying(|graph, before_changing| {
            let mut components = components.lock().unwrap_or_else(|p| p.into_inner());
            let mut changes = {
                let mut graph = graph.lock();
                let changes = apply(&mut graph, plan, Some(&components.fixed), before_changing)?;
                let described = Spec::of_plan(&graph, plan).components_json();
                self.health.describe_components(described);
                changes
            };
            // Sources and sinks restart after the graph changed, so a sink
            // reads the names the new graph has.
            let mut restarted = components.restart_changed(plan);
            let exported = self.metrics.exported_values();
            if exported != plan.values {
                self.metrics.export_values(plan.values.clone());
                restarted.push(format!(
                    "metrics: values [{}] (at most {} keys) -> [{}] (at most {} keys)",
                    exported.names.join(", "),
                    exported.max_keys,
                    plan.values.names.join(", "),
                    plan.values.max_keys
                ));
            }
            if !restarted.is_empty() {
                before_changing();
            }
            changes.extend(restarted);
            Ok(changes)
        })
    }

    /// Applies `spec`, held as data (what `graph.spec()` returned, edited),
    /// to the running graph's streams, nodes and constraints: built whole
    /// first ([`Spec::build`]; an error names its field), then applied as a
    /// diff as [`Reloader::reload`] applies a config. Entries whose logic
    /// data cannot carry (Python, frame and processor nodes) may stay or go,
    /// not be added or changed. Reported and counted alike.
    pub fn reload_spec(&self, spec: Result<Spec, String>) -> Result<Applied, String> {
        match spec {
            Ok(spec) => self.applying(|graph, before_changing| {
                apply_data(&mut graph.lock(), &spec, before_changing)
            }),
            Err(error) => {
                self.refused(&error);
                Err(error)
            }
        }
    }

    /// Runs `change` on the locked graph with what raises the version before
    /// its first change, then counts, logs and records what it did.
    fn applying(
        &self,
        change: impl FnOnce(&dav2d_core::SharedGraph, &dyn Fn()) -> Result<Vec<String>, String>,
    ) -> Result<Applied, String> {
        let health = &self.health;
        let next = health.spec_version() + 1;
        let result = change(&self.graph, &|| health.set_spec_version(next));
        match result {
            Ok(changes) if changes.is_empty() => {
                self.count("unchanged");
                tracing::info!("Reloaded the config: nothing changed.");
                Ok(Applied {
                    version: health.spec_version(),
                    changes,
                })
            }
            Ok(changes) => {
                self.count("applied");
                let version = next;
                tracing::warn!(version, "Reloaded the config: {}.", changes.join("; "));
                // With persistence on, the store records which spec ran from when.
                if let Some(history) = health.history() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
                    if let Err(error) = history.note_reload(version, now, &changes) {
                        tracing::error!("{error}");
                    }
                }
                Ok(Applied { version, changes })
            }
            Err(error) => {
                self.refused(&error);
                Err(error)
            }
        }
    }
}
