//! A minimal `tracing` subscriber: one line per event on stderr, as text or JSON.
//!
//! `tracing-subscriber` would add a span registry, filter parsing and formatting layers
//! the agent does not use (it has no spans); this is the part it needs. Events from other
//! crates (hyper, rustls) are shown only at WARN and above, so `debug` stays readable.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::config::LogFormat;

/// Installs the logger as the global default. Later calls do nothing.
pub fn init(level: Level, format: LogFormat) {
    let _ = tracing::subscriber::set_global_default(Logger { level, format });
}

struct Logger {
    level: Level,
    format: LogFormat,
}

impl Logger {
    fn wants(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.level
            && (meta.target().starts_with("secretvault_agent") || *meta.level() <= Level::WARN)
    }
}

impl Subscriber for Logger {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.wants(meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.level))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        if !self.wants(meta) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = match self.format {
            LogFormat::Text => text_line(meta, &fields),
            LogFormat::Json => json_line(meta, &fields),
        };
        // A failed log write has nowhere to be reported.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, FieldValue)>,
}

enum FieldValue {
    Str(String),
    Num(String),
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.pairs
                .push((field.name(), FieldValue::Str(format!("{value:?}"))));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.pairs
                .push((field.name(), FieldValue::Str(value.to_string())));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pairs
            .push((field.name(), FieldValue::Num(value.to_string())));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pairs
            .push((field.name(), FieldValue::Num(value.to_string())));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pairs
            .push((field.name(), FieldValue::Num(value.to_string())));
    }
}

fn text_line(meta: &Metadata<'_>, f: &Fields) -> String {
    let mut line = format!("{} {:>5} {}", timestamp(), meta.level(), f.message);
    for (k, v) in &f.pairs {
        match v {
            FieldValue::Num(n) => {
                let _ = write!(line, " {k}={n}");
            }
            FieldValue::Str(s)
                if !s.is_empty()
                    && !s.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') =>
            {
                let _ = write!(line, " {k}={s}");
            }
            FieldValue::Str(s) => {
                let _ = write!(line, " {k}={}", serde_json::Value::String(s.clone()));
            }
        }
    }
    line.push('\n');
    line
}

fn json_line(meta: &Metadata<'_>, f: &Fields) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("timestamp".into(), timestamp().into());
    obj.insert("level".into(), meta.level().as_str().into());
    obj.insert("message".into(), f.message.clone().into());
    for (k, v) in &f.pairs {
        let value = match v {
            FieldValue::Str(s) => serde_json::Value::String(s.clone()),
            FieldValue::Num(n) => serde_json::from_str(n).unwrap_or_else(|_| n.clone().into()),
        };
        obj.insert((*k).to_string(), value);
    }
    let mut line = serde_json::Value::Object(obj).to_string();
    line.push('\n');
    line
}

/// RFC 3339 UTC with milliseconds, without a date library.
pub fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_unix(now.as_secs() as i64, now.subsec_millis())
}

fn format_unix(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(format_unix(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_unix(951_827_696, 5), "2000-02-29T12:34:56.005Z");
        assert_eq!(days_from_civil(2000, 2, 29), 951_827_696 / 86400);
        for days in [-1000, 0, 11016, 20000, 60000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
