//! PNG and JPEG files for `dav2d processor sweep`: decoded to 8-bit luma
//! or RGB, and masks written as 8-bit grayscale PNG.
//!
//! The decoders are the pure-Rust `png` and `zune-jpeg` crates that the
//! `image` crate wraps; using them directly keeps `image`'s colour
//! management (moxcms) out of a cold build, which the demo never needs.

use std::path::Path;

/// A decoded image: its pixels (row-major, `channels` bytes each, 1 for
/// luma and 3 for RGB), height and width.
pub struct Pixels8 {
    pub pixels: Vec<u8>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

/// Decodes a PNG or JPEG file (chosen by its first bytes). Gray images,
/// with or without alpha, give luma; colour ones give RGB (alpha dropped).
pub fn decode(bytes: &[u8]) -> Result<Pixels8, String> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes)
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(bytes)
    } else {
        Err("not a PNG, JPEG or .npy file".to_string())
    }
}

fn decode_png(bytes: &[u8]) -> Result<Pixels8, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Palettes expanded, 16-bit samples cut to 8, low bit depths widened.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("PNG: {e}"))?;
    let size = reader
        .output_buffer_size()
        .ok_or("PNG: the image is too large for this machine")?;
    let mut buffer = vec![0; size];
    let frame = reader
        .next_frame(&mut buffer)
        .map_err(|e| format!("PNG: {e}"))?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let (stride, keep) = match frame.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        png::ColorType::Indexed => return Err("PNG: an unexpanded palette".to_string()),
    };
    let rows = buffer.chunks(frame.line_size).take(height);
    let mut pixels = Vec::with_capacity(width * height * keep);
    for row in rows {
        for pixel in row[..width * stride].chunks_exact(stride) {
            pixels.extend_from_slice(&pixel[..keep]);
        }
    }
    Ok(Pixels8 {
        pixels,
        height,
        width,
        channels: keep,
    })
}

fn decode_jpeg(bytes: &[u8]) -> Result<Pixels8, String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let mut probe = zune_jpeg::JpegDecoder::new(ZCursor::new(bytes));
    probe.decode_headers().map_err(|e| format!("JPEG: {e:?}"))?;
    let gray = probe.input_colorspace() == Some(ColorSpace::Luma);
    let (out, channels) = if gray {
        (ColorSpace::Luma, 1)
    } else {
        (ColorSpace::RGB, 3)
    };
    let options = DecoderOptions::default()
        .set_max_width(1 << 16)
        .set_max_height(1 << 16)
        .jpeg_set_out_colorspace(out);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = decoder.decode().map_err(|e| format!("JPEG: {e:?}"))?;
    let (width, height) = decoder.dimensions().ok_or("JPEG: no dimensions")?;
    if pixels.len() != width * height * channels {
        return Err(format!(
            "JPEG: decoded {} bytes for a {width}x{height} image of {channels} channels",
            pixels.len()
        ));
    }
    Ok(Pixels8 {
        pixels,
        height,
        width,
        channels,
    })
}

/// Writes `pixels` (`width` x `height`, one byte each) as a grayscale PNG.
pub fn write_gray_png(path: &Path, pixels: &[u8], width: u32, height: u32) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_mask_decodes_to_the_same_luma() {
        let dir = std::env::temp_dir().join(format!("dav2d-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let path = dir.join("mask.png");
        let pixels: Vec<u8> = (0..12u8).map(|i| i * 20).collect();
        write_gray_png(&path, &pixels, 4, 3).expect("writes");
        let decoded = decode(&std::fs::read(&path).expect("reads")).expect("decodes");
        assert_eq!((decoded.height, decoded.width, decoded.channels), (3, 4, 1));
        assert_eq!(decoded.pixels, pixels);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn rgba_keeps_rgb_and_other_files_are_named() {
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, 2, 1);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().expect("header");
            writer
                .write_image_data(&[1, 2, 3, 255, 4, 5, 6, 0])
                .expect("data");
        }
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.channels, 3);
        assert_eq!(decoded.pixels, vec![1, 2, 3, 4, 5, 6]);
        let refused = decode(b"GIF89a").err().unwrap_or_default();
        assert!(refused.contains("not a PNG, JPEG"), "{refused}");
    }

    #[test]
    fn gray_and_colour_jpegs_decode_to_luma_and_rgb() {
        use jpeg_encoder::{ColorType, Encoder};
        let (w, h) = (16u16, 8u16);
        let gray = vec![128u8; usize::from(w) * usize::from(h)];
        let mut bytes = Vec::new();
        Encoder::new(&mut bytes, 100)
            .encode(&gray, w, h, ColorType::Luma)
            .expect("encodes");
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(
            (decoded.height, decoded.width, decoded.channels),
            (8, 16, 1)
        );
        assert!(decoded.pixels.iter().all(|p| p.abs_diff(128) <= 2));
        let rgb: Vec<u8> = (0..usize::from(w) * usize::from(h))
            .flat_map(|_| [200u8, 40, 90])
            .collect();
        let mut bytes = Vec::new();
        Encoder::new(&mut bytes, 100)
            .encode(&rgb, w, h, ColorType::Rgb)
            .expect("encodes");
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.channels, 3);
        for (got, want) in decoded.pixels.iter().zip(&rgb) {
            assert!(got.abs_diff(*want) <= 4, "{got} against {want}");
        }
    }
}
