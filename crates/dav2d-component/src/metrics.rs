//! Prometheus metrics: what every component counts under its `component`
//! and `kind` labels (received, accepted, rejected by reason and stage,
//! bytes), the intake's parse time and queue depth, HTTP requests, and, read
//! at scrape time, the engine's counters (evaluations, conflated, errors,
//! cutoffs, waves, transitions) and each component's health.

use std::fmt;
use std::sync::Arc;

use crate::health::HealthBoard;

use dav2d_core::{RejectReason, SharedGraph, Stage};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels naming a component.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    /// The component's name, e.g. `http`.
    pub component: String,
    /// Its kind, e.g. `http`.
    pub kind: String,
}

/// Labels of a rejection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rejected {
    /// The component that refused.
    pub component: String,
    /// Its kind.
    pub kind: String,
    /// The reason label, e.g. `not_json`, `too_large`, `above_max`.
    pub reason: String,
    /// Where: `transport` (whole request), `decode` (one record), `engine`.
    pub stage: String,
}

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    /// The route, e.g. `/upload`.
    pub endpoint: String,
    /// The HTTP status code.
    pub status: String,
}

/// Every metric the components share, plus the engine's counters and every
/// component's health gauges, read at scrape time.
pub struct Metrics {
    registry: Registry,
    received: Family<ComponentLabels, Counter>,
    accepted: Family<ComponentLabels, Counter>,
    bytes: Family<ComponentLabels, Counter>,
    rejected: Family<Rejected, Counter>,
    /// Requests served, by endpoint and status.
    pub requests: Family<Request, Counter>,
    /// Time to parse a body, in seconds.
    pub parse_seconds: Histogram,
    /// Samples for `all`-edge streams admitted and not yet applied.
    pub queue_depth: Gauge,
    /// Bytes of bodies in flight held against the body budget.
    pub body_budget_used: Gauge,
    /// Large bodies parsed while they were still arriving.
    pub parsed_while_arriving: Counter,
    /// Updates a slow event-stream client skipped.
    pub events_dropped: Counter,
    /// Hot reloads, by result (`applied`, `unchanged`, `refused`).
    pub reloads: Family<ReloadLabel, Counter>,
    /// `(endpoint, status)` counters resolved once for the ingest routes.
    ingest_ok: [(&'static str, Counter); 2],
    /// The names whose per-key values `/metrics` shows, and how many keys.
    values: Arc<std::sync::RwLock<ValueExport>>,
    /// Every component's counters, for [`Metrics::totals`].
    components: std::sync::Mutex<Vec<ComponentCounters>>,
    /// Every rejection counted, over all labels.
    rejected_total: Counter,
}

/// The sums over every component of `dav2d_samples_received_total`,
/// `dav2d_samples_accepted_total` and `dav2d_samples_rejected_total`: what
/// the terminal summary shows, so it and `/metrics` agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntakeTotals {
    /// Samples received.
    pub received: u64,
    /// Samples applied to the graph.
    pub accepted: u64,
    /// Samples or requests rejected.
    pub rejected: u64,
}

/// Which names' latest numeric values `/metrics` exports per key
/// (`dav2d_value{name,key}`), at most `max_keys` keys of each (the first in
/// key order; `dav2d_value_keys_left_out{name}` counts the rest), so the
/// cardinality stays what the operator chose.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueExport {
    /// Streams, nodes or constraints.
    pub names: Vec<String>,
    /// Keys per name, at most.
    pub max_keys: usize,
}

/// The counters of one component, resolved once so the hot path neither
/// allocates labels nor locks a family.
#[derive(Clone, Debug)]
pub struct ComponentCounters {
    /// The component's name.
    pub component: Arc<str>,
    /// Its kind.
    pub kind: &'static str,
    /// Samples received.
    pub received: Counter,
    /// Samples applied.
    pub accepted: Counter,
    /// Bytes received.
    pub bytes: Counter,
}

