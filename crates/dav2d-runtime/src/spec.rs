//! What a run is made of, as plain data: the streams, nodes and constraints
//! of the built graph and the sources, sinks, persistence, metrics and
//! cluster of the plan. `dav2d check` prints it (as text, or as data with
//! `--format json` or `--format yaml`), Python's `Graph.spec()` returns it, and two of them
//! compare with `==`.
//!
//! The spec is read back from what was built (the graph and the resolved
//! plan), never from the YAML text, so it shows what `run` would start.

use std::fmt;

use dav2d_core::{Graph, LatePolicy, NodeKind};
use serde::{Deserialize, Serialize};

pub use dav2d_component::section::ComponentSpec;

use crate::config::{SinkSetting, SourceSetting};
use crate::plan::Plan;

/// A whole deployment as data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Input streams (not node outputs).
    pub streams: Vec<StreamSpec>,
    /// Nodes and constraints, in evaluation order.
    pub nodes: Vec<NodeEntry>,
    /// Where samples come from (the HTTP API and TCP server first).
    pub sources: Vec<ComponentSpec>,
    /// Where results go (the default store first).
    pub sinks: Vec<ComponentSpec>,
    /// The default store, if on.
    pub persistence: Option<PersistenceSpec>,
    /// What `/metrics` exports per key.
    pub metrics: MetricsSpec,
    /// The cluster this instance joins, if any.
    pub cluster: Option<ClusterSpec>,
}

/// An input stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// Its name.
    pub name: String,
    /// The values it takes (`number`, `frame`, `any`, ...).
    #[serde(rename = "type")]
    pub value_type: String,
    /// Smallest valid value.
    pub min: Option<f64>,
    /// Largest valid value.
    pub max: Option<f64>,
    /// Whether NaN and infinities are refused.
    pub finite_only: bool,
    /// Samples kept per key.
    pub keep: usize,
    /// What a sample older than its key's latest does: `drop` or `insert`.
    #[serde(default = "drop")]
    pub late: String,
    /// With `late: insert`, how much older than the latest a sample may
    /// be, in seconds.
    #[serde(default)]
    pub allowed_lateness_seconds: Option<f64>,
}

fn drop() -> String {
    "drop".to_string()
}

/// A node or constraint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Its name (and its output's).
    pub name: String,
    /// `node` or `constraint`.
    pub kind: String,
    /// The logic with its parameters, e.g. `moving_average(n=5)`.
    pub logic: String,
    /// What it reads.
    pub inputs: Vec<InputEntry>,
    /// Higher runs first among independent nodes.
    pub priority: i32,
    /// Changes smaller than this wake no children.
    pub deadband: Option<f64>,
    /// Whether it runs on a worker, off the wave.
    pub offload: bool,
}

/// One input of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputEntry {
    /// The stream or node read.
    pub name: String,
    /// Samples the logic sees (at most, for a time window).
    pub window: usize,
    /// The time window's length in seconds, if it is one.
    pub span_seconds: Option<f64>,
    /// `latest` or `all`.
    pub policy: String,
}

/// The default store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersistenceSpec {
    /// Its directory.
    pub dir: String,
    /// How often logged updates are made durable, in seconds.
    pub flush_interval_seconds: f64,
    /// How often the whole state is checkpointed, in seconds.
    pub checkpoint_interval_seconds: f64,
    /// Raw input streams stored too.
    pub streams: Vec<String>,
    /// Names whose frames are stored with their pixels.
    pub pixels: Vec<String>,
}

/// Per-key values exported by `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSpec {
    /// The names exported.
    pub values: Vec<String>,
    /// Keys per name, at most.
    pub max_keys: usize,
}

/// The cluster joined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// The JetStream server.
    pub url: String,
    /// Partitions of the key space.
    pub partitions: u32,
    /// This instance's name.
    pub instance: String,
}

