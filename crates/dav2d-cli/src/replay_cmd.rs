//! `dav2d replay CONFIG --from DIR|FILE`: the recorded raw streams of a
//! store (or an NDJSON, CSV or Parquet file of samples) pushed through the config's
//! graph in event time, once per `--vary` combination, with each variant's
//! alerts beside the recorded run's (see `dav2d_runtime::replay`). The
//! recorded store is only read.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dav2d_core::Value;
use dav2d_runtime::replay::{Alerts, Recorded, VariantReport, Vary, replay_at};

/// What `dav2d replay` takes.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The YAML config whose graph the samples go through.
    config: PathBuf,
    /// A store's directory (its raw streams: `persistence.streams`), or an
    /// NDJSON (`.ndjson`, `.jsonl`), CSV (`.csv`) or Parquet (`.parquet`)
    /// file of samples (`stream`, `key`, `value`, `ts` in ns; Parquet also
    /// takes a timestamp `ts`, and `dav2d export --format parquet` files).
    #[arg(long)]
    from: PathBuf,
    /// Values to try for a parameter, e.g. `overheat.trip=80,85,90`; given
    /// several times, every combination runs, side by side in one pass.
    #[arg(long)]
    vary: Vec<String>,
    /// `text` (a table per variant), `json` or `csv`.
    #[arg(long, default_value = "text")]
    format: String,
    /// `max` (as fast as it can, the default) or N: N times the recorded
    /// pace (`1` replays in real time).
    #[arg(long, default_value = "max")]
    speed: String,
    /// Also write the outputs (`report.json`, `report.csv`, and every
    /// transition in `transitions.csv`) into this new directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `dav2d replay`.
pub fn run(args: ReplayArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))?;
    let config = dav2d_runtime::Config::parse(&text, &args.config).map_err(|e| e.to_string())?;
    let inputs: BTreeSet<String> = config
        .streams
        .iter()
        .map(|s| s.name.value.clone())
        .collect();
    let constraints: Vec<String> = (config.constraints.iter())
        .map(|c| c.name.value.clone())
        .collect();
    if let Some(dir) = &args.out {
        fresh(dir)?;
    }
    let varies: Vec<Vary> = (args.vary.iter())
        .map(|v| Vary::parse(v))
        .collect::<Result<_, _>>()?;
    let (samples, states) = read(&args.from, &inputs, &constraints)?;
    if samples.is_empty() {
        return Err(format!(
            "{} holds no samples of the config's streams ({}); a store keeps them when persistence.streams lists them",
            args.from.display(),
            inputs.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let speed = match args.speed.as_str() {
        "max" => None,
        n => match n.parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Some(x),
            _ => {
                return Err(format!(
                    "--speed {n}: give max or a number above 0, e.g. 10"
                ));
            }
        },
    };
    let reports = replay_at(&text, &args.config, &samples, &varies, speed)?;
    let end = samples.last().map_or(0, |s| s.ts_ns);
    let recorded: Vec<Alerts> = (constraints.iter())
        .filter(|c| states.iter().any(|(name, ..)| name == *c))
        .map(|c| {
            let mine: Vec<(String, i64, String)> = (states.iter())
                .filter(|(name, ..)| name == c)
                .map(|(_, key, ts, state)| (key.clone(), *ts, state.clone()))
                .collect();
            Alerts::from_states(c, &mine, end)
        })
        .collect();
    let report = render(&args.format, samples.len(), &reports, &recorded)?;
    if let Some(dir) = &args.out {
        write_out(dir, samples.len(), &reports, &recorded)?;
    }
    print!("{report}");
    Ok(())
}

/// Refuses an `--out` directory that holds anything.
fn fresh(dir: &Path) -> Result<(), String> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!(
            "--out {} is not empty; give a new directory (a replay never writes over a store or earlier outputs)",
            dir.display()
        ));
    }
    Ok(())
}