impl ComponentCounters {
    /// Counters that no registry reads, for an intake not yet labelled.
    pub fn unregistered() -> Self {
        Self {
            component: Arc::from("unlabelled"),
            kind: "unlabelled",
            received: Counter::default(),
            accepted: Counter::default(),
            bytes: Counter::default(),
        }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// From now on `/metrics` exports the per-key values `export` names.
    pub fn export_values(&self, export: ValueExport) {
        *self.values.write().unwrap_or_else(|p| p.into_inner()) = export;
    }

    /// The per-key values `/metrics` exports now.
    pub fn exported_values(&self) -> ValueExport {
        self.values
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Creates the metrics, reading engine counters from `graph` and
    /// components' gauges and health from `health` at each scrape.
    pub fn new(graph: SharedGraph, health: HealthBoard) -> Self {
        let mut registry = Registry::with_prefix("dav2d");
        let received = Family::<ComponentLabels, Counter>::default();
        let accepted = Family::<ComponentLabels, Counter>::default();
        let rejected = Family::<Rejected, Counter>::default();
        let bytes = Family::<ComponentLabels, Counter>::default();
        let requests = Family::<Request, Counter>::default();
        let parse_seconds = Histogram::new(exponential_buckets(1e-5, 4.0, 10));
        let queue_depth = Gauge::default();
        let body_budget_used = Gauge::default();
        let parsed_while_arriving = Counter::default();
        let events_dropped = Counter::default();
        let reloads = Family::<ReloadLabel, Counter>::default();
        for result in ["applied", "unchanged", "refused"] {
            let _ = reloads.get_or_create(&ReloadLabel {
                result: result.to_string(),
            });
        }
        registry.register(
            "reloads",
            "Hot reloads of the config, by result (applied, unchanged, refused)",
            reloads.clone(),
        );
        registry.register(
            "samples_received",
            "Samples received, per component",
            received.clone(),
        );
        registry.register(
            "samples_accepted",
            "Samples applied to the graph, per component",
            accepted.clone(),
        );
        registry.register(
            "samples_rejected",
            "Samples or requests rejected, by component, reason and stage",
            rejected.clone(),
        );
        registry.register(
            "received_bytes",
            "Body bytes received, per component",
            bytes.clone(),
        );
        registry.register("requests", "HTTP requests served", requests.clone());
        registry.register(
            "parse_seconds",
            "Time to parse one body",
            parse_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Samples for all-edge streams admitted and not yet applied",
            queue_depth.clone(),
        );
        registry.register(
            "body_budget_used_bytes",
            "Bytes of bodies in flight (received, not yet applied) held against ingest.body_budget",
            body_budget_used.clone(),
        );
        registry.register(
            "bodies_parsed_while_arriving",
            "Large JSON bodies cut and parsed while they were still arriving",
            parsed_while_arriving.clone(),
        );
        registry.register(
            "events_dropped",
            "Updates a slow /events client skipped (it sees newer ones instead)",
            events_dropped.clone(),
        );
        let values = Arc::new(std::sync::RwLock::new(ValueExport::default()));
        registry.register_collector(Box::new(GraphCollector {
            graph,
            values: Arc::clone(&values),
        }));
        registry.register_collector(Box::new(HealthCollector { health }));
        let ok = |endpoint: &'static str| {
            let labels = Request {
                endpoint: endpoint.to_string(),
                status: "200".to_string(),
            };
            (endpoint, requests.get_or_create(&labels).clone())
        };
        let ingest_ok = [ok("/upload"), ok("/ingest")];
        Self {
            ingest_ok,
            registry,
            received,
            accepted,
            rejected,
            bytes,
            requests,
            parse_seconds,
            queue_depth,
            body_budget_used,
            parsed_while_arriving,
            events_dropped,
            reloads,
            values,
            components: std::sync::Mutex::new(Vec::new()),
            rejected_total: Counter::default(),
        }
    }

    /// The intake counters summed over every component.
    pub fn totals(&self) -> IntakeTotals {
        let components = self.components.lock().unwrap_or_else(|p| p.into_inner());
        IntakeTotals {
            received: components.iter().map(|c| c.received.get()).sum(),
            accepted: components.iter().map(|c| c.accepted.get()).sum(),
            rejected: self.rejected_total.get(),
        }
    }

    /// The counters of the component `name` of `kind`.
    pub fn component(&self, name: &str, kind: &'static str) -> ComponentCounters {
        let labels = ComponentLabels {
            component: name.to_string(),
            kind: kind.to_string(),
        };
        let counters = ComponentCounters {
            component: Arc::from(name),
            kind,
            received: self.received.get_or_create(&labels).clone(),
            accepted: self.accepted.get_or_create(&labels).clone(),
            bytes: self.bytes.get_or_create(&labels).clone(),
        };
        let mut components = self.components.lock().unwrap_or_else(|p| p.into_inner());
        // The family's series are shared: one entry per component.
        if !components
            .iter()
            .any(|c| *c.component == *name && c.kind == kind)
        {
            components.push(counters.clone());
        }
        counters
    }

    /// Counts `count` rejections by `component` for `reason` at `stage`.
    pub fn reject(
        &self,
        component: &ComponentCounters,
        reason: RejectReason,
        stage: Stage,
        count: u64,
    ) {
        self.rejected
            .get_or_create(&Rejected {
                component: component.component.to_string(),
                kind: component.kind.to_string(),
                reason: reason.as_str().to_string(),
                stage: stage.as_str().to_string(),
            })
            .inc_by(count);
        self.rejected_total.inc_by(count);
    }

    /// Counts a served request.
    pub fn request(&self, endpoint: &str, status: u16) {
        if status == 200
            && let Some((_, counter)) = self.ingest_ok.iter().find(|(e, _)| *e == endpoint)
        {
            counter.inc();
            return;
        }
        self.requests
            .get_or_create(&Request {
                endpoint: endpoint.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// The label of `dav2d_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    /// `applied`, `unchanged` or `refused`.
    pub result: String,
}

/// The states a constraint's key can be in.
const CONSTRAINT_STATES: [&str; 3] = ["ok", "tripped", "stale"];

/// Labels of the exported per-key values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ValueLabel {
    name: String,
    key: String,
}

/// Labels of an exported constraint key's state (one series per state).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyStateLabel {
    constraint: String,
    key: String,
    state: String,
}

/// The label of a per-name gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

/// Labels of the per-constraint state gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConstraintLabel {
    constraint: String,
    state: String,
}

/// Label for per-node engine counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

/// A gauge's name, help and one value per component.
type GaugeFamily = (&'static str, &'static str, Vec<(ComponentLabels, i64)>);

#[derive(Debug)]
struct HealthCollector {
    health: HealthBoard,
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        // One family per gauge name, a series per component: two broker
        // clients both report `broker_connected`, and a family may be
        // described only once.
        let mut families: Vec<GaugeFamily> = Vec::new();
        for (component, kind, gauge) in self.health.gauges() {
            let labels = ComponentLabels {
                component,
                kind: kind.to_string(),
            };
            match families.iter_mut().find(|(name, ..)| *name == gauge.name) {
                Some((.., series)) => series.push((labels, gauge.value)),
                None => families.push((gauge.name, gauge.help, vec![(labels, gauge.value)])),
            }
        }
        for (name, help, series) in families {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (labels, value) in series {
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "component_up",
            "1 while a component works, 0 while it is degraded",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for report in self.health.reports() {
            let labels = ComponentLabels {
                component: report.component,
                kind: report.kind.to_string(),
            };
            ConstGauge::new(i64::from(report.status.is_ok()))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Reads one per-node counter.
type NodeCounter = fn(&dav2d_core::NodeInfo) -> u64;

#[derive(Debug)]
struct GraphCollector {
    graph: SharedGraph,
    values: Arc<std::sync::RwLock<ValueExport>>,
}

impl Collector for GraphCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        // The published counters: a scrape never waits for the engine.
        let reads = self.graph.reads();
        let (stats, nodes) = (reads.stats(), reads.nodes());
        let counters = [
            ("evaluations", "Node evaluations run", stats.evaluations),
            (
                "late",
                "Samples older than their key's latest (inserted into windows or refused)",
                stats.late,
            ),
            (
                "conflated",
                "Evaluations superseded by newer samples before they ran",
                stats.conflated,
            ),
            ("node_errors", "Node evaluations that failed", stats.errors),
            (
                "cutoffs",
                "Evaluations whose unchanged output woke nothing",
                stats.cutoffs,
            ),
            ("waves", "Waves run", stats.waves),
            (
                "transitions",
                "Constraint state transitions",
                stats.transitions,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        for (name, help, value) in [
            ("keys", "Distinct keys seen", stats.keys as i64),
            (
                "streams",
                "Streams, including node outputs",
                stats.streams as i64,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let per_node: [(&str, &str, NodeCounter); 3] = [
            (
                "node_conflated",
                "Evaluations superseded before they ran, per node",
                |n| n.stats.conflated,
            ),
            (
                "node_window_overflow",
                "Evaluations whose time window held more than max_samples (the oldest left out), per node",
                |n| n.stats.window_overflow,
            ),
            ("node_evaluations", "Evaluations run, per node", |n| {
                n.stats.evaluations
            }),
        ];
        for (name, help, value) in per_node {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for node in &nodes {
                let label = NodeLabel {
                    node: node.name.clone(),
                };
                ConstCounter::new(value(node)).encode(family.encode_family(&label)?)?;
            }
        }
        let mut lag = encoder.encode_descriptor(
            "node_lag_seconds",
            "How long a node's output has been behind its inputs (offloaded nodes; 0 when caught up)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for node in &nodes {
            let label = NodeLabel {
                node: node.name.clone(),
            };
            ConstGauge::new(node.lag_ns as f64 / 1e9).encode(lag.encode_family(&label)?)?;
        }
        // Keys per constraint state, for Grafana panels and alert rules
        // (`dav2d_constraint_keys{constraint="overheat",state="tripped"}`).
        let mut keys = encoder.encode_descriptor(
            "constraint_keys",
            "Keys of a constraint in each state now (ok, tripped, stale)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for node in nodes
            .iter()
            .filter(|n| n.kind == dav2d_core::NodeKind::Constraint)
        {
            let counts = reads.count_states(&node.name).unwrap_or_default();
            for state in CONSTRAINT_STATES {
                let n = counts
                    .iter()
                    .find(|(value, _)| &**value == state)
                    .map_or(0, |(_, n)| *n);
                let label = ConstraintLabel {
                    constraint: node.name.clone(),
                    state: state.to_string(),
                };
                ConstGauge::new(n.min(i64::MAX as u64) as i64)
                    .encode(keys.encode_family(&label)?)?;
            }
        }
        let export = self
            .values
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if export.names.is_empty() {
            return Ok(());
        }
        let mut pages = Vec::new();
        for name in &export.names {
            if let Ok(page) = reads.latest_page(name, None, export.max_keys.max(1), 16 << 20) {
                pages.push((name, page));
            }
        }
        let mut family = encoder.encode_descriptor(
            "value",
            "The latest numeric value of a key of an exported name (metrics.values)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        // A constraint's keys hold states, not numbers: exported as an enum
        // is in Prometheus, one series per state, 1 for the state it is in.
        let mut states = Vec::new();
        for (name, page) in &pages {
            for (key, reading) in &page.keys {
                if let Some(dav2d_core::Value::Str(state)) =
                    reading.sample.as_ref().map(|s| &s.value)
                    && CONSTRAINT_STATES.contains(&&**state)
                {
                    states.push((name, key, state.clone()));
                    continue;
                }
                let Some(value) = reading.sample.as_ref().and_then(|s| s.value.as_f64()) else {
                    continue;
                };
                let label = ValueLabel {
                    name: name.to_string(),
                    key: key.to_string(),
                };
                ConstGauge::new(value).encode(family.encode_family(&label)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "constraint_state",
            "The state of a key of an exported constraint (metrics.values): 1 for the state it is in, 0 for the others",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (name, key, now) in &states {
            for state in CONSTRAINT_STATES {
                let label = KeyStateLabel {
                    constraint: name.to_string(),
                    key: key.to_string(),
                    state: state.to_string(),
                };
                ConstGauge::new(i64::from(**now == *state))
                    .encode(family.encode_family(&label)?)?;
            }
        }
        let mut left_out = encoder.encode_descriptor(
            "value_keys_left_out",
            "Keys of an exported name past metrics.max_keys, not exported",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (name, page) in &pages {
            let total = reads.count_keys(name).unwrap_or(page.keys.len());
            let label = NameLabel {
                name: name.to_string(),
            };
            ConstGauge::new(total.saturating_sub(page.keys.len()) as i64)
                .encode(left_out.encode_family(&label)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dav2d_core::{
        ConstraintSpec, Graph, GraphOptions, NodeSpec, SharedGraph, SystemClock, Value,
    };

    use super::Metrics;
    use crate::{BrokerHealth, HealthBoard};

    #[test]
    fn a_gauge_two_components_report_is_one_family_with_a_series_each() {
        let board = HealthBoard::default();
        let graph = SharedGraph::new(Graph::new(GraphOptions::default(), Arc::new(SystemClock)));
        let metrics = Metrics::new(graph, board.clone());
        let (one, two) = (
            Arc::new(BrokerHealth::default()),
            Arc::new(BrokerHealth::default()),
        );
        one.connected();
        board.pin("plant", "mqtt", one);
        board.pin("orders", "nats", two);
        let text = metrics.encode();
        assert_eq!(
            text.matches("# TYPE dav2d_broker_connected gauge").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("dav2d_broker_connected{component=\"plant\",kind=\"mqtt\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dav2d_broker_connected{component=\"orders\",kind=\"nats\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn metrics_count_each_constraints_keys_by_state_and_late_samples() {
        let graph = SharedGraph::new(Graph::new(GraphOptions::default(), Arc::new(SystemClock)));
        {
            let mut g = graph.lock();
            g.register(NodeSpec::constraint(
                "hot",
                "t",
                ConstraintSpec::above(50.0),
            ))
            .unwrap();
            for (key, value) in [("a", 60.0), ("b", 70.0), ("c", 10.0)] {
                g.push("t", key, Value::Float(value), Some(100)).unwrap();
            }
            assert!(g.push("t", "c", Value::Float(1.0), Some(50)).is_err());
            g.run_wave();
        }
        let text = Metrics::new(graph, HealthBoard::default()).encode();
        for line in [
            "dav2d_constraint_keys{constraint=\"hot\",state=\"tripped\"} 2",
            "dav2d_constraint_keys{constraint=\"hot\",state=\"ok\"} 1",
            "dav2d_constraint_keys{constraint=\"hot\",state=\"stale\"} 0",
            "dav2d_late_total 1",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
