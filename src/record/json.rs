//! Small helpers for reading borrowed JSON values and writing JSON text by hand.
//!
//! The converters copy raw JSON values (string literals with their escapes intact, schemas, tool
//! inputs) from input to output. These helpers check a raw value's kind by its first byte and write
//! the punctuation around the copies, so no value is unescaped and escaped again.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::reject::Reject;

/// A JSON value exactly as written in the input: a validated slice of the line, escapes intact.
///
/// Like `&serde_json::value::RawValue`, but constructible by this crate's own scanner as well as by
/// serde.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// The JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }

    /// Wraps text the caller has validated as one JSON value.
    pub(crate) fn validated(text: &'a str) -> Self {
        Raw(text)
    }
}

impl std::fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| Raw(r.get()))
    }
}

/// The kind of a raw JSON value, judged by its first byte (serde_json has already validated it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Number,
    Bool,
    Null,
    Array,
    Object,
}

impl Kind {
    pub(crate) fn of(raw: Raw<'_>) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'"') => Kind::String,
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b't') | Some(b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// Fails unless `raw` has the `want` kind, naming the key `path`.
pub(crate) fn expect(
    raw: Raw<'_>,
    want: Kind,
    path: impl std::fmt::Display + Copy,
) -> Result<Raw<'_>, Reject> {
    let got = Kind::of(raw);
    if got == want {
        Ok(raw)
    } else {
        Err(Reject::invalid(format!(
            "{path}: expected {}, found {}",
            want.name(),
            got.name()
        )))
    }
}

/// Parses a raw value into a typed one, naming the key `path` on failure — and, below it, the
/// member or element at fault (`body.messages[0].content[1]: …`).
pub(crate) fn parse<'a, T: serde::Deserialize<'a>>(
    raw: Raw<'a>,
    path: impl std::fmt::Display + Copy,
) -> Result<T, Reject> {
    read(raw.get()).map_err(|(below, why)| Reject::invalid(format!("{path}{below}: {why}")))
}

/// [`from_str`], saying on failure where below `text`'s top the fault is (`.a[2]`, or empty at
/// the top) and what it is.
pub(crate) fn read<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, (String, String)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let read = T::deserialize(serde_path_to_error::Deserializer::new(
        super::strict::Strict(&mut de),
        &mut track,
    ))
    .and_then(|value| de.end().map(|()| value));
    read.map_err(|e| {
        let mut below = String::new();
        for segment in track.path().iter() {
            use serde_path_to_error::Segment;
            match segment {
                Segment::Seq { index } => below.push_str(&format!("[{index}]")),
                Segment::Map { key } => below.push_str(&format!(".{key}")),
                Segment::Enum { variant } => below.push_str(&format!(".{variant}")),
                Segment::Unknown => break,
            }
        }
        (below, why(&e, text))
    })
}

/// What serde found wrong in `text`, without its position; a lone surrogate, which serde words
/// as a broken escape, is named as what it is.
pub(crate) fn why(e: &serde_json::Error, text: &str) -> String {
    let mut said = strip_position(e);
    // serde names its Rust types (`expected struct ContentPart`): say what JSON is expected.
    if let Some(at) = said.find("expected struct ") {
        said.replace_range(at.., "expected an object");
    }
    for (serde_says, json_says) in [
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("invalid type: sequence", "invalid type: an array"),
        ("invalid type: map", "invalid type: an object"),
        ("duplicate field", "duplicate member"),
    ] {
        said = said.replace(serde_says, json_says);
    }
    let escape = ["escape", "surrogate", "code point"]
        .iter()
        .any(|w| said.contains(w));
    match (e.classify(), lone_surrogate(text)) {
        (serde_json::error::Category::Syntax, Some(half)) if escape => {
            format!("`{half}` is half a UTF-16 surrogate pair, which is no Unicode text ({said})")
        }
        _ => said,
    }
}

