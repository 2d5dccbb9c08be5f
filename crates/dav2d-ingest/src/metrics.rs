//! Prometheus metrics: what the ingest edge counts (received, accepted,
//! rejected by reason and stage, bytes, parse time, queue depth, requests)
//! and, read at scrape time, the engine's counters (evaluations, conflated,
//! errors, cutoffs, waves, transitions).

use std::fmt;

use dav2d_core::SharedGraph;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels naming the transport (`http`, `tcp`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Transport {
    /// `http` or `tcp`.
    pub transport: String,
}

/// Labels of a rejection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rejected {
    /// A short reason label, e.g. `not_json`, `too_large`, `above_max`.
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

/// Every metric the ingest edge exposes.
pub struct Metrics {
    registry: Registry,
    /// Samples (records) received.
    pub received: Family<Transport, Counter>,
    /// Samples applied.
    pub accepted: Family<Transport, Counter>,
    /// Samples or requests rejected, by reason and stage.
    pub rejected: Family<Rejected, Counter>,
    /// Body bytes received (before decompression).
    pub bytes: Family<Transport, Counter>,
    /// Requests served, by endpoint and status.
    pub requests: Family<Request, Counter>,
    /// Time to parse a body, in seconds.
    pub parse_seconds: Histogram,
    /// Samples for `all`-edge streams admitted and not yet applied.
    pub queue_depth: Gauge,
    /// The per-transport counters, resolved once so the hot path neither
    /// allocates labels nor locks a family.
    http: TransportCounters,
    tcp: TransportCounters,
    /// `(endpoint, status)` counters resolved once for the ingest routes.
    ingest_ok: [(&'static str, Counter); 2],
}

/// The counters of one transport.
#[derive(Clone)]
pub struct TransportCounters {
    /// Samples received.
    pub received: Counter,
    /// Samples applied.
    pub accepted: Counter,
    /// Bytes received.
    pub bytes: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the metrics, reading engine counters from `graph` at each scrape.
    pub fn new(
        graph: SharedGraph,
        status: Vec<std::sync::Arc<dyn crate::server::StatusSource>>,
    ) -> Self {
        let mut registry = Registry::with_prefix("dav2d");
        let received = Family::<Transport, Counter>::default();
        let accepted = Family::<Transport, Counter>::default();
        let rejected = Family::<Rejected, Counter>::default();
        let bytes = Family::<Transport, Counter>::default();
        let requests = Family::<Request, Counter>::default();
        let parse_seconds = Histogram::new(exponential_buckets(1e-5, 4.0, 10));
        let queue_depth = Gauge::default();
        registry.register("samples_received", "Samples received", received.clone());
        registry.register(
            "samples_accepted",
            "Samples applied to the graph",
            accepted.clone(),
        );
        registry.register(
            "samples_rejected",
            "Samples or requests rejected, by reason and stage",
            rejected.clone(),
        );
        registry.register("received_bytes", "Body bytes received", bytes.clone());
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
        registry.register_collector(Box::new(GraphCollector { graph }));
        registry.register_collector(Box::new(StatusCollector { status }));
        let counters = |name: &str| {
            let labels = Transport {
                transport: name.to_string(),
            };
            TransportCounters {
                received: received.get_or_create(&labels).clone(),
                accepted: accepted.get_or_create(&labels).clone(),
                bytes: bytes.get_or_create(&labels).clone(),
            }
        };
        let (http, tcp) = (counters("http"), counters("tcp"));
        let ok = |endpoint: &'static str| {
            let labels = Request {
                endpoint: endpoint.to_string(),
                status: "200".to_string(),
            };
            (endpoint, requests.get_or_create(&labels).clone())
        };
        let ingest_ok = [ok("/upload"), ok("/ingest")];
        Self {
            http,
            tcp,
            ingest_ok,
            registry,
            received,
            accepted,
            rejected,
            bytes,
            requests,
            parse_seconds,
            queue_depth,
        }
    }

    /// Counts a rejection.
    pub fn reject(&self, reason: &str, stage: &str, count: u64) {
        self.rejected
            .get_or_create(&Rejected {
                reason: reason.to_string(),
                stage: stage.to_string(),
            })
            .inc_by(count);
    }

    /// The counters of `transport` (`http` or `tcp`).
    pub fn transport(&self, transport: &str) -> &TransportCounters {
        if transport == "tcp" {
            &self.tcp
        } else {
            &self.http
        }
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

/// Label for per-node engine counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

#[derive(Debug)]
struct StatusCollector {
    status: Vec<std::sync::Arc<dyn crate::server::StatusSource>>,
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        for source in &self.status {
            for (name, help, value) in source.gauges() {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(metric)?;
            }
        }
        Ok(())
    }
}

/// Reads one per-node counter.
type NodeCounter = fn(&dav2d_core::NodeInfo) -> u64;

#[derive(Debug)]
struct GraphCollector {
    graph: SharedGraph,
}

impl Collector for GraphCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let (stats, nodes) = {
            let graph = self.graph.lock();
            (graph.stats(), graph.nodes())
        };
        let counters = [
            ("evaluations", "Node evaluations run", stats.evaluations),
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
        let per_node: [(&str, &str, NodeCounter); 2] = [
            (
                "node_conflated",
                "Evaluations superseded before they ran, per node",
                |n| n.stats.conflated,
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
        Ok(())
    }
}
