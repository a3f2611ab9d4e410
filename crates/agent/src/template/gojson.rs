//! Go's `encoding/json` `Marshal`/`MarshalIndent` for template values, as consul-template's
//! `toJSON` and `toJSONPretty` produce them: map keys sorted, `<`, `>`, `&`, U+2028 and
//! U+2029 escaped, structs with their Go field names.

use super::gofmt::json_float;
use super::value::{SECRET_FIELDS, Value};

pub(crate) fn marshal(v: &Value, html_escape: bool) -> String {
    let mut out = String::new();
    encode(&mut out, v, html_escape);
    out
}

/// `json.MarshalIndent(v, "", "  ")`.
pub(crate) fn marshal_indent(v: &Value, html_escape: bool) -> String {
    indent(&marshal(v, html_escape))
}

fn encode(out: &mut String, v: &Value, html: bool) {
    match v {
        Value::Invalid | Value::Nil | Value::NilPtr(_) => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&json_float(*f)),
        Value::Number(n) => out.push_str(if n.is_empty() { "0" } else { n }),
        Value::Str(s) => encode_string(out, s, html),
        Value::Map(m) => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_string(out, k, html);
                out.push(':');
                encode(out, e, html);
            }
            out.push('}');
        }
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode(out, e, html);
            }
            out.push(']');
        }
        Value::StrList(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_string(out, e, html);
            }
            out.push(']');
        }
        Value::Secret(s) => {
            out.push('{');
            for (i, name) in SECRET_FIELDS.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_string(out, name, html);
                out.push(':');
                // Nil maps and slices encode as null, empty ones as {} and [].
                match *name {
                    "Data" if s.data.is_none() => out.push_str("null"),
                    "Warnings" if s.warnings.is_none() => out.push_str("null"),
                    _ => encode(out, &s.field(name).unwrap_or(Value::Invalid), html),
                }
            }
            out.push('}');
        }
        Value::Auth(a) => {
            out.push('{');
            for (i, name) in super::value::AUTH_FIELDS.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_string(out, name, html);
                out.push(':');
                match *name {
                    "Policies" if a.policies.is_none() => out.push_str("null"),
                    "Metadata" if a.metadata.is_none() => out.push_str("null"),
                    _ => encode(out, &a.field(name).unwrap_or(Value::Invalid), html),
                }
            }
            out.push('}');
        }
    }
}

fn encode_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `json.Indent` with prefix "" and indent "  " over compact JSON we produced.
fn indent(src: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut need_indent = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    for c in src.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                need_indent = true;
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    // An empty object or array stays on one line.
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn escapes_like_go() {
        let v = Value::str("<&>\u{2028}\"\\\x01\x7f\n");
        assert_eq!(
            marshal(&v, true),
            r#""\u003c\u0026\u003e\u2028\"\\\u0001\n""#.replace("\\u0001\\n", "\\u0001\u{7f}\\n")
        );
        assert_eq!(marshal(&Value::str("<"), false), "\"<\"");
    }

    #[test]
    fn indents_like_go() {
        let mut m = super::super::value::GoMap::new();
        m.insert("z".into(), Value::Number("1".into()));
        m.insert("a".into(), Value::str("b"));
        m.insert("e".into(), Value::List(Rc::new(vec![])));
        m.insert("o".into(), Value::Map(Rc::new(Default::default())));
        m.insert(
            "l".into(),
            Value::List(Rc::new(vec![Value::Int(1), Value::str("x:,{")])),
        );
        assert_eq!(
            marshal_indent(&Value::Map(Rc::new(m)), true),
            "{\n  \"a\": \"b\",\n  \"e\": [],\n  \"l\": [\n    1,\n    \"x:,{\"\n  ],\n  \"o\": {},\n  \"z\": 1\n}"
        );
    }
}
