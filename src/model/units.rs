//! Parsing of the sizes and durations given on the command line.

use std::time::Duration;

/// Parses a size: a bare number is megabytes (as the original's `max_size`),
/// or a number with a unit `K`, `M` or `G` (powers of 1024, an optional
/// trailing `B` or `iB` allowed). `0` means no limit and parses to `None`.
///
/// ```
/// use fileupload::model::units::parse_size;
/// assert_eq!(parse_size("10").unwrap(), Some(10 << 20));
/// assert_eq!(parse_size("512K").unwrap(), Some(512 << 10));
/// assert_eq!(parse_size("2G").unwrap(), Some(2 << 30));
/// assert_eq!(parse_size("0").unwrap(), None);
/// assert!(parse_size("ten").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let (number, unit) = leading_number(text, "size", "an optional unit K, M or G")?;
    let unit = unit.trim().to_ascii_uppercase();
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" if unit.is_empty() => 20,
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {unit:?} (use K, M or G)"
            ));
        }
    };
    let bytes = number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))?;
    Ok((bytes != 0).then_some(bytes))
}

/// Parses a duration such as `45s`, `30m`, `12h` or `7d`; a bare number is
/// seconds.
///
/// ```
/// use fileupload::model::units::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
/// assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = leading_number(text, "duration", "a unit s, m, h or d")?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use s, m, h or d)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid duration {text:?}: too large"))
}

/// The number a size or duration starts with, and the rest (its unit).
fn leading_number<'t>(text: &'t str, what: &str, unit: &str) -> Result<(u64, &'t str), String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "invalid {what} {text:?}: expected a number with {unit}"
        ));
    }
    let (number, rest) = t.split_at(digits);
    let number = number
        .parse()
        .map_err(|_| format!("invalid {what} {text:?}: number too large"))?;
    Ok((number, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1").unwrap(), Some(1 << 20));
        assert_eq!(parse_size("1k").unwrap(), Some(1024));
        assert_eq!(parse_size("3MB").unwrap(), Some(3 << 20));
        assert_eq!(parse_size("3MiB").unwrap(), Some(3 << 20));
        assert_eq!(parse_size(" 7 G ").unwrap(), Some(7 << 30));
        assert_eq!(parse_size("100B").unwrap(), Some(100));
        assert_eq!(parse_size("0K").unwrap(), None);
        for bad in [
            "",
            "M",
            "-1",
            "1X",
            "1.5M",
            "99999999999999999999",
            "99999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43200));
        for bad in ["", "h", "1w", "-3s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }
}
