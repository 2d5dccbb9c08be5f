//! The live terminal summary of `dav2d run` (`dav2d check`'s listing is
//! `dav2d_runtime::Spec`'s `Display`).
//!
//! On a terminal the summary redraws in place with ANSI escapes; otherwise
//! (a pipe, a log file, CI) it prints one plain line per refresh.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

use dav2d_core::{
    ConstraintState, Graph, GraphStats, NodeInfo, NodeKind, Reading, SharedGraph, Value,
};

use dav2d_runtime::{IntakeTotals, Metrics, Runtime};

/// What one refresh shows.
struct Tally {
    at: Instant,
    stats: GraphStats,
    /// Samples received, accepted and rejected by every component: the
    /// sums of the `/metrics` counters, so the two agree.
    intake: IntakeTotals,
    nodes: Vec<NodeInfo>,
    alerts: Vec<(String, Vec<String>, Vec<String>)>,
    samples: Vec<(String, String)>,
}

fn capture(graph: &Graph, intake: IntakeTotals) -> Tally {
    let nodes = graph.nodes();
    let alerts = nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Constraint)
        .map(|n| {
            let keys = |state| {
                let mut keys: Vec<String> = graph
                    .constraint_keys_in(&n.name, state)
                    .unwrap_or_default()
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                keys.sort();
                keys
            };
            (
                n.name.clone(),
                keys(ConstraintState::Tripped),
                keys(ConstraintState::Stale),
            )
        })
        .collect();
    // Show each node's worst key: a failing one, else for a constraint the
    // most recently tripped (then stale) key, else the highest value.
    let samples = nodes
        .iter()
        .map(|n| {
            let shown = graph
                .latest_all(&n.name)
                .ok()
                .and_then(|all| {
                    all.into_iter()
                        .max_by(|a, b| worst_first(&a.1, &b.1).then(b.0.cmp(&a.0)))
                })
                .map(|(key, tally)| match (tally.error, tally.sample) {
                    (Some(error), _) => {
                        format!("{key}: error: {}", error.lines().last().unwrap_or(""))
                    }
                    (None, Some(sample)) => match sample.value.as_f64() {
                        Some(v) if n.kind != NodeKind::Constraint => format!("{key}: {v:.2}"),
                        _ => format!("{key}: {}", sample.value),
                    },
                    (None, None) => format!("{key}: -"),
                })
                .unwrap_or_else(|| "-".to_string());
            (n.name.clone(), shown)
        })
        .collect();
    Tally {
        at: Instant::now(),
        stats: graph.stats(),
        intake,
        nodes,
        alerts,
        samples,
    }
}

/// How bad a key's reading is, for picking the one the summary shows: a
/// failing key, then a tripped one, then a stale one (the most recent of
/// each first), then the highest number.
fn worst_first(a: &Reading, b: &Reading) -> std::cmp::Ordering {
    let rank = |r: &Reading| -> (u8, f64) {
        let sample = r.sample.as_ref();
        let ts = sample.map_or(0.0, |s| s.ts_ns as f64);
        if r.error.is_some() {
            return (4, ts);
        }
        match sample.map(|s| &s.value) {
            Some(Value::Str(state)) if &**state == "tripped" => (3, ts),
            Some(Value::Str(state)) if &**state == "stale" => (2, ts),
            Some(value) => (
                1,
                value.as_f64().filter(|v| !v.is_nan()).unwrap_or(f64::MIN),
            ),
            None => (0, 0.0),
        }
    };
    let (a, b) = (rank(a), rank(b));
    a.0.cmp(&b.0).then(a.1.total_cmp(&b.1))
}

/// The terminal the summary draws on.
pub struct Screen {
    interactive: bool,
    title: String,
    started: Instant,
    previous: Option<Tally>,
    drawn: bool,
}

/// The narrowest screen the summary lays out for (narrower wraps).
const MIN_WIDTH: usize = 72;
/// The node column's width.
const NAME: usize = 14;
/// Room the `latest` column keeps before the logic column grows.
const LATEST_MIN: usize = 16;

/// The terminal's width in columns (80 when it cannot be told).
fn terminal_width() -> usize {
    match console::Term::stdout().size_checked() {
        Some((_, columns)) if columns > 0 => columns as usize,
        _ => 80,
    }
}

/// `text` cut to `width` characters, ending in `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The words of the screen, at its foot (the README's glossary says more).
const HELP: &str = "wave: one evaluation round   conflated: superseded before it was read\n\
cutoff: output unchanged, children not woken   stale: no sample in stale_after";

impl Screen {
    /// A screen; `interactive` redraws in place.
    pub fn new(interactive: bool, title: String) -> Self {
        Self {
            interactive,
            title,
            started: Instant::now(),
            previous: None,
            drawn: false,
        }
    }

