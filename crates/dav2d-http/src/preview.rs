//! `GET /frame/{name}?key=K&width=W`: the latest frame of a frame stream
//! or frame node (a processor's mask too) as a JPEG, scaled down to at most
//! `width` pixels (default 320, at most 1280) for the dashboard's previews.
//!
//! The frame is read from the read model (no engine lock) and stays where
//! its source put it; the preview samples its pixels (nearest neighbour,
//! only the pixels the preview needs) and encodes them with a real JPEG
//! encoder. Planar YUV formats preview their luma; a processor's 0/1 mask
//! is drawn black and white. At most two previews are
//! encoded at once; past that the answer is 503 with `Retry-After`, so a
//! page polling fast cannot take the machine. The frame's `seq`, `ts` and
//! `skipped` go in `X-Frame-*` headers, from which the page shows its rate.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dav2d_core::{FrameInfo, Value};
use tokio::sync::Semaphore;

use crate::state::{AppState, error_response};

/// The widest preview served.
pub(crate) const PREVIEW_WIDTH_MAX: u32 = 1280;

/// Previews encoded at once, over every connection.
static ENCODING: Semaphore = Semaphore::const_new(2);

#[derive(serde::Deserialize)]
pub(crate) struct FrameQuery {
    key: Option<String>,
    width: Option<u32>,
}

pub(crate) async fn frame(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<FrameQuery>,
) -> Response {
    let Some(key) = query.key else {
        return error_response(StatusCode::BAD_REQUEST, "give the key: /frame/{name}?key=K");
    };
    let reading = match state.intake.graph().reads().latest(&name, &key) {
        Ok(reading) => reading,
        Err(error) => return error_response(StatusCode::NOT_FOUND, error.to_string()),
    };
    let Some(sample) = reading.and_then(|r| r.sample) else {
        return error_response(
            StatusCode::NOT_FOUND,
            format!("'{name}' has no frame for key '{key}' yet"),
        );
    };
    let Value::Frame(frame) = sample.value else {
        return error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "'{name}' holds {} values, not frames",
                sample.value.type_name()
            ),
        );
    };
    let Ok(permit) = ENCODING.try_acquire() else {
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "two previews are being encoded; retry shortly",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let width = query.width.unwrap_or(320).clamp(16, PREVIEW_WIDTH_MAX);
    let frame = Arc::clone(&frame.0);
    let encoded = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let info = frame.info();
        encode(&info, frame.bytes(), width).map(|jpeg| (info, jpeg))
    })
    .await;
    let (info, jpeg) = match encoded {
        Ok(Ok(done)) => done,
        Ok(Err(message)) => return error_response(StatusCode::UNPROCESSABLE_ENTITY, message),
        Err(_) => {
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "the preview was dropped");
        }
    };
    state.intake.metrics().request("/frame", 200);
    let mut response = (StatusCode::OK, jpeg).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in [
        ("x-frame-seq", info.seq.to_string()),
        ("x-frame-ts", info.ts_ns.to_string()),
        ("x-frame-skipped", info.skipped.to_string()),
        ("x-frame-size", format!("{}x{}", info.width, info.height)),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// How a format's pixels are read for a preview: bytes per pixel and where
/// red, green and blue are (one offset for a luma-only preview).
fn layout(format: &str) -> Option<(usize, [usize; 3], bool)> {
    Some(match format {
        "gray8" | "i420" | "nv12" | "i444" => (1, [0, 0, 0], true),
        "rgb8" => (3, [0, 1, 2], false),
        "bgr8" => (3, [2, 1, 0], false),
        "rgba8" => (4, [0, 1, 2], false),
        "bgra8" => (4, [2, 1, 0], false),
        _ => return None,
    })
}

/// The frame scaled to at most `width` pixels wide (never up), as JPEG.
pub(crate) fn encode(info: &FrameInfo, bytes: &[u8], width: u32) -> Result<Vec<u8>, String> {
    let (step, offsets, luma) = layout(&info.format)
        .ok_or_else(|| format!("frames of format {} have no preview", info.format))?;
    if info.width == 0 || info.height == 0 {
        return Err("the frame is empty".to_string());
    }
    let out_w = width.min(info.width);
    let out_h =
        ((u64::from(info.height) * u64::from(out_w)) / u64::from(info.width)).clamp(1, 4096) as u32;
    let stride = match info.strides[0] {
        0 => info.width as usize * step,
        stride => stride,
    };
    let channels = if luma { 1 } else { 3 };
    // A processor's mask holds 0 and 1: drawn as black and white.
    let scale = if info.coverage.is_some() { 255 } else { 1 };
    let mut pixels = Vec::with_capacity(out_w as usize * out_h as usize * channels);
    for y in 0..out_h as usize {
        let row = y * info.height as usize / out_h as usize * stride;
        for x in 0..out_w as usize {
            let at = row + x * info.width as usize / out_w as usize * step;
            for offset in offsets.iter().take(channels) {
                let byte = bytes
                    .get(at + offset)
                    .ok_or_else(|| "the frame is shorter than its description".to_string())?;
                pixels.push(byte.saturating_mul(scale));
            }
        }
    }
    let mut jpeg = Vec::new();
    let color = if luma {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    jpeg_encoder::Encoder::new(&mut jpeg, 80)
        .encode(&pixels, out_w as u16, out_h as u16, color)
        .map_err(|error| format!("the preview could not be encoded: {error}"))?;
    Ok(jpeg)
}
