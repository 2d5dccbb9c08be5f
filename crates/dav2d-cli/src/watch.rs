//! `dav2d watch NAME [KEY]`: follows a running dav2d from a terminal over
//! its read API. With a key, each change of that key's value (or alert
//! state) is a line with a sparkline of its recent values; without one,
//! each change of any key; with `--top N`, the N worst keys (tripped, then
//! stale, then the highest values) are listed again every refresh.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// What `dav2d watch` takes.
#[derive(clap::Args)]
pub struct WatchArgs {
    /// The stream, node or constraint to follow.
    name: String,
    /// Only this key.
    key: Option<String>,
    /// Where dav2d's HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// The server's http.token (else the DAV2D_TOKEN environment variable).
    #[arg(long)]
    token: Option<String>,
    /// List the N worst keys every refresh instead of following changes.
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// How often `--top` lists again, e.g. `500ms`.
    #[arg(long, value_parser = crate::parse_duration, default_value = "1s")]
    refresh: Duration,
    /// Stop by itself after this long, e.g. `10s`.
    #[arg(long = "for", value_parser = crate::parse_duration)]
    duration: Option<Duration>,
}

/// Values a sparkline shows.
const SPARK: usize = 40;
/// Keys whose recent values are kept while following every key.
const KEYS_KEPT: usize = 10_000;
/// Keys read for `--top`, at most (ten pages).
const TOP_READ: usize = 100_000;

/// Runs `dav2d watch`.
pub fn watch(args: WatchArgs) -> Result<(), String> {
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("DAV2D_TOKEN").ok());
    // Following, the deadline ends the stream's read; listing, each read
    // gets 30 s and the deadline is checked between listings.
    let read_limit = match args.top {
        Some(_) => Some(Duration::from_secs(30)),
        None => args.duration,
    };
    let client = Client::new(&args.http, token, read_limit, args.duration);
    match args.top {
        Some(n) => top(&client, &args, n.max(1)),
        None => follow(&client, &args),
    }
}

/// A blocking client of one dav2d's read API.
struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    until: Option<Instant>,
}

impl Client {
    fn new(
        http: &str,
        token: Option<String>,
        read_limit: Option<Duration>,
        duration: Option<Duration>,
    ) -> Self {
        let base = match http.starts_with("http://") {
            true => http.trim_end_matches('/').to_string(),
            false => format!("http://{}", http.trim_end_matches('/')),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(read_limit)
            .build()
            .into();
        Self {
            base,
            token,
            agent,
            until: duration.map(|d| Instant::now() + d),
        }
    }

    fn done(&self) -> bool {
        self.until.is_some_and(|until| Instant::now() >= until)
    }

    /// GET `path`: the response, or what went wrong said for a person.
    fn get(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>, String> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|error| {
            format!(
                "cannot read {}{path}: {error}; is `dav2d run` serving there? (--http sets where)",
                self.base
            )
        })?;
        match response.status().as_u16() {
            200 => Ok(response),
            401 => Err(format!(
                "{} wants its token: give --token or set DAV2D_TOKEN",
                self.base
            )),
            status => {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                let message = serde_json::from_str::<Json>(&body)
                    .ok()
                    .and_then(|j| j["error"].as_str().map(str::to_string))
                    .unwrap_or(body);
                Err(format!("{path}: {status}: {message}"))
            }
        }
    }

