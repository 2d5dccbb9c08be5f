//! The synthetic sensor fleet as a dav2d [`Source`]: devices reporting a
//! temperature with noise, slow drift, occasional overheating episodes and
//! silent spells, deterministic for a given seed so demos and tests repeat.
//!
//! The key design decision: the fleet's thread pushes each step's batch
//! through the shared intake and runs the wave itself (the producer pays for
//! its evaluations, which is the backpressure); a step that starts more than
//! a second late is counted, and the fleet catches up instead of bursting.

mod config;
mod fleet;
mod section;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dav2d_component::{
    Admission, Context, Gauge, Health, Intake, Outcome, Running, Source, StartError, ThreadTask,
};
use dav2d_core::Keys;

pub use config::SyntheticConfig;
pub use fleet::SyntheticFleet;
pub use section::SyntheticSection;

/// The synthetic fleet, built from its [`SyntheticConfig`] and not yet started.
#[derive(Debug)]
pub struct SyntheticSource {
    name: String,
    config: SyntheticConfig,
}

/// What the fleet reports about itself.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Steps that started late because the graph was busy.
    pub late_steps: AtomicU64,
    /// Steps taken.
    pub steps: AtomicU64,
}

impl Health for FleetStats {
    fn status(&self) -> Result<(), String> {
        Ok(())
    }

    fn gauges(&self) -> Vec<Gauge> {
        vec![Gauge {
            name: "synthetic_late_steps",
            help: "Synthetic fleet steps that started over a second late",
            value: self.late_steps.load(Ordering::Relaxed) as i64,
        }]
    }
}

impl Source for SyntheticSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "synthetic"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        self.config.validate().map_err(StartError::Other)?;
        let stats = Arc::new(FleetStats::default());
        let fleet = SyntheticFleet::new(&self.config);
        let (intake, health, thread_stats) =
            (context.intake.clone(), stats.clone(), Arc::clone(&stats));
        let task = ThreadTask::spawn(&format!("dav2d-{}", self.name), health, move |stop| {
            run(fleet, intake, stop, thread_stats)
        })?;
        Ok(Box::new(task))
    }
}

fn run(mut fleet: SyntheticFleet, intake: Intake, stop: Arc<AtomicBool>, stats: Arc<FleetStats>) {
    let period = Duration::from_secs_f64(fleet.period_s());
    let stream = fleet.stream().to_string();
    let mut next = Instant::now();
    let (mut devices, mut values) = (Vec::new(), Vec::new());
    let mut left = fleet.steps();
    while !stop.load(Ordering::Acquire) {
        if left == Some(0) {
            // A bounded run is over: idle, still up, until stopped.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        left = left.map(|n| n - 1);
        fleet.step(&mut devices, &mut values);
        stats.steps.fetch_add(1, Ordering::Relaxed);
        let keys: Vec<&str> = devices.iter().map(|&i| fleet.key(i)).collect();
        if let Outcome::Applied(report) =
            intake.push_numbers(&stream, Keys::Many(&keys), &values, None, Admission::Wait)
            && report.rejected > 0
        {
            tracing::debug!(rejected = report.rejected, "Synthetic samples rejected.");
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            stats.late_steps.fetch_add(1, Ordering::Relaxed);
            next = now;
        }
    }
}
