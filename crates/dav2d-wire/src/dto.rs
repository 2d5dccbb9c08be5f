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

use dav2d_core::{RejectReason, Scalar, Value};
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
        while let Some(name) = map.next_key::<WireStr<'de>>()? {
            // Fields are read by a visitor that refuses maps and arrays at
            // their first bracket, so nesting never recurses.
            let FieldValue(scalar) = map.next_value().map_err(|error: A::Error| {
                de::Error::custom(format!("record field '{}': {error}", name.0))
            })?;
            fields.push((Arc::from(&*name.0), scalar));
        }
        Ok(Value::Record(Arc::new(fields)))
    }
}

/// One field of a record: a scalar or a string, never a nested value.
struct FieldValue(Scalar);

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, bool or string (records are flat)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FieldValue, E> {
                Ok(FieldValue(Scalar::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue, E> {
                Ok(FieldValue(Scalar::Float(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue, E> {
                Ok(FieldValue(Scalar::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FieldValue, E> {
                match finite::<E>(v)? {
                    Value::Float(v) => Ok(FieldValue(Scalar::Float(v))),
                    _ => Err(E::custom("not a number")),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue(Scalar::Str(Arc::from(v))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<FieldValue, E> {
                Err(E::custom("is null"))
            }
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<FieldValue, A::Error> {
                Err(de::Error::custom(
                    "is nested; records are flat maps of numbers, bools and strings",
                ))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<FieldValue, A::Error> {
                Err(de::Error::custom(
                    "is an array; records are flat maps of numbers, bools and strings",
                ))
            }
        }
        deserializer.deserialize_any(FieldVisitor)
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
            fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<WireStr<'de>, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<WireStr<'de>, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Map, &self))
            }
        }
        // `deserialize_any`, not `deserialize_str`: a container is refused at
        // its bracket instead of being skipped (sonic-rs skips mismatched
        // containers recursively, without a depth limit).
        deserializer.deserialize_any(StrVisitor)
    }
}

/// A JSON number, read through `deserialize_any` so a container in its
/// place is refused at its bracket (see [`WireStr`]).
#[derive(Debug, PartialEq)]
pub struct WireNumber(pub f64);

impl<'de> Deserialize<'de> for WireNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl<'de> Visitor<'de> for NumberVisitor {
            type Value = WireNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireNumber, E> {
                Ok(WireNumber(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireNumber, E> {
                Ok(WireNumber(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireNumber, E> {
                match finite::<E>(v)? {
                    Value::Float(v) => Ok(WireNumber(v)),
                    _ => Err(E::custom("not a number")),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<WireNumber, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<WireNumber, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Map, &self))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// A timestamp as any door takes it (the rule Python's `push` follows):
/// an integer is ns since the epoch, a number with a fraction or exponent is
/// seconds since the epoch (`1796523690.49`), a string is an RFC 3339 time
/// (`2026-12-06T01:39:38.641Z`; without a zone, UTC). Containers are
/// refused at their bracket.
#[derive(Debug, PartialEq)]
pub struct WireInt(pub i64);

/// The ns of `seconds` since the epoch, or why it is no time.
fn ts_from_seconds<E: de::Error>(seconds: f64) -> Result<i64, E> {
    let ns = (seconds * 1e9).round();
    if ns.is_finite() && ns >= i64::MIN as f64 && ns < i64::MAX as f64 {
        Ok(ns as i64)
    } else {
        Err(E::custom(format!(
            "timestamp {seconds} is out of range for seconds since the epoch"
        )))
    }
}

/// The ns of an RFC 3339 time, or why it is not one.
fn ts_from_text<E: de::Error>(text: &str) -> Result<i64, E> {
    let time = humantime::parse_rfc3339_weak(text.trim()).map_err(|error| {
        E::custom(format!(
            "timestamp '{text}' is not an RFC 3339 time ({error}); write e.g. 2026-12-06T01:39:38.641Z, or a number: ns since the epoch (integer) or seconds (with a fraction)"
        ))
    })?;
    let since = time.duration_since(std::time::UNIX_EPOCH).map_err(|_| {
        E::custom(format!(
            "timestamp '{text}' is before 1970; send ns since the epoch"
        ))
    })?;
    i64::try_from(since.as_nanos())
        .map_err(|_| E::custom(format!("timestamp '{text}' is out of range")))
}

impl<'de> Deserialize<'de> for WireInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl<'de> Visitor<'de> for IntVisitor {
            type Value = WireInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp: ns since the epoch (integer), seconds (with a fraction) or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireInt, E> {
                Ok(WireInt(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireInt, E> {
                i64::try_from(v).map(WireInt).map_err(|_| {
                    E::custom(format!(
                        "timestamp {v} is out of range for ns since the epoch"
                    ))
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireInt, E> {
                ts_from_seconds(v).map(WireInt)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireInt, E> {
                ts_from_text(v).map(WireInt)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<WireInt, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<WireInt, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Map, &self))
            }
        }
        deserializer.deserialize_any(IntVisitor)
    }
}

/// A JSON array of `T`, refusing anything else at its first byte.
#[derive(Debug, PartialEq)]
pub struct WireList<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for WireList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = WireList<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireList<T>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(item) = seq.next_element::<T>()? {
                    items.push(item);
                }
                Ok(WireList(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<WireList<T>, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Map, &self))
            }
        }
        deserializer.deserialize_any(ListVisitor(std::marker::PhantomData))
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
                f.write_str("a timestamp (ns since the epoch, seconds with a fraction, or RFC 3339), or an array of them")
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
                ts_from_seconds(v).map(WireTs::One)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireTs, E> {
                ts_from_text(v).map(WireTs::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireTs, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(WireInt(ts)) = seq.next_element::<WireInt>()? {
                    all.push(ts);
                }
                Ok(WireTs::Many(all))
            }
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<WireTs, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Map, &self))
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// One JSON object: a sample, or a columnar batch when `values` is an array.
///
/// Deserialized by hand, like every wire type, through `deserialize_any`
/// with visitors that refuse an unexpected container at its first byte, so
/// no input depth makes the parser recurse; unknown and duplicate fields are
/// errors.
#[derive(Debug, Default)]
pub struct WireObject<'a> {
    /// The stream (optional on `/ingest/{stream}`).
    pub stream: Option<WireStr<'a>>,
    /// The key (empty when absent).
    pub key: Option<WireStr<'a>>,
    /// The value of a single sample (`null` is an error, not an absence).
    pub value: Option<WireValue>,
    /// Timestamp(s) in ns.
    pub ts: Option<WireTs>,
    /// Columnar batch: one key per value (or absent for the empty key).
    pub keys: Option<WireList<WireStr<'a>>>,
    /// Columnar batch: the values.
    pub values: Option<WireList<WireNumber>>,
}

const FIELDS: &[&str] = &["stream", "key", "value", "ts", "keys", "values"];

impl<'de: 'a, 'a> Deserialize<'de> for WireObject<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor(std::marker::PhantomData))
    }
}

struct ObjectVisitor<'a>(std::marker::PhantomData<&'a ()>);

fn once<T, E: de::Error>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de: 'a, 'a> Visitor<'de> for ObjectVisitor<'a> {
    type Value = WireObject<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sample object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireObject<'a>, A::Error> {
        let mut object = WireObject::default();
        while let Some(WireStr(name)) = map.next_key::<WireStr<'de>>()? {
            match &*name {
                "stream" => once(&mut object.stream, "stream", map.next_value()?)?,
                "key" => once(&mut object.key, "key", map.next_value()?)?,
                "value" => once(&mut object.value, "value", map.next_value()?)?,
                "ts" => once(&mut object.ts, "ts", map.next_value()?)?,
                "keys" => once(&mut object.keys, "keys", map.next_value()?)?,
                "values" => once(&mut object.values, "values", map.next_value()?)?,
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        Ok(object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<WireObject<'a>, A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

/// A decoded sample, borrowing its strings from the body.
#[derive(Clone, Debug, PartialEq)]
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
    pub reason: RejectReason,
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
        let error = |reason: RejectReason, message: String| RecordError {
            index,
            reason,
            message,
        };
        let stream = sample_stream(self.stream.map(|s| s.0), default_stream, index)?;
        if let Some(WireList(values)) = self.values {
            let values: Vec<f64> = values.into_iter().map(|WireNumber(v)| v).collect();
            if self.value.is_some() || self.key.is_some() {
                return Err(error(
                    RejectReason::InvalidShape,
                    "a columnar batch has `keys` and `values`, not `key` or `value`".to_string(),
                ));
            }
            let ts = match self.ts {
                None => None,
                Some(WireTs::Many(ts)) if ts.len() == values.len() => Some(ts),
                Some(WireTs::Many(ts)) => {
                    return Err(error(
                        RejectReason::InvalidShape,
                        format!(
                            "{} timestamps for {} values; give one per value",
                            ts.len(),
                            values.len()
                        ),
                    ));
                }
                Some(WireTs::One(_)) => {
                    return Err(error(
                        RejectReason::InvalidShape,
                        "a columnar batch needs `ts` as an array".to_string(),
                    ));
                }
            };
            if let Some(WireList(keys)) = &self.keys
                && keys.len() != values.len()
            {
                return Err(error(
                    RejectReason::InvalidShape,
                    format!(
                        "{} keys for {} values; give one per value",
                        keys.len(),
                        values.len()
                    ),
                ));
            }
            let mut keys = self.keys.map(|WireList(keys)| keys.into_iter());
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
            return Err(missing_value(index));
        };
        let ts = match self.ts {
            None => None,
            Some(WireTs::One(ts)) => Some(ts),
            Some(WireTs::Many(_)) => {
                return Err(error(
                    RejectReason::InvalidShape,
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

/// The stream of sample `index`: its own `stream` field, or the one the
/// door named (the path of `/ingest/{stream}`, a topic or a subscription),
/// which a sample may repeat but not change.
pub(crate) fn sample_stream<'a>(
    stream: Option<Cow<'a, str>>,
    default_stream: Option<&'a str>,
    index: usize,
) -> Result<Cow<'a, str>, RecordError> {
    match (stream, default_stream) {
        (Some(stream), Some(named)) if stream != named => Err(RecordError {
            index,
            reason: RejectReason::InvalidField,
            message: format!(
                "the sample names stream '{stream}' but it was sent to '{named}'; leave `stream` out or send it to /ingest/{stream} (or its topic)"
            ),
        }),
        (Some(stream), _) => Ok(stream),
        (None, Some(stream)) => Ok(Cow::Borrowed(stream)),
        (None, None) => Err(RecordError {
            index,
            reason: RejectReason::MissingField,
            message: "missing field `stream`; give it in the sample or POST to /ingest/{stream}"
                .to_string(),
        }),
    }
}

/// Sample `index` has no `value` (and is not a columnar batch).
pub(crate) fn missing_value(index: usize) -> RecordError {
    RecordError {
        index,
        reason: RejectReason::MissingField,
        message: "missing field `value`".to_string(),
    }
}

/// Deserializes a JSON array of sample objects straight into records,
/// without materializing the objects. Any bad element fails the whole array;
/// callers then fall back to parsing element by element.
pub struct RecordsSeed<'a, 'o> {
    /// Where records go.
    pub records: &'o mut Vec<WireRecord<'a>>,
    /// Where shape errors (missing stream, ...) go.
    pub errors: &'o mut Vec<RecordError>,
    /// The stream implied by the URL, if any.
    pub default_stream: Option<&'a str>,
    /// Index of the next element.
    pub next_index: usize,
}

impl<'de: 'a, 'a> de::DeserializeSeed<'de> for &mut RecordsSeed<'a, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for &mut RecordsSeed<'a, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of sample objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(object) = seq.next_element::<WireObject<'a>>()? {
            if let Err(error) =
                object.into_records(self.next_index, self.default_stream, self.records)
            {
                self.errors.push(error);
            }
            self.next_index += 1;
        }
        Ok(())
    }
}
