//! Pixel formats and the layout of a frame's planes: each plane's offset,
//! row pitch (stride) and rows, kept as the source gives them and never
//! repacked implicitly.

use std::fmt;

/// The pixel formats dav2d carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// One byte of luma per pixel.
    Gray8,
    /// Packed red, green, blue.
    Rgb8,
    /// Packed blue, green, red.
    Bgr8,
    /// Packed red, green, blue, alpha.
    Rgba8,
    /// Packed blue, green, red, alpha (what screen capture gives).
    Bgra8,
    /// Planar Y, then U and V at half width and height (4:2:0).
    I420,
    /// Planar Y, then interleaved UV at half height (4:2:0).
    Nv12,
    /// Planar Y, U and V at full size (4:4:4).
    I444,
}

impl PixelFormat {
    /// Every format, in the order they are listed to users.
    pub const ALL: [PixelFormat; 8] = [
        PixelFormat::Gray8,
        PixelFormat::Rgb8,
        PixelFormat::Bgr8,
        PixelFormat::Rgba8,
        PixelFormat::Bgra8,
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::I444,
    ];

    /// The format's name, e.g. `bgra8`.
    pub fn as_str(self) -> &'static str {
        match self {
            PixelFormat::Gray8 => "gray8",
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::Bgr8 => "bgr8",
            PixelFormat::Rgba8 => "rgba8",
            PixelFormat::Bgra8 => "bgra8",
            PixelFormat::I420 => "i420",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::I444 => "i444",
        }
    }

    /// The format called `name`, or an error listing the known ones.
    pub fn from_name(name: &str) -> Result<PixelFormat, String> {
        PixelFormat::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let names: Vec<&str> = PixelFormat::ALL.iter().map(|f| f.as_str()).collect();
                format!(
                    "unknown pixel format '{name}'; expected one of: {}",
                    names.join(", ")
                )
            })
    }

    /// Bytes per pixel of a packed format (`None` for planar ones).
    pub fn packed_bytes(self) -> Option<usize> {
        match self {
            PixelFormat::Gray8 => Some(1),
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => Some(3),
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => Some(4),
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::I444 => None,
        }
    }

    /// The tight layout of a `width` x `height` frame: every row pitch is
    /// the row's bytes, planes one after the other.
    pub fn layout(self, width: u32, height: u32) -> Result<FrameLayout, String> {
        let (w, h) = (width as usize, height as usize);
        if width == 0 || height == 0 {
            return Err(format!(
                "a frame needs a width and a height, got {width}x{height}"
            ));
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (sizes, count): ([(usize, usize); MAX_PLANES], usize) = match self {
            PixelFormat::I420 => ([(w, h), (cw, ch), (cw, ch)], 3),
            PixelFormat::Nv12 => ([(w, h), (2 * cw, ch), (0, 0)], 2),
            PixelFormat::I444 => ([(w, h), (w, h), (w, h)], 3),
            packed => (
                [(w * packed.packed_bytes().unwrap_or(1), h), (0, 0), (0, 0)],
                1,
            ),
        };
        let mut layout = FrameLayout {
            format: self,
            width,
            height,
            planes: Planes::default(),
            size: 0,
        };
        for &(row_bytes, rows) in &sizes[..count] {
            layout.planes.push(Plane {
                offset: layout.size,
                stride: row_bytes,
                row_bytes,
                rows,
            });
            layout.size += row_bytes * rows;
        }
        Ok(layout)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most planes a frame has (I420, I444).
pub const MAX_PLANES: usize = 3;

/// A frame's planes, kept inline: a layout is copied without allocating,
/// so leasing a frame and `read_into` allocate nothing per frame. Reads
/// as a slice of [`Plane`].
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Planes {
    planes: [Plane; MAX_PLANES],
    len: usize,
}

impl Planes {
    /// Adds a plane; a format never has more than [`MAX_PLANES`].
    fn push(&mut self, plane: Plane) {
        if let Some(slot) = self.planes.get_mut(self.len) {
            *slot = plane;
            self.len += 1;
        }
    }
}

impl std::ops::Deref for Planes {
    type Target = [Plane];
    fn deref(&self) -> &[Plane] {
        &self.planes[..self.len]
    }
}

impl std::ops::DerefMut for Planes {
    fn deref_mut(&mut self) -> &mut [Plane] {
        &mut self.planes[..self.len]
    }
}

impl<'a> IntoIterator for &'a Planes {
    type Item = &'a Plane;
    type IntoIter = std::slice::Iter<'a, Plane>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Planes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One plane of a frame inside its buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plane {
    /// Where the plane starts in the frame's buffer.
    pub offset: usize,
    /// Bytes from one row to the next (the row pitch), at least `row_bytes`.
    pub stride: usize,
    /// Bytes of pixels in a row.
    pub row_bytes: usize,
    /// Rows.
    pub rows: usize,
}

/// Where a frame's planes lie in its buffer (a `Copy` value: no heap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    /// The pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The planes, in the format's order.
    pub planes: Planes,
    /// Bytes the frame takes in its buffer.
    pub size: usize,
}

impl FrameLayout {
    /// The same frame with every row of the packed plane padded to
    /// `stride` bytes (a source's row pitch, e.g. a GPU's 256-byte rows).
    pub fn with_stride(mut self, stride: usize) -> Result<FrameLayout, String> {
        if self.planes.len() != 1 {
            return Err("only packed formats take a row pitch here".to_string());
        }
        let plane = &mut self.planes[0];
        if stride < plane.row_bytes {
            return Err(format!(
                "a row pitch of {stride} bytes is shorter than a row ({} bytes)",
                plane.row_bytes
            ));
        }
        plane.stride = stride;
        self.size = stride * plane.rows;
        Ok(self)
    }

    /// The same frame with the row pitch of each plane from `strides` (0:
    /// keep it tight), planes one after the other: how a frame message or
    /// a stored frame gives its layout. A pitch shorter than its row is an
    /// error naming the plane.
    pub fn with_strides(mut self, strides: &[usize]) -> Result<FrameLayout, String> {
        let mut offset = 0;
        for (i, plane) in self.planes.iter_mut().enumerate() {
            let pitch = strides.get(i).copied().unwrap_or(0);
            if pitch != 0 {
                if pitch < plane.row_bytes {
                    return Err(format!(
                        "plane {i}: a pitch of {pitch} is shorter than a row ({} bytes)",
                        plane.row_bytes
                    ));
                }
                plane.stride = pitch;
            }
            plane.offset = offset;
            offset += plane.stride * plane.rows;
        }
        self.size = offset;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_place_planes_one_after_the_other() {
        let bgra = PixelFormat::Bgra8.layout(1920, 1080).unwrap();
        assert_eq!(bgra.size, 1920 * 1080 * 4);
        assert_eq!(bgra.planes[0].stride, 7680);
        let i420 = PixelFormat::I420.layout(5, 3).unwrap();
        assert_eq!(i420.planes[1].offset, 15);
        assert_eq!(i420.planes[2].offset, 15 + 6);
        assert_eq!(i420.size, 15 + 12);
        let nv12 = PixelFormat::Nv12.layout(4, 4).unwrap();
        assert_eq!(nv12.size, 16 + 8);
        let padded = PixelFormat::Bgra8
            .layout(3, 2)
            .unwrap()
            .with_stride(16)
            .unwrap();
        assert_eq!((padded.planes[0].stride, padded.size), (16, 32));
        assert!(PixelFormat::from_name("BGRA8").is_ok());
        assert!(
            PixelFormat::from_name("yuyv")
                .unwrap_err()
                .contains("bgra8")
        );
        assert!(PixelFormat::Gray8.layout(0, 5).is_err());
    }
}
