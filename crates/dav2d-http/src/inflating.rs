//! Compressed JSON bodies inflated as a stream: one pool job inflates the
//! body a step at a time and cuts the inflated array into pieces as it
//! goes, each piece parsed on the pool while the rest still inflates. The
//! inflated body is never held whole, and what it inflates to is charged to
//! the body budget as it is made.

use std::sync::Arc;

use axum::response::Response;
use dav2d_component::{BodyPermit, Intake};
use dav2d_wire::{ArrayCutter, DecompressError, Inflater, ParsedPiece};
use tokio::sync::oneshot::Receiver;

use crate::answer::{Ack, budget_spent, finish, on_pool, pool_dropped, respond};
use crate::state::AppState;

/// Compressed bodies at least this large are inflated as a stream; smaller
/// ones inflate whole in less time than the hand-offs would take.
pub(crate) const STREAMED_COMPRESSED: usize = 64 << 10;

/// How much compressed input each step of the inflater takes.
const STEP: usize = 64 << 10;

/// What the inflating job leaves: the cutter holding the inflated chunks,
/// the pieces being parsed, the permit charged with the inflated bytes, and
/// why inflating stopped, if it did.
struct Inflated {
    cutter: ArrayCutter,
    parsing: Vec<Receiver<Option<ParsedPiece>>>,
    permit: BodyPermit,
    error: Option<DecompressError>,
}

/// How a compressed body ended.
pub(crate) enum Inflating {
    /// Applied, or refused: the answer.
    Answered(Response),
    /// It inflated to something other than an array, which is parsed whole
    /// (its permit, charged with the inflated bytes, held until applied).
    Whole {
        body: Vec<u8>,
        stream: Option<String>,
        permit: BodyPermit,
    },
}

/// Inflates `compressed` (`encoding`) as a stream into pieces parsed on the
/// pool, then applies them.
pub(crate) async fn ingest_inflating(
    state: &AppState,
    stream: Option<String>,
    compressed: Vec<u8>,
    encoding: String,
    ack: Ack,
) -> Inflating {
    Inflating::Answered(
        match inflate_and_apply(state, stream, compressed, encoding, ack).await {
            Ok(response) => response,
            Err(whole) => return whole,
        },
    )
}

async fn inflate_and_apply(
    state: &AppState,
    stream: Option<String>,
    compressed: Vec<u8>,
    encoding: String,
    ack: Ack,
) -> Result<Response, Inflating> {
    let intake = &state.intake;
    let Some(permit) = intake.reserve_body(0) else {
        return Ok(budget_spent());
    };
    let stream: Option<Arc<str>> = stream.map(Arc::from);
    let job_stream = stream.clone();
    let inflated = on_pool(intake, move |intake| {
        inflate_into_pieces(intake, &compressed, &encoding, permit, job_stream)
    });
    let Ok(Inflated {
        cutter,
        parsing,
        permit,
        error,
    }) = inflated.await
    else {
        return Ok(pool_dropped());
    };
    // The pieces hold inflated bytes: the permit is given back only once
    // they are done, refused or not.
    let mut pieces = Vec::with_capacity(parsing.len());
    let mut dropped = false;
    for receiver in parsing {
        match receiver.await {
            Ok(Some(piece)) => pieces.push(piece),
            Ok(None) | Err(_) => dropped = true,
        }
    }
    if let Some(error) = error {
        drop(pieces);
        drop(permit);
        return Ok(respond(intake.refuse_encoding(error)));
    }
    if dropped {
        return Ok(pool_dropped());
    }
    if !cutter.has_pieces() {
        return Err(Inflating::Whole {
            body: cutter.body(),
            stream: stream.as_deref().map(str::to_string),
            permit,
        });
    }
    let outcome = on_pool(intake, move |intake| {
        let outcome = intake.ingest_pieces(&pieces, &cutter, stream.as_deref(), false);
        drop(permit);
        outcome
    });
    Ok(match outcome.await {
        Ok(outcome) => finish(state, outcome, ack).await,
        Err(_) => pool_dropped(),
    })
}

/// The pool job: inflates a step at a time, cutting pieces off the
/// inflated array and handing each to the pool as soon as it is whole.
fn inflate_into_pieces(
    intake: &Intake,
    compressed: &[u8],
    encoding: &str,
    mut permit: BodyPermit,
    stream: Option<Arc<str>>,
) -> Inflated {
    let limit = intake.parse_options().max_body;
    let workers = intake.workers().max(1);
    // Pieces of about a worker's share of an inflated body ten times the
    // compressed one, within the bounds arriving bodies are cut by.
    let piece = (compressed.len() * 10 / (4 * workers)).clamp(256 << 10, 8 << 20);
    let mut cutter = ArrayCutter::new(piece);
    let mut parsing = Vec::new();
    let mut spawn = |cutter: &mut ArrayCutter, last: bool| {
        let jobs = if last {
            cutter.cut().into_iter().chain(cutter.finish()).collect()
        } else {
            cutter.cut()
        };
        for job in jobs {
            let stream = stream.clone();
            parsing.push(on_pool(intake, move |_| Some(job.parse(stream.as_deref()))));
        }
    };
    let mut charge = |bytes: usize| permit.grow(bytes);
    let result = (|| {
        let mut inflater = Inflater::new(encoding, limit)?;
        for part in compressed.chunks(STEP) {
            inflater.push(part, &mut charge, &mut |chunk| cutter.push(chunk))?;
            spawn(&mut cutter, false);
        }
        inflater.finish(&mut charge, &mut |chunk| cutter.push(chunk))?;
        spawn(&mut cutter, true);
        Ok(())
    })();
    Inflated {
        cutter,
        parsing,
        permit,
        error: result.err(),
    }
}