impl Spec {
    /// The streams and nodes of `graph` alone (Python's graph, or a run
    /// without components).
    pub fn of_graph(graph: &Graph) -> Spec {
        let streams = (graph.streams().into_iter())
            .filter(|s| s.producer.is_none())
            .map(|s| StreamSpec {
                name: s.name,
                value_type: s.value_type.as_str().to_string(),
                min: s.bounds.min,
                max: s.bounds.max,
                finite_only: s.bounds.finite_only,
                keep: s.capacity,
                late: match s.late {
                    LatePolicy::Drop => "drop",
                    LatePolicy::Insert { .. } => "insert",
                }
                .to_string(),
                allowed_lateness_seconds: match s.late {
                    LatePolicy::Insert { allowed_ns } => Some(allowed_ns as f64 / 1e9),
                    LatePolicy::Drop => None,
                },
            })
            .collect();
        let nodes = (graph.nodes().into_iter())
            .map(|n| NodeEntry {
                kind: match n.kind {
                    NodeKind::Constraint => "constraint",
                    _ => "node",
                }
                .to_string(),
                logic: n.logic,
                inputs: (n.inputs.into_iter())
                    .map(|i| InputEntry {
                        name: i.name,
                        window: i.window,
                        span_seconds: i.span_ns.map(|ns| ns as f64 / 1e9),
                        policy: i.policy.as_str().to_string(),
                    })
                    .collect(),
                priority: n.priority,
                deadband: n.deadband,
                offload: n.offload,
                name: n.name,
            })
            .collect();
        Spec {
            streams,
            nodes,
            ..Spec::default()
        }
    }

    /// What `plan` starts over `graph` (which the plan's config was built
    /// into).
    pub fn of_plan(graph: &Graph, plan: &Plan) -> Spec {
        let mut spec = Spec::of_graph(graph);
        if let Some(cluster) = &plan.cluster {
            // The user of a URL login shows, never its password.
            let (bare, login) = dav2d_component::section::split_login(&cluster.url);
            let url = match login {
                Some(login) => bare.replacen("://", &format!("://{}@", login.user), 1),
                None => bare,
            };
            spec.cluster = Some(ClusterSpec {
                url,
                partitions: cluster.partitions,
                instance: cluster.instance.clone(),
            });
        }
        // The top-level listeners and store are described as the listed
        // ones of their kinds are.
        if let Some(http) = &plan.http {
            spec.sources.push(http.describe("http"));
        }
        if let Some(tcp) = &plan.tcp {
            spec.sources.push(tcp.describe("tcp"));
        }
        for planned in &plan.sources {
            spec.sources.push(planned.spec.describe(&planned.name));
        }
        if let Some(p) = &plan.persistence {
            spec.sinks.push(p.describe("persistence"));
            spec.persistence = Some(PersistenceSpec {
                dir: p.dir.display().to_string(),
                flush_interval_seconds: p.flush_interval.as_secs_f64(),
                checkpoint_interval_seconds: p.checkpoint_interval.as_secs_f64(),
                streams: p.streams.clone(),
                pixels: p.store.pixels.clone(),
            });
        }
        for planned in &plan.sinks {
            spec.sinks.push(planned.spec.describe(&planned.name));
        }
        spec.metrics = MetricsSpec {
            values: plan.values.names.clone(),
            max_keys: plan.values.max_keys,
        };
        spec
    }

    /// The components alone (`sources`, `sinks`, `persistence`,
    /// `metrics`, `cluster`) as a JSON object: what `/graph` serves beside
    /// the live streams and nodes.
    pub fn components_json(&self) -> String {
        serde_json::json!({
            "sources": self.sources, "sinks": self.sinks, "persistence": self.persistence,
            "metrics": self.metrics, "cluster": self.cluster,
        })
        .to_string()
    }