/// The elements of the array `raw` (at `path`, for messages), each raw: read by the scanner,
/// or by serde when the scanner gives up (`raw` is no array), for its words.
pub(crate) fn elements<'a>(
    raw: Raw<'a>,
    path: impl std::fmt::Display + Copy,
) -> Result<Vec<Raw<'a>>, Reject> {
    match super::scan::elements(raw.get()) {
        Ok(list) => Ok(list),
        Err(_) => parse(raw, path),
    }
}

/// `serde_json::from_str`, strictly: a struct is read from an object only, never from an array
/// by position (see [`super::strict`]).
pub(crate) fn from_str<'a, T: serde::Deserialize<'a>>(text: &'a str) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(super::strict::Strict(&mut de))?;
    de.end()?;
    Ok(value)
}

/// The unescaped text of a raw string literal; borrowed when it holds no escapes.
pub(crate) fn str_value<'a>(
    raw: Raw<'a>,
    path: impl std::fmt::Display + Copy,
) -> Result<Cow<'a, str>, Reject> {
    let text = expect(raw, Kind::String, path)?.get();
    let inner = &text[1..text.len() - 1];
    if inner.contains('\\') {
        parse::<String>(raw, path).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(inner))
    }
}

/// The value of a JSON string literal (quotes included, already validated) as bytes: UTF-8, but
/// with each escaped lone UTF-16 surrogate written as the three bytes it would take if it were a
/// code point (WTF-8), so that two literals hold the same string exactly when their values are
/// equal — `"a"` and `"\u0061"` alike, `"x\ud800"` and `"x\udbff"` apart. Borrowed when the
/// literal holds no escapes: `"\u0061\u00e9"` decodes to the bytes of `aé`.
pub(crate) fn decode_literal(lit: &str) -> Cow<'_, [u8]> {
    let inner = &lit.as_bytes()[1..lit.len().saturating_sub(1).max(1)];
    if !inner.contains(&b'\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    let hex = |at: usize| -> u32 {
        std::str::from_utf8(inner.get(at..at + 4).unwrap_or(b"0000"))
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    };
    while i < inner.len() {
        let b = inner[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = inner.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        // `\uXXXX`, perhaps the first half of a surrogate pair.
        let mut cp = hex(i);
        i += 4;
        if (0xD800..0xDC00).contains(&cp) && inner.get(i..i + 2) == Some(b"\\u") {
            let low = hex(i + 2);
            if (0xDC00..0xE000).contains(&low) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
        }
        match char::from_u32(cp) {
            Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            // A lone surrogate: the three bytes of its generalized UTF-8 encoding.
            None => out.extend_from_slice(&[
                0xE0 | (cp >> 12) as u8,
                0x80 | ((cp >> 6) & 0x3F) as u8,
                0x80 | (cp & 0x3F) as u8,
            ]),
        }
    }
    Cow::Owned(out)
}

/// The first escaped lone UTF-16 surrogate of a JSON string literal (`\ud800`), if any: a string
/// most JSON parsers refuse or mangle.
pub(crate) fn lone_surrogate(lit: &str) -> Option<&str> {
    let b = lit.as_bytes();
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'\\') {
        let at = i + p;
        match b.get(at + 1) {
            Some(b'u') => {
                let cp = std::str::from_utf8(b.get(at + 2..at + 6)?)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok())?;
                if (0xD800..0xDC00).contains(&cp) {
                    let low = b
                        .get(at + 6..at + 8)
                        .filter(|u| *u == b"\\u")
                        .and_then(|_| std::str::from_utf8(b.get(at + 8..at + 12)?).ok())
                        .and_then(|h| u32::from_str_radix(h, 16).ok());
                    if low.is_some_and(|l| (0xDC00..0xE000).contains(&l)) {
                        i = at + 12;
                        continue;
                    }
                    return Some(&lit[at..at + 6]);
                }
                if (0xDC00..0xE000).contains(&cp) {
                    return Some(&lit[at..at + 6]);
                }
                i = at + 6;
            }
            _ => i = at + 2,
        }
    }
    None
}