/// Writes the outputs of a replay into `dir`, which must be new or empty:
/// `report.json`, `report.csv` and `transitions.csv` (every transition of
/// every variant's constraints, and of the recorded run's).
fn write_out(
    dir: &Path,
    samples: usize,
    reports: &[VariantReport],
    recorded: &[Alerts],
) -> Result<(), String> {
    let shown = dir.display();
    fresh(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {shown}: {e}"))?;
    let mut transitions = String::from("variant,constraint,key,to,at_ns\n");
    let rows = (reports.iter())
        .flat_map(|r| r.alerts.iter().map(move |a| (r.label.as_str(), a)))
        .chain(recorded.iter().map(|a| ("recorded", a)));
    for (label, alerts) in rows {
        for (key, to, at) in &alerts.transitions {
            let key = key.replace('"', "\"\"");
            transitions.push_str(&format!(
                "\"{label}\",{},\"{key}\",{to},{at}\n",
                alerts.constraint
            ));
        }
    }
    let files = [
        ("report.json", render("json", samples, reports, recorded)?),
        ("report.csv", render("csv", samples, reports, recorded)?),
        ("transitions.csv", transitions),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    eprintln!("Wrote report.json, report.csv and transitions.csv to {shown}.");
    Ok(())
}

type States = Vec<(String, String, i64, String)>;

/// The samples of `inputs` in time order, and the recorded states of
/// `constraints` (a store only), from `from`.
fn read(
    from: &Path,
    inputs: &BTreeSet<String>,
    constraints: &[String],
) -> Result<(Vec<Recorded>, States), String> {
    let mut samples = Vec::new();
    let mut states = Vec::new();
    let name = from.display().to_string();
    if from.is_dir() {
        let query = dav2d_store::Query {
            name: None,
            key: None,
            since: None,
            until: None,
        };
        dav2d_store::history::scan(
            from,
            &query,
            |_| {},
            |rows| {
                for i in 0..rows.len() {
                    let stream = &rows.name[i];
                    if inputs.contains(&**stream) {
                        let value = match (&rows.value[i], &rows.state[i]) {
                            (Some(x), _) => Value::Float(*x),
                            (None, Some(text)) => Value::Str(Arc::clone(text)),
                            (None, None) => continue,
                        };
                        samples.push(Recorded {
                            stream: Arc::clone(stream),
                            key: Arc::clone(&rows.key[i]),
                            ts_ns: rows.ts[i],
                            value,
                        });
                    } else if constraints.iter().any(|c| **c == **stream)
                        && let Some(state) = &rows.state[i]
                    {
                        states.push((
                            stream.to_string(),
                            rows.key[i].to_string(),
                            rows.ts[i],
                            state.to_string(),
                        ));
                    }
                }
                Ok(())
            },
        )
        .map_err(|e| format!("cannot read the store in {name}: {e}"))?;
    } else if from.extension().is_some_and(|e| e == "parquet") {
        dav2d_store::samples::read_samples(from, |stream, key, ts_ns, value| {
            if inputs.contains(&**stream) {
                samples.push(Recorded {
                    stream: Arc::clone(stream),
                    key: Arc::clone(key),
                    ts_ns,
                    value,
                });
            } else if constraints.iter().any(|c| **c == **stream)
                && let Value::Str(state) = &value
            {
                states.push((
                    stream.to_string(),
                    key.to_string(),
                    ts_ns,
                    state.to_string(),
                ));
            }
        })
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    } else {
        let text = std::fs::read_to_string(from).map_err(|e| format!("cannot read {name}: {e}"))?;
        if from.extension().is_some_and(|e| e == "csv") {
            let mut intern = Interner::default();
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers = (reader.headers().cloned()).map_err(|e| format!("{name}: {e}"))?;
            for (line, record) in reader.records().enumerate() {
                let row = record.and_then(|r| {
                    let row: FileSample = r.deserialize(Some(&headers))?;
                    Ok(row.into_recorded(&mut intern))
                });
                samples.push(row.map_err(|e| format!("{name}: row {}: {e}", line + 2))?);
            }
        } else {
            samples = parse_ndjson(&text, &name)?;
        }
        samples.retain(|s| inputs.contains(&*s.stream));
    }
    samples.sort_by_key(|s| s.ts_ns);
    states.sort_by_key(|s| s.2);
    Ok((samples, states))
}

/// The samples of NDJSON `text`, parsed on every core: the text is cut at
/// line ends into one stretch per core, in order.
fn parse_ndjson(text: &str, name: &str) -> Result<Vec<Recorded>, String> {
    let parts = std::thread::available_parallelism().map_or(1, usize::from);
    let mut stretches = Vec::with_capacity(parts);
    let (mut from, mut first_line) = (0, 0);
    for part in 1..=parts {
        let mut to = (text.len() * part / parts).max(from);
        while to < text.len() && !text.is_char_boundary(to) {
            to += 1;
        }
        let to = match text[to..].find('\n') {
            Some(at) if part < parts => to + at + 1,
            _ => text.len(),
        };
        let stretch = &text[from..to];
        stretches.push((stretch, first_line));
        first_line += stretch.matches('\n').count();
        from = to;
    }
    let parsed: Vec<Result<Vec<Recorded>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (stretches.into_iter())
            .map(|(stretch, first_line)| {
                scope.spawn(move || {
                    let mut intern = Interner::default();
                    let mut samples = Vec::with_capacity(stretch.len() / 64);
                    for (line, row) in stretch.lines().enumerate() {
                        if row.trim().is_empty() {
                            continue;
                        }
                        let row: FileSample = serde_json::from_str(row).map_err(|e| {
                            format!(
                                "{name}:{}: {e}; each line is {{\"stream\", \"key\", \"value\", \"ts\"}}",
                                first_line + line + 1
                            )
                        })?;
                        samples.push(row.into_recorded(&mut intern));
                    }
                    Ok(samples)
                })
            })
            .collect();
        (workers.into_iter())
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a parser thread failed".to_string()))
            })
            .collect()
    });
    let mut samples = Vec::new();
    for part in parsed {
        samples.extend(part?);
    }
    Ok(samples)
}

