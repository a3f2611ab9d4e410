//! `key=value` arguments as the Vault CLI reads them (its `kv-builder`):
//!
//! - `key=value` (the value may itself contain `=`); a repeated key collects a list;
//! - `key=@file` reads the value from a file, `key=\@x` is the literal `@x`;
//! - `key=-` reads the value from stdin;
//! - a lone `-` or `@file` is a JSON object merged into the data.
//!
//! Stdin can be used once per command.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

/// Why the `key=value` arguments could not be read; the message names the argument.
#[derive(Debug, thiserror::Error)]
pub enum KvDataError {
    #[error(
        "argument {arg:?} is not key=value; write each field as key=value (a value may be @file or - for stdin)"
    )]
    NotKeyValue { arg: String },
    #[error(
        "argument {arg:?}: stdin can be read only once per command; pass the other values directly or as @file"
    )]
    StdinTwice { arg: String },
    #[error("argument {arg:?}: reading {what}: {source}")]
    Read {
        arg: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("argument {arg:?}: {what} is not a JSON object: {reason}")]
    NotJsonObject {
        arg: String,
        what: String,
        reason: String,
    },
}

/// Builds the request data from `key=value` arguments.
pub fn parse_args_data(
    args: &[String],
    stdin: &mut dyn Read,
) -> Result<Map<String, Value>, KvDataError> {
    let mut result = Map::new();
    let mut stdin_used = false;
    let mut take_stdin = |arg: &str| -> Result<String, KvDataError> {
        if stdin_used {
            return Err(KvDataError::StdinTwice {
                arg: arg.to_owned(),
            });
        }
        stdin_used = true;
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|source| KvDataError::Read {
                arg: arg.to_owned(),
                what: "stdin".to_owned(),
                source,
            })?;
        Ok(text)
    };
    for arg in args {
        if arg.is_empty() {
            continue;
        }
        let Some((key, value)) = arg.split_once('=') else {
            let (text, what) = if arg == "-" {
                (take_stdin(arg)?, "stdin".to_owned())
            } else if let Some(file) = arg.strip_prefix('@') {
                (read_file(arg, file)?, format!("file {file:?}"))
            } else {
                return Err(KvDataError::NotKeyValue { arg: arg.clone() });
            };
            merge_json_object(&mut result, arg, &what, &text)?;
            continue;
        };
        let value = if let Some(file) = value.strip_prefix('@') {
            read_file(arg, file)?
        } else if let Some(literal) = value.strip_prefix("\\@") {
            format!("@{literal}")
        } else if value == "-" {
            take_stdin(arg)?
        } else {
            value.to_owned()
        };
        insert_or_append(&mut result, key, Value::String(value));
    }
    Ok(result)
}

fn read_file(arg: &str, file: &str) -> Result<String, KvDataError> {
    std::fs::read_to_string(Path::new(file)).map_err(|source| KvDataError::Read {
        arg: arg.to_owned(),
        what: format!("file {file:?}"),
        source,
    })
}

/// A repeated key becomes a list of its values, as in the Vault CLI.
fn insert_or_append(result: &mut Map<String, Value>, key: &str, value: Value) {
    match result.get_mut(key) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            result.insert(key.to_owned(), value);
        }
    }
}

fn merge_json_object(
    result: &mut Map<String, Value>,
    arg: &str,
    what: &str,
    text: &str,
) -> Result<(), KvDataError> {
    let not_object = |reason: String| KvDataError::NotJsonObject {
        arg: arg.to_owned(),
        what: what.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| not_object(e.to_string()))?;
    match value {
        Value::Object(map) => {
            result.extend(map);
            Ok(())
        }
        // Go's decoder accepts `null` into a map and changes nothing.
        Value::Null => Ok(()),
        other => Err(not_object(format!("found {}", json_kind(&other)))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A `-flag=key=value` option (`-metadata`, `-custom-metadata`): split at the first `=`.
pub fn parse_pair(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
        None => Err(format!("missing = in KV pair: {arg:?} (write key=value)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(args: &[&str], stdin: &str) -> Result<Value, KvDataError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_args_data(&args, &mut stdin.as_bytes()).map(Value::Object)
    }

    #[test]
    fn plain_pairs_and_values_with_equals() {
        let v = parse(
            &["a=1", "url=postgres://u@h/db?sslmode=require&x=y", "empty="],
            "",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": "1", "url": "postgres://u@h/db?sslmode=require&x=y", "empty": ""})
        );
    }

    #[test]
    fn repeated_keys_collect_a_list() {
        assert_eq!(
            parse(&["a=1", "a=2", "a=3"], "").unwrap(),
            json!({"a": ["1", "2", "3"]})
        );
    }

    #[test]
    fn file_values_and_escaped_at() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "-----BEGIN-----\nabc\n").unwrap();
        let arg = format!("cert=@{}", file.display());
        let v = parse(&[&arg, "handle=\\@me", "lone=\\"], "").unwrap();
        assert_eq!(
            v,
            json!({"cert": "-----BEGIN-----\nabc\n", "handle": "@me", "lone": "\\"})
        );
    }

    #[test]
    fn missing_file_names_the_argument() {
        let err = parse(&["k=@/nonexistent/file"], "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("k=@/nonexistent/file") && err.contains("/nonexistent/file"),
            "{err}"
        );
    }

    #[test]
    fn stdin_value_is_read_verbatim_once() {
        assert_eq!(
            parse(&["pw=-"], "s3cr=t\n").unwrap(),
            json!({"pw": "s3cr=t\n"})
        );
        let err = parse(&["a=-", "b=-"], "x").unwrap_err();
        assert!(matches!(err, KvDataError::StdinTwice { .. }), "{err}");
    }

    #[test]
    fn lone_dash_and_at_file_merge_json() {
        let v = parse(&["-", "c=3"], r#"{"a": "1", "b": 2}"#).unwrap();
        assert_eq!(v, json!({"a": "1", "b": 2, "c": "3"}));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.json");
        std::fs::write(&file, r#"{"x": {"nested": true}}"#).unwrap();
        let arg = format!("@{}", file.display());
        assert_eq!(parse(&[&arg], "").unwrap(), json!({"x": {"nested": true}}));
        let err = parse(&["-"], "[1]").unwrap_err().to_string();
        assert!(
            err.contains("not a JSON object") && err.contains("an array"),
            "{err}"
        );
    }

    #[test]
    fn not_key_value() {
        let err = parse(&["justakey"], "").unwrap_err().to_string();
        assert!(
            err.contains("\"justakey\"") && err.contains("key=value"),
            "{err}"
        );
        assert_eq!(parse(&["", "a=b"], "").unwrap(), json!({"a": "b"}));
    }

    #[test]
    fn pairs() {
        assert_eq!(
            parse_pair("team=a=b").unwrap(),
            ("team".to_owned(), "a=b".to_owned())
        );
        assert!(parse_pair("team").unwrap_err().contains("team"));
    }
}
