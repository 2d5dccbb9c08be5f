//! Built-in frame nodes, as the engine's custom logic over a frame stream:
//! `mean_luma` (the mean of BT.601 luma, 0 to 255), `motion` (the mean
//! absolute luma difference from the previous frame), `grayscale` (a gray8
//! frame in the node's own pool) and `downscale(w, h)` (a frame of the same
//! format at w×h, averaged over each output pixel's box, in its own pool)
//! and `coverage` (the fraction of a mask's pixels set, for constraints).
//! Reading a frame costs no copy; a frame a node makes is written once, into
//! a slot of the node's pool.

use std::sync::Arc;
use std::time::Duration;

use dav2d_core::{CustomLogic, Evaluation, FrameRef, Outcome, Value};

use crate::format::{FrameLayout, PixelFormat};
use crate::pool::{Delivery, FramePool, Lease};

/// The kinds of frame node.
pub const FRAME_NODES: &[&str] = &["mean_luma", "motion", "grayscale", "downscale", "coverage"];

/// One frame node's logic.
pub enum FrameNode {
    /// The mean luma of each frame (a buffer of luma kept across frames).
    MeanLuma(Vec<u8>),
    /// The mean absolute luma difference between the last two frames
    /// (their luma, in buffers kept across frames).
    Motion(Vec<u8>, Vec<u8>),
    /// Each frame in gray8.
    Grayscale(OutputPool),
    /// The fraction of pixels set (non-zero) in a mask (its first plane).
    Coverage,
    /// Each frame at `width` x `height`.
    Downscale {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// Where output frames go.
        pool: OutputPool,
        /// The SIMD resizer and a buffer for sources with padded rows,
        /// kept across frames.
        resizer: Box<Resizing>,
    },
}

/// The downscale node's resizer and its scratch buffer.
#[derive(Default)]
pub struct Resizing {
    resizer: fast_image_resize::Resizer,
    packed: Vec<u8>,
}

/// Slots of a node's output pool: the graph keeps a few outputs per key,
/// readers may hold some more.
const OUTPUT_SLOTS: usize = 12;

/// A node's own pool of output frames, made at the first frame's size.
#[derive(Default)]
pub struct OutputPool {
    pool: Option<FramePool>,
}

impl OutputPool {
    /// Writes a frame of `layout` into a free slot and returns a lease on
    /// it, or nothing when every slot is held (the pool counts the skip).
    pub fn publish(
        &mut self,
        layout: FrameLayout,
        ts_ns: i64,
        write: impl FnOnce(&mut [u8]),
    ) -> Option<Lease> {
        let pool = self.for_layout(&layout);
        let mut slot = pool.begin(Duration::ZERO)?;
        write(&mut slot.buffer()[..layout.size]);
        let seq = slot.publish(layout, ts_ns);
        pool.latest().filter(|lease| lease.meta().seq == seq)
    }

    fn for_layout(&mut self, layout: &FrameLayout) -> &FramePool {
        if self
            .pool
            .as_ref()
            .is_some_and(|p| p.capacity() < layout.size)
        {
            self.pool = None;
        }
        self.pool
            .get_or_insert_with(|| FramePool::new(OUTPUT_SLOTS, layout.size, Delivery::Latest))
    }
}

impl FrameNode {
    /// The node `kind`, with `size` for `downscale`.
    pub fn new(kind: &str, size: Option<(u32, u32)>) -> Result<FrameNode, String> {
        Ok(match kind {
            "mean_luma" => FrameNode::MeanLuma(Vec::new()),
            "motion" => FrameNode::Motion(Vec::new(), Vec::new()),
            "grayscale" => FrameNode::Grayscale(OutputPool::default()),
            "coverage" => FrameNode::Coverage,
            "downscale" => {
                if !crate::resize::AVAILABLE {
                    return Err(crate::resize::refused());
                }
                let (width, height) = size.ok_or("downscale needs width and height")?;
                if !(1..=16384).contains(&width) || !(1..=16384).contains(&height) {
                    return Err(format!(
                        "downscale to {width}x{height}: each side must be from 1 to 16384"
                    ));
                }
                FrameNode::Downscale {
                    width,
                    height,
                    pool: OutputPool::default(),
                    resizer: Box::default(),
                }
            }
            other => {
                return Err(format!(
                    "unknown frame node '{other}'; expected one of: {}",
                    FRAME_NODES.join(", ")
                ));
            }
        })
    }

    /// How many recent frames the node reads.
    pub fn window(&self) -> usize {
        match self {
            FrameNode::Motion(..) => 2,
            _ => 1,
        }
    }

