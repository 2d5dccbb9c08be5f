//! `dav2d processor sweep CONFIG --images DIR --thresholds 0.3:0.7:0.05`:
//! the processor of a config run once per image (PNG, JPEG or `.npy`), and
//! per threshold the masks' mean coverage, connected regions per image and
//! their mean size (many small regions are noise); `--out DIR` writes the
//! masks of the first images at each threshold as PNG files to look at.

use std::path::{Path, PathBuf};

use dav2d_runtime::infer::sweep::{MaskFigures, figures, mask_at, parse_thresholds};
use dav2d_runtime::infer::{Image2d, Input, Pixels, Processor, ProcessorConfig};

/// What `dav2d processor sweep` takes.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// The config holding the processor (`model_path`, `processing`).
    config: PathBuf,
    /// A folder of images: `.png`, `.jpg`/`.jpeg`, or `.npy` (uint8 or
    /// float32, HxW or HxWxC).
    #[arg(long)]
    images: PathBuf,
    /// `FROM:TO:STEP` (e.g. `0.3:0.7:0.05`) or a list (`0.3,0.5`).
    #[arg(long)]
    thresholds: String,
    /// Write the masks of the first three images at each threshold here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    format: String,
}

/// Masks written per threshold with `--out`.
const WRITTEN: usize = 3;

/// One image as the processor takes it.
enum Decoded {
    Bytes(Vec<u8>, usize, usize, usize),
    Floats(Vec<f32>, usize, usize, usize),
}

impl Decoded {
    fn input(&self) -> Input<'_> {
        let (pixels, h, w, c) = match self {
            Decoded::Bytes(v, h, w, c) => (Pixels::U8(v), *h, *w, *c),
            Decoded::Floats(v, h, w, c) => (Pixels::F32(v), *h, *w, *c),
        };
        Input::Image(Image2d {
            pixels,
            height: h,
            width: w,
            channels: c,
            row_stride: w * c,
        })
    }
}

/// Runs `dav2d processor sweep`.
pub fn run(args: SweepArgs) -> Result<(), String> {
    let thresholds = parse_thresholds(&args.thresholds)?;
    let config = ProcessorConfig::load(&args.config)?;
    let mut processor = Processor::new(config).map_err(|e| e.to_string())?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.images)
        .map_err(|e| format!("cannot read {}: {e}", args.images.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["png", "jpg", "jpeg", "npy"].contains(&e.to_ascii_lowercase().as_str())
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{} holds no .png, .jpg or .npy image",
            args.images.display()
        ));
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    }
    // Per threshold: the figures of every image.
    let mut all: Vec<Vec<MaskFigures>> = vec![Vec::new(); thresholds.len()];
    let mut mask = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let image = decode(file)?;
        let output = processor
            .run(&[image.input()], true)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let (k, h, w) = output.sizes[0];
        let area = h * w;
        let probabilities = output.probabilities.unwrap_or_default();
        // A multi-channel model's last channel, as a processor node publishes.
        let last = &probabilities[(k - 1) * area..k * area];
        for (i, threshold) in thresholds.iter().enumerate() {
            mask_at(last, *threshold, &mut mask);
            all[i].push(figures(&mask, h, w));
            if let Some(out) = args.out.as_ref().filter(|_| n < WRITTEN) {
                let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
                let path = out.join(format!("{stem}-t{threshold}.png"));
                let pixels: Vec<u8> = mask.iter().map(|m| m * 255).collect();
                crate::images::write_gray_png(&path, &pixels, w as u32, h as u32)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
    }
    let rows: Vec<serde_json::Value> = (thresholds.iter().zip(&all))
        .map(|(threshold, each)| {
            let n = each.len().max(1) as f64;
            let regions: usize = each.iter().map(|f| f.regions).sum();
            let set: f64 = each
                .iter()
                .map(|f| f.mean_region_pixels * f.regions as f64)
                .sum();
            serde_json::json!({
                "threshold": threshold,
                "coverage": each.iter().map(|f| f.coverage).sum::<f64>() / n,
                "regions_per_image": regions as f64 / n,
                "mean_region_pixels": if regions == 0 { 0.0 } else { set / regions as f64 },
                "images": each,
            })
        })
        .collect();
    match args.format.as_str() {
        "json" => println!(
            "{}",
            serde_json::json!({"images": files.len(), "thresholds": rows})
        ),
        "text" => {
            println!("{} images through {}", files.len(), args.config.display());
            println!(
                "{:>9} {:>9} {:>18} {:>19}",
                "threshold", "coverage", "regions per image", "mean region pixels"
            );
            for row in &rows {
                println!(
                    "{:>9} {:>9.4} {:>18.1} {:>19.1}",
                    row["threshold"],
                    row["coverage"].as_f64().unwrap_or(0.0),
                    row["regions_per_image"].as_f64().unwrap_or(0.0),
                    row["mean_region_pixels"].as_f64().unwrap_or(0.0)
                );
            }
        }
        other => return Err(format!("--format {other}: give text or json")),
    }
    Ok(())
}

/// An image file as bytes or floats (HxWxC).
fn decode(path: &Path) -> Result<Decoded, String> {
    let name = path.display();
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        return npy(&bytes).map_err(|e| format!("{name}: {e}"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let image = crate::images::decode(&bytes).map_err(|e| format!("{name}: {e}"))?;
    Ok(Decoded::Bytes(
        image.pixels,
        image.height,
        image.width,
        image.channels,
    ))
}

/// A `.npy` file (version 1 or 2, C order) of `uint8` or `float32`, HxW or
/// HxWxC.
fn npy(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".to_string());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err("a truncated .npy header".to_string()),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("a truncated .npy header")?;
    if header.contains("'fortran_order': True") {
        return Err("Fortran order; save it C-contiguous (numpy.ascontiguousarray)".to_string());
    }
    let shape: Vec<usize> = header
        .split("'shape':")
        .nth(1)
        .and_then(|rest| rest.split('(').nth(1))
        .and_then(|rest| rest.split(')').next())
        .map(|dims| {
            dims.split(',')
                .filter_map(|d| d.trim().parse().ok())
                .collect()
        })
        .ok_or("no shape in the .npy header")?;
    let (h, w, c) = match shape.as_slice() {
        [h, w] => (*h, *w, 1),
        [h, w, c] if (1..=4).contains(c) => (*h, *w, *c),
        other => return Err(format!("shape {other:?}; give HxW or HxWxC (C up to 4)")),
    };
    let data = &bytes[start + header_len..];
    let count = h * w * c;
    if header.contains("'|u1'") || header.contains("'<u1'") {
        let values = data.get(..count).ok_or("fewer values than its shape")?;
        Ok(Decoded::Bytes(values.to_vec(), h, w, c))
    } else if header.contains("'<f4'") {
        let raw = data.get(..count * 4).ok_or("fewer values than its shape")?;
        let values = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Decoded::Floats(values, h, w, c))
    } else {
        Err("a dtype other than uint8 or float32".to_string())
    }
}
