//! Frame source URLs and the sources they open: `synthetic:WxH@RATE?...`
//! and `y4m:PATH` (or `y4m:-` for standard input).

use std::io::BufReader;
use std::time::Duration;

use crate::format::PixelFormat;
use crate::pool::{Delivery, FramePool};
use crate::synthetic::{RunningSource, SyntheticFrames};
use crate::y4m::Y4mReader;

/// A parsed frame source URL.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameUrl {
    /// `synthetic:1920x1080@240?format=bgra8&slots=4&frames=100&stride=8192`.
    Synthetic(SyntheticFrames),
    /// `tcp://127.0.0.1:7071?slots=4&max_bytes=33554432&idle_timeout=300&partial_timeout=30`:
    /// listen for producers (timeouts in seconds; the token is given apart,
    /// in [`OpenOptions`], never in the URL).
    Tcp {
        /// Slots in the pool.
        slots: usize,
        /// The largest frame accepted (each slot's size).
        max_bytes: usize,
        /// The producers' timeouts (and token, set from [`OpenOptions`]).
        options: crate::tcp::TcpOptions,
    },
    /// `x11::99?rate=30`: capture X11 display `:99`.
    X11 {
        /// The display, e.g. `:99`.
        display: String,
        /// Frames per second.
        rate: f64,
        /// Slots in the pool.
        slots: usize,
    },
    /// `y4m:/path/to/file.y4m` or `y4m:-` (standard input); `?slots=N`.
    Y4m {
        /// The file, or `-`.
        path: String,
        /// Slots in the pool.
        slots: usize,
    },
}

