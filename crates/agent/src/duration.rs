//! Durations as Vault and Go write them (`"5m"`, `"1h30m"`, `"500ms"`, `"90s"`), or whole
//! seconds.

use std::time::Duration;

/// Parses a Go-style duration: one or more `<number><unit>` parts with units `ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`, `d` (ours); a bare integer is seconds. Negative
/// durations are refused. The error says what was wrong, not how to fix it.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| "it is too large".into());
    }
    if s.starts_with('-') {
        return Err("it is negative".into());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("{rest:?} does not start with a number"));
        }
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{num:?} is not a number"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(format!("{num:?} has no unit (ms, s, m, h)")),
            other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
        };
        total += value * scale;
        rest = tail;
    }
    // ~31 years: anything longer is a typo, and Duration::from_secs_f64 panics on overflow.
    if !(0.0..1e9).contains(&total) {
        return Err("it is too large".into());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Writes `d` the way people read it: `5m`, `1h30m`, `1.5s`, `250ms`.
pub fn display(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if !ms.is_multiple_of(1000) {
        return format!("{}s", d.as_secs_f64());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations_and_seconds() {
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 2d "), Ok(Duration::from_secs(172800)));
        assert!(parse("").is_err());
        assert!(parse("-5s").is_err());
        assert!(parse("5").is_ok());
        assert!(parse("5x").unwrap_err().contains("unknown unit"));
        assert!(parse("1.2.3s").is_err());
        assert!(parse("m").is_err());
        assert!(parse("1.5").is_err());
        assert!(parse("99999999999h").is_err());
    }

    #[test]
    fn displays_round_values() {
        assert_eq!(display(Duration::from_secs(300)), "5m");
        assert_eq!(display(Duration::from_secs(5400)), "1h30m");
        assert_eq!(display(Duration::from_millis(250)), "250ms");
        assert_eq!(display(Duration::from_millis(1500)), "1.5s");
        assert_eq!(display(Duration::ZERO), "0s");
    }
}