/// The text of a string literal's value, for comparing with plain text: borrowed without escapes,
/// decoded with them (a lone surrogate becomes U+FFFD, which no expected text holds).
pub(crate) fn text_value(lit: &str) -> Cow<'_, str> {
    match decode_literal(lit) {
        // Without escapes the value is the literal's own text, already valid UTF-8.
        Cow::Borrowed(b) => match lit.get(1..1 + b.len()) {
            Some(text) => Cow::Borrowed(text),
            None => String::from_utf8_lossy(b),
        },
        Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
    }
}

/// The value of a string, `None` for any other kind: for comparing enum-like members (`"auto"`,
/// `"stop"`) by meaning, whatever their spelling.
pub(crate) fn as_text(raw: Raw<'_>) -> Option<Cow<'_, str>> {
    (Kind::of(raw) == Kind::String).then(|| text_value(raw.get()))
}

/// A JSON number's value: `0.00`, `0e0` and `-0` are zero, `1.0` and `1e0` are one.
pub(crate) fn number_value(raw: Raw<'_>) -> Option<f64> {
    (Kind::of(raw) == Kind::Number)
        .then(|| raw.get().parse::<f64>().ok())
        .flatten()
}

/// A count a model reported (of tokens): exactly what it says when that is a whole number from 0
/// to 2^64−1 (`12`, `12.0`, `1.2e1`); otherwise — negative, fractional, larger, or not a number —
/// the nearest count in range, `adjusted`. `null` or absent is 0, not adjusted: null means
/// absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count {
    /// The count.
    pub n: u64,
    /// The model said something no count can be, and `n` is the nearest count.
    pub adjusted: bool,
}

impl Count {
    /// The count a raw value says.
    pub(crate) fn of(raw: Raw<'_>) -> Count {
        let text = raw.get();
        let exact = |n| Count { n, adjusted: false };
        let adjusted = |n| Count { n, adjusted: true };
        match Kind::of(raw) {
            Kind::Null => return exact(0),
            Kind::Number => {}
            _ => return adjusted(0),
        }
        // By exact decimal value: `12`, `12.0`, `1.2e1`; never rounded through a float.
        match exact_whole_number(text) {
            Some((n, false)) => exact(n),
            Some((_, true)) => adjusted(u64::MAX),
            // A fraction or a negative number: the nearest count (approximately, for a
            // fraction past 2^53 — it is flagged either way).
            None => match text.parse::<f64>() {
                Ok(x) if x <= 0.0 => adjusted(0),
                Ok(x) if x >= 18_446_744_073_709_551_616.0 => adjusted(u64::MAX),
                Ok(x) => adjusted(x.floor() as u64),
                Err(_) => adjusted(0),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        Ok(Count::of(Raw(raw.get())))
    }
}

/// For `#[serde(deserialize_with = "null_default")]`: a `null` member is the default value, as an
/// absent one is (null means absent).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A string's value as [`text_value`] reads it, for serde: a lone surrogate becomes U+FFFDs where
/// serde would refuse the whole line, so a member read only to compare it with known words
/// (`"user"`, `"text"`) never makes a line unreadable. Any other kind is refused as serde refuses
/// it for a `str`.
pub(crate) fn lossy_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Cow<'de, str>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        // serde_json hands a string's value here, a lone surrogate as its WTF-8 bytes.
        fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
            Ok(String::from_utf8_lossy(v))
        }
        fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(Cow::Owned(String::from_utf8_lossy(v).into_owned()))
        }
    }
    d.deserialize_bytes(Text)
}

/// True for a raw string literal that is `""`.
pub(crate) fn is_empty_string(raw: Raw<'_>) -> bool {
    raw.get() == "\"\""
}

