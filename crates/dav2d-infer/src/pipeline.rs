//! The processor's pipeline around the model: inputs (HxW and HxWxC
//! `uint8`/`float32` images with any row pitch, NxCxHxW `float32` tensors)
//! resized to the model's resolution with the SIMD resizer, normalised and
//! laid out as NCHW; outputs activated, resized back when asked, and
//! thresholded into 0/1 masks.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::config::{Activation, ProcessorConfig};

/// The pixels of one input, borrowed from the caller (no copy on the way in).
#[derive(Clone, Copy, Debug)]
pub enum Pixels<'a> {
    /// Bytes, scaled by 1/255 before normalising.
    U8(&'a [u8]),
    /// Floats, taken as they are before normalising.
    F32(&'a [f32]),
}

/// One input image: `height` rows of `width` pixels of `channels`
/// interleaved values, `row_stride` values from one row to the next.
#[derive(Clone, Copy, Debug)]
pub struct Image2d<'a> {
    /// The values.
    pub pixels: Pixels<'a>,
    /// Rows.
    pub height: usize,
    /// Pixels per row.
    pub width: usize,
    /// Values per pixel (1 to 4).
    pub channels: usize,
    /// Values from one row to the next (at least `width * channels`).
    pub row_stride: usize,
}

/// One input: an image, or one item of an NCHW tensor (planar channels).
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// An interleaved image (HxW or HxWxC, or a frame).
    Image(Image2d<'a>),
    /// C planes of HxW floats, one after the other (an item of NxCxHxW).
    Planar {
        /// The `channels * height * width` values.
        values: &'a [f32],
        /// Planes.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
}

impl Input<'_> {
    /// (height, width, channels).
    pub fn dims(&self) -> (usize, usize, usize) {
        match self {
            Input::Image(image) => (image.height, image.width, image.channels),
            Input::Planar {
                channels,
                height,
                width,
                ..
            } => (*height, *width, *channels),
        }
    }

    /// Checks the sizes agree with the data and the values are numbers.
    pub fn check(&self) -> Result<(), String> {
        let (h, w, c) = self.dims();
        if h == 0 || w == 0 {
            return Err(format!("an input of {h}x{w} pixels is empty"));
        }
        if !(1..=4).contains(&c) {
            return Err(format!(
                "an input with {c} channels; dav2d takes 1 to 4 (HxW, HxWxC or NxCxHxW)"
            ));
        }
        match self {
            Input::Image(image) => {
                let row = image.width * image.channels;
                if image.row_stride < row {
                    return Err(format!(
                        "a row pitch of {} values is shorter than a row ({row})",
                        image.row_stride
                    ));
                }
                let need = (image.height - 1) * image.row_stride + row;
                let (have, nan) = match image.pixels {
                    Pixels::U8(v) => (v.len(), false),
                    Pixels::F32(v) => (v.len(), v.iter().any(|x| !x.is_finite())),
                };
                if have < need {
                    return Err(format!(
                        "the input has {have} values, its shape needs {need}"
                    ));
                }
                if nan {
                    return Err("the input holds NaN or infinity; give finite values".to_string());
                }
            }
            Input::Planar { values, .. } => {
                if values.len() != c * h * w {
                    return Err(format!(
                        "the input has {} values, {c}x{h}x{w} needs {}",
                        values.len(),
                        c * h * w
                    ));
                }
                if values.iter().any(|x| !x.is_finite()) {
                    return Err("the input holds NaN or infinity; give finite values".to_string());
                }
            }
        }
        Ok(())
    }
}

/// One preprocessing thread's resizer and band buffer, kept across calls.
#[derive(Default)]
struct Band {
    resizer: Resizer,
    resized: Vec<u8>,
}

/// Runs `work` compiled for the widest vector instructions the CPU has:
/// the build targets baseline x86-64, so the loops that matter are
/// compiled once more for AVX2 and for AVX-512 and one is picked at run
/// time. `work` must be an `#[inline(always)]` closure over
/// `#[inline(always)]` code, so that it is compiled into the variant.
#[inline(always)]
fn widest<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has the features the variant is compiled for.
            return unsafe { with_avx512(work) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { with_avx2(work) };
        }
    }
    work()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