    fn evaluate(&mut self, frames: &[Lease]) -> Result<Option<Value>, String> {
        let Some(newest) = frames.last() else {
            return Ok(None);
        };
        Ok(match self {
            FrameNode::MeanLuma(luma) => {
                luma_into(newest, luma);
                Some(Value::Float(mean(luma)))
            }
            FrameNode::Coverage => Some(Value::Float(coverage_of(newest))),
            FrameNode::Motion(a, b) => {
                let [previous, newest] = frames else {
                    return Ok(None);
                };
                luma_into(previous, a);
                luma_into(newest, b);
                if a.len() != b.len() {
                    return Err("motion needs frames of one size".to_string());
                }
                let total: u64 = a
                    .iter()
                    .zip(b.iter())
                    .map(|(x, y)| u64::from(x.abs_diff(*y)))
                    .sum();
                Some(Value::Float(total as f64 / a.len().max(1) as f64))
            }
            FrameNode::Grayscale(pool) => {
                let meta = newest.meta();
                let layout = PixelFormat::Gray8.layout(meta.layout.width, meta.layout.height)?;
                publish(pool, layout, meta.ts_ns, |out| write_luma(newest, out))
            }
            FrameNode::Downscale {
                width,
                height,
                pool,
                resizer,
            } => {
                let meta = newest.meta();
                let Some(channels) = meta.layout.format.packed_bytes() else {
                    return Err(format!(
                        "downscale takes packed formats; this stream is {}",
                        meta.layout.format
                    ));
                };
                let layout = meta.layout.format.layout(*width, *height)?;
                let source = &meta.layout;
                let data = newest.data();
                let (w, h) = (*width, *height);
                let mut failed = None;
                let value = publish(pool, layout, meta.ts_ns, |out| {
                    if let Err(error) = resizer.resize(data, source, channels, out, w, h) {
                        failed = Some(error);
                    }
                });
                if let Some(error) = failed {
                    return Err(error);
                }
                value
            }
        })
    }
}

/// Writes a frame into a free slot of `pool` and returns it as a value, or
/// nothing when every slot is held (the pool counts the skip).
fn publish(
    pool: &mut OutputPool,
    layout: FrameLayout,
    ts_ns: i64,
    write: impl FnOnce(&mut [u8]),
) -> Option<Value> {
    let lease = pool.publish(layout, ts_ns, write)?;
    Some(Value::Frame(FrameRef(Arc::new(lease))))
}

/// The fraction of non-zero bytes among the pixels of `frame`'s first plane.
pub fn coverage_of(frame: &Lease) -> f64 {
    if let Some(coverage) = frame.coverage() {
        return coverage;
    }
    let layout = &frame.meta().layout;
    let plane = layout.planes[0];
    let data = frame.data();
    let set: usize = (0..plane.rows)
        .map(|r| {
            let start = plane.offset + r * plane.stride;
            data[start..start + plane.row_bytes]
                .iter()
                .filter(|b| **b != 0)
                .count()
        })
        .sum();
    set as f64 / (plane.rows * plane.row_bytes).max(1) as f64
}

/// The BT.601 luma of each pixel of `frame` into `out`, resized to width
/// × height (its capacity is kept for the next frame).
fn luma_into(frame: &Lease, out: &mut Vec<u8>) {
    let layout = &frame.meta().layout;
    out.resize(layout.width as usize * layout.height as usize, 0);
    write_luma(frame, out);
}

/// Writes the BT.601 luma of each pixel of `frame` (the Y plane of planar
/// formats) into `out`, width × height bytes in tight rows.
fn write_luma(frame: &Lease, out: &mut [u8]) {
    let layout = &frame.meta().layout;
    let data = frame.data();
    let plane = layout.planes[0];
    let width = layout.width as usize;
    let (r, g, b) = match layout.format {
        PixelFormat::Rgb8 | PixelFormat::Rgba8 => (0, 1, 2),
        PixelFormat::Bgr8 | PixelFormat::Bgra8 => (2, 1, 0),
        _ => (0, 0, 0),
    };
    for (row, target) in out.chunks_exact_mut(width).take(plane.rows).enumerate() {
        let line = &data[plane.offset + row * plane.stride..][..plane.row_bytes];
        match layout.format.packed_bytes() {
            Some(channels) if channels >= 3 => {
                for (pixel, luma) in line.chunks_exact(channels).zip(target.iter_mut()) {
                    *luma = ((77 * u32::from(pixel[r])
                        + 150 * u32::from(pixel[g])
                        + 29 * u32::from(pixel[b])
                        + 128)
                        >> 8) as u8;
                }
            }
            _ => target.copy_from_slice(&line[..width]),
        }
    }
}

fn mean(bytes: &[u8]) -> f64 {
    bytes.iter().map(|b| u64::from(*b)).sum::<u64>() as f64 / bytes.len().max(1) as f64
}