impl FrameUrl {
    /// Parses `url`, saying what is wrong and what was expected.
    pub fn parse(url: &str) -> Result<FrameUrl, String> {
        let (scheme, rest) = url.split_once(':').ok_or_else(|| {
            format!(
                "'{url}' is not a frame URL; write e.g. synthetic:640x480@30 or y4m:/path/file.y4m"
            )
        })?;
        let (body, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut params: Vec<(&str, &str)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' in '{url}' is not name=value"))?;
            if params.iter().any(|(n, _)| *n == name) {
                return Err(format!(
                    "'{name}' is given twice in '{url}'; give each parameter once"
                ));
            }
            params.push((name, value));
        }
        let number = |name: &str, value: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{name}={value} in '{url}' is not a whole number"))
        };
        // Every scheme takes it: the pool's cap, read by `open_with`.
        let cap = match params.iter().find(|(n, _)| *n == "max_pinned_bytes") {
            Some((_, value)) => number("max_pinned_bytes", value)? as usize,
            None => crate::pool::DEFAULT_MAX_PINNED_BYTES,
        };
        params.retain(|(n, _)| *n != "max_pinned_bytes");
        let parsed = Self::parse_scheme(url, scheme, body, &params, &number)?;
        parsed.fits(url, cap)?;
        Ok(parsed)
    }

    /// The pool a source starts with, against `cap` (`max_pinned_bytes`):
    /// refused before anything is allocated when its slots would hold more.
    /// (A y4m file's or a display's frame size is known when it is opened,
    /// and checked then.)
    fn fits(&self, url: &str, cap: usize) -> Result<(), String> {
        let (slots, frame) = match self {
            FrameUrl::Synthetic(frames) => (frames.slots, frames.layout()?.size),
            FrameUrl::Tcp {
                slots, max_bytes, ..
            } => (*slots, *max_bytes),
            FrameUrl::Y4m { .. } | FrameUrl::X11 { .. } => return Ok(()),
        };
        pool_fits(url, slots, frame, cap)
    }

    fn parse_scheme(
        url: &str,
        scheme: &str,
        body: &str,
        params: &[(&str, &str)],
        number: &dyn Fn(&str, &str) -> Result<u64, String>,
    ) -> Result<FrameUrl, String> {
        let params = params.to_vec();
        let slots_of = |params: &[(&str, &str)]| -> Result<usize, String> {
            match params.iter().find(|(n, _)| *n == "slots") {
                Some((_, v)) => {
                    let n = number("slots", v)?;
                    if !(2..=crate::MAX_SLOTS as u64).contains(&n) {
                        return Err(format!(
                            "slots={n} in '{url}' must be from 2 to {}",
                            crate::MAX_SLOTS
                        ));
                    }
                    Ok(n as usize)
                }
                None => Ok(4),
            }
        };
        match scheme {
            "synthetic" => {
                let (size, rate) = body.split_once('@').unwrap_or((body, "30"));
                let (w, h) = size
                    .split_once('x')
                    .ok_or_else(|| format!("'{size}' in '{url}' is not WIDTHxHEIGHT"))?;
                let dimension = |name: &str, v: &str| -> Result<u32, String> {
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=16384).contains(n))
                        .ok_or_else(|| {
                            format!("the {name} '{v}' in '{url}' must be from 1 to 16384")
                        })
                };
                let rate: f64 = rate.parse().map_err(|_| {
                    format!("the rate '{rate}' in '{url}' is not a number of frames per second")
                })?;
                let mut frames = SyntheticFrames {
                    width: dimension("width", w)?,
                    height: dimension("height", h)?,
                    rate,
                    format: PixelFormat::Bgra8,
                    stride: None,
                    slots: slots_of(&params)?,
                    frames: None,
                };
                for (name, value) in &params {
                    match *name {
                        "format" => frames.format = PixelFormat::from_name(value)?,
                        "stride" => frames.stride = Some(number("stride", value)? as usize),
                        "frames" => frames.frames = Some(number("frames", value)?),
                        "slots" => {}
                        other => {
                            return Err(format!(
                                "unknown parameter '{other}' in '{url}'; synthetic takes format, stride, frames and slots"
                            ));
                        }
                    }
                }
                frames.layout()?;
                Ok(FrameUrl::Synthetic(frames))
            }
            "y4m" => {
                if body.is_empty() {
                    return Err(format!(
                        "'{url}' names no file; write y4m:/path/file.y4m or y4m:- for standard input"
                    ));
                }
                if let Some((other, _)) = params.iter().find(|(n, _)| *n != "slots") {
                    return Err(format!(
                        "unknown parameter '{other}' in '{url}'; y4m takes slots"
                    ));
                }
                Ok(FrameUrl::Y4m {
                    path: body.to_string(),
                    slots: slots_of(&params)?,
                })
            }
            "tcp" => {
                let address = body.strip_prefix("//").unwrap_or(body);
                let mut max_bytes = 32 << 20;
                let mut options = crate::tcp::TcpOptions::default();
                options.listen.bind = address.parse().map_err(|_| {
                    format!(
                        "'{address}' in '{url}' is not an address to listen on; write an IP and a port, e.g. tcp://127.0.0.1:7071"
                    )
                })?;
                let seconds = |name: &str, value: &str| -> Result<Duration, String> {
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0 * 365.0)
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| {
                            format!("{name}={value} in '{url}' must be a number of seconds, above 0 and at most a year")
                        })
                };
                for (name, value) in &params {
                    match *name {
                        "idle_timeout" => options.idle_timeout = seconds(name, value)?,
                        "partial_timeout" => options.partial_timeout = seconds(name, value)?,
                        "max_bytes" => {
                            max_bytes = number("max_bytes", value)? as usize;
                            if !(1..=crate::MAX_FRAME_BYTES).contains(&max_bytes) {
                                return Err(format!(
                                    "max_bytes={max_bytes} in '{url}' must be from 1 to {}",
                                    crate::MAX_FRAME_BYTES
                                ));
                            }
                        }
                        "slots" => {}
                        other => {
                            return Err(format!(
                                "unknown parameter '{other}' in '{url}'; tcp takes slots, max_bytes, idle_timeout and partial_timeout (the token is given apart)"
                            ));
                        }
                    }
                }
                Ok(FrameUrl::Tcp {
                    slots: slots_of(&params)?,
                    max_bytes,
                    options,
                })
            }
            "x11" => {
                let mut rate = 30.0;
                for (name, value) in &params {
                    match *name {
                        "rate" => {
                            rate = value.parse().map_err(|_| {
                                format!(
                                    "rate={value} in '{url}' is not a number of frames per second"
                                )
                            })?;
                        }
                        "slots" => {}
                        other => {
                            return Err(format!(
                                "unknown parameter '{other}' in '{url}'; x11 takes rate and slots"
                            ));
                        }
                    }
                }
                if body.is_empty() {
                    return Err(format!("'{url}' names no display; write e.g. x11::99"));
                }
                if !cfg!(feature = "x11") {
                    return Err(dav2d_component::built_without("X11 capture", "x11"));
                }
                Ok(FrameUrl::X11 {
                    display: body.to_string(),
                    rate,
                    slots: slots_of(&params)?,
                })
            }
            other => Err(format!(
                "unknown frame source '{other}' in '{url}'; expected synthetic:, y4m:, tcp:// or x11:"
            )),
        }
    }
}

