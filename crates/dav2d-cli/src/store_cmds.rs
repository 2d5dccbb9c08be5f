//! `dav2d inspect` and `dav2d export`: reading a store directory, with a
//! progress bar on a terminal for long work. The reading itself is
//! `dav2d-store`'s; this file formats and writes.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use dav2d_core::SystemClock;
use dav2d_store::history::{self, ParquetSink, Progress, Query, Rows};
use dav2d_store::{Ledger, inspect_with_progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The output formats of `dav2d export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Apache Parquet, the history files' own schema.
    Parquet,
    /// Comma-separated values with a header; `ts` in RFC 3339.
    Csv,
    /// One JSON object per line; `ts` in ns since the epoch.
    Ndjson,
}

/// A bar over input bytes, drawn on stderr only when it is a terminal.
fn progress_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    )
    .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn update(bar: &ProgressBar, at: Progress) {
    bar.set_length(at.total);
    bar.set_position(at.done);
}

fn store_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "{} is not a directory; give the store's directory (persistence.dir)",
            dir.display()
        ))
    }
}

fn rfc3339(ns: i64) -> String {
    let time = if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    };
    humantime::format_rfc3339_nanos(time).to_string()
}

/// Parses `--from`/`--to`: RFC 3339 (`2026-11-22T10:00:00Z`, or without the
/// zone meaning UTC) or an integer of ns since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ns) = text.parse::<i64>() {
        return Ok(ns);
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|error| {
        format!("'{text}' is not a time ({error}); write e.g. 2026-11-22T10:00:00Z or ns since the epoch")
    })?;
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("'{text}' is before 1970"))?;
    i64::try_from(since.as_nanos()).map_err(|_| format!("'{text}' is too far in the future"))
}

/// `dav2d inspect DIR`.
pub fn inspect(dir: &Path) -> Result<(), String> {
    store_dir(dir)?;
    let bar = progress_bar("reading the log");
    let inspection =
        inspect_with_progress(dir, |at| update(&bar, at)).map_err(|error| error.to_string())?;
    bar.finish_and_clear();
    let range = |range: Option<(i64, i64)>| {
        range.map_or_else(
            || "no samples".to_string(),
            |(lo, hi)| format!("{} .. {}", rfc3339(lo), rfc3339(hi)),
        )
    };
    let name = |path: &Path| {
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    println!(
        "{}: {} log segments",
        dir.display(),
        inspection.segments.len()
    );
    for segment in &inspection.segments {
        let damage = segment.damage.map_or_else(String::new, |(offset, kind)| {
            format!("  DAMAGED ({kind}) from byte {offset}")
        });
        println!(
            "  {}  {} bytes  {} records  {}{damage}",
            name(&segment.path),
            segment.bytes,
            segment.records,
            range(segment.time_range)
        );
    }
    println!("history: {} Parquet files", inspection.history.len());
    for file in &inspection.history {
        let rows = match &file.rows {
            Ok(rows) => format!("{rows} rows"),
            Err(error) => format!("UNREADABLE: {error}"),
        };
        println!(
            "  {}  {} bytes  {rows}  {}",
            name(&file.file.path),
            file.bytes,
            range(Some(file.file.time_range))
        );
    }
    match inspection.reloads.last() {
        None => {}
        Some((version, ts, changes)) => println!(
            "reloads: {} recorded; the last made spec version {version} at {} ({})",
            inspection.reloads.len(),
            rfc3339(*ts),
            changes.join("; ")
        ),
    }
    match &inspection.checkpoint {
        None => println!("checkpoint: none"),
        Some(Ok((bytes, streams, keys))) => {
            println!("checkpoint: {bytes} bytes, {streams} streams, {keys} keys")
        }
        Some(Err(reason)) => println!("checkpoint: unreadable: {reason}"),
    }
    match inspection.file_actions {
        None => println!("file actions: unknown (no checkpoint)"),
        Some(day) => {
            let kinds: Vec<String> = day
                .by_kind()
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            println!(
                "file actions: {} on {} as of the last checkpoint ({})",
                day.total(),
                rfc3339(day.day * 86_400 * 1_000_000_000)
                    .split('T')
                    .next()
                    .unwrap_or_default(),
                kinds.join(", ")
            );
        }
    }
    Ok(())
}

/// What `dav2d export` was asked for.
pub struct Export {
    /// The store's directory.
    pub dir: PathBuf,
    /// The rows wanted.
    pub query: Query,
    /// The output format.
    pub format: Format,
    /// The output file (`None`: stdout, for text formats).
    pub out: Option<PathBuf>,
}

/// One NDJSON line, fields in the history's column order.
#[derive(serde::Serialize)]
struct Line<'a> {
    ts: i64,
    name: &'a str,
    key: &'a str,
    value: Option<f64>,
    state: Option<&'a str>,
}

/// Why writing the output stopped.
enum Stop {
    /// The reader went away (e.g. `| head`): not an error.
    Closed,
    /// A real failure, described.
    Failed(String),
}

fn stop(what: &str, error: std::io::Error) -> Stop {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Stop::Closed
    } else {
        Stop::Failed(format!("writing {what}: {error}"))
    }
}

enum Sink {
    Parquet(ParquetSink, Ledger),
    Csv(csv::Writer<Box<dyn Write>>),
    Ndjson(std::io::BufWriter<Box<dyn Write>>),
}

impl Sink {
    fn write(&mut self, rows: &Rows) -> Result<(), Stop> {
        match self {
            Sink::Parquet(sink, _) => sink
                .write(rows)
                .map_err(|error| Stop::Failed(error.to_string())),
            Sink::Csv(writer) => {
                for i in 0..rows.len() {
                    let value = rows.value[i].map_or_else(String::new, |v| v.to_string());
                    writer
                        .write_record([
                            rfc3339(rows.ts[i]).as_str(),
                            &rows.name[i],
                            &rows.key[i],
                            &value,
                            rows.state[i].as_deref().unwrap_or(""),
                        ])
                        .map_err(|error| match error.into_kind() {
                            csv::ErrorKind::Io(error) => stop("CSV", error),
                            other => Stop::Failed(format!("writing CSV: {other:?}")),
                        })?;
                }
                Ok(())
            }
            Sink::Ndjson(writer) => {
                for i in 0..rows.len() {
                    let line = Line {
                        ts: rows.ts[i],
                        name: &rows.name[i],
                        key: &rows.key[i],
                        value: rows.value[i],
                        state: rows.state[i].as_deref(),
                    };
                    serde_json::to_writer(&mut *writer, &line)
                        .map_err(|error| stop("NDJSON", error.into()))?;
                    writer
                        .write_all(b"\n")
                        .map_err(|error| stop("NDJSON", error))?;
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<(), Stop> {
        match self {
            Sink::Parquet(sink, mut ledger) => sink
                .finish(&mut ledger)
                .map(|_| ())
                .map_err(|error| Stop::Failed(error.to_string())),
            Sink::Csv(mut writer) => writer.flush().map_err(|error| stop("CSV", error)),
            Sink::Ndjson(mut writer) => writer.flush().map_err(|error| stop("NDJSON", error)),
        }
    }
}

/// `dav2d export`: the history rows a query selects, from the Parquet
/// history and the log not yet rolled into it, in one file.
pub fn export(export: Export) -> Result<(), String> {
    store_dir(&export.dir)?;
    let text_out = || -> Result<Box<dyn Write>, String> {
        match &export.out {
            None => Ok(Box::new(std::io::stdout().lock())),
            Some(path) => std::fs::File::create(path)
                .map(|f| Box::new(f) as Box<dyn Write>)
                .map_err(|error| format!("cannot create {}: {error}", path.display())),
        }
    };
    let mut sink = match export.format {
        Format::Parquet => {
            let Some(path) = &export.out else {
                return Err("--format parquet needs --out FILE".to_string());
            };
            // The export is not the store's: its file actions are not the
            // store's budget, so it counts them on a ledger of its own.
            let mut ledger = Ledger::new(u64::MAX, Arc::new(SystemClock));
            let sink = ParquetSink::create(path, &mut ledger).map_err(|error| error.to_string())?;
            Sink::Parquet(sink, ledger)
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(text_out()?);
            writer
                .write_record(["ts", "name", "key", "value", "state"])
                .map_err(|error| format!("writing CSV: {error}"))?;
            Sink::Csv(writer)
        }
        Format::Ndjson => Sink::Ndjson(std::io::BufWriter::new(text_out()?)),
    };
    let bar = progress_bar("exporting");
    let mut exported = 0usize;
    let mut closed = false;
    let scanned = history::scan(
        &export.dir,
        &export.query,
        |at| update(&bar, at),
        |rows| match sink.write(rows) {
            Ok(()) => {
                exported += rows.len();
                Ok(())
            }
            Err(Stop::Closed) => {
                closed = true;
                Err(history::HistoryError::Output(
                    "the output was closed".to_string(),
                ))
            }
            Err(Stop::Failed(error)) => Err(history::HistoryError::Output(error)),
        },
    );
    bar.finish_and_clear();
    if closed {
        return Ok(());
    }
    scanned.map_err(|error| error.to_string())?;
    match sink.finish() {
        Ok(()) | Err(Stop::Closed) => {}
        Err(Stop::Failed(error)) => return Err(error),
    }
    let to = export
        .out
        .as_ref()
        .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    eprintln!("exported {exported} rows to {to}");
    Ok(())
}