/// serde_json's message without its "at line 1 column N" suffix, for values parsed out of a line
/// where that position would point into a sub-value rather than the line.
pub(crate) fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Ids and reasons, written for every line, need no escapes: no serializer for those. (What
    // serde_json escapes is exactly `"`, `\\` and the control characters.)
    if s.len() <= 64 && s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes the members of one JSON object, handling the commas.
pub(crate) struct Obj<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Obj<'o> {
    /// Opens an object: writes `{`.
    pub(crate) fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, empty: true }
    }

    /// Writes `"key":` (the key must need no escaping) and returns the buffer for the value.
    #[inline]
    pub(crate) fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// Writes `"key":<raw>`.
    #[inline]
    pub(crate) fn raw(&mut self, key: &str, raw: &str) {
        self.key(key).extend_from_slice(raw.as_bytes());
    }

    /// Writes `"key":<n>`, without the allocation of `n.to_string()` (several a response line).
    #[inline]
    pub(crate) fn uint(&mut self, key: &str, n: impl itoa::Integer) {
        self.raw(key, itoa::Buffer::new().format(n));
    }

    /// Writes `"key":"<text>"`, escaping `text`.
    pub(crate) fn string(&mut self, key: &str, text: &str) {
        write_str(self.key(key), text);
    }

    /// Closes the object: writes `}`.
    pub(crate) fn close(self) {
        self.out.push(b'}');
    }
}

