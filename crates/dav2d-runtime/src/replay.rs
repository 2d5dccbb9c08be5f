//! Replay and what-if: recorded samples pushed through a config's graph in
//! event time (the clock set to each sample's timestamp, so windows and
//! `for:` durations behave as they did live), every variant of the config's
//! parameters in one graph over shared input streams, in one pass over the
//! samples; each variant's constraints are counted: alerts raised and
//! cleared, time tripped, keys that ever tripped, first and last trip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use dav2d_core::{Graph, GraphOptions, ManualClock, Subscription, SubscriptionMode, Value};
use serde::Serialize;
use serde_saphyr::Spanned;

use crate::config::Config;

/// One recorded sample of an input stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// Its stream.
    pub stream: Arc<str>,
    /// Its key.
    pub key: Arc<str>,
    /// Its timestamp, ns since the epoch.
    pub ts_ns: i64,
    /// Its value.
    pub value: Value,
}

/// `--vary NAME.PARAM=V1,V2,...`: values to try for one parameter of a node
/// or constraint.
#[derive(Clone, Debug, PartialEq)]
pub struct Vary {
    /// The node or constraint.
    pub name: String,
    /// Its parameter (`trip`, `reset`, `for`, `stale_after`, `direction`, a
    /// built-in's `n`, `alpha`, ...).
    pub param: String,
    /// The values, as a config writes them.
    pub values: Vec<String>,
}

impl Vary {
    /// Reads `NAME.PARAM=V1,V2`.
    pub fn parse(text: &str) -> Result<Vary, String> {
        let (target, values) = text.split_once('=').ok_or_else(|| {
            format!("--vary {text}: write NAME.PARAM=V1,V2, e.g. overheat.trip=80,85,90")
        })?;
        let (name, param) = target.rsplit_once('.').ok_or_else(|| {
            format!("--vary {text}: name the parameter as NAME.PARAM, e.g. overheat.trip")
        })?;
        let values: Vec<String> = (values.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(format!("--vary {text}: give at least one value"));
        }
        Ok(Vary {
            name: name.to_string(),
            param: param.to_string(),
            values,
        })
    }
}

/// What one constraint did in a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Alerts {
    /// The constraint.
    pub constraint: String,
    /// Transitions to `tripped`.
    pub raised: u64,
    /// Transitions from `tripped` to `ok`.
    pub cleared: u64,
    /// Seconds keys spent tripped, summed over keys (up to the last sample).
    pub tripped_seconds: f64,
    /// Keys that tripped at least once.
    pub keys_tripped: BTreeSet<String>,
    /// The first trip, ns since the epoch.
    pub first_trip_ns: Option<i64>,
    /// The last trip, ns since the epoch.
    pub last_trip_ns: Option<i64>,
    /// Every transition, in time order: (key, new state, ns since the
    /// epoch). Not in the JSON report (`dav2d replay --out` writes it).
    #[serde(skip)]
    pub transitions: Vec<(String, String, i64)>,
}

impl Alerts {
    /// Counts a transition of `key` at `at_ns`.
    fn transition(&mut self, open: &mut BTreeMap<String, i64>, key: &str, to: &str, at_ns: i64) {
        (self.transitions).push((key.to_string(), to.to_string(), at_ns));
        if to == "tripped" {
            self.raised += 1;
            self.keys_tripped.insert(key.to_string());
            self.first_trip_ns.get_or_insert(at_ns);
            self.last_trip_ns = Some(at_ns);
            open.insert(key.to_string(), at_ns);
        } else if let Some(since) = open.remove(key) {
            if to == "ok" {
                self.cleared += 1;
            }
            self.tripped_seconds += (at_ns - since).max(0) as f64 / 1e9;
        }
    }