fn with_avx512<R>(work: impl FnOnce() -> R) -> R {
    work()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn with_avx2<R>(work: impl FnOnce() -> R) -> R {
    work()
}

/// Appends to `masks` a 1 for each of `values` above `cut`, else a 0 (one
/// pass bound by memory bandwidth: a second thread measured slower).
pub fn threshold_into(values: &[f32], cut: f32, masks: &mut Vec<u8>) {
    let start = masks.len();
    masks.resize(start + values.len(), 0);
    let out = &mut masks[start..];
    widest(
        #[inline(always)]
        || {
            for (m, v) in out.iter_mut().zip(values) {
                *m = u8::from(*v > cut);
            }
        },
    );
}

/// Writes interleaved `pixels` (`c` values each) into the planes' rows,
/// `value * scale - shift` per channel, in one pass.
fn normalise(pixels: &[u8], c: usize, planes: Vec<&mut [f32]>, scales: &[(f32, f32)]) {
    widest(
        #[inline(always)]
        || normalise_body(pixels, c, planes, scales),
    );
}

/// How many pixels the three-channel loop takes at a time (fixed-size
/// blocks the compiler turns into vector shuffles).
const BLOCK: usize = 16;

#[inline(always)]
fn normalise_body(pixels: &[u8], c: usize, mut planes: Vec<&mut [f32]>, scales: &[(f32, f32)]) {
    match (c, planes.as_mut_slice()) {
        (3, [r, g, b]) => {
            let ((sr, hr), (sg, hg), (sb, hb)) = (scales[0], scales[1], scales[2]);
            let (blocks, rest) = pixels.as_chunks::<{ 3 * BLOCK }>();
            let (r_blocks, r_rest) = r.as_chunks_mut::<BLOCK>();
            let (g_blocks, g_rest) = g.as_chunks_mut::<BLOCK>();
            let (b_blocks, b_rest) = b.as_chunks_mut::<BLOCK>();
            for (((px, r), g), b) in blocks
                .iter()
                .zip(r_blocks.iter_mut())
                .zip(g_blocks.iter_mut())
                .zip(b_blocks.iter_mut())
            {
                for i in 0..BLOCK {
                    r[i] = f32::from(px[3 * i]) * sr - hr;
                    g[i] = f32::from(px[3 * i + 1]) * sg - hg;
                    b[i] = f32::from(px[3 * i + 2]) * sb - hb;
                }
            }
            // The pixels after the last whole block (the planes' rows are as
            // long as the pixels, so their remainders line up).
            for (((px, r), g), b) in rest.chunks_exact(3).zip(r_rest).zip(g_rest).zip(b_rest) {
                *r = f32::from(px[0]) * sr - hr;
                *g = f32::from(px[1]) * sg - hg;
                *b = f32::from(px[2]) * sb - hb;
            }
        }
        _ => {
            for (ch, plane) in planes.iter_mut().enumerate() {
                let (scale, shift) = scales[ch];
                for (o, px) in plane.iter_mut().zip(pixels.chunks_exact(c)) {
                    *o = f32::from(px[ch]) * scale - shift;
                }
            }
        }
    }
}

/// The resizer and the buffers kept across calls.
#[derive(Default)]
pub struct Preprocess {
    bands: Vec<Band>,
    resizer: Resizer,
    packed: Vec<u8>,
    plane: Vec<f32>,
    plane_out: Vec<f32>,
}

/// The resize of inputs: `linear` samples the four nearest pixels (what
/// OpenCV's `INTER_LINEAR` does), `antialias` averages over each output
/// pixel's footprint (a bilinear filter widened by the scale).
fn options_for(antialias: bool) -> ResizeOptions {
    let algorithm = if antialias {
        ResizeAlg::Convolution(FilterType::Bilinear)
    } else {
        ResizeAlg::Interpolation(FilterType::Bilinear)
    };
    ResizeOptions::new().resize_alg(algorithm).use_alpha(false)
}

/// The resize of outputs (probability maps resized back).
fn options() -> ResizeOptions {
    options_for(false)
}

fn f32_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: any f32 is 4 initialised bytes; u8 has alignment 1.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

fn f32_bytes_mut(values: &mut [f32]) -> &mut [u8] {
    // SAFETY: as above, and every byte pattern is a valid f32.
    unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(values),
        )
    }
}

/// Resizes one plane of floats `from` (h x w) into `to` (th x tw).
pub fn resize_plane(
    resizer: &mut Resizer,
    from: &[f32],
    (h, w): (usize, usize),
    to: &mut [f32],
    (th, tw): (usize, usize),
) -> Result<(), String> {
    if (h, w) == (th, tw) {
        to.copy_from_slice(&from[..h * w]);
        return Ok(());
    }
    let source = ImageRef::new(
        w as u32,
        h as u32,
        f32_bytes(&from[..h * w]),
        PixelType::F32,
    )
    .map_err(|e| format!("resizing: {e}"))?;
    let mut target = Image::from_slice_u8(tw as u32, th as u32, f32_bytes_mut(to), PixelType::F32)
        .map_err(|e| format!("resizing: {e}"))?;
    dav2d_frames::resize::resize(resizer, &source, &mut target, &options())
        .map_err(|e| format!("resizing: {e}"))
}