/// Writes the elements of one JSON array, handling the commas.
pub(crate) struct Arr<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Arr<'o> {
    /// Opens an array: writes `[`.
    pub(crate) fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'[');
        Arr { out, empty: true }
    }

    /// Starts the next element and returns the buffer to write it into.
    pub(crate) fn next(&mut self) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out
    }

    /// Closes the array: writes `]`.
    pub(crate) fn close(self) {
        self.out.push(b']');
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
    // Token counts are short runs of digits: read those directly (19 digits always fit a u64).
    if (1..=19).contains(&text.len()) && text.bytes().all(|d| d.is_ascii_digit()) {
        let value = text
            .bytes()
            .fold(0u64, |value, d| value * 10 + u64::from(d - b'0'));
        return Some((value, false));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Raw<'_> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn kinds_follow_the_first_byte() {
        assert_eq!(Kind::of(raw("\"x\"")), Kind::String);
        assert_eq!(Kind::of(raw("-1.5")), Kind::Number);
        assert_eq!(Kind::of(raw("false")), Kind::Bool);
        assert_eq!(Kind::of(raw("null")), Kind::Null);
        assert_eq!(Kind::of(raw("[1]")), Kind::Array);
        assert_eq!(Kind::of(raw("{}")), Kind::Object);
    }

    #[test]
    fn str_value_borrows_without_escapes_and_unescapes_with_them() {
        assert!(matches!(
            str_value(raw("\"plain\""), "k").unwrap(),
            Cow::Borrowed("plain")
        ));
        assert_eq!(str_value(raw(r#""a\"b\u00e9""#), "k").unwrap(), "a\"bé");
        let err = str_value(raw("3"), "body.x").unwrap_err();
        assert_eq!(err.message, "body.x: expected a string, found a number");
    }

    #[test]
    fn literals_compare_by_value() {
        let d = |s: &str| decode_literal(s).into_owned();
        assert_eq!(d(r#""plain""#), b"plain");
        assert_eq!(d(r#""\u0061""#), b"a");
        assert_eq!(d(r#""gr\u00f6\u00dfe""#), "größe".as_bytes());
        assert_eq!(d(r#""say \"hi\"\n\t\/\\""#), b"say \"hi\"\n\t/\\");
        assert_eq!(d(r#""\ud83d\ude00""#), "😀".as_bytes());
        assert_eq!(
            d(r#""\uD83D\uDE00""#),
            "😀".as_bytes(),
            "hex digits in either case"
        );
        assert_ne!(d(r#""x\ud800""#), d(r#""x\udbff""#));
        assert_ne!(d(r#""x\ud800""#), d(r#""x""#));
        assert_eq!(d(r#""x\ud800""#), b"x\xed\xa0\x80");
        assert_eq!(lone_surrogate(r#""x\ud800""#), Some("\\ud800"));
        assert_eq!(lone_surrogate(r#""\udc00y""#), Some("\\udc00"));
        assert_eq!(lone_surrogate(r#""\ud800\u0041""#), Some("\\ud800"));
        assert_eq!(
            lone_surrogate(r#""\ud83d\ude00 \\ud800""#),
            None,
            "an escaped backslash is not an escape"
        );
        assert_eq!(lone_surrogate(r#""plain""#), None);
        assert_eq!(text_value(r#""\/v1\/chat""#), "/v1/chat");
        for zero in ["0", "0.00", "0e0", "-0", "0E-5", "-0.0e+3"] {
            assert_eq!(number_value(raw(zero)), Some(0.0), "{zero}");
        }
        assert_eq!(number_value(raw("1.0")), Some(1.0));
        assert_eq!(number_value(raw("\"1\"")), None);
    }

    #[test]
    fn counts_are_whole_and_in_range_or_flagged() {
        let c = |s: &str| Count::of(raw(s));
        let exact = |n| Count { n, adjusted: false };
        let adjusted = |n| Count { n, adjusted: true };
        assert_eq!(c("12"), exact(12));
        assert_eq!(c("12.0"), exact(12));
        assert_eq!(c("1.2e1"), exact(12));
        assert_eq!(c("0"), exact(0));
        assert_eq!(c("-0"), exact(0));
        assert_eq!(c("null"), exact(0));
        assert_eq!(c("18446744073709551615"), exact(u64::MAX));
        assert_eq!(c("18446744073709551616"), adjusted(u64::MAX));
        assert_eq!(c("1e30"), adjusted(u64::MAX));
        assert_eq!(c("-5"), adjusted(0));
        assert_eq!(c("2.5"), adjusted(2));
        assert_eq!(c("\"12\""), adjusted(0));
        // Exact decimal values, never rounded through a float.
        assert_eq!(c("9007199254740993.0"), exact(9_007_199_254_740_993));
        assert_eq!(c("1.8446744073709551615e19"), exact(u64::MAX));
        assert!(c("123456789012345678901e-3").adjusted);
        assert!(c("1.0000000000000001").adjusted);
        assert_eq!(c("1e-400"), adjusted(0));
        // Plain digit runs (read directly up to 19 digits) and their neighbours past that.
        for n in [
            1,
            9,
            10,
            99_999,
            999_999_999_999_999_999,
            9_999_999_999_999_999_999,
            10_000_000_000_000_000_000,
            u64::MAX - 1,
        ] {
            assert_eq!(c(&n.to_string()), exact(n), "{n}");
            assert_eq!(c(&format!("{n}.0")), exact(n), "{n}.0");
        }
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "null_default")]
            list: Vec<u8>,
            #[serde(default)]
            count: Count,
        }
        let t: T = serde_json::from_str(r#"{"list":null,"count":null}"#).unwrap();
        assert!(t.list.is_empty());
        assert_eq!(t.count, exact(0));
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let long = "x".repeat(100);
        for text in [
            "",
            "stop",
            "chatcmpl-0f",
            "a\"b",
            "a\\b",
            "tab\there",
            "\u{1f}",
            "\u{7f}é😀",
            &long,
        ] {
            let mut out = Vec::new();
            write_str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn writers_place_commas() {
        let mut out = Vec::new();
        let mut o = Obj::open(&mut out);
        o.raw("a", "1");
        o.string("b", "q\"");
        let mut a = Arr::open(o.key("c"));
        a.next().extend_from_slice(b"1");
        a.next().extend_from_slice(b"2");
        a.close();
        o.close();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":1,"b":"q\"","c":[1,2]}"#
        );
    }
}
