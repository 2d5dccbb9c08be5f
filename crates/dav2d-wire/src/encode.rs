//! Engine values, readings and updates as JSON, the way every face answers
//! (HTTP bodies, server-sent events, later broker payloads).

use dav2d_core::{Reading, Scalar, Update, Value};
use serde_json::{Value as Json, json};

fn number(v: f64) -> Json {
    serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
}

/// An engine value as JSON (non-finite floats become null; bytes are
/// described by their length, never inlined).
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::Float(v) => number(*v),
        Value::Int(v) => json!(v),
        Value::Bool(v) => json!(v),
        Value::Str(v) => json!(&**v),
        Value::Record(fields) => {
            let mut object = serde_json::Map::new();
            for (name, scalar) in fields.iter() {
                let field = match scalar {
                    Scalar::Float(v) => number(*v),
                    Scalar::Int(v) => json!(v),
                    Scalar::Bool(v) => json!(v),
                    Scalar::Str(v) => json!(&**v),
                };
                object.insert(name.to_string(), field);
            }
            Json::Object(object)
        }
        Value::Bytes(bytes) => json!({"bytes": bytes.len()}),
        Value::Frame(frame) => {
            let info = frame.0.info();
            let mut described = json!({"seq": info.seq, "ts": info.ts_ns, "width": info.width,
                "height": info.height, "format": info.format, "bytes": info.size,
                "skipped": info.skipped});
            if let Some(coverage) = info.coverage {
                // A mask: the fraction of its pixels set.
                described["set"] = json!(coverage);
            }
            json!({ "frame": described })
        }
    }
}

/// The latest sample of one key, with its error state:
/// `{"key", "value", "ts", "seq", "error"?}`.
pub fn reading_json(key: &str, reading: &Reading) -> Json {
    let mut object = json!({"key": key});
    if let Some(sample) = &reading.sample {
        object["value"] = value_json(&sample.value);
        object["ts"] = json!(sample.ts_ns);
        object["seq"] = json!(sample.seq);
    }
    if let Some(error) = &reading.error {
        object["error"] = json!(&**error);
    }
    object
}

/// What kind of event an update is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateKind {
    /// A new value (or error) of a stream, node or constraint.
    Update,
    /// A constraint changed state.
    Transition,
}

impl UpdateKind {
    /// The event name, e.g. in server-sent events.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateKind::Update => "update",
            UpdateKind::Transition => "transition",
        }
    }
}

/// One update as JSON (`name`, `key`, `ts`, `seq`, `value`?, `error`?,
/// `transition`?) and what kind of event it is.
pub fn update_json(update: &Update) -> (UpdateKind, Json) {
    let mut data =
        json!({"name": &*update.name, "key": &*update.key, "ts": update.ts_ns, "seq": update.seq});
    if let Some(value) = &update.value {
        data["value"] = value_json(value);
    }
    if let Some(error) = &update.error {
        data["error"] = json!(&**error);
    }
    match &update.transition {
        Some(transition) => {
            data["transition"] =
                json!({"from": transition.from.as_str(), "to": transition.to.as_str()});
            if let Some(cause) = transition.cause {
                data["transition"]["cause"] = json!(cause);
            }
            (UpdateKind::Transition, data)
        }
        None => (UpdateKind::Update, data),
    }
}