impl Preprocess {
    /// Writes `input` into `out` (`channels * rh * rw` floats, NCHW for
    /// one item) at the model's resolution, scaled and normalised.
    pub fn run(
        &mut self,
        input: &Input<'_>,
        config: &ProcessorConfig,
        out: &mut [f32],
    ) -> Result<(), String> {
        let (rh, rw) = (config.resolution.0 as usize, config.resolution.1 as usize);
        let (h, w, c) = input.dims();
        let area = rh * rw;
        let mean = |ch: usize| {
            config
                .mean
                .get(ch)
                .or(config.mean.first())
                .copied()
                .unwrap_or(0.0)
        };
        let std = |ch: usize| {
            config
                .std
                .get(ch)
                .or(config.std.first())
                .copied()
                .unwrap_or(1.0)
        };
        match input {
            Input::Image(Image2d {
                pixels: Pixels::U8(bytes),
                row_stride,
                ..
            }) => {
                let row = w * c;
                let tight: &[u8] = if *row_stride == row {
                    &bytes[..h * row]
                } else {
                    self.packed.clear();
                    for r in 0..h {
                        self.packed
                            .extend_from_slice(&bytes[r * row_stride..r * row_stride + row]);
                    }
                    &self.packed
                };
                let pixel = match c {
                    1 => PixelType::U8,
                    2 => PixelType::U8x2,
                    3 => PixelType::U8x3,
                    _ => PixelType::U8x4,
                };
                let threads = config.threads.clamp(1, 16).min(rh);
                let band = rh.div_ceil(threads);
                if self.bands.len() < threads {
                    self.bands.resize_with(threads, Band::default);
                }
                // Each thread resizes a band of output rows (a crop of the
                // source: the filter still reads the whole source, so the
                // result is the single-threaded one) and normalises it into
                // its rows of every plane.
                let scales: Vec<(f32, f32)> = (0..c)
                    .map(|ch| (1.0 / (255.0 * std(ch)), mean(ch) / std(ch)))
                    .collect();
                let mut planes: Vec<std::slice::ChunksMut<'_, f32>> = out
                    .chunks_mut(area)
                    .map(|plane| plane.chunks_mut(band * rw))
                    .collect();
                let same = (h, w) == (rh, rw);
                let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
                    let mut handles = Vec::with_capacity(threads);
                    for (i, state) in self.bands.iter_mut().take(threads).enumerate() {
                        let rows: Vec<&mut [f32]> =
                            planes.iter_mut().filter_map(|p| p.next()).collect();
                        let scales = &scales;
                        let work = move || -> Result<(), String> {
                            let (y0, y1) = (i * band, ((i + 1) * band).min(rh));
                            if y0 >= y1 {
                                return Ok(());
                            }
                            let pixels: &[u8] = if same {
                                &tight[y0 * rw * c..y1 * rw * c]
                            } else {
                                state.resized.resize((y1 - y0) * rw * c, 0);
                                let source = ImageRef::new(w as u32, h as u32, tight, pixel)
                                    .map_err(|e| format!("resizing: {e}"))?;
                                let mut target = Image::from_slice_u8(
                                    rw as u32,
                                    (y1 - y0) as u32,
                                    &mut state.resized,
                                    pixel,
                                )
                                .map_err(|e| format!("resizing: {e}"))?;
                                let scale_y = h as f64 / rh as f64;
                                let options = options_for(config.antialias).crop(
                                    0.0,
                                    y0 as f64 * scale_y,
                                    w as f64,
                                    (y1 - y0) as f64 * scale_y,
                                );
                                dav2d_frames::resize::resize(
                                    &mut state.resizer,
                                    &source,
                                    &mut target,
                                    &options,
                                )
                                .map_err(|e| format!("resizing: {e}"))?;
                                &state.resized
                            };
                            normalise(pixels, c, rows, scales);
                            Ok(())
                        };
                        if i + 1 == threads {
                            handles.push(Ok(work()));
                        } else {
                            handles.push(Err(scope.spawn(work)));
                        }
                    }
                    handles
                        .into_iter()
                        .map(|h| match h {
                            Ok(result) => result,
                            Err(handle) => handle.join().unwrap_or_else(|_| {
                                Err("a preprocessing thread panicked".to_string())
                            }),
                        })
                        .collect()
                });
                results.into_iter().collect::<Result<Vec<()>, String>>()?;
            }
            Input::Image(Image2d {
                pixels: Pixels::F32(values),
                row_stride,
                ..
            }) => {
                for ch in 0..c {
                    self.plane.clear();
                    for r in 0..h {
                        let start = r * row_stride;
                        self.plane
                            .extend((0..w).map(|x| values[start + x * c + ch]));
                    }
                    let plane = &mut out[ch * area..(ch + 1) * area];
                    resize_plane(&mut self.resizer, &self.plane, (h, w), plane, (rh, rw))?;
                    let (m, s) = (mean(ch), std(ch));
                    for v in plane.iter_mut() {
                        *v = (*v - m) / s;
                    }
                }
            }
            Input::Planar { values, .. } => {
                for ch in 0..c {
                    let plane = &mut out[ch * area..(ch + 1) * area];
                    let from = &values[ch * h * w..(ch + 1) * h * w];
                    resize_plane(&mut self.resizer, from, (h, w), plane, (rh, rw))?;
                    let (m, s) = (mean(ch), std(ch));
                    for v in plane.iter_mut() {
                        *v = (*v - m) / s;
                    }
                }
            }
        }
        Ok(())
    }

    /// A scratch plane for resizing outputs back (kept across calls).
    pub fn output_planes(&mut self) -> (&mut Resizer, &mut Vec<f32>) {
        (&mut self.resizer, &mut self.plane_out)
    }
}

