//! Printing what the server answered the way the Vault CLI prints it: `Key  Value` tables
//! laid out by `columnize`, `== Title ==` section headers, JSON as Go's
//! `json.MarshalIndent` writes it, and values as Go's `%v` shows them.

use std::io::{Read, Write};

use serde_json::Value;

use crate::duration::human_seconds;

/// Where a command writes: stdout for results, stderr for errors and warnings.
pub struct Ui<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub stdin: &'a mut dyn Read,
    /// A terminal gets a newline after `-field` output; a pipe gets the bare value.
    pub stdout_is_terminal: bool,
}

impl Ui<'_> {
    /// One line of results (Vault's `ui.Output`/`ui.Info`).
    pub fn output(&mut self, text: &str) {
        // A closed stdout (`svctl ... | head`) is not worth a second error.
        let _ = writeln!(self.out, "{text}");
    }

    /// Errors and warnings (Vault's `ui.Error`/`ui.Warn`), on stderr.
    pub fn error(&mut self, text: &str) {
        let _ = writeln!(self.err, "{text}");
    }

    /// A bare value for scripts (Vault's `PrintRaw`).
    pub fn raw(&mut self, text: &str) {
        if self.stdout_is_terminal {
            self.output(text);
        } else {
            let _ = write!(self.out, "{text}");
        }
    }

    /// Bytes exactly as they are (a decrypted plaintext), with a newline only on a terminal.
    pub fn raw_bytes(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes);
        if self.stdout_is_terminal {
            let _ = writeln!(self.out);
        }
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
        let _ = self.err.flush();
    }
}

/// How results are printed (`-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

impl Format {
    pub fn parse(value: &str) -> Result<Format, String> {
        match value.to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "Invalid output format: {other} (svctl prints \"table\" or \"json\")"
            )),
        }
    }
}

/// A JSON document whose objects keep their field order, so responses print in the order
/// of the Vault client's structs (`request_id`, `lease_id`, …) while maps print sorted.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl From<&Value> for Json {
    fn from(value: &Value) -> Json {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(s.clone()),
            Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
            Value::Object(map) => {
                let mut fields: Vec<(String, Json)> = map
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::from(v)))
                    .collect();
                // Go sorts map keys by bytes; do not rely on serde_json's map order.
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Json::Object(fields)
            }
        }
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::String(s.to_owned())
    }
}

impl Json {
    pub fn int(n: i64) -> Json {
        Json::Number(n.into())
    }

    pub fn string_list(items: &[String]) -> Json {
        Json::Array(items.iter().map(|s| Json::String(s.clone())).collect())
    }

    /// `json.MarshalIndent(v, "", "  ")`.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write_pretty(&mut out, 0);
        out
    }

    fn write_pretty(&self, out: &mut String, depth: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::String(s) => go_json_string(out, s),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline_indent(out, depth + 1);
                    item.write_pretty(out, depth + 1);
                }
                newline_indent(out, depth);
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline_indent(out, depth + 1);
                    go_json_string(out, key);
                    out.push_str(": ");
                    value.write_pretty(out, depth + 1);
                }
                newline_indent(out, depth);
                out.push('}');
            }
        }
    }
}

fn newline_indent(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// A JSON string as Go's encoder writes it, HTML-escaping included.
fn go_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value as Go's `fmt` prints it with `%v` after the Vault client decoded it from JSON:
/// `<nil>`, `[a b]`, `map[k:v]`.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut parts: Vec<(&String, String)> =
                map.iter().map(|(k, v)| (k, go_value(v))).collect();
            parts.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = parts.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quoted_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", parts.join(" "))
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether the Vault CLI shows a field's number of seconds as a duration (`looksLikeDuration`).
pub fn looks_like_duration(key: &str) -> bool {
    key == "period"
        || key.ends_with("_period")
        || key == "ttl"
        || key.ends_with("_ttl")
        || key == "duration"
        || key.ends_with("_duration")
        || key == "lease_max"
        || key == "ttl_max"
}

/// A field value for a table cell: durations humanised for duration-looking keys (only
/// when the value is an integer, as in the Vault CLI), everything else as `%v`.
pub fn table_value(key: &str, value: &Value) -> String {
    if looks_like_duration(key)
        && let Some(secs) = value.as_i64()
    {
        return human_seconds(secs);
    }
    go_value(value)
}

/// Rows laid out as `columnize` does for the Vault CLI: every cell trimmed, an empty cell
/// shown as `n/a`, each column as wide as its widest cell (in characters), columns glued
/// with four spaces, and the last cell of a row never padded.
pub fn columnize(rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| {
                    let cell = cell.trim();
                    if cell.is_empty() {
                        "n/a".to_owned()
                    } else {
                        cell.to_owned()
                    }
                })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut lines = Vec::with_capacity(cells.len());
    for row in &cells {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<width$}    "));
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// A table whose first row is the header, underlined with dashes (`tableOutput`).
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut all = Vec::with_capacity(rows.len() + 2);
    all.push(header.iter().map(|h| h.to_string()).collect());
    all.push(header.iter().map(|h| "-".repeat(h.trim().len())).collect());
    all.extend(rows);
    columnize(&all)
}

