//! The processor node: custom logic over a frame stream that runs the
//! model on the newest frame and publishes its mask as a `gray8` frame
//! (0/1 per pixel, in a pool of the node's own) that knows the fraction of
//! its pixels set. It is always offloaded: frames that come while the
//! model runs are conflated by the engine (and counted), never queued.

use std::sync::Arc;

use dav2d_core::{CustomLogic, Evaluation, FrameRef, Outcome, Value};
use dav2d_frames::nodes::OutputPool;
use dav2d_frames::{Lease, PixelFormat};

use crate::pipeline::{Image2d, Input, Pixels};
use crate::processor::Processor;

/// A processor over a frame stream.
pub struct ProcessorNode {
    processor: Processor,
    masks: OutputPool,
    /// A frame's pixels in RGB order when it comes as BGR or with alpha.
    rgb: Vec<u8>,
}

impl std::fmt::Debug for ProcessorNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorNode")
            .field("processor", &self.processor)
            .finish()
    }
}

impl ProcessorNode {
    /// A node running `processor`.
    pub fn new(processor: Processor) -> ProcessorNode {
        ProcessorNode {
            processor,
            masks: OutputPool::default(),
            rgb: Vec::new(),
        }
    }

    /// Where its model runs (`cpu` or `cuda`).
    pub fn device(&self) -> &'static str {
        self.processor.device()
    }

    /// The model's mask of `frame`, as a frame value.
    fn mask(&mut self, frame: &Lease) -> Result<Option<Value>, String> {
        let meta = frame.meta();
        let layout = &meta.layout;
        let plane = layout.planes[0];
        let data = frame.data();
        let (w, h) = (layout.width as usize, layout.height as usize);
        let input = match layout.format {
            PixelFormat::Gray8 | PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::I444 => {
                // Planar formats give the model their luma plane.
                Input::Image(Image2d {
                    pixels: Pixels::U8(&data[plane.offset..]),
                    height: h,
                    width: w,
                    channels: 1,
                    row_stride: plane.stride,
                })
            }
            PixelFormat::Rgb8 => Input::Image(Image2d {
                pixels: Pixels::U8(data),
                height: h,
                width: w,
                channels: 3,
                row_stride: plane.stride,
            }),
            format => {
                // BGR, BGRA and RGBA become RGB once (models take RGB).
                let (channels, bgr) = match format {
                    PixelFormat::Bgr8 => (3, true),
                    PixelFormat::Bgra8 => (4, true),
                    _ => (4, false),
                };
                self.rgb.clear();
                self.rgb.reserve(w * h * 3);
                for r in 0..h {
                    let row = &data[r * plane.stride..r * plane.stride + w * channels];
                    for px in row.chunks_exact(channels) {
                        if bgr {
                            self.rgb.extend_from_slice(&[px[2], px[1], px[0]]);
                        } else {
                            self.rgb.extend_from_slice(&px[..3]);
                        }
                    }
                }
                Input::Image(Image2d {
                    pixels: Pixels::U8(&self.rgb),
                    height: h,
                    width: w,
                    channels: 3,
                    row_stride: w * 3,
                })
            }
        };
        let output = self
            .processor
            .run(&[input], false)
            .map_err(|e| e.to_string())?;
        let Some(&(k, mh, mw)) = output.sizes.first() else {
            return Ok(None);
        };
        // A multi-channel mask publishes its last channel (the foreground
        // of a two-class model).
        let area = mh * mw;
        let mask = &output.masks[(k - 1) * area..k * area];
        let set = mask.iter().filter(|m| **m != 0).count();
        let layout = PixelFormat::Gray8.layout(mw as u32, mh as u32)?;
        let Some(lease) = self
            .masks
            .publish(layout, meta.ts_ns, |out| out.copy_from_slice(mask))
        else {
            return Ok(None);
        };
        let lease = lease.with_coverage(set as f64 / area.max(1) as f64);
        Ok(Some(Value::Frame(FrameRef(Arc::new(lease)))))
    }
}

impl CustomLogic for ProcessorNode {
    fn evaluate_batch(&mut self, node: &str, batch: &mut [Evaluation]) {
        for evaluation in batch {
            let newest = evaluation
                .inputs
                .first()
                .and_then(|window| window.len().checked_sub(1).and_then(|i| window.value(i)));
            let frame = match newest {
                Some(Value::Frame(frame)) => match frame.0.as_any().downcast_ref::<Lease>() {
                    Some(lease) => Ok(lease.clone()),
                    None => Lease::copied_from(&*frame.0),
                },
                Some(other) => Err(format!(
                    "a {} where a frame was expected",
                    other.type_name()
                )),
                None => continue,
            };
            evaluation.outcome = match frame.and_then(|frame| self.mask(&frame)) {
                Ok(Some(value)) => Outcome::Output(value),
                Ok(None) => Outcome::Skip,
                Err(message) => {
                    Outcome::Failed(Arc::from(format!("processor node '{node}': {message}")))
                }
            };
        }
    }

    fn describe(&self) -> String {
        format!(
            "processor({}, {}, {}, activation={})",
            self.processor.config().model_path.display(),
            self.processor.device(),
            self.processor.shapes(),
            self.processor.activation().0.as_str()
        )
    }
}
