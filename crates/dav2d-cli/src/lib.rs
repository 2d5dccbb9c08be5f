//! The `dav2d` command line (`run`, `check`, `inspect`, `export`) as a
//! library: the `dav2d` binary and the Python package's `dav2d` console
//! command both call [`main_with`], so they behave alike. The work happens
//! in `dav2d-runtime` (config, runner) and `dav2d-core` (the engine).

mod images;
mod replay_cmd;
mod store_cmds;
mod summary;
mod sweep_cmd;
mod watch;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dav2d_core::{Graph, GraphOptions, SharedGraph, SystemClock};
use dav2d_runtime::{Config, Overrides, Plan, Runtime};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// dav2d keeps the latest valid snapshot of a live system.
#[derive(Parser)]
#[command(name = "dav2d", version)]
struct Cli {
    /// How log lines are written to stderr: `text` (coloured only on a
    /// terminal, never with NO_COLOR set) or `json` (one object a line,
    /// for log shippers).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The log line formats.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Sets the logger (a process that already set one, as a second call,
/// keeps it): `DAV2D_LOG` filters (default `warn`); colour only when stderr
/// is a terminal and `NO_COLOR` is unset or empty.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAV2D_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).try_init()
        }
    };
}

/// What `dav2d run` takes.
#[derive(clap::Args)]
struct RunArgs {
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
    /// Join the cluster on this NATS JetStream server, e.g.
    /// `nats://127.0.0.1:4222` (overrides cluster.url).
    #[arg(long)]
    cluster: Option<String>,
    /// Open the dashboard in a browser (`$BROWSER`, else `xdg-open`) once serving.
    #[arg(long)]
    open: bool,
    /// Reload the config when its file changes (SIGHUP reloads it too):
    /// changed parameters apply live, keeping windows and alert states.
    #[arg(long)]
    watch: bool,
}

/// `dav2d processor ...`.
#[derive(Subcommand)]
enum ProcessorCommand {
    /// Runs a config's processor once per image and prints, per threshold,
    /// the masks' coverage, connected regions and their mean size.
    Sweep(sweep_cmd::SweepArgs),
}

#[derive(Subcommand)]
enum Command {
    /// Runs a config (or the built-in demo fleet) with a live summary.
    Run(RunArgs),
    /// Replays recorded samples (a store's raw streams, or an NDJSON or CSV
    /// file) through a config's graph in event time, with `--vary`
    /// variants of its thresholds side by side, and prints each one's alerts
    /// beside the recorded run's.
    Replay(replay_cmd::ReplayArgs),
    /// The processor's tools: `sweep` tries thresholds on real images.
    #[command(subcommand)]
    Processor(ProcessorCommand),
    /// Follows a name of a running dav2d from the terminal: each change of
    /// a key (with a sparkline), or `--top N` keys (worst first).
    Watch(watch::WatchArgs),
    /// Validates a config exactly as `run` would build it, and prints what
    /// it understood: streams, nodes, constraints, sources, sinks,
    /// persistence and metrics.
    Check {
        /// The YAML config.
        config: PathBuf,
        /// `text` (the default), or the spec as data: `json` or `yaml`.
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
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

/// What `dav2d check` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CheckFormat {
    /// A listing for people.
    Text,
    /// The spec as JSON.
    Json,
    /// The spec as YAML.
    Yaml,
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

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("'{text}' is not a duration ({error}); write e.g. 30s or 2m"))
}