/// A `Key  Value` table, or `None` when there is nothing to show (the Vault CLI then
/// prints nothing at all).
pub fn key_value_table(rows: Vec<(String, String)>) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let rows = rows.into_iter().map(|(k, v)| vec![k, v]).collect();
    Some(table(&["Key", "Value"], rows))
}

/// The rows of a JSON object sorted by key, as the Vault CLI's `OutputMap` shows them.
pub fn map_rows(map: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            (
                k.clone(),
                map.get(k).map(|v| table_value(k, v)).unwrap_or_default(),
            )
        })
        .collect()
}

/// A section title padded with `=` to sit over a table of the given keys
/// (`getHeaderForMap`).
pub fn header_for_keys<'a>(title: &str, keys: impl IntoIterator<Item = &'a String>) -> String {
    let widest = keys.into_iter().map(|k| k.len()).max().unwrap_or(0);
    // Four for the column gap and five for "Value".
    pad_equal_signs(title, widest + 4 + 5)
}

/// `== Title ==` centred over `total_len` characters (`padEqualSigns`).
pub fn pad_equal_signs(title: &str, total_len: usize) -> String {
    let mut signs = total_len as i64 - (title.len() as i64 + 2);
    if signs <= 0 {
        signs = 4;
    }
    if signs % 2 != 0 {
        signs += 1;
    }
    let side = "=".repeat((signs / 2) as usize);
    format!("{side} {title} {side}")
}