impl Resizing {
    /// Resizes the packed frame `data` (laid out as `source`) into `out`
    /// (tight rows of `w` x `h`), averaging each output pixel's box with
    /// the SIMD resizer; a source with padded rows is packed first, into
    /// a buffer kept for the next frame.
    fn resize(
        &mut self,
        data: &[u8],
        source: &FrameLayout,
        channels: usize,
        out: &mut [u8],
        w: u32,
        h: u32,
    ) -> Result<(), String> {
        use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions};
        let pixel = match channels {
            1 => PixelType::U8,
            3 => PixelType::U8x3,
            _ => PixelType::U8x4,
        };
        let plane = source.planes[0];
        let tight = if plane.stride == plane.row_bytes {
            &data[..plane.row_bytes * plane.rows]
        } else {
            self.packed.clear();
            for row in 0..plane.rows {
                let start = plane.offset + row * plane.stride;
                self.packed
                    .extend_from_slice(&data[start..start + plane.row_bytes]);
            }
            &self.packed[..]
        };
        let from =
            fast_image_resize::images::ImageRef::new(source.width, source.height, tight, pixel)
                .map_err(|e| format!("the source frame: {e}"))?;
        let mut to = fast_image_resize::images::Image::from_slice_u8(w, h, out, pixel)
            .map_err(|e| format!("the output frame: {e}"))?;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Box))
            .use_alpha(false);
        crate::resize::resize(&mut self.resizer, &from, &mut to, &options)
            .map_err(|e| format!("resizing: {e}"))
    }
}

impl CustomLogic for FrameNode {
    fn evaluate_batch(&mut self, node: &str, batch: &mut [Evaluation]) {
        for evaluation in batch {
            let Some(window) = evaluation.inputs.first() else {
                continue;
            };
            let mut frames = Vec::with_capacity(window.len());
            let mut refused = None;
            for index in 0..window.len() {
                match window.value(index) {
                    Some(Value::Frame(frame)) => match frame.0.as_any().downcast_ref::<Lease>() {
                        Some(lease) => frames.push(lease.clone()),
                        // A frame read back from the store: read from a copy.
                        None => match Lease::copied_from(&*frame.0) {
                            Ok(lease) => frames.push(lease),
                            Err(message) => {
                                refused = Some(format!("an unreadable frame: {message}"))
                            }
                        },
                    },
                    Some(other) => {
                        refused = Some(format!(
                            "a {} where a frame was expected",
                            other.type_name()
                        ))
                    }
                    None => {}
                }
            }
            evaluation.outcome = match refused {
                Some(what) => Outcome::Failed(Arc::from(format!("frame node '{node}' got {what}"))),
                None => match self.evaluate(&frames) {
                    Ok(Some(value)) => Outcome::Output(value),
                    Ok(None) => Outcome::Skip,
                    Err(message) => {
                        Outcome::Failed(Arc::from(format!("frame node '{node}': {message}")))
                    }
                },
            };
        }
    }

    fn describe(&self) -> String {
        match self {
            FrameNode::MeanLuma(_) => "frames:mean_luma".to_string(),
            FrameNode::Coverage => "frames:coverage".to_string(),
            FrameNode::Motion(..) => "frames:motion".to_string(),
            FrameNode::Grayscale(_) => "frames:grayscale".to_string(),
            FrameNode::Downscale { width, height, .. } => {
                format!("frames:downscale({width}x{height})")
            }
        }
    }
}

/// Opens the source `url` to feed `graph`: every frame a window of the
/// graph keeps pins a slot, so its pool has room for the graph's `keep`
/// plus readers. `token` is what a `tcp://` producer must send first.
pub fn open_for_graph(
    url: &str,
    graph: &dav2d_core::SharedGraph,
    token: Option<String>,
) -> Result<crate::RunningSource, String> {
    let keep = graph.lock().options().default_keep;
    let options = crate::OpenOptions {
        least_slots: keep.max(2) + 6,
        token,
    };
    crate::open_with(url, &options)
}

/// Feeds every new frame of `pool` through `intake` into stream `name`
/// (key `""`), a wave per frame, until the pool closes or `stop` is set.
pub fn feed(
    pool: &FramePool,
    intake: &dav2d_component::Intake,
    name: &str,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut last = None;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let Some(lease) = pool.next_after(last, Duration::from_millis(100)) else {
            if pool.is_closed() {
                return;
            }
            continue;
        };
        // The frames this graph stream did not get since its last one.
        let lease = lease.read_after(last);
        let meta = lease.meta().clone();
        last = Some(meta.seq);
        // The one door: counted under the source, held back for a lossless
        // sink, admitted and applied with its wave like any sample.
        let sample = dav2d_component::NativeSample {
            key: "",
            value: Value::Frame(FrameRef(Arc::new(lease))),
            ts: Some(meta.ts_ns),
        };
        match intake.push_values(name, &[sample], dav2d_component::Admission::Wait) {
            dav2d_component::Outcome::Applied(report) => {
                for (_, reason) in &report.errors {
                    tracing::warn!(%reason, "A frame was refused by the graph.");
                }
            }
            other => tracing::warn!(outcome = ?other, "A frame was not applied."),
        }
    }
}