    /// The figures of a recorded constraint from its states per key in time
    /// order (`(key, ts, state)`), the way a replay counts them.
    pub fn from_states(constraint: &str, states: &[(String, i64, String)], end_ns: i64) -> Alerts {
        let mut alerts = Alerts {
            constraint: constraint.to_string(),
            ..Alerts::default()
        };
        let (mut last, mut open) = (BTreeMap::new(), BTreeMap::new());
        for (key, ts, state) in states {
            let before = last.insert(key.clone(), state.clone());
            if before.as_deref().unwrap_or("ok") != state {
                alerts.transition(&mut open, key, state, *ts);
            }
        }
        alerts.close(open, end_ns);
        alerts
    }

    fn close(&mut self, open: BTreeMap<String, i64>, end_ns: i64) {
        for since in open.into_values() {
            self.tripped_seconds += (end_ns - since).max(0) as f64 / 1e9;
        }
    }
}

/// One variant's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantReport {
    /// What it set, e.g. `overheat.trip=85 overheat.for=5s` (`as configured`).
    pub label: String,
    /// Per constraint.
    pub alerts: Vec<Alerts>,
    /// Samples the graph refused (out of bounds, late, ...).
    pub rejected: u64,
}

/// Every combination of `varies` (one `as configured` when there is none).
pub fn combinations(varies: &[Vary]) -> Vec<Vec<(String, String, String)>> {
    let mut all: Vec<Vec<(String, String, String)>> = vec![Vec::new()];
    for vary in varies {
        all = (all.into_iter())
            .flat_map(|done| {
                vary.values.iter().map(move |value| {
                    let mut next = done.clone();
                    next.push((vary.name.clone(), vary.param.clone(), value.clone()));
                    next
                })
            })
            .collect();
    }
    all
}

