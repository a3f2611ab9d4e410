//! Durations as Vault accepts them (`parseutil.ParseDurationSecond`): a JSON number of
//! seconds, a string of digits (seconds), a Go duration string (`"1h30m"`, `"1.5h"`,
//! `"300ms"`), or a whole number of days with a `d` suffix (`"7d"`).

use std::time::Duration;

/// Why a duration could not be parsed; the message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// The longest duration accepted: Vault's durations are Go's `time.Duration`, an `i64` of
/// nanoseconds (2562047h47m16.854775807s), and Vault refuses longer ones. The bound also
/// keeps every TTL, period and delay small enough to add to a date.
pub const MAX_DURATION: Duration = Duration::new(9_223_372_036, 854_775_807);

fn at_most_max(d: Duration, input: impl std::fmt::Display) -> Result<Duration, DurationError> {
    if d > MAX_DURATION {
        return Err(DurationError(format!(
            "invalid duration {input}: longer than the longest duration allowed, 2562047h47m16.854775807s"
        )));
    }
    Ok(d)
}

/// Parses a duration field from a JSON request body.
pub fn parse_duration_value(value: &serde_json::Value) -> Result<Duration, DurationError> {
    if let serde_json::Value::Number(n) = value {
        return parse_duration_number(n).and_then(|d| at_most_max(d, n));
    }
    match value {
        serde_json::Value::Null => Ok(Duration::ZERO),
        serde_json::Value::String(s) => parse_duration(s),
        other => Err(DurationError(format!(
            "invalid duration {other}: expected a number of seconds or a string like \"1h\""
        ))),
    }
}

/// A JSON number of seconds.
fn parse_duration_number(n: &serde_json::Number) -> Result<Duration, DurationError> {
    if let Some(secs) = n.as_u64() {
        Ok(Duration::from_secs(secs))
    } else if let Some(secs) = n.as_f64()
        && secs.is_finite()
        && secs >= 0.0
        && secs < u64::MAX as f64
    {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(DurationError(format!(
            "invalid duration {n}: must be a non-negative number of seconds"
        )))
    }
}

/// Parses a duration string: digits (seconds), a Go duration, or `<n>d`; at most
/// [`MAX_DURATION`].
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    parse_unbounded(input).and_then(|d| at_most_max(d, format_args!("{input:?}")))
}

fn parse_unbounded(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| DurationError(format!("invalid duration \"{input}\": number too large")));
    }
    if let Some(days) = s.strip_suffix('d')
        && !days.is_empty()
        && days.bytes().all(|b| b.is_ascii_digit())
    {
        return days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                DurationError(format!("invalid duration \"{input}\": number too large"))
            });
    }
    parse_go_duration(s)
        .map_err(|why| DurationError(format!("invalid duration \"{input}\": {why}")))
}

/// Go's `time.ParseDuration` for non-negative values: a sequence of decimal numbers
/// each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`).
fn parse_go_duration(s: &str) -> Result<Duration, &'static str> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err("negative durations are not allowed");
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_nanos: u128 = 0;
    if rest.is_empty() {
        return Err("empty duration");
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err("expected a number");
        }
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err("missing unit (use s, m or h)"),
            _ => return Err("unknown unit (use ns, us, ms, s, m or h)"),
        };
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return Err("malformed number");
        }
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| "number too large")?
        };
        let mut nanos = int.checked_mul(unit_nanos).ok_or("number too large")?;
        if !frac_part.is_empty() {
            // Scale the fraction digit by digit; anything below a nanosecond is dropped, as Go does.
            let mut scale = unit_nanos;
            for digit in frac_part.bytes().take(30) {
                scale /= 10;
                nanos += u128::from(digit - b'0') * scale;
            }
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or("number too large")?;
        rest = after;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| "number too large")?;
    Ok(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

/// Formats whole seconds as Go's `time.Duration.String()` does (`1h0m0s`, `768h0m0s`, `5m30s`),
/// which is how Vault prints durations such as `delete_version_after`.
pub fn format_go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 && d.subsec_nanos() == 0 {
        return "0s".to_string();
    }
    let h = secs / 3600;
    let m = (secs % 3600) / 60;
    let s = secs % 60;
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_vault_forms() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("768h").unwrap(),
            Duration::from_secs(768 * 3600)
        );
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration_value(&json!(90)).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration_value(&json!("2m")).unwrap(),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in ["abc", "1x", "-5s", "h", "1..5h", "99999999999999999999999h"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(parse_duration_value(&json!(-3)).is_err());
        assert!(parse_duration_value(&json!(["1h"])).is_err());
    }

    /// Longer durations were accepted, and overflowed date arithmetic (a panic) when a
    /// token's TTL, a transit key's rotation period or a KV deletion delay used them.
    #[test]
    fn bounded_like_go() {
        assert_eq!(
            parse_duration("2562047h47m16.854775807s").unwrap(),
            MAX_DURATION
        );
        assert_eq!(
            parse_duration("106751d").unwrap().as_secs(),
            106_751 * 86_400
        );
        assert_eq!(
            parse_duration_value(&json!(9_223_372_036_u64))
                .unwrap()
                .as_secs(),
            9_223_372_036
        );
        for bad in [
            "2562047h47m16.854775808s",
            "2562048h",
            "106752d",
            "9223372037",
            "18446744073709551615",
        ] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "invalid duration \"{bad}\": longer than the longest duration allowed, 2562047h47m16.854775807s"
                )
            );
        }
        for bad in [
            json!(9_223_372_037_u64),
            json!(u64::MAX),
            json!(1e19),
            json!("2562048h"),
        ] {
            let err = parse_duration_value(&bad).unwrap_err().to_string();
            assert!(
                err.contains("longer than the longest duration allowed"),
                "{err}"
            );
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go_duration(Duration::from_secs(330)), "5m30s");
        assert_eq!(format_go_duration(Duration::from_secs(45)), "45s");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn go_durations_round_trip(h in 0u64..10_000, m in 0u64..60, s in 0u64..60) {
            let d = Duration::from_secs(h * 3600 + m * 60 + s);
            proptest::prop_assert_eq!(parse_duration(&format_go_duration(d)).unwrap(), d);
        }
    }
}
