//! The `dav2d` binary: argument parsing and wiring only. The work happens in
//! `dav2d-runtime` (config, runner) and `dav2d-core` (the engine).

mod summary;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dav2d_core::{Graph, GraphOptions, SharedGraph, SystemClock};
use dav2d_runtime::{Config, Runtime};

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
    },
    /// Validates a config and prints the graph it describes.
    Check {
        /// The YAML config.
        config: PathBuf,
    },
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
        } => run(config, duration, refresh),
        Command::Check { config } => check(&config),
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

fn run(path: Option<PathBuf>, duration: Option<Duration>, refresh: Duration) -> Result<(), String> {
    let config = load(path.as_ref())?;
    let graph = SharedGraph::new(new_graph());
    let runtime = Runtime::start(&config, graph.clone()).map_err(|error| error.to_string())?;
    let title = match &path {
        Some(path) => path.display().to_string(),
        None => "the built-in demo (100 devices at 100 Hz)".to_string(),
    };
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