    /// Draws one refresh.
    pub fn draw(&mut self, runtime: &Runtime) {
        let intake = runtime.metrics().totals();
        let tally = capture(&runtime.graph().lock(), intake);
        let text = if self.interactive {
            format!(
                "{}\n{}\n",
                self.render_full(&tally, terminal_width()),
                Self::persisted(runtime)
            )
        } else {
            format!("{} {}", self.render_line(&tally), Self::persisted(runtime))
        };
        let mut out = std::io::stdout().lock();
        let result = if self.interactive {
            let home = if self.drawn {
                "\x1b[H\x1b[J"
            } else {
                "\x1b[2J\x1b[H"
            };
            write!(out, "{home}{text}")
        } else {
            writeln!(out, "{text}")
        };
        // A closed stdout (e.g. `| head`) must not kill the engine.
        let _ = result.and_then(|()| out.flush());
        self.drawn = true;
        self.previous = Some(tally);
    }

    /// Prints the final totals (after the runtime stopped, so they include
    /// the last drain).
    pub fn finish(&mut self, graph: &SharedGraph, metrics: &Metrics) {
        let stats = graph.lock().stats();
        let intake = metrics.totals();
        println!(
            "stopped after {:.1}s: {} samples in, {} rejected, {} evaluations, {} conflated, {} errors, {} alert transitions",
            self.started.elapsed().as_secs_f64(),
            intake.received,
            intake.rejected,
            stats.evaluations,
            stats.conflated,
            stats.errors,
            stats.transitions
        );
    }

    fn per_second(&self, tally: &Tally, pick: impl Fn(&Tally) -> u64) -> f64 {
        match &self.previous {
            Some(previous) => {
                let seconds = tally.at.duration_since(previous.at).as_secs_f64().max(1e-3);
                pick(tally).saturating_sub(pick(previous)) as f64 / seconds
            }
            None => 0.0,
        }
    }

    fn node_rate(&self, tally: &Tally, node: &NodeInfo) -> f64 {
        let Some(previous) = &self.previous else {
            return 0.0;
        };
        let before = previous
            .nodes
            .iter()
            .find(|n| n.name == node.name)
            .map_or(0, |n| n.stats.evaluations);
        let seconds = tally.at.duration_since(previous.at).as_secs_f64().max(1e-3);
        node.stats.evaluations.saturating_sub(before) as f64 / seconds
    }

