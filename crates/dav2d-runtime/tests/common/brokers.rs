//! Helpers of the broker tests: finding a broker binary (Debian puts them
//! in /usr/sbin), a free loopback port, a runtime from YAML, bounded waits
//! on the graph, a gauge of `/metrics`, and the cluster tests' graph and
//! what one of its keys holds.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test file uses some.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use dav2d_core::{Graph, GraphOptions, SharedGraph, SystemClock, Value};
use dav2d_runtime::{Config, Overrides, Plan, Runtime};

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker binary `name`, on `PATH` or in the sbin directories; `None`
/// (the test skips, saying why) unless `DAV2D_REQUIRE_BROKERS` is set.
pub fn binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("DAV2D_REQUIRE_BROKERS").is_none(),
            "DAV2D_REQUIRE_BROKERS is set but {name} is not installed (scripts/test-deps.sh installs it)"
        );
        eprintln!("skipped: {name} is not installed (apt-get install {name})");
    }
    found
}

/// A runtime started from `yaml` over a fresh graph.
pub fn start(yaml: &str) -> (Runtime, SharedGraph) {
    let config = Config::parse(yaml, Path::new("brokers.yaml")).unwrap();
    let graph = SharedGraph::new(Graph::new(GraphOptions::default(), Arc::new(SystemClock)));
    let runtime = Runtime::start(
        Plan::new(config, Overrides::default()).unwrap(),
        graph.clone(),
    )
    .unwrap();
    (runtime, graph)
}

/// The latest value of (name, key).
pub fn latest(graph: &SharedGraph, name: &str, key: &str) -> Option<Value> {
    graph
        .lock()
        .latest(name, key)
        .ok()
        .flatten()
        .and_then(|r| r.sample)
        .map(|s| s.value)
}

/// Waits until `done` holds, with the test kit's deadline.
pub fn wait_for(what: &str, done: impl FnMut() -> bool) {
    dav2d_testkit::wait_for(what, done);
}

/// The numbers `expected` names whose key `k<i>` of `stream` does not hold
/// `i`, after waiting up to 15 s for there to be none.
pub fn missing(graph: &SharedGraph, stream: &str, expected: &[usize]) -> Vec<usize> {
    let missing = || -> Vec<usize> {
        expected
            .iter()
            .copied()
            .filter(|i| latest(graph, stream, &format!("k{i}")) != Some(Value::Float(*i as f64)))
            .collect()
    };
    // A wait that may end unmet: the caller reports what is missing.
    dav2d_testkit::holds_within(Duration::from_secs(15), || missing().is_empty());
    missing()
}

/// The graph the cluster tests run on every instance (and on a reference
/// without clustering): a 3-sample average, an `all`-edge ewma and an alert
/// over the average, all of `temperature`.
pub const CLUSTER_GRAPH: &str = "streams:\n  - name: temperature\nnodes:\n  - name: avg\n    kind: moving_average\n    n: 3\n    input: temperature\n\
\x20 - name: smooth\n    kind: ewma\n    alpha: 0.25\n    input: temperature\n    policy: all\n\
constraints:\n  - name: hot\n    input: avg\n    trip: 60\n    reset: 55\n";

/// What one key of [`CLUSTER_GRAPH`] holds: the latest average, the window
/// of samples, the ewma, the alert, and how many samples the key received.
pub type KeyState = (Value, Vec<Option<Value>>, Value, Value, u64);

/// What `graph` holds of `key`, if anything.
pub fn key_state(graph: &SharedGraph, key: &str) -> Option<KeyState> {
    let graph = graph.lock();
    let latest = |name: &str| graph.latest(name, key).ok().flatten()?.sample;
    let window = graph.window("temperature", key, 3).ok()?;
    let window = (0..window.len()).map(|i| window.value(i)).collect();
    Some((
        latest("avg")?.value,
        window,
        latest("smooth")?.value,
        latest("hot")?.value,
        latest("temperature")?.seq,
    ))
}

/// The keys of `expected` that not exactly one of `holders` holds, or that
/// their holder holds otherwise.
pub fn keys_held_otherwise(
    expected: &[(String, KeyState)],
    holders: &[&SharedGraph],
) -> Vec<String> {
    expected
        .iter()
        .filter(|(key, want)| {
            let held: Vec<_> = holders.iter().filter_map(|g| key_state(g, key)).collect();
            held.len() != 1 || held[0] != *want
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// The value of the gauge `name` in `/metrics` at `address` (a line
/// `name{component="cluster",kind="cluster"} 3`); 0 when it has none.
pub fn gauge(address: std::net::SocketAddr, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    dav2d_testkit::gauge_in(&answer, name)
}

/// A nats-server with JetStream, of the test's own.
pub struct NatsServer {
    child: Option<Child>,
    dir: PathBuf,
    pub port: u16,
    /// Arguments besides the listener's and JetStream's (`--user u`).
    extra: Vec<String>,
}

impl NatsServer {
    pub fn start() -> Option<NatsServer> {
        Self::start_with(&[])
    }

    /// A server with `extra` arguments, e.g. `["--user", "u", "--pass", "p"]`.
    pub fn start_with(extra: &[&str]) -> Option<NatsServer> {
        binary("nats-server")?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("dav2d-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = NatsServer {
            child: None,
            dir,
            port,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        server.child = Some(server.spawn());
        Some(server)
    }

    #[allow(clippy::zombie_processes)] // `kill` (and `Drop`) wait for it.
    fn spawn(&self) -> Child {
        let child = Command::new(binary("nats-server").unwrap())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let port = self.port;
        dav2d_testkit::wait_for(&format!("nats-server to listen on {port}"), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(self.spawn());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
