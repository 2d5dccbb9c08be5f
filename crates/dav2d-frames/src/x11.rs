//! X11 screen capture through MIT-SHM: one connection and one System V
//! shared segment for the whole capture. Each frame, the X server writes
//! the root window's pixels into the segment (`ShmGetImage`, ZPixmap), and
//! the source copies them into a free pool slot (the only copy) and
//! publishes it as `bgra8` (a 24-bit-depth, 32-bits-per-pixel display).
//! Linux only; elsewhere `open` says the platform is unsupported.

use std::time::{Duration, Instant};

use crate::format::PixelFormat;
use crate::pool::{Delivery, FramePool};
use crate::synthetic::RunningSource;

/// Starts capturing `display` (e.g. `:99`) at `rate` frames per second.
#[cfg(target_os = "linux")]
pub fn capture(display: &str, rate: f64, slots: usize) -> Result<RunningSource, String> {
    use x11rb::connection::Connection;
    use x11rb::protocol::shm::ConnectionExt as _;
    use x11rb::protocol::xproto::ImageFormat;

    if !(rate > 0.0 && rate <= 1000.0) {
        return Err(format!(
            "an X11 capture rate must be from 0 to 1000 frames per second, got {rate}"
        ));
    }
    let (connection, screen) = x11rb::connect(Some(display)).map_err(|error| {
        format!("cannot connect to the X11 display '{display}': {error}; is an X server (e.g. Xvfb {display}) running?")
    })?;
    let root = &connection.setup().roots[screen];
    let (width, height, window) = (root.width_in_pixels, root.height_in_pixels, root.root);
    let bits = connection
        .setup()
        .pixmap_formats
        .iter()
        .find(|f| f.depth == root.root_depth)
        .map_or(0, |f| f.bits_per_pixel);
    if root.root_depth != 24 || bits != 32 {
        return Err(format!(
            "the X11 display '{display}' has depth {} at {bits} bits per pixel; dav2d captures depth 24 at 32 bits (bgra8)",
            root.root_depth
        ));
    }
    connection
        .shm_query_version()
        .map(|cookie| cookie.reply())
        .map_err(|e| e.to_string())?
        .map_err(|error| {
            format!("the X11 display '{display}' has no MIT-SHM extension: {error}")
        })?;
    let layout = PixelFormat::Bgra8.layout(u32::from(width), u32::from(height))?;
    let segment = Segment::new(layout.size)?;
    let seg = connection.generate_id().map_err(|e| e.to_string())?;
    connection
        .shm_attach(seg, segment.id as u32, false)
        .map_err(|e| e.to_string())?
        .check()
        .map_err(|error| format!("the X server could not attach the shared segment: {error}"))?;
    let pool = FramePool::new(slots, layout.size, Delivery::Latest);
    RunningSource::spawn("dav2d-frames-x11", pool, move |pool, stop| {
        let period = Duration::from_secs_f64(1.0 / rate);
        let started = Instant::now();
        let mut tick = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            let reply = connection
                .shm_get_image(
                    window,
                    0,
                    0,
                    width,
                    height,
                    !0,
                    ImageFormat::Z_PIXMAP.into(),
                    seg,
                    0,
                )
                .map_err(|e| e.to_string())
                .and_then(|cookie| cookie.reply().map_err(|e| e.to_string()));
            match reply {
                Ok(_) => {
                    if let Some(mut slot) = pool.begin(Duration::ZERO) {
                        slot.buffer()[..layout.size].copy_from_slice(segment.bytes());
                        slot.publish(layout, crate::now_ns());
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "X11 capture failed; the stream ends.");
                    break;
                }
            }
            tick += 1;
            let due = started + period.mul_f64(f64::from(tick));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let _ = connection.shm_detach(seg).map(|cookie| cookie.check());
        drop(segment);
    })
}

/// X11 capture is Linux only.
#[cfg(not(target_os = "linux"))]
pub fn capture(display: &str, _rate: f64, _slots: usize) -> Result<RunningSource, String> {
    Err(format!(
        "x11:{display}: X11 capture through MIT-SHM is unsupported on this platform (Linux only)"
    ))
}

/// A System V shared memory segment, removed once both sides detach.
#[cfg(target_os = "linux")]
struct Segment {
    id: i32,
    address: *mut u8,
    size: usize,
}

// SAFETY: the segment is owned by one capture thread at a time.
#[cfg(target_os = "linux")]
unsafe impl Send for Segment {}

#[cfg(target_os = "linux")]
impl Segment {
    fn new(size: usize) -> Result<Segment, String> {
        // SAFETY: plain System V calls; every result is checked.
        unsafe {
            let id = libc::shmget(libc::IPC_PRIVATE, size, libc::IPC_CREAT | 0o600);
            if id < 0 {
                return Err(format!(
                    "cannot create a shared segment of {size} bytes: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let address = libc::shmat(id, std::ptr::null(), 0);
            // Removed once the X server and this process both detach.
            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            if address as isize == -1 {
                return Err(format!(
                    "cannot map the shared segment: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(Segment {
                id,
                address: address.cast(),
                size,
            })
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `size` bytes long and lives as long as `self`;
        // the server wrote it before its reply arrived.
        unsafe { std::slice::from_raw_parts(self.address, self.size) }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: the address came from `shmat` and is detached once.
        unsafe {
            libc::shmdt(self.address.cast());
        }
    }
}