    fn persisted(runtime: &Runtime) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(p) = runtime.persistence() else {
            return "persistence off".to_string();
        };
        let problem = p
            .problem()
            .map_or_else(String::new, |problem| format!(" DEGRADED: {problem}"));
        format!(
            "persisted={} checkpoints={} file_actions_today={}/{} flush_every={:.1}s{problem}",
            p.flushed.load(Relaxed),
            p.checkpoints.load(Relaxed),
            p.file_actions_today.load(Relaxed),
            p.budget.load(Relaxed),
            p.flush_interval_ns.load(Relaxed) as f64 / 1e9,
        )
    }

    fn render_line(&self, tally: &Tally) -> String {
        let alerts: String = tally
            .alerts
            .iter()
            .map(|(name, tripped, stale)| {
                format!(" {name}: tripped={} stale={}", tripped.len(), stale.len())
            })
            .collect();
        format!(
            "t={:.1}s samples={} ({:.0}/s) evaluations={} ({:.0}/s) conflated={} rejected={} errors={}{alerts}",
            self.started.elapsed().as_secs_f64(),
            tally.intake.received,
            self.per_second(tally, |t| t.intake.received),
            tally.stats.evaluations,
            self.per_second(tally, |t| t.stats.evaluations),
            tally.stats.conflated,
            tally.intake.rejected,
            tally.stats.errors,
        )
    }

    fn render_full(&self, tally: &Tally, width: usize) -> String {
        let width = width.max(MIN_WIDTH);
        let s = &tally.stats;
        let mut text = String::new();
        // The title wraps at its `; ` parts rather than running off the edge.
        let title = format!(
            "dav2d: {} (up {:.0}s, Ctrl-C to stop)",
            self.title,
            self.started.elapsed().as_secs_f64()
        );
        let mut line = String::new();
        for part in title.split("; ") {
            if !line.is_empty() && line.chars().count() + 2 + part.chars().count() > width {
                let _ = writeln!(text, "{line};");
                line = format!("  {part}");
            } else if line.is_empty() {
                line = part.to_string();
            } else {
                line = format!("{line}; {part}");
            }
        }
        let _ = writeln!(text, "{line}\n");
        let _ = writeln!(
            text,
            "samples     {:>12} in  {:>9.0}/s  rejected {:>8}  keys {}",
            tally.intake.received,
            self.per_second(tally, |t| t.intake.received),
            tally.intake.rejected,
            s.keys
        );
        let _ = writeln!(
            text,
            "evaluations {:>12}     {:>9.0}/s  conflated {:>7}  errors {}",
            s.evaluations,
            self.per_second(tally, |t| t.stats.evaluations),
            s.conflated,
            s.errors
        );
        let _ = writeln!(
            text,
            "waves       {:>12}     {:>9.0}/s  cutoffs {:>7}  transitions {}\n",
            s.waves,
            self.per_second(tally, |t| t.stats.waves),
            s.cutoffs,
            s.transitions
        );
        // The table: fixed numeric columns, the logic column takes what the
        // width leaves beside a readable `latest`, and a cell too long for
        // its column ends in an ellipsis instead of pushing the others.
        let fixed = NAME + 1 + 1 + 6 + 1 + 9 + 1 + 9 + 1 + 6 + 2;
        let logic = width.saturating_sub(fixed + LATEST_MIN).clamp(8, 28);
        let latest = width.saturating_sub(fixed + logic).max(6);
        let _ = writeln!(
            text,
            "{:<NAME$} {:<logic$} {:>6} {:>9} {:>9} {:>6}  worst key",
            "node", "logic", "keys", "evals/s", "conflated", "errors"
        );
        for node in &tally.nodes {
            let sample = tally
                .samples
                .iter()
                .find(|(n, _)| *n == node.name)
                .map_or("-", |(_, v)| v.as_str());
            let _ = writeln!(
                text,
                "{:<NAME$} {:<logic$} {:>6} {:>9.0} {:>9} {:>6}  {}",
                fit(&node.name, NAME),
                fit(&node.logic, logic),
                node.keys,
                self.node_rate(tally, node),
                node.stats.conflated,
                node.failing_keys,
                fit(sample, latest)
            );
        }
        let _ = writeln!(text);
        for (name, tripped, stale) in &tally.alerts {
            let list = |label: &str, keys: &[String]| {
                // As many keys as the line has room for, then `+N`.
                let mut line = format!("{label} {} [", keys.len());
                let mut shown = 0;
                for key in keys {
                    let more = keys.len() - shown - 1;
                    let tail = if more > 0 {
                        format!(" +{more}]")
                    } else {
                        "]".to_string()
                    };
                    if line.chars().count() + key.chars().count() + 1 + tail.chars().count() > width
                    {
                        break;
                    }
                    if shown > 0 {
                        line.push(' ');
                    }
                    line.push_str(key);
                    shown += 1;
                }
                if shown < keys.len() {
                    line.push_str(&format!(" +{}", keys.len() - shown));
                }
                line.push(']');
                fit(&line, width)
            };
            let _ = writeln!(text, "{}", list(&format!("ALERT {name}: tripped"), tripped));
            let _ = writeln!(text, "{}", list(&format!("      {name}: stale  "), stale));
        }
        let _ = writeln!(text, "{HELP}");
        text
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dav2d_core::{Builtin, ConstraintSpec, Graph, GraphOptions, ManualClock, NodeSpec, Value};

    use super::{IntakeTotals, Screen, capture};

    #[test]
    fn the_full_screen_fits_80_and_150_columns_without_cutting_a_column() {
        let mut graph = Graph::new(GraphOptions::default(), Arc::new(ManualClock::new(0)));
        graph
            .register_all(vec![
                NodeSpec::builtin(
                    "a_rather_long_node_name_for_the_average",
                    "temperature_of_the_fleet",
                    Builtin::MovingAverage { n: 5 },
                ),
                NodeSpec::builtin(
                    "smooth",
                    "temperature_of_the_fleet",
                    Builtin::Ewma { alpha: 0.1 },
                ),
                NodeSpec::constraint("overheat", "smooth", ConstraintSpec::above(10.0)),
            ])
            .unwrap();
        for i in 0..40 {
            let key = format!("device-with-a-long-identifier-{i:03}");
            graph
                .push(
                    "temperature_of_the_fleet",
                    &key,
                    Value::Float(1000.0 + f64::from(i)),
                    Some(1),
                )
                .unwrap();
        }
        graph.run_wave();
        let tally = capture(&graph, IntakeTotals::default());
        let screen = Screen::new(
            true,
            "config.yaml; HTTP on http://127.0.0.1:8080; TCP on 127.0.0.1:7070; data in /var/lib/dav2d/a/long/path".to_string(),
        );
        for width in [80, 150] {
            let text = screen.render_full(&tally, width);
            for line in text.lines() {
                assert!(
                    line.chars().count() <= width,
                    "{} > {width}: {line}",
                    line.chars().count()
                );
            }
            let header = text.lines().find(|l| l.starts_with("node")).unwrap();
            for column in [
                "node",
                "logic",
                "keys",
                "evals/s",
                "conflated",
                "errors",
                "worst key",
            ] {
                assert!(header.contains(column), "{column} in {header}");
            }
            // The worst key is shown: the hottest, not the first in order.
            if width == 150 {
                let smooth = text.lines().find(|l| l.starts_with("smooth")).unwrap();
                assert!(smooth.contains("identifier-039: 1039"), "{smooth}");
            }
            // Every alerted key is counted, shown or as +N.
            let alert = text
                .lines()
                .find(|l| l.starts_with("ALERT overheat"))
                .unwrap();
            assert!(
                alert.contains("tripped 40 [") && alert.ends_with(']'),
                "{alert}"
            );
        }
    }
}