/// Runs the command line `args` (the program name first, as
/// `std::env::args_os` gives them) and returns the exit status: 0 on
/// success, 1 on an error it printed, 2 on a usage error.
pub fn main_with(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // `--help` and `--version` are "errors" that print to stdout.
            let _ = error.print();
            return u8::try_from(error.exit_code()).unwrap_or(2);
        }
    };
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Watch(args) => watch::watch(args),
        Command::Replay(args) => replay_cmd::run(args),
        Command::Processor(ProcessorCommand::Sweep(args)) => sweep_cmd::run(args),
        Command::Check { config, format } => check(&config, format),
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
        Ok(()) => 0,
        Err(message) => {
            eprintln!("error: {message}");
            1
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

fn check(path: &PathBuf, format: CheckFormat) -> Result<(), String> {
    let config = load(Some(path))?;
    // The same plan and build as `run`, so what passes here runs there.
    let plan = Plan::new(config, Overrides::default()).map_err(|error| error.to_string())?;
    let mut graph = new_graph();
    plan.build(&mut graph).map_err(|error| error.to_string())?;
    let spec = dav2d_runtime::Spec::of_plan(&graph, &plan);
    match format {
        CheckFormat::Json => println!("{}", spec.to_json()),
        CheckFormat::Yaml => print!("{}", spec.to_yaml()),
        CheckFormat::Text => {
            print!("{spec}");
            println!("{}: ok", path.display());
        }
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<(), String> {
    let RunArgs {
        config: path,
        duration,
        refresh,
        http,
        tcp,
        data,
        cluster,
        open,
        watch,
    } = args;
    let config = load(path.as_ref())?;
    let http_default = config
        .http()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let tcp_default = config.tcp().map_err(|e| e.to_string())?.unwrap_or_default();
    let overrides = Overrides {
        http: http.map(|listen| match listen {
            Listen::Off => None,
            Listen::At(bind) => {
                let mut http = http_default.clone();
                http.listen.bind = bind;
                Some(http)
            }
        }),
        tcp: tcp.map(|listen| match listen {
            Listen::Off => None,
            Listen::At(bind) => {
                let mut tcp = tcp_default.clone();
                tcp.listen.bind = bind;
                Some(tcp)
            }
        }),
        data: data.map(|dir| (dir != "off").then(|| PathBuf::from(dir))),
        cluster,
    };
    let plan = Plan::new(config, overrides.clone()).map_err(|error| error.to_string())?;
    let https = plan.http.as_ref().is_some_and(|h| h.listen.tls.is_some());
    let data_dir = plan.persistence.as_ref().map(|p| p.dir.clone());
    // Ctrl-C or SIGTERM asks for an orderly stop; a second one exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|error| format!("cannot handle signal {signal}: {error}"))?;
    }
    // SIGHUP (and, with --watch, a change of the file) reloads the config.
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGHUP, Arc::clone(&hangup))
        .map_err(|error| format!("cannot handle signal {SIGHUP}: {error}"))?;
    let mut watched = match (watch, &path) {
        (true, Some(path)) => Some((path.clone(), modified(path))),
        (true, None) => return Err("--watch needs a config file to watch".to_string()),
        (false, _) => None,
    };
    let graph = SharedGraph::new(new_graph());
    let runtime = Runtime::start(plan, graph).map_err(|error| error.to_string())?;
    let mut title = match &path {
        Some(path) => path.display().to_string(),
        None => "the built-in demo (100 devices at 100 Hz)".to_string(),
    };
    runtime.health().offer_reloader(Arc::new(PostedConfig {
        reloader: runtime.reloader(),
        overrides: overrides.clone(),
    }));
    let dashboard = runtime.address("http").map(|address| {
        let scheme = match https {
            true => "https",
            false => "http",
        };
        format!("{scheme}://{address}/")
    });
    if let Some(url) = &dashboard {
        title.push_str(&format!("; HTTP and the dashboard on {url}"));
    }
    if let Some(address) = runtime.address("tcp") {
        title.push_str(&format!("; TCP on {address}"));
    }
    if let Some(dir) = &data_dir {
        title.push_str(&format!("; data in {}", dir.display()));
    }
    if let Some(persisted) = runtime.persistence()
        && persisted.restored.load(Ordering::Relaxed)
    {
        title.push_str(&format!(
            "; restored from the checkpoint and {} log records",
            persisted.replayed.load(Ordering::Relaxed)
        ));
    }
    if open {
        match &dashboard {
            Some(url) => open_in_browser(url),
            None => eprintln!("dav2d: --open: HTTP is off, so there is no dashboard to open"),
        }
    }
    let interactive = std::io::stdout().is_terminal();
    if !interactive {
        println!("dav2d: {title}");
    }
    let mut screen = summary::Screen::new(interactive, title);
    let started = Instant::now();
    let refresh = refresh.max(Duration::from_millis(100));
    let mut next_draw = started + refresh;
    loop {
        if stop.load(Ordering::Acquire) {
            tracing::info!("Stopping: a signal asked for it.");
            break;
        }
        let now = Instant::now();
        if duration.is_some_and(|d| now.duration_since(started) >= d) {
            break;
        }
        if now >= next_draw {
            screen.draw(&runtime);
            next_draw += refresh;
            if let Some((file, seen)) = &mut watched {
                let now_modified = modified(file);
                if now_modified != *seen {
                    *seen = now_modified;
                    hangup.store(true, Ordering::Release);
                }
            }
        }
        if hangup.swap(false, Ordering::AcqRel) {
            reload(&runtime, path.as_ref(), &overrides);
        }
        // Wake often enough to answer a signal promptly.
        std::thread::sleep(Duration::from_millis(20));
    }
    // The last state, then the totals once everything has stopped in order.
    screen.draw(&runtime);
    let (graph, metrics) = (runtime.graph().clone(), Arc::clone(runtime.metrics()));
    runtime.stop();
    screen.finish(&graph, &metrics);
    Ok(())
}

/// When `path` was last written (`None` when it cannot be read).
fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the config at `path` into `runtime` (the built-in demo when
/// there is none); the runtime logs what changed or why it was refused.
fn reload(runtime: &dav2d_runtime::Runtime, path: Option<&PathBuf>, overrides: &Overrides) {
    let _ = runtime.reloader().reload_config(load(path), overrides);
}

/// `POST /config`: a YAML text reloaded as the file would be.
struct PostedConfig {
    reloader: dav2d_runtime::Reloader,
    overrides: Overrides,
}

impl dav2d_runtime::ConfigReloader for PostedConfig {
    fn reload_yaml(&self, text: &str) -> Result<(u64, Vec<String>), String> {
        let config = dav2d_runtime::Config::parse(text, std::path::Path::new("POST /config"))
            .map_err(|error| error.to_string());
        self.reloader
            .reload_config(config, &self.overrides)
            .map(|applied| (applied.version, applied.changes))
    }
}

/// Opens `url` with `$BROWSER` or `xdg-open`, without waiting; says so on
/// stderr when neither can be started (the URL is in the title either way).
fn open_in_browser(url: &str) {
    let opener = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".to_string());
    let started = std::process::Command::new(&opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match started {
        // Reaped on a thread of its own, so the run never waits for it.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(error) => {
            eprintln!("dav2d: --open: cannot start {opener} ({error}); open {url} yourself")
        }
    }
}