/// Wraps text to `78 - pad` columns with minimal raggedness and indents it by `pad`, like
/// the Vault CLI's `wrapAtLengthWithPadding` (which uses `github.com/kr/text`).
pub fn wrap_with_padding(text: &str, pad: usize) -> String {
    const MAX_LINE_LENGTH: usize = 78;
    let limit = MAX_LINE_LENGTH.saturating_sub(pad);
    let normalized = text.trim().replace('\n', " ");
    let words: Vec<&str> = normalized.split(' ').collect();
    let indent = " ".repeat(pad);
    wrap_words(&words, limit)
        .into_iter()
        .map(|line| format!("{indent}{}", line.join(" ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text.WrapWords` from kr/text: splits words into lines minimising the sum of squared
/// trailing space; falls back to greedy wrapping for very long input, where the quadratic
/// table would be too large.
fn wrap_words<'w>(words: &[&'w str], limit: usize) -> Vec<Vec<&'w str>> {
    const PENALTY: i64 = 100_000;
    let n = words.len();
    if n == 0 {
        return vec![Vec::new()];
    }
    if n > 2_000 {
        return greedy_wrap(words, limit);
    }
    let limit = limit as i64;
    let line_len = |i: usize, j: usize| -> i64 {
        let chars: usize = words[i..=j].iter().map(|w| w.len()).sum();
        (chars + (j - i)) as i64
    };
    let mut breaks = vec![n; n];
    let mut cost = vec![i64::MAX; n];
    for i in (0..n).rev() {
        if line_len(i, n - 1) <= limit || i == n - 1 {
            cost[i] = 0;
            breaks[i] = n;
        } else {
            for j in i + 1..n {
                let len = line_len(i, j - 1);
                let d = limit - len;
                let mut c = d.saturating_mul(d).saturating_add(cost[j]);
                if len > limit {
                    c = c.saturating_add(PENALTY);
                }
                if c < cost[i] {
                    cost[i] = c;
                    breaks[i] = j;
                }
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        let next = breaks[i].max(i + 1);
        lines.push(words[i..next].to_vec());
        i = next;
    }
    lines
}

fn greedy_wrap<'w>(words: &[&'w str], limit: usize) -> Vec<Vec<&'w str>> {
    let mut lines: Vec<Vec<&str>> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut len = 0;
    for word in words {
        if !current.is_empty() && len + 1 + word.len() > limit {
            lines.push(std::mem::take(&mut current));
            len = 0;
        }
        len += if current.is_empty() {
            word.len()
        } else {
            word.len() + 1
        };
        current.push(word);
    }
    lines.push(current);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columnize_pads_all_but_the_last_column() {
        let out = table(
            &["Key", "Value"],
            vec![
                vec!["created_time".into(), "2026-11-23T08:09:24Z".into()],
                vec!["deletion_time".into(), "".into()],
                vec!["version".into(), "  1 ".into()],
            ],
        );
        let want = "\
Key              Value
---              -----
created_time     2026-11-23T08:09:24Z
deletion_time    n/a
version          1";
        assert_eq!(out, want);
    }

    #[test]
    fn columnize_counts_characters_not_bytes() {
        let out = columnize(&[
            vec!["ключ".into(), "x".into()],
            vec!["k".into(), "y".into()],
        ]);
        assert_eq!(out, "ключ    x\nk       y");
    }

    #[test]
    fn single_column_list() {
        let out = table(&["Keys"], vec![vec!["bar".into()], vec!["foo/".into()]]);
        assert_eq!(out, "Keys\n----\nbar\nfoo/");
    }

    #[test]
    fn go_value_matches_fmt_v() {
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!(["app", "default"])), "[app default]");
        assert_eq!(
            go_value(&json!({"b": 1, "a": [true, null]})),
            "map[a:[true <nil>] b:1]"
        );
        assert_eq!(go_value(&json!(1.5)), "1.5");
        assert_eq!(
            go_quoted_list(&["app".into(), "a\"b".into()]),
            r#"["app" "a\"b"]"#
        );
        assert_eq!(go_quoted_list(&[]), "[]");
    }

    #[test]
    fn durations_only_for_duration_keys_and_integers() {
        assert_eq!(table_value("ttl", &json!(2764800)), "768h");
        assert_eq!(table_value("creation_ttl", &json!(0)), "0s");
        assert_eq!(table_value("ttl", &json!("768h")), "768h");
        assert_eq!(table_value("version", &json!(3600)), "3600");
        assert_eq!(table_value("delete_version_after", &json!("0s")), "0s");
    }

    #[test]
    fn headers_are_centred_like_vault() {
        // "secret/data/foo" is 15 characters: one "=" each side.
        assert_eq!(pad_equal_signs("Secret Path", 15), "= Secret Path =");
        assert_eq!(pad_equal_signs("Secret Path", 17), "== Secret Path ==");
        assert_eq!(pad_equal_signs("Secret Path", 5), "== Secret Path ==");
        let keys: Vec<String> = ["created_time", "custom_metadata", "version"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            header_for_keys("Metadata", &keys),
            "======= Metadata ======="
        );
        assert_eq!(
            header_for_keys("Data", &vec!["a".to_string()]),
            "== Data =="
        );
    }

    #[test]
    fn json_is_go_shaped() {
        let doc = Json::Object(vec![
            ("request_id".into(), "x".into()),
            (
                "data".into(),
                Json::from(&json!({"b": "<&>", "a": [], "c": {}})),
            ),
            ("warnings".into(), Json::Null),
        ]);
        let want = "{\n  \"request_id\": \"x\",\n  \"data\": {\n    \"a\": [],\n    \"b\": \"\\u003c\\u0026\\u003e\",\n    \"c\": {}\n  },\n  \"warnings\": null\n}";
        assert_eq!(doc.pretty(), want);
        let parsed: Value = serde_json::from_str(&doc.pretty()).unwrap();
        assert_eq!(parsed["data"]["b"], "<&>");
    }

    #[test]
    fn warnings_wrap_like_kr_text() {
        let text = "* TTL of \"768h\" exceeded the effective max_ttl of \"767h59m59s\"; TTL value is capped accordingly";
        assert_eq!(
            wrap_with_padding(text, 2),
            "  * TTL of \"768h\" exceeded the effective max_ttl of \"767h59m59s\"; TTL value is\n  capped accordingly"
        );
        assert_eq!(wrap_with_padding("* short", 2), "  * short");
    }

    #[test]
    fn format_names() {
        assert_eq!(Format::parse("json"), Ok(Format::Json));
        assert_eq!(Format::parse("TABLE"), Ok(Format::Table));
        assert!(Format::parse("yaml").unwrap_err().contains("yaml"));
    }
}
