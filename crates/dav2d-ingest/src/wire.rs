//! The JSON wire format of samples and its conversion to engine values.
//!
//! This is the only place that knows what a sample looks like on the wire:
//! `{"stream": "temp", "key": "dev-1", "value": 21.5, "ts": 1700000000000000000}`
//! (stream implied on `/ingest/{stream}`), or a columnar batch
//! `{"stream": "temp", "keys": [...], "values": [...], "ts": [...]}`.
//! Strings borrow from the request body where they need no unescaping.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use dav2d_core::{Scalar, Value};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A sample value as written in JSON.
#[derive(Debug, PartialEq)]
pub struct WireValue(pub Value);

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(WireValue)
    }
}

struct ValueVisitor;

fn finite<E: de::Error>(v: f64) -> Result<Value, E> {
    if v.is_finite() {
        Ok(Value::Float(v))
    } else {
        Err(E::custom(format!(
            "number {v} is out of range for a 64-bit float"
        )))
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, bool, string or flat object of those")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Float(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Float(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        finite(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(Arc::from(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Err(E::custom(
            "value is null; send a number, bool, string or flat object",
        ))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(
            "value is an array; send one sample per value, or a columnar batch",
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let WireValue(value) = map.next_value()?;
            let scalar = match value {
                Value::Float(v) => Scalar::Float(v),
                Value::Int(v) => Scalar::Int(v),
                Value::Bool(v) => Scalar::Bool(v),
                Value::Str(v) => Scalar::Str(v),
                _ => {
                    return Err(de::Error::custom(format!(
                        "record field '{name}' is nested; records are flat maps of numbers, bools and strings"
                    )));
                }
            };
            fields.push((Arc::from(&*name), scalar));
        }
        Ok(Value::Record(Arc::new(fields)))
    }
}

/// A JSON string borrowed from the body when it has no escapes (serde's own
/// `Cow` always allocates behind an `Option`).
#[derive(Debug, PartialEq)]
pub struct WireStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for WireStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = WireStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<WireStr<'de>, E> {
                Ok(WireStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireStr<'de>, E> {
                Ok(WireStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<WireStr<'de>, E> {
                Ok(WireStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// `ts`: one timestamp (ns) for a sample, or one per value for a columnar batch.
#[derive(Debug, PartialEq)]
pub enum WireTs {
    /// One sample's timestamp.
    One(i64),
    /// A columnar batch's timestamps.
    Many(Vec<i64>),
}

impl<'de> Deserialize<'de> for WireTs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl<'de> Visitor<'de> for TsVisitor {
            type Value = WireTs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer timestamp in ns since the epoch, or an array of them")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireTs, E> {
                Ok(WireTs::One(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireTs, E> {
                i64::try_from(v).map(WireTs::One).map_err(|_| {
                    E::custom(format!(
                        "timestamp {v} is out of range for ns since the epoch"
                    ))
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireTs, E> {
                Err(E::custom(format!(
                    "timestamp {v} is not an integer; send ns since the epoch"
                )))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireTs, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(ts) = seq.next_element::<i64>()? {
                    all.push(ts);
                }
                Ok(WireTs::Many(all))
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// One JSON object: a sample, or a columnar batch when `values` is an array.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireObject<'a> {
    /// The stream (optional on `/ingest/{stream}`).
    #[serde(borrow, default)]
    pub stream: Option<WireStr<'a>>,
    /// The key (empty when absent).
    #[serde(borrow, default)]
    pub key: Option<WireStr<'a>>,
    /// The value of a single sample (`null` is an error, not an absence).
    #[serde(default, deserialize_with = "present")]
    pub value: Option<WireValue>,
    /// Timestamp(s) in ns.
    #[serde(default)]
    pub ts: Option<WireTs>,
    /// Columnar batch: one key per value (or absent for the empty key).
    #[serde(borrow, default)]
    pub keys: Option<Vec<WireStr<'a>>>,
    /// Columnar batch: the values.
    #[serde(default)]
    pub values: Option<Vec<f64>>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<WireValue>, D::Error> {
    WireValue::deserialize(deserializer).map(Some)
}

/// A decoded sample, borrowing its strings from the body.
#[derive(Debug, PartialEq)]
pub struct WireRecord<'a> {
    /// Position in the request (element, line or column index).
    pub index: usize,
    /// The stream.
    pub stream: Cow<'a, str>,
    /// The key.
    pub key: Cow<'a, str>,
    /// The value.
    pub value: Value,
    /// The timestamp in ns, if given.
    pub ts: Option<i64>,
}

/// Why one record was rejected at the decoding stage.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    /// Position in the request.
    pub index: usize,
    /// A short label for metrics (`invalid_json`, `missing_field`, ...).
    pub reason: &'static str,
    /// The full reason.
    pub message: String,
}

impl<'a> WireObject<'a> {
    /// Turns one decoded object into records (several for a columnar batch).
    pub fn into_records(
        self,
        index: usize,
        default_stream: Option<&'a str>,
        out: &mut Vec<WireRecord<'a>>,
    ) -> Result<(), RecordError> {
        let error = |reason: &'static str, message: String| RecordError {
            index,
            reason,
            message,
        };
        let stream = match (self.stream, default_stream) {
            (Some(WireStr(stream)), _) => stream,
            (None, Some(stream)) => Cow::Borrowed(stream),
            (None, None) => {
                return Err(error(
                    "missing_field",
                    "missing field `stream`; give it in the sample or POST to /ingest/{stream}"
                        .to_string(),
                ));
            }
        };
        if let Some(values) = self.values {
            if self.value.is_some() || self.key.is_some() {
                return Err(error(
                    "invalid_shape",
                    "a columnar batch has `keys` and `values`, not `key` or `value`".to_string(),
                ));
            }
            let ts = match self.ts {
                None => None,
                Some(WireTs::Many(ts)) if ts.len() == values.len() => Some(ts),
                Some(WireTs::Many(ts)) => {
                    return Err(error(
                        "invalid_shape",
                        format!(
                            "{} timestamps for {} values; give one per value",
                            ts.len(),
                            values.len()
                        ),
                    ));
                }
                Some(WireTs::One(_)) => {
                    return Err(error(
                        "invalid_shape",
                        "a columnar batch needs `ts` as an array".to_string(),
                    ));
                }
            };
            if let Some(keys) = &self.keys
                && keys.len() != values.len()
            {
                return Err(error(
                    "invalid_shape",
                    format!(
                        "{} keys for {} values; give one per value",
                        keys.len(),
                        values.len()
                    ),
                ));
            }
            let mut keys = self.keys.map(Vec::into_iter);
            out.reserve(values.len());
            for (i, value) in values.into_iter().enumerate() {
                let key = keys
                    .as_mut()
                    .and_then(Iterator::next)
                    .map_or(Cow::Borrowed(""), |k| k.0);
                out.push(WireRecord {
                    index: index + i,
                    stream: stream.clone(),
                    key,
                    value: Value::Float(value),
                    ts: ts.as_ref().map(|ts| ts[i]),
                });
            }
            return Ok(());
        }
        let Some(WireValue(value)) = self.value else {
            return Err(error("missing_field", "missing field `value`".to_string()));
        };
        let ts = match self.ts {
            None => None,
            Some(WireTs::One(ts)) => Some(ts),
            Some(WireTs::Many(_)) => {
                return Err(error(
                    "invalid_shape",
                    "`ts` of one sample must be one integer".to_string(),
                ));
            }
        };
        out.push(WireRecord {
            index,
            stream,
            key: self.key.map_or(Cow::Borrowed(""), |k| k.0),
            value,
            ts,
        });
        Ok(())
    }
}