    /// The spec as YAML (the same data as [`Spec::to_json`]).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("error: {e}\n"))
    }

    /// The spec in `text`, JSON as [`Spec::to_json`] writes it (Python's
    /// `Graph.spec()` edited), or what in it is not a spec.
    pub fn from_json(text: &str) -> Result<Spec, String> {
        serde_json::from_str(text).map_err(|error| {
            format!("the spec is not one: {error}; give what graph.spec() returns, edited")
        })
    }

    /// The spec as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl fmt::Display for Spec {
    /// The listing `dav2d check` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "streams:")?;
        for s in &self.streams {
            let mut bounds = Vec::new();
            if let Some(min) = s.min {
                bounds.push(format!("min={min}"));
            }
            if let Some(max) = s.max {
                bounds.push(format!("max={max}"));
            }
            if s.finite_only {
                bounds.push("finite only".to_string());
            }
            if s.late == "insert" {
                bounds.push(format!(
                    "late samples inserted within {}s",
                    s.allowed_lateness_seconds.unwrap_or(0.0)
                ));
            }
            writeln!(
                f,
                "  {} {} [{}] history {}",
                s.name,
                s.value_type,
                bounds.join(", "),
                s.keep
            )?;
        }
        writeln!(f, "nodes (evaluation order):")?;
        for n in &self.nodes {
            let inputs: Vec<String> = (n.inputs.iter())
                .map(|i| match i.span_seconds {
                    Some(seconds) => format!(
                        "{}[last {} (at most {} samples), {}]",
                        i.name,
                        humantime::format_duration(std::time::Duration::from_secs_f64(seconds)),
                        i.window,
                        i.policy
                    ),
                    None => format!("{}[window {}, {}]", i.name, i.window, i.policy),
                })
                .collect();
            let mut extra = String::new();
            if n.priority != 0 {
                extra.push_str(&format!(" priority {}", n.priority));
            }
            if let Some(deadband) = n.deadband {
                extra.push_str(&format!(" deadband {deadband}"));
            }
            if n.offload {
                extra.push_str(" offloaded");
            }
            writeln!(
                f,
                "  {} = {} <- {}{extra}",
                n.name,
                n.logic,
                inputs.join(", ")
            )?;
        }
        let list = |f: &mut fmt::Formatter<'_>, title: &str, items: &[ComponentSpec], arrow| {
            writeln!(f, "{title}:")?;
            if items.is_empty() {
                writeln!(f, "  (none)")?;
            }
            for c in items {
                let mut line = format!("  {} ({})", c.name, c.kind);
                if !c.address.is_empty() {
                    line.push_str(&format!(" {}", c.address));
                }
                match c.token {
                    Some(true) => line.push_str(", token required"),
                    Some(false) => line.push_str(", no token"),
                    None => {}
                }
                if !c.names.is_empty() {
                    line.push_str(&format!(" {arrow} {}", c.names.join(", ")));
                }
                writeln!(f, "{line}")?;
            }
            Ok(())
        };
        list(f, "sources", &self.sources, "->")?;
        // The doors anyone who reaches them may use.
        let open: Vec<String> = (self.sources.iter())
            .filter(|c| c.token == Some(false))
            .map(|c| format!("{} ({})", c.name, c.address))
            .collect();
        if !open.is_empty() {
            writeln!(f, "open without a token: {}", open.join(", "))?;
        }
        list(f, "sinks", &self.sinks, "<-")?;
        match &self.persistence {
            Some(p) => {
                write!(
                    f,
                    "persistence: {} (flush every {}s, checkpoint every {}s",
                    p.dir, p.flush_interval_seconds, p.checkpoint_interval_seconds
                )?;
                if !p.streams.is_empty() {
                    write!(f, ", raw streams {}", p.streams.join(", "))?;
                }
                if !p.pixels.is_empty() {
                    write!(f, ", pixels of {}", p.pixels.join(", "))?;
                }
                writeln!(f, ")")?;
            }
            None => writeln!(f, "persistence: off")?,
        }
        match self.metrics.values.is_empty() {
            true => writeln!(f, "metrics: counters only")?,
            false => writeln!(
                f,
                "metrics: counters, and per-key values of {} (at most {} keys each)",
                self.metrics.values.join(", "),
                self.metrics.max_keys
            )?,
        }
        if let Some(c) = &self.cluster {
            writeln!(
                f,
                "cluster: {} as {} ({} partitions)",
                c.url, c.instance, c.partitions
            )?;
        }
        Ok(())
    }
}
