//! The `dav2d` binary: argument parsing and wiring only. The work happens in
//! `dav2d-runtime` (config, runner) and `dav2d-core` (the engine).

mod store_cmds;
mod summary;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dav2d_core::{Graph, GraphOptions, SharedGraph, SystemClock};
use dav2d_runtime::{Config, HttpConfig, IngestConfig, Overrides, Runtime, TcpConfig};

/// dav2d keeps the latest valid snapshot of a live system.
#[derive(Parser)]
#[command(name = "dav2d", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a config (or the built-in demo fleet) with a live summary.
    Run {
        /// The YAML config; without it, the built-in demo runs.
        config: Option<PathBuf>,
        /// Stop by itself after this long, e.g. `10s` or `2m`.
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<Duration>,
        /// How often the summary refreshes, e.g. `500ms`.
        #[arg(long, value_parser = parse_duration, default_value = "1s")]
        refresh: Duration,
        /// Where the HTTP API listens (overrides http.bind), or `off`.
        #[arg(long, value_parser = parse_listen)]
        http: Option<Listen>,
        /// Where the TCP NDJSON server listens (overrides tcp.bind), or `off`.
        #[arg(long, value_parser = parse_listen)]
        tcp: Option<Listen>,
        /// The store's directory (overrides persistence.dir), or `off` to keep everything in memory.
        #[arg(long)]
        data: Option<String>,
    },
    /// Validates a config and prints the graph it describes.
    Check {
        /// The YAML config.
        config: PathBuf,
    },
    /// Shows what a store directory holds (log segments, Parquet history,
    /// sizes, records, time ranges, damage, the checkpoint, file actions
    /// used) without changing it.
    Inspect {
        /// The store's directory, e.g. `dav2d-data`.
        dir: PathBuf,
    },
    /// Writes the history of a store (Parquet files and the log not yet
    /// rolled into them) to one file, filtered by name, key and time.
    Export {
        /// The store's directory, e.g. `dav2d-data`.
        dir: PathBuf,
        /// Only this stream, node or constraint.
        #[arg(long)]
        name: Option<String>,
        /// Only this key.
        #[arg(long)]
        key: Option<String>,
        /// From this time on (RFC 3339, e.g. 2026-11-22T10:00:00Z, or ns since the epoch).
        #[arg(long, value_parser = store_cmds::parse_time)]
        from: Option<i64>,
        /// Up to (not including) this time.
        #[arg(long, value_parser = store_cmds::parse_time)]
        to: Option<i64>,
        /// The output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: store_cmds::Format,
        /// The output file (default: stdout; parquet needs one).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A `--http`/`--tcp` value: an address, or `off`.
#[derive(Clone, Copy, Debug)]
enum Listen {
    Off,
    At(SocketAddr),
}

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text == "off" {
        return Ok(Listen::Off);
    }
    text.parse().map(Listen::At).map_err(|error| {
        format!("'{text}' is not an address ({error}); write e.g. 127.0.0.1:8080, or off")
    })
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("'{text}' is not a duration ({error}); write e.g. 30s or 2m"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAV2D_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            duration,
            refresh,
            http,
            tcp,
            data,
        } => run(config, duration, refresh, http, tcp, data),
        Command::Check { config } => check(&config),
        Command::Inspect { dir } => store_cmds::inspect(&dir),
        Command::Export {
            dir,
            name,
            key,
            from,
            to,
            format,
            out,
        } => store_cmds::export(store_cmds::Export {
            dir,
            query: dav2d_store::Query {
                name,
                key,
                since: from,
                until: to,
            },
            format,
            out,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(path) => Config::load(path),
        None => Config::demo(),
    }
    .map_err(|error| error.to_string())
}

fn new_graph() -> Graph {
    let options = GraphOptions {
        auto_create_streams: false,
        ..GraphOptions::default()
    };
    Graph::new(options, Arc::new(SystemClock))
}

fn check(path: &PathBuf) -> Result<(), String> {
    let config = load(Some(path))?;
    let mut graph = new_graph();
    config
        .build(&mut graph)
        .map_err(|error| error.to_string())?;
    print!("{}", summary::describe_graph(&graph, &config));
    println!("{}: ok", path.display());
    Ok(())
}

fn run(
    path: Option<PathBuf>,
    duration: Option<Duration>,
    refresh: Duration,
    http: Option<Listen>,
    tcp: Option<Listen>,
    data: Option<String>,
) -> Result<(), String> {
    let config = load(path.as_ref())?;
    let mut ingest = config
        .ingest()
        .map_err(|error| error.to_string())?
        .unwrap_or_else(|| IngestConfig {
            http: None,
            tcp: None,
            ..IngestConfig::default()
        });
    match http {
        Some(Listen::Off) => ingest.http = None,
        Some(Listen::At(address)) => {
            ingest.http.get_or_insert_with(HttpConfig::default).bind = address
        }
        None => {}
    }
    match tcp {
        Some(Listen::Off) => ingest.tcp = None,
        Some(Listen::At(address)) => {
            ingest.tcp.get_or_insert_with(TcpConfig::default).bind = address
        }
        None => {}
    }
    let ingest = (ingest.http.is_some() || ingest.tcp.is_some()).then_some(ingest);
    let mut persistence = config.persistence().map_err(|error| error.to_string())?;
    match data.as_deref() {
        Some("off") => persistence = None,
        Some(dir) => {
            let mut defaults = Config::default()
                .persistence()
                .map_err(|error| error.to_string())?;
            if let Some(chosen) = persistence.as_mut().or(defaults.as_mut()) {
                chosen.dir = PathBuf::from(dir);
            }
            persistence = persistence.or(defaults);
        }
        None => {}
    }
    let data_dir = persistence.as_ref().map(|p| p.dir.clone());
    let overrides = Overrides {
        ingest: Some(ingest),
        persistence: Some(persistence),
    };
    let graph = SharedGraph::new(new_graph());
    let runtime =
        Runtime::start(&config, graph.clone(), overrides).map_err(|error| error.to_string())?;
    let mut title = match &path {
        Some(path) => path.display().to_string(),
        None => "the built-in demo (100 devices at 100 Hz)".to_string(),
    };
    if let Some(server) = runtime.ingest() {
        if let Some(address) = server.http_addr() {
            title.push_str(&format!("; HTTP on http://{address}"));
        }
        if let Some(address) = server.tcp_addr() {
            title.push_str(&format!("; TCP on {address}"));
        }
    }
    if let Some(dir) = &data_dir {
        title.push_str(&format!("; data in {}", dir.display()));
    }
    let persisted = runtime.persistence();
    if persisted
        .restored
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        title.push_str(&format!(
            "; restored from the checkpoint and {} log records",
            persisted
                .replayed
                .load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    if !std::io::stdout().is_terminal() {
        println!("dav2d: {title}");
    }
    let interactive = std::io::stdout().is_terminal();
    let mut screen = summary::Screen::new(interactive, title);
    let started = Instant::now();
    let refresh = refresh.max(Duration::from_millis(100));
    loop {
        let left = duration.map(|d| d.saturating_sub(started.elapsed()));
        if left == Some(Duration::ZERO) {
            break;
        }
        std::thread::sleep(left.map_or(refresh, |left| left.min(refresh)));
        screen.draw(&runtime);
    }
    screen.finish(&runtime);
    runtime.stop();
    Ok(())
}
