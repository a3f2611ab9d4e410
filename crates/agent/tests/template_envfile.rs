//! The default env-file format round-trips through real bash, and through a transcription
//! of Docker Compose's `.env` reader (compose-go `dotenv/parser.go`) for the values the
//! format documents as compose-safe.

use std::process::Command;

use secretvault_agent::envfile::render_env_file;
use serde_json::json;

fn nasty_values() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PLAIN", "simple"),
        ("EMPTY", ""),
        ("DQ", "say \"hi\""),
        ("SQ", "it's"),
        ("BOTH_QUOTES", "it's \"quoted\""),
        ("DOLLAR", "$HOME ${HOME} $(id) $$ $"),
        ("BACKSLASH", "a\\b\\\\c \\n \\$ \\\" \\0123"),
        ("TRAILING_BACKSLASH", "ends with \\"),
        ("BACKTICK", "run `id` now"),
        ("BACKTICK_AND_SQ", "it's `id`"),
        ("NEWLINES", "line1\nline2\n\nline4\n"),
        ("CR", "a\rb\r\nc"),
        ("UNICODE", "héllo wörld 😀 Σ ß \u{2028} \u{a0}"),
        ("EQUALS", "a=b=c"),
        ("SPACES", "  leading and trailing  "),
        ("HASH", "value # not a comment"),
        ("BANG", "wow! !! !$"),
        ("TAB", "\tindented\t"),
        ("ONLY_SPACE", "   "),
        ("ESCAPES", "\\a\\b\\t\\v\\f"),
    ]
}

fn data() -> serde_json::Map<String, serde_json::Value> {
    nasty_values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

fn bash_read(file: &std::path::Path, keys: &[&str]) -> Option<Vec<String>> {
    let script = format!(
        "set -a; . \"$1\" || exit 3; for k in {}; do printf '%s\\0' \"${{!k}}\"; done",
        keys.join(" ")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(file)
        .env_clear()
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.split('\0')
            .take(keys.len())
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn bash_reads_back_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env");
    std::fs::write(&file, render_env_file(&data())).unwrap();
    let keys: Vec<&str> = nasty_values().iter().map(|(k, _)| *k).collect();
    let Some(got) = bash_read(&file, &keys) else {
        eprintln!("bash_reads_back_every_value: skipped: no bash");
        return;
    };
    for ((k, want), got) in nasty_values().iter().zip(got) {
        assert_eq!(&got, want, "{k}");
    }
}

#[test]
fn bash_reads_converted_names_and_json_values() {
    let data: serde_json::Map<String, serde_json::Value> = json!({
        "db-password": "p@ss",
        "tls.crt": "-----BEGIN-----\nabc\n-----END-----",
        "9lives": 9,
        "port": 5432,
        "flags": {"b": true, "a": [1, "x"]},
        "nothing": null
    })
    .as_object()
    .cloned()
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env");
    std::fs::write(&file, render_env_file(&data)).unwrap();
    let keys = [
        "db_password",
        "tls_crt",
        "_9lives",
        "port",
        "flags",
        "nothing",
    ];
    let Some(got) = bash_read(&file, &keys) else {
        return;
    };
    assert_eq!(
        got,
        [
            "p@ss",
            "-----BEGIN-----\nabc\n-----END-----",
            "9",
            "5432",
            r#"{"a":[1,"x"],"b":true}"#,
            "null"
        ]
    );
}

/// compose-go's reader (`dotenv/parser.go`), transcribed for quoted values, which is all
/// the format writes. Returns None where compose would reject the file.
fn compose_parse(src: &str) -> Option<Vec<(String, String)>> {
    let is_space = |c: char| matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ' | '\u{85}' | '\u{a0}');
    let mut out = Vec::new();
    let mut rest = src;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(out);
        }
        if rest.starts_with('#') {
            rest = &rest[rest.find('\n')?..];
            continue;
        }
        let eq = rest.find(['=', ':'])?;
        let key = rest[..eq].trim_end().to_string();
        if key
            .chars()
            .any(|c| !(c.is_alphanumeric() || "_.-[]".contains(c)))
        {
            return None;
        }
        let val = rest[eq + 1..].trim_start_matches(is_space);
        let quote = val.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let b = val.as_bytes();
        let end = (1..b.len()).find(|&i| b[i] == quote as u8 && b[i - 1] != b'\\')?;
        let raw = &val[1..end];
        let value = if quote == '"' {
            compose_unescape(raw)?
        } else {
            raw.to_string()
        };
        out.push((key, value));
        rest = &val[end + 1..];
    }
}

