//! The SIMD resizer for the pixel types dav2d resizes (8-bit with 1 to 4
//! channels, and 32-bit float planes), in one non-generic function.
//!
//! `fast_image_resize`'s `Resizer::resize` dispatches over all thirteen of
//! its pixel types, and a release build instantiates that generic code in
//! every crate that calls it. Frame nodes and the processor both resize
//! through [`resize`], so the workspace compiles five pixel types once
//! instead of thirteen twice (about a minute of a cold build on two cores).

use fast_image_resize::images::{Image, ImageRef};
#[cfg(feature = "resize")]
use fast_image_resize::{IntoImageView, IntoImageViewMut, PixelType, pixels};
use fast_image_resize::{ResizeError, ResizeOptions, Resizer};

/// Whether this build resizes (Cargo feature `resize`); without it the
/// nodes and processors that resize are refused when they are configured,
/// and [`resize`] refuses every image.
pub const AVAILABLE: bool = cfg!(feature = "resize");

/// Why a node or processor that resizes is refused in a build without
/// the resizer, and what to build.
pub fn refused() -> String {
    dav2d_component::built_without("the frame resizer", "resize")
}

/// Resizes `from` into `to` (same pixel type) with `options`; a pixel type
/// dav2d does not use is refused as the resizer refuses a mismatch.
#[cfg(feature = "resize")]
#[inline(never)]
pub fn resize(
    resizer: &mut Resizer,
    from: &ImageRef<'_>,
    to: &mut Image<'_>,
    options: &ResizeOptions,
) -> Result<(), ResizeError> {
    macro_rules! typed {
        ($pixel:ty) => {
            match (from.image_view::<$pixel>(), to.image_view_mut::<$pixel>()) {
                (Some(source), Some(mut target)) => {
                    resizer.resize_typed(&source, &mut target, options)
                }
                _ => Err(ResizeError::PixelTypesAreDifferent),
            }
        };
    }
    if from.pixel_type() != to.pixel_type() {
        return Err(ResizeError::PixelTypesAreDifferent);
    }
    match from.pixel_type() {
        PixelType::U8 => typed!(pixels::U8),
        PixelType::U8x2 => typed!(pixels::U8x2),
        PixelType::U8x3 => typed!(pixels::U8x3),
        PixelType::U8x4 => typed!(pixels::U8x4),
        PixelType::F32 => typed!(pixels::F32),
        _ => Err(ResizeError::PixelTypesAreDifferent),
    }
}

/// Without the `resize` feature: every image is refused (the callers
/// refuse their configuration first, with what to build).
#[cfg(not(feature = "resize"))]
pub fn resize(
    _resizer: &mut Resizer,
    _from: &ImageRef<'_>,
    _to: &mut Image<'_>,
    _options: &ResizeOptions,
) -> Result<(), ResizeError> {
    Err(ResizeError::PixelTypesAreDifferent)
}

#[cfg(all(test, feature = "resize"))]
mod tests {
    use super::*;
    use fast_image_resize::{FilterType, ResizeAlg};

    #[test]
    fn every_used_pixel_type_resizes_and_others_are_refused() {
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Box))
            .use_alpha(false);
        let mut resizer = Resizer::new();
        for (pixel, size) in [
            (PixelType::U8, 1),
            (PixelType::U8x2, 2),
            (PixelType::U8x3, 3),
            (PixelType::U8x4, 4),
            (PixelType::F32, 4),
        ] {
            // A uniform 4x4 image halves to a uniform 2x2 one.
            let source = vec![7u8; 16 * size];
            let mut target = vec![0u8; 4 * size];
            let from = ImageRef::new(4, 4, &source, pixel).expect("source");
            let mut to = Image::from_slice_u8(2, 2, &mut target, pixel).expect("target");
            resize(&mut resizer, &from, &mut to, &options).expect("resizes");
            assert_eq!(target, vec![7u8; 4 * size], "{pixel:?}");
        }
        let source = vec![0u8; 16 * 2];
        let mut target = vec![0u8; 4 * 2];
        let from = ImageRef::new(4, 4, &source, PixelType::U16).expect("source");
        let mut to = Image::from_slice_u8(2, 2, &mut target, PixelType::U16).expect("target");
        assert!(resize(&mut resizer, &from, &mut to, &options).is_err());
    }
}
