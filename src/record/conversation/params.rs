//! Sampling parameters read by value: numbers, positive integers and whole numbers however they
//! are spelled, and the stop list. What each model accepts is [`crate::record::limits`]'s.

use crate::record::json::{self, elements, expect, whole_number, Kind};
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
            let items = elements(raw, "body.stop")?;
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
