//! Byte sizes (`1000000`, `500MB`, `1GB`, `64MiB`), durations (`250ms`, `5s`, `2m`) and times
//! (`2026-01-02T03:04:05Z`, Unix seconds) on the command line.

/// Parses a byte size with an optional decimal (kB, MB, GB) or binary (KiB, MiB, GiB) suffix.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a byte size (examples: 1000000, 500MB, 1GB, 64MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} (use B, kB, MB, GB, KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A parser of byte sizes between `min` and `max`, naming the range when a size is outside it.
pub fn bytes_in(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s| {
        let n = parse_bytes(s)?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "{s} is outside the valid range {} to {}",
                show_bytes(min),
                show_bytes(max)
            ))
        }
    }
}

/// A byte size the way a person writes it.
fn show_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    for (unit, size) in [("GB", 1_000_000_000u64), ("MB", 1_000_000), ("kB", 1_000)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n}B")
}

/// Parses a duration: a number with `ms`, `s`, `m` or `h` (seconds without a unit).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 250ms, 5s, 2m)"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    n.checked_mul(ms)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Parses a point in time: an RFC 3339 date-time (`2026-01-02T03:04:05Z`) or Unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.trim().parse::<i64>() {
        return Ok(secs);
    }
    aws_sdk_bedrock::primitives::DateTime::from_str(
        s.trim(),
        aws_sdk_bedrock::primitives::DateTimeFormat::DateTime,
    )
    .map(|t| t.secs())
    .map_err(|_| format!("{s:?} is not a time (examples: 2026-01-02T03:04:05Z, 1767323045)"))
}

/// Formats Unix seconds as an RFC 3339 date-time.
pub fn format_time(secs: i64) -> String {
    aws_sdk_bedrock::primitives::DateTime::from_secs(secs)
        .fmt(aws_sdk_bedrock::primitives::DateTimeFormat::DateTime)
        .unwrap_or_else(|_| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        use std::time::Duration;
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1_000 kB"), Ok(1_000_000));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("GB").is_err());
        let part = bytes_in(5 << 20, 5 << 30);
        assert_eq!(part("8MiB"), Ok(8 << 20));
        assert_eq!(
            part("1MiB"),
            Err("1MiB is outside the valid range 5MiB to 5GiB".to_owned())
        );
        assert!(bytes_in(1, 1_000_000_000)("0")
            .unwrap_err()
            .contains("1B to 1GB"));
    }
}