/// compose-go's `expandEscapes` followed by variable expansion, which (with every `$`
/// escaped) only turns `$$` back into `$`.
fn compose_unescape(raw: &str) -> Option<String> {
    let mut escaped = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            escaped.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(e @ ('a' | 'b' | 'c' | 'f' | 'n' | 'r' | 't' | 'v' | '$' | '"' | '\\')) => {
                chars.next();
                escaped.push_str(match e {
                    'a' => "\x07",
                    'b' => "\x08",
                    'f' => "\x0c",
                    'n' => "\n",
                    'r' => "\r",
                    't' => "\t",
                    'v' => "\x0b",
                    '$' => "$$",
                    '"' => "\"",
                    '\\' => "\\",
                    _ => "\\c",
                });
            }
            Some('0') => return None, // the writer never emits an octal escape
            _ => escaped.push('\\'),
        }
    }
    let mut out = String::new();
    let mut chars = escaped.chars().peekable();
    while let Some(c) = chars.next() {
        // Any `$` not doubled would be interpolated.
        if c == '$' && chars.next() != Some('$') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

#[test]
fn compose_reads_back_the_values_documented_as_compose_safe() {
    let compose_safe = |v: &str| !(v.ends_with('\\') || v.contains('`') && v.contains('\''));
    let safe: serde_json::Map<String, serde_json::Value> = nasty_values()
        .into_iter()
        .filter(|(_, v)| compose_safe(v))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    assert!(safe.len() >= nasty_values().len() - 2);
    let parsed = compose_parse(&render_env_file(&safe)).expect("compose would reject the file");
    let mut want: Vec<(String, String)> = safe
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    want.sort();
    assert_eq!(parsed, want);
}

fn nasty_string() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let nasty = prop::sample::select(vec![
        "\"", "'", "`", "$", "${X}", "$(id)", "\\", "\\\\", "\n", "\r", "\t", " ", "=", "#", "!",
        "é", "😀", "\u{2028}", "a", "Z", "0", "\\n", "\\$", "\\\"", "\\`", "\\0123",
    ]);
    prop_oneof![
        prop::collection::vec(nasty, 0..12).prop_map(|v| v.concat()),
        any::<String>().prop_map(|s| s.replace('\0', "")),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Whatever the values, bash reads back exactly what was written, and compose does for
    /// every value the format documents as compose-safe.
    #[test]
    fn random_values_round_trip(values in proptest::collection::vec(nasty_string(), 1..25)) {
        let data: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("K{i:02}"), json!(v)))
            .collect();
        let text = render_env_file(&data);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, &text).unwrap();
        let keys: Vec<String> = data.keys().cloned().collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        if let Some(got) = bash_read(&file, &key_refs) {
            for (k, g) in keys.iter().zip(got) {
                proptest::prop_assert_eq!(Some(g.as_str()), data[k].as_str(), "{} in {:?}", k, text);
            }
        }
        let safe: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .filter(|(_, v)| {
                let v = v.as_str().unwrap_or_default();
                !(v.ends_with('\\') || v.contains('`') && v.contains('\''))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let parsed = compose_parse(&render_env_file(&safe));
        let want: Vec<(String, String)> =
            safe.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
        proptest::prop_assert_eq!(parsed, Some(want));
    }
}
