//! Publishing to the read model: the slots a wave changed, the graph's
//! description when its shape changed, and the counters, once per wave.

use std::sync::Arc;

use super::{Graph, StreamId};
use crate::info::Reading;
use crate::published::{NodeCounters, Publication, ReadModel, StreamCounters};
use crate::value::Sample;

/// The engine's side of the read model.
pub(super) struct Publishing {
    model: Arc<ReadModel>,
    /// Slots changed since the last publication.
    changed: Vec<(StreamId, u32)>,
    /// (streams, nodes) when the description was last published.
    shape: (usize, usize),
    /// Rejections when the reasons were last built, and those reasons.
    rejected: u64,
    reasons: Vec<(crate::RejectReason, u64)>,
}

impl Graph {
    /// The read model this graph publishes to after every wave (created on
    /// the first call, with everything the graph holds already in it).
    /// Readers use it without the engine lock; see [`ReadModel`].
    pub fn read_model(&mut self) -> Arc<ReadModel> {
        if let Some(publishing) = &self.publishing {
            return Arc::clone(&publishing.model);
        }
        let model = Arc::new(ReadModel::default());
        self.publishing = Some(Publishing {
            model: Arc::clone(&model),
            changed: Vec::new(),
            shape: (usize::MAX, usize::MAX),
            rejected: u64::MAX,
            reasons: Vec::new(),
        });
        for stream in 0..self.streams.len() {
            for slot in 0..self.streams[stream].slots.len() {
                self.mark_changed(StreamId(stream as u32), slot as u32);
            }
        }
        self.publish();
        model
    }

    /// Notes that (stream, slot) changed, for the next publication.
    #[inline]
    pub(super) fn mark_changed(&mut self, stream: StreamId, slot: u32) {
        let Some(publishing) = &mut self.publishing else {
            return;
        };
        let slot_ref = &mut self.streams[stream.index()].slots[slot as usize];
        if !slot_ref.unpublished {
            slot_ref.unpublished = true;
            publishing.changed.push((stream, slot));
        }
    }

    /// Publishes the description again (a node or stream was added or
    /// changed) with whatever else changed.
    pub(super) fn republish_description(&mut self) {
        if let Some(publishing) = &mut self.publishing {
            publishing.shape = (usize::MAX, usize::MAX);
        }
        self.publish();
    }

    /// Publishes what changed since the last publication.
    pub(super) fn publish(&mut self) {
        let Some(mut publishing) = self.publishing.take() else {
            return;
        };
        let shape = (self.streams.len(), self.nodes.len());
        let description = (publishing.shape != shape).then(|| {
            publishing.shape = shape;
            (Arc::new(self.all_nodes()), Arc::new(self.all_streams()))
        });
        let mut stats = self.stats.clone();
        if publishing.rejected != self.stats.rejected {
            publishing.rejected = self.stats.rejected;
            publishing.reasons = self.stats().rejected_by_reason;
        }
        stats.rejected_by_reason = publishing.reasons.clone();
        stats.streams = self.streams.len();
        stats.nodes = self.nodes.len();
        stats.keys = self.keys.len();
        let now = self.clock.now_ns();
        let publication = Publication {
            description,
            node_counters: self
                .nodes
                .iter()
                .enumerate()
                .map(|(index, node)| NodeCounters {
                    stats: node.stats.clone(),
                    keys: node.keys.len(),
                    lag_ns: self.lag_ns(super::NodeId(index as u32), now),
                })
                .collect(),
            stream_counters: self
                .streams
                .iter()
                .map(|s| StreamCounters {
                    keys: s.slots.len(),
                    accepted: s.accepted,
                    rejected: s.rejected,
                })
                .collect(),
            stats,
        };
        let (streams, keys) = (&mut self.streams, &self.keys);
        let Publishing { model, changed, .. } = &mut publishing;
        model.apply(publication, |changes| {
            for (stream, slot) in changed.drain(..) {
                let slot_ref = &mut streams[stream.index()].slots[slot as usize];
                slot_ref.unpublished = false;
                let series = &slot_ref.series;
                if series.count == 0 && slot_ref.error.is_none() {
                    continue;
                }
                let key = (!slot_ref.in_model).then(|| Arc::clone(&keys[slot_ref.key.index()]));
                slot_ref.in_model = true;
                let error = slot_ref.error.clone();
                let seq = series.count.saturating_sub(1);
                if let Some((value, ts_ns)) = series.latest_float() {
                    changes.set_float(stream.index(), slot, key, (value, ts_ns, seq), error);
                    continue;
                }
                let reading = Reading {
                    sample: series.latest_value().map(|value| Sample {
                        value,
                        ts_ns: series.latest_ts().unwrap_or_default(),
                        seq,
                    }),
                    error,
                };
                changes.set(stream.index(), slot, key, reading);
            }
        });
        self.publishing = Some(publishing);
    }
}
