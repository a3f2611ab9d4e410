//! The agent's default output when a secret has no template: an env file.
//!
//! # Format
//!
//! One `NAME=VALUE` line per key of the secret's data, sorted by key, meant to be read
//! by a POSIX shell (`set -a; . /vault/secrets/app`) and by Docker Compose's `.env`
//! parser (compose-go's `dotenv`). A value must come back byte for byte from both, so
//! each is quoted with the first scheme that both readers agree on:
//!
//! 1. `NAME="…"` with `\` → `\\`, `"` → `\"` and `$` → `\$`, newlines kept as real
//!    newlines (a `\n` escape would reach bash as a backslash and an `n`). Used unless
//!    the value holds a backtick (bash needs `` \` ``, which compose leaves as two
//!    characters) or ends with a backslash (compose takes the closing `\"` for an
//!    escaped quote).
//! 2. `NAME='…'`, literal in both, when the value has a backtick but no `'` and does
//!    not end with a backslash.
//! 3. Otherwise the value is written for the shell alone, double-quoted with backticks
//!    escaped too; compose's reader cannot represent such a value, and no quoting
//!    would fix that. (Plain `docker run --env-file` never unquotes values at all, so
//!    no quoted format suits it.)
//!
//! Non-string values (numbers, booleans, null, lists, objects) are written as compact
//! JSON with sorted object keys.
//!
//! # Names
//!
//! A key that is a valid shell variable name (`[A-Za-z_][A-Za-z0-9_]*`) is used as is.
//! Any other key (`db-password`, `tls.crt`) is converted: each character outside
//! `[A-Za-z0-9_]` becomes `_`, and a leading digit gets a `_` in front. If the
//! converted name is taken (by a key with that exact name, or by an earlier converted
//! key in sorted order), the key is left out and a `#` comment line says so; key names
//! are not secret, values never appear in comments. Note that a key can set any
//! variable, `PATH` included: the file is only as trustworthy as the secret's writers.

use std::collections::BTreeSet;

/// Renders `data` (a secret's key/value map) as an env file; see the module docs.
pub fn render_env_file(data: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    let mut taken: BTreeSet<String> = keys
        .iter()
        .filter(|k| is_shell_name(k))
        .map(|k| k.to_string())
        .collect();
    let mut out = String::new();
    for key in keys {
        let name = if is_shell_name(key) {
            key.clone()
        } else {
            let name = shell_name_for(key);
            if !taken.insert(name.clone()) {
                out.push_str(&format!(
                    "# secretvault: key {} left out: its variable name {name} is already used\n",
                    comment_safe(key)
                ));
                continue;
            }
            name
        };
        let value = match &data[key] {
            serde_json::Value::String(s) => s.clone(),
            other => canonical_json(other),
        };
        out.push_str(&name);
        out.push('=');
        out.push_str(&quote_value(&value));
        out.push('\n');
    }
    out
}

/// Whether `s` can be a shell variable name.
pub fn is_shell_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn shell_name_for(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// A key written so it cannot break out of its comment line.
fn comment_safe(key: &str) -> String {
    serde_json::Value::String(key.to_string()).to_string()
}

fn quote_value(v: &str) -> String {
    let ends_with_backslash = v.ends_with('\\');
    if !v.contains('`') && !ends_with_backslash {
        return double_quote(v, false);
    }
    if !v.contains('\'') && !ends_with_backslash {
        return format!("'{v}'");
    }
    double_quote(v, true)
}

fn double_quote(v: &str, escape_backtick: bool) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' | '"' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '`' if escape_backtick => out.push_str("\\`"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Compact JSON with object keys sorted, whatever order the map keeps.
fn canonical_json(v: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            v => v.clone(),
        }
    }
    sorted(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(v: serde_json::Value) -> String {
        match v {
            serde_json::Value::Object(m) => render_env_file(&m),
            _ => String::new(),
        }
    }

    #[test]
    fn quoting_schemes() {
        assert_eq!(render(json!({"A": "plain"})), "A=\"plain\"\n");
        assert_eq!(
            render(json!({"A": "a\"b$c\\d\ne"})),
            "A=\"a\\\"b\\$c\\\\d\ne\"\n"
        );
        assert_eq!(render(json!({"A": "run `x` $y"})), "A='run `x` $y'\n");
        assert_eq!(render(json!({"A": "it's `x`"})), "A=\"it's \\`x\\`\"\n");
        assert_eq!(render(json!({"A": "ends\\"})), "A=\"ends\\\\\"\n");
    }

    #[test]
    fn names_and_non_strings() {
        assert_eq!(
            render(json!({"b": 1, "a": {"z": 1, "y": [true, null]}, "n": null})),
            "a=\"{\\\"y\\\":[true,null],\\\"z\\\":1}\"\nb=\"1\"\nn=\"null\"\n"
        );
        assert_eq!(
            render(json!({"db-pass": "x", "db_pass": "y", "9lives": "z", "tls.crt": "c"})),
            "_9lives=\"z\"\n# secretvault: key \"db-pass\" left out: its variable name db_pass is already used\n\
             db_pass=\"y\"\ntls_crt=\"c\"\n"
        );
        assert_eq!(render(json!({})), "");
    }
}
