//! Durations the way the Vault CLI reads and prints them.
//!
//! Flags take whole seconds (`"90"`), days (`"7d"`) or a Go duration (`"1h30m"`, `"1.5h"`),
//! as Vault's `parseutil.ParseDurationSecond` does. The server is sent Go's
//! `Duration.String()` form (`"1h0m0s"`), exactly as the Vault CLI sends it, and tables show
//! second counts the way the Vault CLI's `humanDuration` does (`768h`, `1m30s`).

use std::fmt;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A signed span of time in nanoseconds, like Go's `time.Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration {
    nanos: i64,
}

/// Why a duration flag could not be read; shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason}; use seconds (\"90\"), days (\"7d\") or a number with a unit such as \"30s\", \"5m\" or \"1h30m\""
)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl GoDuration {
    pub const ZERO: GoDuration = GoDuration { nanos: 0 };

    pub fn from_secs(secs: i64) -> Option<GoDuration> {
        secs.checked_mul(1_000_000_000)
            .map(|nanos| GoDuration { nanos })
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// Whole seconds, truncated toward zero (the Vault CLI's `truncateToSeconds`, which
    /// also maps anything under one second to 0).
    pub fn whole_seconds(self) -> i64 {
        let secs = self.nanos / 1_000_000_000;
        if secs < 1 { 0 } else { secs }
    }

    /// Parses a flag value as `parseutil.ParseDurationSecond` does.
    pub fn parse_flag(input: &str) -> Result<GoDuration, DurationError> {
        let err = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Ok(GoDuration::ZERO);
        }
        if let Ok(secs) = input.parse::<i64>() {
            return GoDuration::from_secs(secs).ok_or_else(|| err("too large"));
        }
        if let Some(days) = input.strip_suffix('d') {
            let days: i64 = days
                .parse()
                .map_err(|_| err("the number of days is not an integer"))?;
            return days
                .checked_mul(86_400)
                .and_then(GoDuration::from_secs)
                .ok_or_else(|| err("too large"));
        }
        parse_go(input).map_err(err)
    }
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`.
fn parse_go(input: &str) -> Result<GoDuration, &'static str> {
    let (neg, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(GoDuration::ZERO);
    }
    if rest.is_empty() {
        return Err("it is empty");
    }
    let limit: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_frac) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let n = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(n)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err("expected a number");
        }
        let unit_len = after_frac
            .bytes()
            .take_while(|b| *b != b'.' && !b.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err("a number has no unit");
        }
        let (unit, after_unit) = after_frac.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return Err("unknown unit (valid units are ns, us, ms, s, m, h)"),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<u128>().map_err(|_| "too large")?
        };
        let mut value = whole.checked_mul(unit_nanos).ok_or("too large")?;
        if !frac_part.is_empty() {
            // Go also goes through float64 here, so sub-nanosecond rounding matches.
            let frac: f64 = format!("0.{frac_part}")
                .parse()
                .map_err(|_| "expected a number")?;
            value += (frac * unit_nanos as f64) as u128;
        }
        total = total.checked_add(value).ok_or("too large")?;
        if total > limit {
            return Err("too large");
        }
        rest = after_unit;
    }
    let nanos: i128 = if neg { -(total as i128) } else { total as i128 };
    i64::try_from(nanos)
        .map(|nanos| GoDuration { nanos })
        .map_err(|_| "too large")
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`: `"1h0m0s"`, `"1m30s"`, `"1.5s"`, `"250ms"`, `"0s"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.nanos < 0;
        let mut u = (self.nanos as i128).unsigned_abs();
        // Built back to front, as Go does.
        let mut out: Vec<char> = Vec::with_capacity(32);
        if u < NANOS_PER_SECOND as u128 {
            if u == 0 {
                return f.write_str("0s");
            }
            out.push('s');
            let prec = if u < 1_000 {
                out.push('n');
                0
            } else if u < 1_000_000 {
                out.push('µ');
                3
            } else {
                out.push('m');
                6
            };
            u = push_fraction(&mut out, u, prec);
            push_int(&mut out, u);
        } else {
            out.push('s');
            u = push_fraction(&mut out, u, 9);
            push_int(&mut out, u % 60);
            u /= 60;
            if u > 0 {
                out.push('m');
                push_int(&mut out, u % 60);
                u /= 60;
                if u > 0 {
                    out.push('h');
                    push_int(&mut out, u);
                }
            }
        }
        if neg {
            out.push('-');
        }
        let s: String = out.into_iter().rev().collect();
        f.write_str(&s)
    }
}

/// Go's `fmtFrac`: the `prec` low digits of `v` as a fraction without trailing zeros.
fn push_fraction(out: &mut Vec<char>, mut v: u128, prec: u32) -> u128 {
    let mut printing = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        printing = printing || digit != 0;
        if printing {
            out.push(char::from(b'0' + digit));
        }
        v /= 10;
    }
    if printing {
        out.push('.');
    }
    v
}

fn push_int(out: &mut Vec<char>, mut v: u128) {
    if v == 0 {
        out.push('0');
        return;
    }
    while v > 0 {
        out.push(char::from(b'0' + (v % 10) as u8));
        v /= 10;
    }
}

/// The Vault CLI's `humanDuration` for a number of seconds: Go's form without the noisy
/// zero units (`"768h0m0s"` → `"768h"`, `"1h0m1s"` → `"1h1s"`).
pub fn human_seconds(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let Some(d) = GoDuration::from_secs(secs) else {
        return format!("{secs}s");
    };
    let mut s = d.to_string();
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(idx) = s.find("h0m").filter(|i| *i > 0) {
        s.replace_range(idx + 1..idx + 3, "");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: &str) -> i64 {
        GoDuration::parse_flag(d).unwrap().nanos / 1_000_000_000
    }

    #[test]
    fn parses_seconds_days_and_go_durations() {
        assert_eq!(secs("90"), 90);
        assert_eq!(secs("7d"), 7 * 86_400);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs("1.5h"), 5_400);
        assert_eq!(secs("0"), 0);
        assert_eq!(GoDuration::parse_flag("250ms").unwrap().nanos, 250_000_000);
        assert_eq!(GoDuration::parse_flag("-1s").unwrap().nanos, -1_000_000_000);
    }

    #[test]
    fn rejects_garbage_with_a_helpful_message() {
        for bad in [
            "1x",
            "h",
            "1h30",
            "abc",
            "1.d",
            "99999999999999999999h",
            ".",
        ] {
            let err = GoDuration::parse_flag(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            ("0", "0s"),
            ("1h", "1h0m0s"),
            ("90", "1m30s"),
            ("1.5s", "1.5s"),
            ("250ms", "250ms"),
            ("1500us", "1.5ms"),
            ("12ns", "12ns"),
            ("768h", "768h0m0s"),
            ("-90s", "-1m30s"),
        ];
        for (input, want) in cases {
            assert_eq!(
                GoDuration::parse_flag(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn human_seconds_drops_zero_units() {
        assert_eq!(human_seconds(0), "0s");
        assert_eq!(human_seconds(2_764_800), "768h");
        assert_eq!(human_seconds(3_600), "1h");
        assert_eq!(human_seconds(3_601), "1h1s");
        assert_eq!(human_seconds(3_660), "1h1m");
        assert_eq!(human_seconds(90), "1m30s");
        assert_eq!(human_seconds(600), "10m");
        assert_eq!(human_seconds(2_764_799), "767h59m59s");
    }

    #[test]
    fn whole_seconds_truncates() {
        assert_eq!(GoDuration::parse_flag("1.9s").unwrap().whole_seconds(), 1);
        assert_eq!(GoDuration::parse_flag("500ms").unwrap().whole_seconds(), 0);
    }
}
