//! The descriptions the graph gives its logic (`moving_average(n=5)`,
//! `constraint(above trip=80 reset=75 for=5s)`, `... over 30s`), written
//! and read back here, side by side, so a spec held as data (`dav2d check
//! --format json`, Python's `Graph.spec()`) rebuilds exactly the logic it
//! names.

use crate::constraint::{ConstraintSpec, Direction};
use crate::logic::{Builtin, BuiltinError};

/// A duration as configs write it, in the largest unit that divides it
/// (`30s`, `1m`, `250ms`).
pub(crate) fn describe_span(ns: i64) -> String {
    const UNITS: [(i64, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let (size, unit) = UNITS
        .iter()
        .copied()
        .find(|(size, _)| ns % size == 0)
        .unwrap_or((1, "ns"));
    format!("{}{unit}", ns / size)
}

/// A constraint's description: `constraint(above trip=80 reset=75 for=5s
/// stale_after=10s)`, the timers only when set.
pub(crate) fn describe_constraint(spec: &ConstraintSpec) -> String {
    let mut text = format!(
        "constraint({} trip={} reset={}",
        match spec.direction {
            Direction::Above => "above",
            Direction::Below => "below",
        },
        spec.trip,
        spec.reset_threshold()
    );
    if spec.hold_ns > 0 {
        text.push_str(&format!(" for={}s", spec.hold_ns as f64 / 1e9));
    }
    if let Some(stale) = spec.stale_after_ns {
        text.push_str(&format!(" stale_after={}s", stale as f64 / 1e9));
    }
    text.push(')');
    text
}

/// A description's name and its `(name, value)` parameters (`""` for a
/// bare one such as `above`).
pub type Described<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// A logic description split into its name and its `name=value` (or bare)
/// parameters, without the ` over SPAN` a time window adds or the
/// ` (offloaded)` an offloaded built-in shows: `clamp(lo=0, hi=1)` is
/// `("clamp", [("lo", "0"), ("hi", "1")])`.
pub fn split_description(text: &str) -> Result<Described<'_>, String> {
    let text = text.trim();
    let text = text.split_once(" over ").map_or(text, |(logic, _)| logic);
    let text = text.strip_suffix(" (offloaded)").unwrap_or(text);
    let Some((name, rest)) = text.split_once('(') else {
        return Ok((text, Vec::new()));
    };
    let Some(inner) = rest.strip_suffix(')') else {
        return Err(format!(
            "'{text}' opens a parenthesis it does not close; write it as name(param=value, ...)"
        ));
    };
    let params = (inner.split([',', ' ']))
        .filter(|part| !part.is_empty())
        .map(|part| part.split_once('=').unwrap_or((part, "")))
        .collect();
    Ok((name.trim(), params))
}

/// The built-in a description names (`moving_average(n=5)`, `rate`), or
/// `None` when its name is no built-in's.
pub fn builtin_from_description(text: &str) -> Result<Option<Builtin>, String> {
    let (kind, written) = split_description(text)?;
    if Builtin::def_of(kind).is_none() {
        return Ok(None);
    }
    let mut params = Vec::with_capacity(written.len());
    for (name, value) in written {
        let value: f64 = value
            .parse()
            .map_err(|_| format!("{kind} `{name}` must be a number, got '{value}' in '{text}'"))?;
        params.push((name, value));
    }
    Builtin::from_params(kind, &params)
        .map(Some)
        .map_err(|error: BuiltinError| error.to_string())
}

/// The constraint a description names: `constraint(above trip=80
/// reset=75 for=5s stale_after=10s)` (the direction defaults to above, the
/// reset to the trip, the timers to none), validated.
pub fn constraint_from_description(text: &str) -> Result<ConstraintSpec, String> {
    let (name, written) = split_description(text)?;
    if name != "constraint" {
        return Err(format!(
            "a constraint's logic is written constraint(above trip=N reset=N for=Ns stale_after=Ns), got '{text}'"
        ));
    }
    let number = |param: &str, value: &str| -> Result<f64, String> {
        value
            .parse::<f64>()
            .map_err(|_| format!("constraint `{param}` must be a number, got '{value}'"))
    };
    let seconds = |param: &str, value: &str| -> Result<i64, String> {
        let n = number(param, value.strip_suffix('s').unwrap_or(value))?;
        if !(n >= 0.0 && n * 1e9 <= crate::MAX_DURATION.as_nanos() as f64) {
            return Err(format!(
                "constraint `{param}` must be a duration in seconds like 5s, got '{value}'"
            ));
        }
        Ok((n * 1e9).round() as i64)
    };
    let mut spec = ConstraintSpec::above(f64::NAN);
    for (param, value) in written {
        match param {
            "above" if value.is_empty() => spec.direction = Direction::Above,
            "below" if value.is_empty() => spec.direction = Direction::Below,
            "trip" => spec.trip = number(param, value)?,
            "reset" => spec.reset = Some(number(param, value)?),
            "for" => spec.hold_ns = seconds(param, value)?,
            "stale_after" => spec.stale_after_ns = Some(seconds(param, value)?),
            other => {
                return Err(format!(
                    "a constraint takes above or below, trip, reset, for and stale_after; '{other}' is none of them"
                ));
            }
        }
    }
    if spec.trip.is_nan() {
        return Err(format!("'{text}' gives no trip=N"));
    }
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::BUILTINS;

    #[test]
    fn every_builtin_reads_back_from_its_description() {
        for def in BUILTINS {
            let params: Vec<(&str, f64)> = (def.params.iter())
                .map(|p| {
                    (
                        p.name,
                        p.default.unwrap_or(if p.integer { 7.0 } else { 0.25 }),
                    )
                })
                .collect();
            let builtin = Builtin::from_params(def.kind, &params).expect("valid parameters");
            let text = builtin.to_string();
            assert_eq!(builtin_from_description(&text), Ok(Some(builtin)), "{text}");
            let shown = [
                format!("{text} over 30s"),
                format!("{text} (offloaded)"),
                format!("{text} (offloaded) over 1m"),
            ];
            for shown in shown {
                assert_eq!(
                    builtin_from_description(&shown),
                    Ok(Some(builtin)),
                    "{shown}"
                );
            }
        }
        assert_eq!(builtin_from_description("my_python_fn"), Ok(None));
        let error = builtin_from_description("moving_average(n=five)").unwrap_err();
        assert!(error.contains("must be a number"), "{error}");
    }

    #[test]
    fn constraints_read_back_from_their_descriptions() {
        let specs = [
            ConstraintSpec::above(80.0),
            ConstraintSpec {
                trip: 10.5,
                reset: Some(12.0),
                direction: Direction::Below,
                hold_ns: 1_500_000_001,
                stale_after_ns: Some(30_000_000_000),
            },
        ];
        for spec in specs {
            let text = describe_constraint(&spec);
            let back = constraint_from_description(&text).expect("reads back");
            assert_eq!(describe_constraint(&back), text);
            assert_eq!(back.hold_ns, spec.hold_ns);
            assert_eq!(back.stale_after_ns, spec.stale_after_ns);
        }
        let error = constraint_from_description("constraint(above trip=80 reset=90)").unwrap_err();
        assert!(error.contains("reset <= trip"), "{error}");
        let error = constraint_from_description("constraint(above trp=80)").unwrap_err();
        assert!(error.contains("'trp' is none of them"), "{error}");
    }
}
