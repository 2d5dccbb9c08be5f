//! Broker messages: what every broker source does with one message
//! (route it, apply it, retry while busy, count, say whether to
//! acknowledge), decoded exactly as HTTP bodies are.

use std::time::{Duration, Instant};

use dav2d_core::{Keys, RejectReason};
use dav2d_wire::{Format, parse_then};

use super::{Admission, Intake, Outcome};

impl Intake {
    /// Applies one broker message for `stream` whose topic names `key`: a
    /// bare number, a JSON sample or a JSON array of samples (decoded and
    /// rejected like HTTP bodies; samples that give no key get `key`, no
    /// stream: `stream`). Call it where blocking is allowed.
    pub fn ingest_message(
        &self,
        payload: &[u8],
        stream: &str,
        key: &str,
        admission: Admission,
    ) -> Outcome {
        self.message(payload, stream, key, admission, None)
    }

    /// What a broker connector does with one message on `topic`: routes it
    /// to its (stream, key), applies it ([`Intake::ingest_message`]), trying
    /// again for up to 30 s while the engine or the cluster is busy, logs and
    /// counts its rejections in `health`. The settled mark of the wave that
    /// applied it (`0` for a message refused for good: unrouted or bad, which
    /// is acknowledged all the same, since it would only come back), or
    /// `None` when it could not be applied (leave it unacknowledged for the
    /// broker to send again).
    pub fn deliver(
        &self,
        routes: &[crate::Route],
        topic: &str,
        payload: &[u8],
        health: &crate::BrokerHealth,
    ) -> Option<u64> {
        let Some((stream, key)) = crate::Route::resolve(routes, topic) else {
            rejected(topic, || {
                "A broker message matches no route's template; skipped.".to_string()
            });
            health.message(1);
            return Some(0);
        };
        let busy = |outcome: &Outcome| matches!(outcome, Outcome::Overloaded | Outcome::SinkBehind);
        let mut outcome = self.ingest_message(payload, &stream, key, Admission::Wait);
        for _ in 0..600 {
            if !busy(&outcome) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            outcome = self.ingest_message(payload, &stream, key, Admission::Wait);
        }
        match outcome {
            Outcome::Applied(report) => {
                for (index, reason) in &report.errors {
                    rejected(topic, || {
                        format!("A broker sample (index {index}) was rejected: {reason}")
                    });
                }
                health.message(report.rejected as u64);
                Some(report.settled)
            }
            Outcome::Overloaded | Outcome::SinkBehind => {
                tracing::warn!(
                    topic,
                    "A broker message could not be applied for 30 s; it is left unacknowledged for the broker to send again."
                );
                health.message(1);
                None
            }
            other => {
                rejected(topic, || {
                    let why = match &other {
                        Outcome::BadBody(error) => error.to_string(),
                        Outcome::TooLarge(why)
                        | Outcome::BadEncoding(why)
                        | Outcome::BodyBudget(why) => why.clone(),
                        other => format!("{other:?}"),
                    };
                    format!("A broker message was rejected: {why}")
                });
                health.message(1);
                Some(0)
            }
        }
    }

    /// [`Intake::ingest_message`] applied here even when this intake
    /// forwards: what a partition's owner does with the partitioned stream.
    /// A sample whose key `ours` refuses (not of this partition: a raw
    /// publish to the cluster's subject) is refused and counted as
    /// `wrong_partition`, never applied.
    pub fn apply_message_locally(
        &self,
        payload: &[u8],
        stream: &str,
        key: &str,
        ours: &dyn Fn(&str) -> bool,
    ) -> Outcome {
        self.message(payload, stream, key, Admission::Wait, Some(ours))
    }

    /// `local`: apply here (a partition's owner), taking only the keys it
    /// accepts; `None`: forward when clustering is on.
    pub(super) fn message(
        &self,
        payload: &[u8],
        stream: &str,
        key: &str,
        admission: Admission,
        local: Option<&dyn Fn(&str) -> bool>,
    ) -> Outcome {
        let may_forward = local.is_none();
        let text = std::str::from_utf8(payload).map(str::trim).unwrap_or("");
        if let Ok(value) = text.parse::<f64>() {
            if local.is_some_and(|ours| !ours(key)) {
                self.reject(RejectReason::WrongPartition, 1);
                return Outcome::Applied(crate::IngestReport::default());
            }
            let keys = Keys::One(key);
            return match self.shared.forward.get() {
                Some(forward) if may_forward => {
                    self.forward_numbers(forward.as_ref(), stream, keys, &[value], None)
                }
                _ => self.apply_numbers(stream, keys, &[value], None, admission),
            };
        }
        self.counters.bytes.inc_by(payload.len() as u64);
        let started = Instant::now();
        let result = parse_then(
            payload,
            Format::Json,
            Some(stream),
            &self.shared.parse,
            &self.shared.pool,
            |mut parsed| {
                parsed.fill_empty_keys(key);
                if let Some(ours) = local {
                    let foreign = parsed.retain_keys(ours);
                    if foreign > 0 {
                        self.reject(RejectReason::WrongPartition, foreign as u64);
                        tracing::warn!(
                            stream,
                            samples = foreign,
                            "Samples on a cluster partition their keys do not hash to were refused (a publish that did not come through a dav2d door)."
                        );
                    }
                    return self.apply(parsed, started, admission, None);
                }
                self.admit_and_apply(parsed, started, admission, None)
            },
        );
        match result {
            Ok(outcome) => outcome,
            Err(error) => {
                self.reject(error.reason, 1);
                Outcome::BadBody(error)
            }
        }
    }
}

/// One WARN line a second at most for rejected broker messages (a bad
/// publisher can send thousands a second), saying how many more there were.
static REJECTED: crate::Throttle = crate::Throttle::new(Duration::from_secs(1));

/// Logs a rejected broker message through [`REJECTED`].
fn rejected(topic: &str, message: impl FnOnce() -> String) {
    match REJECTED.ready() {
        Some(0) => tracing::warn!(topic, "{}", message()),
        Some(held) => tracing::warn!(
            topic,
            "{} ({held} more not logged in the last second)",
            message()
        ),
        None => {}
    }
}