/// Names and keys repeat: one shared copy of each.
#[derive(Default)]
struct Interner(HashMap<Box<str>, Arc<str>>);

impl Interner {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(Box::from(text), Arc::clone(&shared));
        shared
    }
}

/// One sample of an NDJSON or CSV file (its text borrowed where it can be).
#[derive(serde::Deserialize)]
struct FileSample<'a> {
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    key: std::borrow::Cow<'a, str>,
    value: f64,
    ts: i64,
}

impl FileSample<'_> {
    fn into_recorded(self, intern: &mut Interner) -> Recorded {
        Recorded {
            stream: intern.get(&self.stream),
            key: intern.get(&self.key),
            ts_ns: self.ts,
            value: Value::Float(self.value),
        }
    }
}

fn time(ns: Option<i64>) -> String {
    ns.map_or("-".to_string(), |ns| {
        let seconds = ns.div_euclid(1_000_000_000);
        let day = seconds.rem_euclid(86_400);
        format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60)
    })
}

/// The report in `format` (`text`, `json` or `csv`).
fn render(
    format: &str,
    samples: usize,
    reports: &[VariantReport],
    recorded: &[Alerts],
) -> Result<String, String> {
    let mut out = String::new();
    macro_rules! say {
        ($($arg:tt)*) => {{
            out.push_str(&format!($($arg)*));
            out.push('\n');
        }};
    }
    match format {
        "json" => {
            let json =
                serde_json::json!({"samples": samples, "variants": reports, "recorded": recorded});
            say!("{json}");
        }
        "csv" => {
            say!(
                "variant,constraint,raised,cleared,tripped_seconds,keys_tripped,first_trip_ns,last_trip_ns"
            );
            let rows = (reports.iter())
                .flat_map(|r| r.alerts.iter().map(move |a| (r.label.as_str(), a)))
                .chain(recorded.iter().map(|a| ("recorded", a)));
            for (label, a) in rows {
                say!(
                    "\"{label}\",{},{},{},{:.3},{},{},{}",
                    a.constraint,
                    a.raised,
                    a.cleared,
                    a.tripped_seconds,
                    a.keys_tripped.len(),
                    a.first_trip_ns.map_or(String::new(), |t| t.to_string()),
                    a.last_trip_ns.map_or(String::new(), |t| t.to_string())
                );
            }
        }
        "text" => {
            say!("{samples} samples replayed");
            for report in reports {
                say!("\n{} ({} samples rejected)", report.label, report.rejected);
                say!(
                    "  {:<16} {:>7} {:>7} {:>11} {:>5} {:>10} {:>10}",
                    "constraint",
                    "raised",
                    "cleared",
                    "tripped s",
                    "keys",
                    "first trip",
                    "last trip"
                );
                for a in &report.alerts {
                    let line = |who: &str, a: &Alerts| {
                        format!(
                            "  {who:<16} {:>7} {:>7} {:>11.1} {:>5} {:>10} {:>10}",
                            a.raised,
                            a.cleared,
                            a.tripped_seconds,
                            a.keys_tripped.len(),
                            time(a.first_trip_ns),
                            time(a.last_trip_ns)
                        )
                    };
                    say!("{}", line(&a.constraint, a));
                    if let Some(live) = recorded.iter().find(|r| r.constraint == a.constraint) {
                        say!("{}", line("  recorded run", live));
                        let differ: Vec<&String> = a
                            .keys_tripped
                            .symmetric_difference(&live.keys_tripped)
                            .collect();
                        if !differ.is_empty() {
                            let shown: Vec<&str> =
                                differ.iter().take(20).map(|k| k.as_str()).collect();
                            say!(
                                "  keys tripped in one and not the other: {}{}",
                                shown.join(", "),
                                if differ.len() > 20 {
                                    format!(" (+{})", differ.len() - 20)
                                } else {
                                    String::new()
                                }
                            );
                        }
                    }
                }
            }
        }
        other => return Err(format!("--format {other}: give text, json or csv")),
    }
    Ok(out)
}
