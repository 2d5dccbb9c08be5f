//! The file-action budget, on a simulated clock: a load that would need far
//! more than the budget at the default schedule stays within it every day
//! (by stretching flushes, checkpoints and segments) and loses nothing; a
//! budget too small to comply with stops persistence with an error naming
//! the budget, the count and the setting.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dav2d_core::{Builtin, Clock, Graph, GraphOptions, Keys, ManualClock, NodeSpec, SharedGraph};
use dav2d_store::persist::{CHECKPOINT_ACTIONS, Schedule};
use dav2d_store::{PersistStats, Persister, Store, StoreOptions};

const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SECOND;
const RATE: i64 = 2; // samples per simulated second

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dav2d-budget-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn graph(clock: &ManualClock) -> SharedGraph {
    let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
    graph
        .register(NodeSpec::builtin(
            "avg",
            "temp",
            Builtin::MovingAverage { n: 4 },
        ))
        .unwrap();
    SharedGraph::new(graph)
}

/// The defaults: flush every second, checkpoint every minute, 64 KiB
/// segments (small, so segment rolls count too).
fn schedule() -> Schedule {
    Schedule {
        flush_interval_ns: SECOND,
        checkpoint_interval_ns: 60 * SECOND,
        segment_bytes: 64 << 10,
    }
}

/// Pushes RATE samples per second of `from..to` (simulated), one wave each.
fn load(graph: &SharedGraph, from: i64, to: i64, pushed: &mut i64) {
    let keys = ["a", "b", "c", "d"];
    let mut graph = graph.lock();
    let first = from.div_euclid(SECOND / RATE) + 1;
    let last = to.div_euclid(SECOND / RATE);
    for tick in first..=last {
        let key = keys[(tick % 4) as usize];
        let value = (tick % 97) as f64;
        graph.push_numbers(
            "temp",
            Keys::Many(&[key]),
            &[value],
            Some(&[tick * (SECOND / RATE)]),
        );
        graph.run_wave();
        *pushed += 1;
    }
}

