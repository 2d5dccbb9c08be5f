//! Video frames for dav2d, from a source to a reader with no copy and no
//! allocation per frame.
//!
//! The key design decision: a frame stream owns a [`FramePool`] of
//! pre-allocated, 64-byte-aligned slots. Its source writes each frame into
//! a free slot and publishes it; a reader takes a [`Lease`] on the newest
//! and reads (or exports to NumPy) the slot itself. A leased slot is never
//! reused, so a view can outlive any number of later frames safely; when
//! every slot is held the source skips the frame and counts it, so a slow
//! reader never slows a live source nor builds a backlog. Row pitch is kept
//! as the source gives it ([`FrameLayout`]).
//!
//! Sources: [`SyntheticFrames`] (a test pattern), y4m files or pipes
//! ([`open`] with `y4m:PATH` or `y4m:-`) and producers sending frame
//! messages over TCP ([`tcp`], `tcp://ADDRESS`), and X11 screen capture
//! through MIT-SHM ([`x11`], `x11::99`).

mod component;
mod format;
pub mod nodes;
mod pool;
pub mod resize;
mod section;
mod source;
mod synthetic;
pub mod tcp;
#[cfg(feature = "x11")]
pub mod x11;
pub mod y4m;

pub use component::FrameSource;
pub use format::{FrameLayout, MAX_PLANES, PixelFormat, Plane, Planes};
pub use pool::{Delivery, FrameMeta, FramePool, Lease, MAX_SLOTS, SLOT_ALIGN, WriteSlot};
pub use section::FramesSection;
pub use source::{FrameUrl, OpenOptions, open, open_with};
pub use synthetic::{RunningSource, SyntheticFrames, check_pattern, paint};

/// The largest frame a stream carries (a 8K RGBA frame is 133 MB).
pub const MAX_FRAME_BYTES: usize = 256 << 20;

/// Now, in ns since the epoch: the timestamp of a frame whose source gives none.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}