/// Whether `slots` slots of `frame` bytes fit `cap` (`max_pinned_bytes`).
pub fn pool_fits(url: &str, slots: usize, frame: usize, cap: usize) -> Result<(), String> {
    let total = slots.saturating_mul(frame);
    if total > cap {
        let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
        return Err(format!(
            "'{url}' starts with {slots} slots of {frame} bytes ({:.2} GiB), more than max_pinned_bytes ({:.2} GiB); lower slots or the frame size, or raise max_pinned_bytes=",
            gib(total),
            gib(cap)
        ));
    }
    Ok(())
}

/// What a source is opened with besides its URL.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The pool has at least this many slots (a graph keeps frames in its
    /// windows, and every frame it keeps pins a slot).
    pub least_slots: usize,
    /// The token a `tcp://` producer's first line `AUTH <token>` must carry
    /// (ignored by the other sources, which take no connections).
    pub token: Option<String>,
}

/// Opens the source `url` names and starts it.
pub fn open(url: &str) -> Result<RunningSource, String> {
    open_with(url, &OpenOptions::default())
}

/// [`open`], with `options`.
pub fn open_with(url: &str, options: &OpenOptions) -> Result<RunningSource, String> {
    let source = start(url, options)?;
    if let Some(bytes) = max_pinned_bytes(url) {
        source.pool().set_max_pinned_bytes(bytes);
    }
    Ok(source)
}

/// The `max_pinned_bytes=` of `url`, if it gives one (checked by
/// [`FrameUrl::parse`]).
fn max_pinned_bytes(url: &str) -> Option<usize> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "max_pinned_bytes")
        .and_then(|(_, value)| value.parse().ok())
}

fn start(url: &str, options: &OpenOptions) -> Result<RunningSource, String> {
    let least = options.least_slots;
    let mut parsed = FrameUrl::parse(url)?;
    match &mut parsed {
        FrameUrl::Synthetic(frames) => frames.slots = frames.slots.max(least),
        FrameUrl::Tcp {
            slots,
            options: tcp,
            ..
        } => {
            *slots = (*slots).max(least);
            tcp.listen.token.clone_from(&options.token);
        }
        FrameUrl::X11 { slots, .. } | FrameUrl::Y4m { slots, .. } => {
            *slots = (*slots).max(least);
        }
    }
    match parsed {
        FrameUrl::Synthetic(frames) => frames.start(),
        FrameUrl::Tcp {
            slots,
            max_bytes,
            options,
        } => crate::tcp::listen(slots, max_bytes, options),
        FrameUrl::X11 {
            display,
            rate,
            slots,
        } => {
            #[cfg(feature = "x11")]
            return crate::x11::capture(&display, rate, slots);
            #[cfg(not(feature = "x11"))]
            return {
                let _ = (display, rate, slots);
                Err(dav2d_component::built_without("X11 capture", "x11"))
            };
        }
        FrameUrl::Y4m { path, slots } => {
            let input: Box<dyn std::io::Read + Send> = if path == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?,
                )
            };
            let mut reader = Y4mReader::new(
                BufReader::with_capacity(1 << 20, input),
                crate::MAX_FRAME_BYTES,
            )
            .map_err(|e| format!("{path}: {e}"))?;
            let layout = reader.header().layout;
            let cap = max_pinned_bytes(url).unwrap_or(crate::pool::DEFAULT_MAX_PINNED_BYTES);
            pool_fits(url, slots, layout.size, cap)?;
            let pool = FramePool::new(slots, layout.size, Delivery::Every);
            RunningSource::spawn("dav2d-frames-y4m", pool, move |pool, stop| {
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    let Some(mut slot) = pool.begin(Duration::from_millis(50)) else {
                        if pool.is_closed() {
                            return;
                        }
                        continue;
                    };
                    match reader.read_frame(slot.buffer()) {
                        Ok(true) => {
                            slot.publish(layout, crate::now_ns());
                        }
                        Ok(false) => return,
                        Err(error @ crate::y4m::Y4mError::Truncated { .. }) => {
                            // A cut file: the frames before it stand.
                            tracing::warn!(%error, "The y4m stream ends early.");
                            return;
                        }
                        Err(error) => {
                            // Not a clean end: readers are told why.
                            let error = format!("{path}: {error}");
                            tracing::warn!(%error, "The y4m stream ends early.");
                            pool.fail(error);
                            return;
                        }
                    }
                }
            })
        }
    }
}
