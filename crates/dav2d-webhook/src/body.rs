//! What a transition is sent as.

use dav2d_core::Update;
use serde_json::{Value as Json, json};

/// The body of a webhook POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// dav2d's own: the JSON of an `/events` transition (`name`, `key`,
    /// `ts`, `seq`, `value`, `transition: {from, to}`).
    Json,
    /// Prometheus Alertmanager's `POST /api/v2/alerts`: a one-alert array
    /// with `labels` (`alertname` the constraint, `key`, `state`),
    /// `annotations` and `startsAt`, or `endsAt` when the key returns to
    /// `ok` (Alertmanager then resolves the alert).
    Alertmanager,
}

impl Format {
    /// The format a config names: `json` or `alertmanager`.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "json" => Some(Format::Json),
            "alertmanager" => Some(Format::Alertmanager),
            _ => None,
        }
    }
}

/// RFC 3339 of `ts_ns` since the epoch.
fn rfc3339(ts_ns: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ts_ns.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// The body `update` (a transition) is sent as in `format`.
pub fn body(update: &Update, format: Format) -> Json {
    let (_, event) = dav2d_wire::update_json(update);
    match format {
        Format::Json => event,
        Format::Alertmanager => {
            let to = update.transition.as_ref().map_or("ok", |t| t.to.as_str());
            let from = update.transition.as_ref().map_or("ok", |t| t.from.as_str());
            let at = rfc3339(update.transition.as_ref().map_or(update.ts_ns, |t| t.at_ns));
            let mut alert = json!({
                "labels": {
                    "alertname": &*update.name,
                    "key": &*update.key,
                    "state": if to == "ok" { from } else { to },
                    "source": "dav2d",
                },
                "annotations": {
                    "summary": format!("{} for key {} is {to} (was {from})", update.name, update.key),
                },
            });
            if to == "ok" {
                alert["endsAt"] = json!(at);
            } else {
                alert["startsAt"] = json!(at);
            }
            json!([alert])
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dav2d_core::{ConstraintState, Transition, Update, Value};

    use super::{Format, body};

    fn update(from: ConstraintState, to: ConstraintState) -> Update {
        Update {
            name: Arc::from("overheat"),
            key: Arc::from("dev-17"),
            value: Some(Value::Str(Arc::from(to.as_str()))),
            ts_ns: 1_764_590_400_000_000_000,
            seq: 3,
            error: None,
            transition: Some(Transition {
                constraint: Arc::from("overheat"),
                key: Arc::from("dev-17"),
                from,
                to,
                value: Some(81.0),
                at_ns: 1_764_590_400_000_000_000,
                cause: None,
            }),
        }
    }

    #[test]
    fn an_alertmanager_body_starts_an_alert_on_trip_and_ends_it_on_reset() {
        let tripped = body(
            &update(ConstraintState::Ok, ConstraintState::Tripped),
            Format::Alertmanager,
        );
        assert_eq!(tripped[0]["labels"]["alertname"], "overheat");
        assert_eq!(tripped[0]["labels"]["key"], "dev-17");
        assert_eq!(tripped[0]["labels"]["state"], "tripped");
        assert_eq!(tripped[0]["startsAt"], "2025-12-01T12:00:00.000Z");
        let reset = body(
            &update(ConstraintState::Tripped, ConstraintState::Ok),
            Format::Alertmanager,
        );
        assert_eq!(
            reset[0]["labels"]["state"], "tripped",
            "the same alert, resolved"
        );
        assert_eq!(reset[0]["endsAt"], "2025-12-01T12:00:00.000Z");
        assert!(reset[0].get("startsAt").is_none());
        let own = body(
            &update(ConstraintState::Ok, ConstraintState::Stale),
            Format::Json,
        );
        assert_eq!(own["transition"]["to"], "stale");
        assert_eq!(own["name"], "overheat");
    }
}
