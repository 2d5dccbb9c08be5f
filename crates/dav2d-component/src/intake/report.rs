//! The report of one batch: the engine's rejections and the decoder's
//! merged in batch order, every one counted by reason and stage.

use dav2d_core::{BatchReport, RejectReason, Stage};

use super::{IngestReport, Intake};

impl Intake {
    /// Merges the engine's report and the decoding errors in batch order,
    /// counting both.
    pub(super) fn report(
        &self,
        batch: BatchReport,
        decode: &[dav2d_wire::RecordError],
    ) -> IngestReport {
        let metrics = &self.shared.metrics;
        self.counters.accepted.inc_by(batch.accepted as u64);
        let mut by_reason: Vec<(RejectReason, Stage, u64)> = batch
            .by_reason
            .iter()
            .map(|(reason, count)| (*reason, Stage::Engine, *count))
            .collect();
        for error in decode {
            match by_reason
                .iter_mut()
                .find(|(r, s, _)| *r == error.reason && *s == Stage::Decode)
            {
                Some((_, _, n)) => *n += 1,
                None => by_reason.push((error.reason, Stage::Decode, 1)),
            }
        }
        for (reason, stage, count) in &by_reason {
            metrics.reject(&self.counters, *reason, *stage, *count);
        }
        let mut errors: Vec<(usize, String)> = decode
            .iter()
            .take(BatchReport::MAX_ERRORS)
            .map(|e| (e.index, e.message.clone()))
            .chain(batch.errors.iter().map(|(i, r)| (*i, r.to_string())))
            .collect();
        errors.sort_by_key(|(i, _)| *i);
        errors.truncate(BatchReport::MAX_ERRORS);
        IngestReport {
            accepted: batch.accepted,
            rejected: batch.rejected + decode.len(),
            errors,
            by_reason,
            settled: 0,
            error: batch.error,
        }
    }
}