/// Sets `param` of the node or constraint `name` in `config` to `value`.
fn set(config: &mut Config, name: &str, param: &str, value: &str) -> Result<(), String> {
    let spanned = |text: &str| {
        Spanned::new(
            text.to_string(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        )
    };
    let number = || -> Result<f64, String> {
        value
            .parse::<f64>()
            .map_err(|_| format!("--vary {name}.{param}={value}: {param} takes a number"))
    };
    if let Some(c) = config.constraints.iter_mut().find(|c| c.name.value == name) {
        match param {
            "trip" => c.trip = number()?,
            "reset" => c.reset = Some(number()?),
            "for" => c.hold = Some(spanned(value)),
            "stale_after" => c.stale_after = Some(spanned(value)),
            "direction" => c.direction = Some(spanned(value)),
            other => {
                return Err(format!(
                    "--vary {name}.{other}: a constraint varies trip, reset, for, stale_after or direction"
                ));
            }
        }
        return Ok(());
    }
    if let Some(n) = config.nodes.iter_mut().find(|n| n.name.value == name) {
        let x = number()?;
        match n.params.iter_mut().find(|(p, _)| p == param) {
            Some((_, v)) => v.value = x,
            None => n.params.push((
                param.to_string(),
                Spanned::new(
                    x,
                    serde_saphyr::Location::UNKNOWN,
                    serde_saphyr::Location::UNKNOWN,
                ),
            )),
        }
        return Ok(());
    }
    Err(format!(
        "--vary {name}.{param}: '{name}' is not a node or constraint of the config"
    ))
}

/// One variant's constraints as the replay watches them.
struct Watched {
    label: String,
    /// (subscription, figures so far, keys tripped since).
    constraints: Vec<(Subscription, Alerts, BTreeMap<String, i64>)>,
}

impl Watched {
    fn drain(&mut self) {
        for (subscription, alerts, open) in &mut self.constraints {
            while let Some(update) = subscription.try_next() {
                if let Some(t) = update.transition {
                    alerts.transition(open, &t.key, t.to.as_str(), t.at_ns);
                }
            }
        }
    }
}

/// Samples pushed between two drains of the constraints' subscriptions.
const DRAIN_EVERY: usize = 4096;

/// The nodes and constraints of `config` that differ between variants:
/// those `varied` names and those that read one (directly or not).
fn differing(config: &Config, varied: &BTreeSet<String>) -> BTreeSet<String> {
    let mut differing: BTreeSet<String> = varied.clone();
    loop {
        let more: Vec<String> = (config.nodes.iter())
            .filter(|n| n.inputs.iter().any(|i| differing.contains(&i.value)))
            .map(|n| n.name.value.clone())
            .chain(
                (config.constraints.iter())
                    .filter(|c| differing.contains(&c.input.value))
                    .map(|c| c.name.value.clone()),
            )
            .filter(|name| !differing.contains(name))
            .collect();
        if more.is_empty() {
            break;
        }
        differing.extend(more);
    }
    differing
}

/// Makes `config` one variant's copy: the nodes and constraints that
/// differ between variants ([`differing`]) are renamed `NAME@suffix`, with
/// the inputs that read them; the others are the same in every variant
/// and are dropped, so the first variant's serve all.
fn rename(config: &mut Config, suffix: &str, differing: &BTreeSet<String>) {
    config.nodes.retain(|n| differing.contains(&n.name.value));
    config
        .constraints
        .retain(|c| differing.contains(&c.name.value));
    let renamed = |name: &mut String| {
        if differing.contains(name.as_str()) {
            name.push_str(suffix);
        }
    };
    for node in &mut config.nodes {
        renamed(&mut node.name.value);
        for input in &mut node.inputs {
            renamed(&mut input.value);
        }
    }
    for constraint in &mut config.constraints {
        renamed(&mut constraint.name.value);
        renamed(&mut constraint.input.value);
    }
}

/// Replays `samples` (in timestamp order) through the config at `path`
/// (its text `text`), once per combination of `varies`, in one pass. The
/// variants share one graph: each one's nodes and constraints are copies
/// (named `NAME@i`; the first variant keeps the config's names) over the
/// same input streams, so a sample is pushed and windowed once and one wave
/// evaluates every variant.
pub fn replay(
    text: &str,
    path: &Path,
    samples: &[Recorded],
    varies: &[Vary],
) -> Result<Vec<VariantReport>, String> {
    replay_at(text, path, samples, varies, None)
}

/// [`replay`] at `speed` times the recorded pace (`None`: as fast as it
/// can): each sample waits until `(its time - the first's) / speed` of wall
/// time has passed since the start.
pub fn replay_at(
    text: &str,
    path: &Path,
    samples: &[Recorded],
    varies: &[Vary],
    speed: Option<f64>,
) -> Result<Vec<VariantReport>, String> {
    let start = samples.first().map_or(0, |s| s.ts_ns);
    let mut merged: Option<Config> = None;
    let mut variants: Vec<(String, Vec<String>)> = Vec::new();
    for (i, variant) in combinations(varies).into_iter().enumerate() {
        let mut config = Config::parse(text, path).map_err(|e| e.to_string())?;
        for (name, param, value) in &variant {
            set(&mut config, name, param, value)?;
        }
        let label = match variant.is_empty() {
            true => "as configured".to_string(),
            false => (variant.iter())
                .map(|(n, p, v)| format!("{n}.{p}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        // Each variant's own values are checked as the config would be.
        let mut alone = Graph::new(
            GraphOptions {
                auto_create_streams: false,
                ..GraphOptions::default()
            },
            Arc::new(ManualClock::new(start)),
        );
        Config::parse(text, path)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                for (name, param, value) in &variant {
                    set(&mut c, name, param, value)?;
                }
                c.build(&mut alone).map_err(|e| e.to_string())
            })
            .map_err(|e| format!("{label}: {e}"))?;
        // Each constraint under the name it has in this variant's copy.
        let varied = variant.iter().map(|(n, _, _)| n.clone()).collect();
        let differing = differing(&config, &varied);
        let constraints = (config.constraints.iter())
            .map(|c| match i > 0 && differing.contains(&c.name.value) {
                true => format!("{}@{i}", c.name.value),
                false => c.name.value.clone(),
            })
            .collect();
        if i > 0 {
            rename(&mut config, &format!("@{i}"), &differing);
        }
        variants.push((label, constraints));
        match &mut merged {
            None => merged = Some(config),
            Some(all) => {
                all.nodes.extend(config.nodes);
                all.constraints.extend(config.constraints);
            }
        }
    }
    let Some(config) = merged else {
        return Ok(Vec::new());
    };
    let clock = ManualClock::new(start);
    let options = GraphOptions {
        auto_create_streams: false,
        limits: dav2d_core::Limits::unbounded(),
        ..GraphOptions::default()
    };
    let mut graph = Graph::new(options, Arc::new(clock.clone()));
    config.build(&mut graph).map_err(|e| e.to_string())?;
    // Replay is not bounded by what a live run may hold: it holds what was recorded.
    graph.set_limits(dav2d_core::Limits::unbounded());
    let timers = config
        .constraints
        .iter()
        .any(|c| c.hold.is_some() || c.stale_after.is_some());
    let mut watched = Vec::new();
    for (label, names) in variants {
        let mut constraints = Vec::new();
        for name in names {
            let subscription = graph
                .subscribe(&name, SubscriptionMode::EveryChange, 1 << 16)
                .map_err(|e| e.to_string())?;
            let original = name.split('@').next().unwrap_or(&name).to_string();
            let alerts = Alerts {
                constraint: original,
                ..Alerts::default()
            };
            constraints.push((subscription, alerts, BTreeMap::new()));
        }
        watched.push(Watched { label, constraints });
    }
    // Constraint timers (`for:`, `stale_after`) are checked as the live
    // timer does, every `run.tick` of event time, and only where there are any.
    let tick_ns = config
        .tick()
        .map_or(50_000_000, |d| d.as_nanos().min(i64::MAX as u128) as i64);
    let mut next_tick = start;
    let mut rejected = 0;
    let mut last: Option<(Arc<str>, dav2d_core::StreamId)> = None;
    let mut since_drain = 0;
    let began = std::time::Instant::now();
    for sample in samples {
        if let Some(speed) = speed {
            let due = (sample.ts_ns - start).max(0) as f64 / 1e9 / speed;
            let due = std::time::Duration::from_secs_f64(due.min(1e9));
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        clock.set(sample.ts_ns);
        if timers && sample.ts_ns >= next_tick {
            next_tick = sample.ts_ns + tick_ns;
            graph.tick();
            // A tick may move many keys at once.
            since_drain = DRAIN_EVERY - 1;
        }
        // Samples of one stream come in runs: its id is looked up once a run.
        let stream = match &last {
            Some((name, id)) if Arc::ptr_eq(name, &sample.stream) || **name == *sample.stream => {
                Some(*id)
            }
            _ => {
                let id = graph.stream_id(&sample.stream);
                last = id.map(|id| (Arc::clone(&sample.stream), id));
                id
            }
        };
        let value = sample.value.clone();
        let pushed = match stream {
            Some(id) => graph.push_to(id, &sample.key, value, Some(sample.ts_ns)),
            // Refused with the engine's reason (an unknown stream).
            None => graph.push(&sample.stream, &sample.key, value, Some(sample.ts_ns)),
        };
        if pushed.is_err() {
            rejected += 1;
        }
        graph.run_wave();
        // A sample makes at most one update per constraint: the
        // subscriptions (1 << 16 each) are drained well before they fill,
        // and after every tick.
        since_drain += 1;
        if since_drain == DRAIN_EVERY {
            since_drain = 0;
            for variant in &mut watched {
                variant.drain();
            }
        }
    }
    let end = samples.last().map_or(start, |s| s.ts_ns);
    Ok(watched
        .into_iter()
        .map(|mut variant| {
            variant.drain();
            let alerts = (variant.constraints.into_iter())
                .map(|(_, mut alerts, open)| {
                    alerts.close(open, end);
                    alerts
                })
                .collect();
            VariantReport {
                label: variant.label,
                alerts,
                rejected,
            }
        })
        .collect())
}
