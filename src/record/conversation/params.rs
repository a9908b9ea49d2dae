//! Sampling parameters read by value: numbers, positive integers and whole numbers however they
//! are spelled, and the stop list. What each model accepts is [`crate::record::limits`]'s.

use crate::record::json::{self, expect, parse, Kind};
use crate::record::{Raw, Reject};

/// A JSON number's value, or a reject naming `path`.
pub(crate) fn number(raw: Raw<'_>, path: impl std::fmt::Display + Copy) -> Result<f64, Reject> {
    expect(raw, Kind::Number, path)?;
    // A validated JSON number is valid Rust float syntax.
    raw.get()
        .parse::<f64>()
        .map_err(|_| Reject::invalid(format!("{path}: {} is not a number", raw.get())))
}

/// A positive integer (by value: `1.0` and `1e3` are integers), or a reject naming `path`.
pub(crate) fn positive_int(
    raw: Raw<'_>,
    path: impl std::fmt::Display + Copy,
) -> Result<u64, Reject> {
    expect(raw, Kind::Number, path)?;
    match whole_number(raw.get()) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(Reject::invalid(format!(
            "{path}: expected a positive integer, found {}",
            raw.get()
        ))),
    }
}

/// The value of a (validated) JSON number when it is a whole number of at least zero, however
/// it is spelled — `4096`, `4096.0`, `4.096e3`, `-0` — saturating at `u64::MAX`; `None` for a
/// fraction or a negative number. Exact: `1.0000000000000001` is not whole.
pub(crate) fn whole_number(text: &str) -> Option<u64> {
    exact_whole_number(text).map(|(n, _)| n)
}

/// [`whole_number`], and whether it saturated (the number is past `u64::MAX`).
pub(crate) fn exact_whole_number(text: &str) -> Option<(u64, bool)> {
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => {
            let far = if e.starts_with('-') {
                -(1 << 40)
            } else {
                1 << 40
            };
            (m, e.parse::<i64>().unwrap_or(far))
        }
        None => (text, 0),
    };
    let negative = mantissa.starts_with('-');
    let mantissa = mantissa.trim_start_matches('-');
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // Where the decimal point falls among the written digits.
    let point = (int.len() as i64).saturating_add(exp);
    let (mut value, mut saturated) = (0u64, false);
    let mut push =
        |d: u64, value: &mut u64| match value.checked_mul(10).and_then(|v| v.checked_add(d)) {
            Some(v) => *value = v,
            None => {
                saturated = true;
                *value = u64::MAX;
            }
        };
    for (i, d) in int.bytes().chain(frac.bytes()).enumerate() {
        let d = u64::from(d.wrapping_sub(b'0'));
        if d > 9 {
            return None;
        }
        if (i as i64) < point {
            push(d, &mut value);
        } else if d != 0 {
            return None;
        }
    }
    // Zeros the exponent adds past the written digits (a few more than u64 holds are enough).
    let written = (int.len() + frac.len()) as i64;
    for _ in 0..(point - written).clamp(0, 40) {
        if value != 0 {
            push(0, &mut value);
        }
    }
    (!negative || value == 0).then_some((value, saturated))
}

/// Writes `stop` (a string, or an array of non-empty strings) as an array of at most `max`
/// stop sequences, the first ones; says whether some were left out.
pub(crate) fn write_stop_list(raw: Raw<'_>, max: usize, out: &mut Vec<u8>) -> Result<bool, Reject> {
    match Kind::of(raw) {
        Kind::String => {
            if json::is_empty_string(raw) {
                return Err(Reject::invalid("body.stop: empty stop sequence"));
            }
            out.push(b'[');
            out.extend_from_slice(raw.get().as_bytes());
            out.push(b']');
            Ok(false)
        }
        Kind::Array => {
            let items: Vec<Raw<'_>> = parse(raw, "body.stop")?;
            for (i, item) in items.iter().enumerate() {
                expect(*item, Kind::String, format_args!("body.stop[{i}]"))?;
                if json::is_empty_string(*item) {
                    return Err(Reject::invalid(format!(
                        "body.stop[{i}]: empty stop sequence"
                    )));
                }
            }
            if items.len() <= max {
                out.extend_from_slice(raw.get().as_bytes());
                return Ok(false);
            }
            let mut a = json::Arr::open(out);
            for item in &items[..max] {
                a.next().extend_from_slice(item.get().as_bytes());
            }
            a.close();
            Ok(true)
        }
        other => Err(Reject::invalid(format!(
            "body.stop: expected a string or an array, found {}",
            other.name()
        ))),
    }
}
