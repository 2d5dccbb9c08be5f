//! Native values into the engine: what a frame source and Python's `push`
//! hand in (no decoding), on the same path as decoded bodies: counted under
//! the component, held back while a lossless sink is behind, admitted
//! through the `all`-edge queue, applied in one lock hold with its wave,
//! and, when clustering, forwarded to the partitioned stream (frames are
//! leases of this machine's memory and are always applied here).

use dav2d_core::{BatchReport, SampleIn, Value};

use super::{Admission, Forwarded, Intake, Outcome};

/// One native sample for [`Intake::push_values`].
#[derive(Debug, Clone)]
pub struct NativeSample<'a> {
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: Value,
    /// ns since the epoch; the graph's clock when `None`.
    pub ts: Option<i64>,
}

impl Intake {
    /// [`Intake::push_values`] for a caller that holds something the
    /// engine's other threads may need while they run node logic (Python's
    /// GIL, which every Python node takes): applied only when nothing has
    /// to be waited for (not clustering, no sink behind, room in the
    /// `all`-edge queue, the graph free). `None`: nothing was counted or
    /// applied; let go of what is held and call `push_values`.
    pub fn try_push_values(&self, stream: &str, samples: &[NativeSample<'_>]) -> Option<Outcome> {
        self.try_apply_native(stream, samples.len(), |graph| {
            push_samples(graph, stream, samples)
        })
    }

    /// Applies `samples` of `stream` (good ones applied, bad ones reported
    /// with their index), counted under this component; with clustering on,
    /// samples other than frames go to their partition's owner.
    pub fn push_values(
        &self,
        stream: &str,
        samples: &[NativeSample<'_>],
        admission: Admission,
    ) -> Outcome {
        if let Some(forward) = self.shared.forward.get()
            && !samples.iter().any(|s| matches!(s.value, Value::Frame(_)))
        {
            self.counters.received.inc_by(samples.len() as u64);
            let now = self.shared.clock.now_ns();
            let forwarded: Vec<Forwarded<'_>> = (samples.iter())
                .map(|s| Forwarded {
                    stream,
                    key: s.key,
                    value: &s.value,
                    ts: s.ts.unwrap_or(now),
                })
                .collect();
            return self.forward_samples(forward.as_ref(), &forwarded, &[]);
        }
        self.apply_native(stream, samples.len(), admission, |graph| {
            push_samples(graph, stream, samples)
        })
    }
}

/// Pushes `samples` of `stream` into the locked graph.
fn push_samples(
    graph: &mut dav2d_core::Graph,
    stream: &str,
    samples: &[NativeSample<'_>],
) -> BatchReport {
    let mut batch = BatchReport::default();
    let records = samples.iter().enumerate().map(|(index, s)| SampleIn {
        index,
        stream,
        key: s.key,
        value: s.value.clone(),
        ts_ns: s.ts,
    });
    graph.push_records(records, &mut batch);
    batch
}