#[test]
fn a_load_over_the_budget_at_the_default_schedule_stays_within_it() {
    let dir = scratch("stretch");
    let budget = 3_000u64;
    let start = 20_000 * DAY;
    let clock = ManualClock::new(start);
    let shared = graph(&clock);
    let options = StoreOptions {
        max_file_actions_per_day: budget,
        ..StoreOptions::default()
    };
    let stats = Arc::new(PersistStats::default());
    let (mut persister, _) = Persister::open(
        &dir,
        options.clone(),
        schedule(),
        &["temp".to_string()],
        &shared,
        Arc::clone(&stats),
    )
    .unwrap();

    // What the default schedule would spend in a day at this load.
    let bytes_per_second = RATE as f64 * 2.0 * 40.0;
    let default_demand = schedule().demand(bytes_per_second / SECOND as f64, 2.0) * DAY as f64;
    assert!(
        default_demand > 50.0 * budget as f64,
        "the load needs {default_demand:.0} actions a day at the defaults"
    );

    let (mut pushed, mut day, mut used_max) = (0i64, start / DAY, 0u64);
    let mut days_used = Vec::new();
    let mut steps = 0;
    let mut degraded_steps = 0;
    let end = start + DAY + DAY / 2;
    while clock.now_ns() < end {
        let wait = persister.step(&shared, false);
        let now = clock.now_ns();
        let used = persister.store().ledger().used_today();
        assert!(
            used <= budget,
            "day {day}: {used} actions used, budget {budget}"
        );
        used_max = used_max.max(used);
        let next = (now + wait.max(SECOND / 10)).min(end);
        if stats.problem().is_some() {
            degraded_steps += 1;
        }
        if next.div_euclid(DAY) != day {
            // The last step of a day: what it used in all.
            days_used.push(used_max);
            day = next.div_euclid(DAY);
            used_max = 0;
        }
        load(&shared, now, next, &mut pushed);
        clock.set(next);
        steps += 1;
        assert!(
            steps < 100_000,
            "the schedule must not degenerate into tiny steps"
        );
    }
    persister.step(&shared, true);
    days_used.push(used_max);

    let schedule_now = persister.schedule();
    eprintln!(
        "steps {steps}, days used {days_used:?}, flush {} ms, checkpoint {} s, segment {} KiB, pushed {pushed}",
        schedule_now.flush_interval_ns / 1_000_000,
        schedule_now.checkpoint_interval_ns / SECOND,
        schedule_now.segment_bytes >> 10
    );
    assert!(
        schedule_now.flush_interval_ns > 10 * SECOND,
        "flushes were stretched: {} ms",
        schedule_now.flush_interval_ns / 1_000_000
    );
    assert!(schedule_now.segment_bytes > 64 << 10, "segments grew");
    assert_eq!(degraded_steps, 0, "never degraded");
    assert!(
        stats.problem().is_none(),
        "never degraded: {:?}",
        stats.problem()
    );
    assert_eq!(days_used.len(), 2);
    for (i, used) in days_used.iter().enumerate() {
        assert!(*used <= budget, "day {i}: {used} > {budget}");
    }
    assert!(
        days_used[0] > budget / 2,
        "the budget is used, not hoarded: {} of {budget}",
        days_used[0]
    );
    assert_eq!(
        stats.flushed.load(Ordering::Relaxed),
        2 * pushed as u64,
        "every update (input and average) was made durable"
    );
    drop(persister);

    // Everything is there after a restart.
    let expected = shared.lock().latest("avg", "a").unwrap().unwrap();
    let reopened = graph(&clock);
    let (_store, restored) =
        Store::open(&dir, options, Arc::new(clock.clone()), &mut reopened.lock()).unwrap();
    assert!(restored.checkpoint);
    assert_eq!(
        reopened.lock().latest("avg", "a").unwrap().unwrap(),
        expected
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_budget_that_cannot_be_met_stops_persistence_with_a_clear_error() {
    let dir = scratch("spent");
    let budget = 40u64;
    let clock = ManualClock::new(30_000 * DAY + DAY / 2);
    let shared = graph(&clock);
    let options = StoreOptions {
        max_file_actions_per_day: budget,
        ..StoreOptions::default()
    };
    let stats = Arc::new(PersistStats::default());
    let (mut persister, _) =
        Persister::open(&dir, options, schedule(), &[], &shared, Arc::clone(&stats)).unwrap();
    let mut pushed = 0;
    for _ in 0..2_000 {
        let now = clock.now_ns();
        let wait = persister.step(&shared, false);
        let next = now + wait.clamp(SECOND / 10, 60 * SECOND);
        load(&shared, now, next, &mut pushed);
        clock.set(next);
        let used = persister.store().ledger().used_today();
        assert!(used <= budget, "{used} actions used, budget {budget}");
        if stats.problem().is_some() {
            break;
        }
    }
    let problem = stats.problem().expect("the budget runs out");
    assert!(
        problem.contains("persistence.max_file_actions_per_day"),
        "{problem}"
    );
    assert!(
        problem.contains(&format!("of {budget} used today")),
        "{problem}"
    );
    assert!(
        (CHECKPOINT_ACTIONS as u64) < budget,
        "the test's budget allows at least one checkpoint"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_backlog_that_merges_updates_is_counted_and_reported_never_silent() {
    let dir = scratch("merged");
    let clock = ManualClock::new(20_000 * DAY);
    let shared = graph(&clock);
    let options = StoreOptions {
        backlog: 4,
        ..StoreOptions::default()
    };
    let stats = Arc::new(PersistStats::default());
    let (mut persister, _) =
        Persister::open(&dir, options, schedule(), &[], &shared, Arc::clone(&stats)).unwrap();
    persister.step(&shared, false);
    assert_eq!(stats.problem(), None);
    // Ten updates of one key wait while the persister does not drain: the
    // backlog holds four, the rest merge into the newest.
    {
        let mut graph = shared.lock();
        for i in 0..10 {
            clock.advance(SECOND);
            graph
                .push("temp", "a", dav2d_core::Value::Float(i as f64), None)
                .unwrap();
            graph.run_wave();
        }
    }
    persister.step(&shared, false);
    let merged = stats.merged.load(std::sync::atomic::Ordering::Relaxed);
    assert!(merged > 0, "merges are counted");
    let problem = stats.problem().expect("persistence is reported degraded");
    assert!(problem.contains("merged into newer ones"), "{problem}");
    std::fs::remove_dir_all(&dir).ok();
}
