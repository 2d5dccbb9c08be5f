//! Parquet history: checkpoints roll the log into Parquet files that read
//! back row for row, queries see history and the unrolled log tail alike, a
//! crash between archiving and deleting archives nothing twice, retention
//! deletes old files, and a damaged file is an error, never misread.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap what they set up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dav2d_core::{
    Builtin, Clock, ConstraintSpec, Graph, GraphOptions, ManualClock, NodeSpec, Subscription,
    SubscriptionMode, Value,
};
use dav2d_store::history::{self, Query, Rows};
use dav2d_store::{Store, StoreOptions};

const SECOND: i64 = 1_000_000_000;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dav2d-history-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Rig {
    clock: ManualClock,
    graph: Graph,
    store: Store,
    updates: Subscription,
    /// Every update logged, as history rows.
    logged: Rows,
}

impl Rig {
    fn open(dir: &Path, options: StoreOptions, clock: ManualClock) -> Rig {
        let mut graph = Graph::new(GraphOptions::default(), Arc::new(clock.clone()));
        graph
            .register_all(vec![
                NodeSpec::builtin("avg", "temp", Builtin::MovingAverage { n: 2 }),
                NodeSpec::constraint("hot", "avg", ConstraintSpec::above(80.0)),
            ])
            .unwrap();
        let (store, _) = Store::open(dir, options, Arc::new(clock.clone()), &mut graph).unwrap();
        let updates = graph
            .subscribe_many(
                &["temp", "avg", "hot"],
                SubscriptionMode::EveryChange,
                1 << 16,
            )
            .unwrap();
        Rig {
            clock,
            graph,
            store,
            updates,
            logged: Rows::default(),
        }
    }

    /// Pushes `n` samples a second apart starting at the clock, logs every
    /// update and flushes.
    fn run(&mut self, n: i64) {
        for i in 0..n {
            let now = self.clock.now_ns();
            let value = if i % 5 == 4 { 95.0 } else { 60.0 + i as f64 };
            self.graph
                .push(
                    "temp",
                    &format!("dev-{}", i % 2),
                    Value::Float(value),
                    Some(now),
                )
                .unwrap();
            self.graph.run_wave();
            self.clock.advance(SECOND);
        }
        while let Some(update) = self.updates.try_next() {
            self.store.log(&update).unwrap();
            self.logged.push(
                update.ts_ns,
                Arc::clone(&update.name),
                Arc::clone(&update.key),
                update.value.as_ref().unwrap(),
            );
        }
        self.store.flush().unwrap();
    }
}

fn scan(dir: &Path, query: &Query) -> Rows {
    let mut out = Rows::default();
    history::scan(
        dir,
        query,
        |_| {},
        |rows| {
            for i in 0..rows.len() {
                out.ts.push(rows.ts[i]);
                out.name.push(Arc::clone(&rows.name[i]));
                out.key.push(Arc::clone(&rows.key[i]));
                out.value.push(rows.value[i]);
                out.state.push(rows.state[i].clone());
            }
            Ok(())
        },
    )
    .unwrap();
    out
}

#[test]
fn checkpoints_roll_the_log_into_parquet_that_reads_back() {
    let dir = scratch("roll");
    let mut rig = Rig::open(
        &dir,
        StoreOptions::default(),
        ManualClock::new(1_000 * SECOND),
    );
    rig.run(40);
    rig.store.checkpoint(&rig.graph).unwrap();
    let files = history::files(&dir).unwrap();
    assert_eq!(files.len(), 1, "one Parquet file per checkpoint");
    assert_eq!(files[0].time_range, (1_000 * SECOND, 1_039 * SECOND));
    assert!(
        dav2d_store::wal::segments(&dir)
            .unwrap()
            .iter()
            .all(|&n| n > files[0].segments.1),
        "the archived segments are gone"
    );
    assert_eq!(scan(&dir, &Query::default()), rig.logged, "row for row");
    let states: Vec<_> = rig.logged.state.iter().flatten().collect();
    assert!(
        states.iter().any(|s| s.as_ref() == "tripped"),
        "constraint states are in the state column"
    );

    // More updates, not yet checkpointed: a query sees both.
    rig.run(10);
    let all = scan(&dir, &Query::default());
    assert_eq!(all, rig.logged, "history, then the log tail");
    let one = scan(
        &dir,
        &Query {
            name: Some("avg".into()),
            key: Some("dev-1".into()),
            since: Some(1_010 * SECOND),
            until: Some(1_045 * SECOND),
        },
    );
    let expected: Vec<i64> = (0..all.len())
        .filter(|&i| {
            all.name[i].as_ref() == "avg"
                && all.key[i].as_ref() == "dev-1"
                && (1_010 * SECOND..1_045 * SECOND).contains(&all.ts[i])
        })
        .map(|i| all.ts[i])
        .collect();
    assert_eq!(one.ts, expected);
    assert!(!one.is_empty() && one.name.iter().all(|n| n.as_ref() == "avg"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_crash_between_archiving_and_deleting_archives_nothing_twice() {
    let dir = scratch("crash");
    let clock = ManualClock::new(5_000 * SECOND);
    let mut rig = Rig::open(&dir, StoreOptions::default(), clock.clone());
    rig.run(20);
    let segments = dav2d_store::wal::segments(&dir).unwrap();
    let saved: Vec<(PathBuf, Vec<u8>)> = segments
        .iter()
        .map(|&n| {
            let path = dav2d_store::wal::segment_file(&dir, n);
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    rig.store.checkpoint(&rig.graph).unwrap();
    let logged = rig.logged.clone();
    drop(rig);
    // As if the process died after the rename, before the deletes.
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    let mut rig = Rig::open(&dir, StoreOptions::default(), clock);
    assert_eq!(scan(&dir, &Query::default()), logged, "no row twice");
    rig.store.checkpoint(&rig.graph).unwrap();
    assert_eq!(history::files(&dir).unwrap().len(), 1, "not archived again");
    assert!(
        saved.iter().all(|(path, _)| !path.exists()),
        "the leftovers are deleted"
    );
    assert_eq!(scan(&dir, &Query::default()), logged);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_deletes_history_older_than_it() {
    let dir = scratch("retention");
    let clock = ManualClock::new(10_000 * SECOND);
    let options = StoreOptions {
        retention_ns: Some(3_600 * SECOND),
        ..StoreOptions::default()
    };
    let mut rig = Rig::open(&dir, options, clock.clone());
    rig.run(10);
    rig.store.checkpoint(&rig.graph).unwrap();
    assert_eq!(history::files(&dir).unwrap().len(), 1);
    clock.advance(3_600 * SECOND);
    rig.run(10);
    rig.store.checkpoint(&rig.graph).unwrap();
    let files = history::files(&dir).unwrap();
    assert_eq!(files.len(), 1, "the first file is past the retention");
    assert_eq!(files[0].time_range.0, 13_610 * SECOND);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_history_file_is_an_error_not_misread() {
    let dir = scratch("damaged");
    let mut rig = Rig::open(&dir, StoreOptions::default(), ManualClock::new(SECOND));
    rig.run(30);
    rig.store.checkpoint(&rig.graph).unwrap();
    let path = history::files(&dir).unwrap()[0].path.clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    std::fs::write(&path, &bytes).unwrap();
    let error = history::scan(&dir, &Query::default(), |_| {}, |_| Ok(())).unwrap_err();
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "names the file: {error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
