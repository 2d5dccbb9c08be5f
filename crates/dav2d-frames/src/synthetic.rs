//! The synthetic frame source: a moving test pattern of any size, rate and
//! format, written straight into the pool's slots on its own thread.
//!
//! The pattern lets a reader check which frame it holds: the first 8 bytes
//! of the frame are its seq (little-endian), and every other byte of row
//! `r` of plane `p` is `(seq + r + 64 * p) % 251`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::format::{FrameLayout, PixelFormat};
use crate::pool::{Delivery, FramePool};

/// What a synthetic source makes.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticFrames {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second; 0 runs as fast as the pool takes them.
    pub rate: f64,
    /// The pixel format.
    pub format: PixelFormat,
    /// Row pitch of a packed format, when wider than a row.
    pub stride: Option<usize>,
    /// Slots in the pool.
    pub slots: usize,
    /// Stop after this many frames (`None`: until stopped).
    pub frames: Option<u64>,
}

impl SyntheticFrames {
    /// The layout of each frame.
    pub fn layout(&self) -> Result<FrameLayout, String> {
        let layout = self.format.layout(self.width, self.height)?;
        match self.stride {
            Some(stride) => layout.with_stride(stride),
            None => Ok(layout),
        }
    }

    /// Starts the producer thread over a new pool.
    pub fn start(&self) -> Result<RunningSource, String> {
        if !(self.rate >= 0.0 && self.rate <= 100_000.0) {
            return Err(format!(
                "a frame rate must be from 0 to 100000, got {}",
                self.rate
            ));
        }
        let layout = self.layout()?;
        if layout.size > crate::MAX_FRAME_BYTES {
            return Err(format!(
                "a {}x{} {} frame takes {} bytes, more than the {} a frame may take",
                self.width,
                self.height,
                self.format,
                layout.size,
                crate::MAX_FRAME_BYTES
            ));
        }
        let pool = FramePool::new(self.slots, layout.size, Delivery::Latest);
        let (rate, frames) = (self.rate, self.frames);
        RunningSource::spawn("dav2d-frames-synthetic", pool, move |pool, stop| {
            let period = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
            let started = Instant::now();
            let mut made = 0u64;
            while !stop.load(Ordering::Acquire) && frames.is_none_or(|n| made < n) {
                if let Some(mut slot) = pool.begin(Duration::ZERO) {
                    let seq = pool.published();
                    paint(slot.buffer(), &layout, seq);
                    slot.publish(layout, crate::now_ns());
                }
                made += 1;
                match period {
                    Some(period) => {
                        let due = started + period.mul_f64(made as f64);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    None => std::thread::yield_now(),
                }
            }
        })
    }
}

/// Writes the test pattern of frame `seq` (see the module's docs).
pub fn paint(buffer: &mut [u8], layout: &FrameLayout, seq: u64) {
    for (p, plane) in layout.planes.iter().enumerate() {
        for row in 0..plane.rows {
            let start = plane.offset + row * plane.stride;
            let value = ((seq + row as u64 + 64 * p as u64) % 251) as u8;
            buffer[start..start + plane.row_bytes].fill(value);
        }
    }
    if stamped(layout) {
        buffer[..8].copy_from_slice(&seq.to_le_bytes());
    }
}

/// Whether a frame is wide enough to carry its seq in its first 8 bytes.
fn stamped(layout: &FrameLayout) -> bool {
    layout.planes[0].row_bytes >= 8
}

/// Checks that `data` holds the pattern of frame `seq`; where it does not.
pub fn check_pattern(data: &[u8], layout: &FrameLayout, seq: u64) -> Result<(), String> {
    if stamped(layout) {
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&data[..8]);
        let stamp = u64::from_le_bytes(stamp);
        if stamp != seq {
            return Err(format!("the frame is stamped {stamp}, expected {seq}"));
        }
    }
    for (p, plane) in layout.planes.iter().enumerate() {
        for row in 0..plane.rows {
            let start = plane.offset + row * plane.stride;
            let value = ((seq + row as u64 + 64 * p as u64) % 251) as u8;
            let skip = if p == 0 && row == 0 && stamped(layout) {
                8
            } else {
                0
            };
            if let Some(x) = data[start + skip..start + plane.row_bytes]
                .iter()
                .position(|b| *b != value)
            {
                return Err(format!(
                    "plane {p} row {row} byte {} is not frame {seq}'s",
                    x + skip
                ));
            }
        }
    }
    Ok(())
}

/// A frame source's producer thread over its pool.
pub struct RunningSource {
    pool: FramePool,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    address: Option<std::net::SocketAddr>,
}

impl RunningSource {
    /// Runs `produce(pool, stop)` on a thread named `name`; the pool is
    /// closed when it returns.
    pub fn spawn(
        name: &str,
        pool: FramePool,
        produce: impl FnOnce(&FramePool, &AtomicBool) + Send + 'static,
    ) -> Result<RunningSource, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_pool, thread_stop) = (pool.clone(), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                produce(&thread_pool, &thread_stop);
                thread_pool.close();
            })
            .map_err(|e| format!("cannot start the frame source: {e}"))?;
        Ok(RunningSource {
            pool,
            stop,
            thread: Some(thread),
            address: None,
        })
    }

    /// Where a listening source listens.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.address
    }

    pub(crate) fn set_address(&mut self, address: Option<std::net::SocketAddr>) {
        self.address = address;
    }

    /// The pool readers lease from.
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Stops the producer and waits for it; the pool stays readable.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.pool.close();
    }
}

impl Drop for RunningSource {
    fn drop(&mut self) {
        self.stop();
    }
}