    fn json(&self, path: &str) -> Result<Json, String> {
        let mut response = self.get(path)?;
        let text = (response.body_mut().with_config().limit(64 << 20))
            .read_to_string()
            .map_err(|e| format!("{path}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))
    }
}

/// The newest value of each stretch of `key`'s window of `name`, for a
/// sparkline (none when the window cannot be read).
fn window_lasts(client: &Client, name: &str, key: &str) -> Vec<f64> {
    let path = format!(
        "/window/{}?key={}&points={SPARK}",
        encode(name),
        encode(key)
    );
    let window = client.json(&path).unwrap_or(Json::Null);
    (window["points"].as_array().into_iter().flatten())
        .filter_map(|p| p["last"].as_f64())
        .collect()
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Unicode blocks from the lowest to the highest of `values`.
pub(crate) fn sparkline(values: impl IntoIterator<Item = f64>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    values
        .iter()
        .map(|v| match hi > lo {
            true => BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize],
            false => BARS[3],
        })
        .collect()
}

fn shown(value: &Json) -> String {
    match value {
        Json::Number(n) => match n.as_f64() {
            Some(x) if x.fract() != 0.0 => format!("{x:.3}"),
            _ => n.to_string(),
        },
        Json::String(s) => s.clone(),
        Json::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn clock(ts_ns: i64) -> String {
    let seconds = ts_ns.div_euclid(1_000_000_000);
    let millis = ts_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let day = seconds.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        day / 3600,
        day / 60 % 60,
        day % 60
    )
}

/// Follows changes through `/events`, one line each.
fn follow(client: &Client, args: &WatchArgs) -> Result<(), String> {
    let mut recent: HashMap<String, VecDeque<f64>> = HashMap::new();
    let mut out = std::io::stdout().lock();
    if let Some(key) = &args.key {
        // Where the key stands now, with its window as the first sparkline.
        let path = format!("/state/{}?key={}", encode(&args.name), encode(key));
        let now = client.json(&path)?;
        let values = recent.entry(key.clone()).or_default();
        values.extend(window_lasts(client, &args.name, key));
        let _ = writeln!(
            out,
            "{} {key} {}  {}",
            clock(now["ts"].as_i64().unwrap_or(0)),
            shown(&now["value"]),
            sparkline(values.iter().copied())
        );
    }
    let response = client.get(&format!("/events?names={}", encode(&args.name)))?;
    let reader = BufReader::new(response.into_body().into_reader());
    let mut event = String::new();
    for line in reader.lines() {
        let line = match line {
            Ok(line) => line,
            // The --for deadline ends the stream.
            Err(_) if client.done() => return Ok(()),
            Err(error) => return Err(format!("the event stream broke: {error}")),
        };
        if let Some(kind) = line.strip_prefix("event: ") {
            event = kind.to_string();
            continue;
        }
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(update) = serde_json::from_str::<Json>(data) else {
            continue;
        };
        let key = update["key"].as_str().unwrap_or("").to_string();
        if args.key.as_ref().is_some_and(|k| *k != key) {
            continue;
        }
        let ts = clock(update["ts"].as_i64().unwrap_or(0));
        let written = match (&update["error"], event.as_str()) {
            (Json::String(error), _) => {
                format!("{ts} {key} error: {}", error.lines().last().unwrap_or(""))
            }
            (_, "transition") => format!(
                "{ts} {key} {} -> {}",
                shown(&update["transition"]["from"]),
                shown(&update["transition"]["to"])
            ),
            _ => {
                if recent.len() >= KEYS_KEPT && !recent.contains_key(&key) {
                    recent.clear();
                }
                let values = recent.entry(key.clone()).or_default();
                values.extend(update["value"].as_f64());
                while values.len() > SPARK {
                    values.pop_front();
                }
                format!(
                    "{ts} {key} {}  {}",
                    shown(&update["value"]),
                    sparkline(values.iter().copied())
                )
            }
        };
        if writeln!(out, "{written}")
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(()); // the reader went away (a closed pipe)
        }
        if client.done() {
            return Ok(());
        }
    }
    Ok(())
}

/// How bad a key's reading is: tripped, then stale, then by value.
fn badness(reading: &Json) -> (u8, f64) {
    match &reading["value"] {
        Json::String(s) if s == "tripped" => (3, 0.0),
        Json::String(s) if s == "stale" => (2, 0.0),
        value => (1, value.as_f64().unwrap_or(f64::MIN)),
    }
}

/// Lists the N worst keys every refresh.
fn top(client: &Client, args: &WatchArgs, n: usize) -> Result<(), String> {
    let terminal = std::io::stdout().is_terminal();
    loop {
        let mut keys: Vec<(String, Json)> = Vec::new();
        let mut after: Option<String> = None;
        while keys.len() < TOP_READ {
            let mut path = format!("/state/{}?limit=10000", encode(&args.name));
            if let Some(after) = &after {
                path.push_str(&format!("&after={}", encode(after)));
            }
            let page = client.json(&path)?;
            if let Some(map) = page["keys"].as_object() {
                keys.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => break,
            }
        }
        let total = keys.len();
        keys.sort_by(|a, b| {
            let (x, y) = (badness(&a.1), badness(&b.1));
            y.0.cmp(&x.0).then(y.1.total_cmp(&x.1)).then(a.0.cmp(&b.0))
        });
        let mut text = String::new();
        if terminal {
            text.push_str("\x1b[2J\x1b[H");
        }
        text.push_str(&format!(
            "{}: the {} worst of {total} keys\n",
            args.name,
            n.min(total)
        ));
        for (key, reading) in keys.iter().take(n) {
            let values = window_lasts(client, &args.name, key);
            text.push_str(&format!(
                "  {key:<24} {:>12}  {}\n",
                shown(&reading["value"]),
                sparkline(values)
            ));
        }
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(());
        }
        if client.done() {
            return Ok(());
        }
        std::thread::sleep(args.refresh);
        if client.done() {
            return Ok(());
        }
    }
}
