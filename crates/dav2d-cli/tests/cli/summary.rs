//! The terminal summary and `/metrics` agree on what came in: a bounded
//! synthetic fleet plus HTTP posts with rejected records, compared with the
//! counters a scrape sums, on a refresh line and on the final line.

use super::{http_address, request, scratch_config, spawn_titled, stop};
use std::process::Command;

/// The sum over every series of the counter `name` in a `/metrics` text.
fn summed(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(_, value)| value.trim().parse::<u64>().unwrap())
        .sum()
}

/// `samples=N` and `rejected=M` of a plain summary line.
fn line_counts(line: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let rest = line.split(&format!(" {name}=")).nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("samples")?, field("rejected")?))
}

#[test]
fn the_summary_and_metrics_agree_on_samples_received_and_rejected() {
    use std::io::BufRead;
    let (dir, config) = scratch_config(
        "summary-metrics",
        "streams:\n  - name: temp\n    max: 1000\nnodes:\n  - name: avg\n    kind: moving_average\n    input: temp\n    n: 4\n\
         sources:\n  - kind: synthetic\n    stream: temp\n    devices: 10\n    rate_hz: 200\n    steps: 50\n",
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_dav2d"));
    // The config has no persistence section, so the default ./dav2d-data is
    // written where the command runs: the scratch folder, not the crate.
    command
        .current_dir(&dir)
        .args(["run", config.to_str().unwrap(), "--http", "127.0.0.1:0"])
        .args(["--tcp", "off", "--refresh", "100ms"]);
    let (mut child, title) = spawn_titled(&mut command);
    let address = http_address(&title);
    // The fleet sends 50 steps of 10 devices and idles.
    let mut metrics = String::new();
    for _ in 0..600 {
        metrics = request(&address, "GET", "/metrics", "");
        if summed(&metrics, "dav2d_samples_received_total") >= 500 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        summed(&metrics, "dav2d_samples_received_total"),
        500,
        "{metrics}"
    );
    // Two good samples, one above max, one that is not a number, one malformed.
    let answer = request(
        &address,
        "POST",
        "/ingest/temp",
        r#"[{"key": "a", "value": 1}, {"key": "a", "value": 5000}, {"key": "b", "value": "hot"}, {"key": "c"}, {"key": "b", "value": 2}]"#,
    );
    assert!(answer.contains("\"accepted\":2"), "{answer}");
    let metrics = request(&address, "GET", "/metrics", "");
    let received = summed(&metrics, "dav2d_samples_received_total");
    let rejected = summed(&metrics, "dav2d_samples_rejected_total");
    let accepted = summed(&metrics, "dav2d_samples_accepted_total");
    assert_eq!((received, accepted, rejected), (505, 502, 3), "{metrics}");
    // A refresh line drawn after the post shows the same counts.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut line = String::new();
    for _ in 0..200 {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push(line.trim_end().to_string());
        if line_counts(&line).is_some_and(|(samples, _)| samples >= received) {
            break;
        }
    }
    let last = seen.last().cloned().unwrap_or_default();
    assert_eq!(line_counts(&last), Some((received, rejected)), "{seen:#?}");
    child.stdout = Some(stdout.into_inner());
    let rest = stop(&mut child, "INT");
    let expected = format!("{received} samples in, {rejected} rejected");
    assert!(
        rest.contains(&expected),
        "the final line says {expected}: {rest}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