/// Applies `activation` in place to one item's `k` planes of `area` values.
pub fn activate(values: &mut [f32], k: usize, area: usize, activation: Activation) {
    match activation {
        Activation::None => {}
        Activation::Sigmoid => {
            for v in values.iter_mut() {
                *v = 1.0 / (1.0 + (-*v).exp());
            }
        }
        Activation::Softmax => {
            for i in 0..area {
                let mut most = f32::NEG_INFINITY;
                for c in 0..k {
                    most = most.max(values[c * area + i]);
                }
                let mut sum = 0.0;
                for c in 0..k {
                    let e = (values[c * area + i] - most).exp();
                    values[c * area + i] = e;
                    sum += e;
                }
                for c in 0..k {
                    values[c * area + i] /= sum;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(channels: usize) -> ProcessorConfig {
        let yaml = format!(
            "model_path: /models/m.onnx\nprocessing:\n  resolution: [37, 53]\n  threads: 2\n  mean: {:?}\n  std: {:?}\n",
            &[0.485, 0.456, 0.406, 0.5][..channels],
            &[0.229, 0.224, 0.225, 0.25][..channels],
        );
        ProcessorConfig::parse(&yaml, std::path::Path::new("/tmp/p.yaml")).unwrap()
    }

    /// The vectorised normalise (whole blocks of 16 pixels and the pixels
    /// after the last block, 37x53 not being a multiple of 16) writes what
    /// the formula gives, for every channel count.
    #[test]
    fn normalise_writes_the_formulas_values_in_every_plane() {
        let (h, w) = (37, 53);
        for c in 1..=4 {
            let config = config(c);
            let pixels: Vec<u8> = (0..h * w * c).map(|i| (i * 7 % 256) as u8).collect();
            let input = Input::Image(Image2d {
                pixels: Pixels::U8(&pixels),
                height: h,
                width: w,
                channels: c,
                row_stride: w * c,
            });
            let mut out = vec![f32::NAN; c * h * w];
            Preprocess::default()
                .run(&input, &config, &mut out)
                .unwrap();
            for ch in 0..c {
                for p in 0..h * w {
                    let want =
                        (f32::from(pixels[p * c + ch]) / 255.0 - config.mean[ch]) / config.std[ch];
                    let got = out[ch * h * w + p];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "{c} channels: plane {ch} pixel {p}: {got} != {want}"
                    );
                }
            }
        }
    }

    /// The threshold appends after what the masks hold, on lengths that
    /// are not a multiple of any vector width.
    #[test]
    fn threshold_appends_one_where_the_value_is_above_the_cut() {
        let values: Vec<f32> = (0..1001).map(|i| (i % 13) as f32 / 12.0).collect();
        let mut masks = vec![7u8];
        threshold_into(&values, 0.5, &mut masks);
        assert_eq!(masks.len(), 1002);
        assert_eq!(masks[0], 7);
        for (m, v) in masks[1..].iter().zip(&values) {
            assert_eq!(*m, u8::from(*v > 0.5), "{v}");
        }
    }
}
