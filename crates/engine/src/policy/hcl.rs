//! The HCL dialect Vault policies are written in: HCL 1.
//!
//! Vault parses policies with HCL 1, which accepts things HCL 2 (and so the `hcl-rs`
//! crate) rejects — several attributes on one line (`{ capabilities = ["read"] policy =
//! "read" }`), a block that opens on the line of its first attribute, quoted keys inside
//! blocks, optional commas. Policies copied from a Vault install must keep working, so
//! this module parses that dialect: comments (`#`, `//`, `/* */`), `key = value`,
//! `key "label" { ... }` and `key { ... }` blocks, strings (with escapes and heredocs),
//! numbers, booleans, lists and objects. Values become JSON values; errors carry a line.

use serde_json::{Map, Value};

/// One `key ... = value` or `key "label" { ... }` entry of a body.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub key: String,
    pub labels: Vec<String>,
    pub value: Value,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HclError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for HclError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "At {}: {}", self.line, self.message)
    }
}

/// Nesting deeper than this is refused (hostile input must not exhaust the stack).
const MAX_DEPTH: usize = 64;

pub(super) fn parse(text: &str) -> Result<Vec<Entry>, HclError> {
    let mut p = Parser {
        src: text.as_bytes(),
        pos: 0,
        line: 1,
        depth: 0,
    };
    let entries = p.body(false)?;
    p.skip_trivia()?;
    if p.pos < p.src.len() {
        return Err(p.error("unexpected '}'"));
    }
    Ok(entries)
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> HclError {
        HclError {
            line: self.line,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    /// Skips whitespace, newlines, commas (HCL 1 treats them as optional separators
    /// between body items) and comments.
    fn skip_trivia(&mut self) -> Result<(), HclError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n' | b',') => {
                    self.bump();
                }
                Some(b'#') => self.skip_line(),
                Some(b'/') if self.src.get(self.pos + 1) == Some(&b'/') => self.skip_line(),
                Some(b'/') if self.src.get(self.pos + 1) == Some(&b'*') => {
                    let start = self.line;
                    self.pos += 2;
                    loop {
                        match self.bump() {
                            None => {
                                return Err(HclError {
                                    line: start,
                                    message: "unterminated /* comment".into(),
                                });
                            }
                            Some(b'*') if self.peek() == Some(b'/') => {
                                self.bump();
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn enter(&mut self) -> Result<(), HclError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nesting is too deep"));
        }
        Ok(())
    }

    /// A sequence of entries, up to `}` (when `nested`) or the end of input.
    fn body(&mut self, nested: bool) -> Result<Vec<Entry>, HclError> {
        let mut entries = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek() {
                None if nested => {
                    return Err(self.error("expected '}' before the end of the policy"));
                }
                None => return Ok(entries),
                Some(b'}') if nested => {
                    self.bump();
                    return Ok(entries);
                }
                Some(b'}') => return Ok(entries),
                _ => entries.push(self.entry()?),
            }
        }
    }

    fn entry(&mut self) -> Result<Entry, HclError> {
        let line = self.line;
        let key = self.key()?;
        let mut labels = Vec::new();
        loop {
            self.skip_inline_space();
            match self.peek() {
                Some(b'=' | b':') => {
                    self.bump();
                    self.skip_trivia_no_comma()?;
                    let value = self.value()?;
                    return Ok(Entry {
                        key,
                        labels,
                        value,
                        line,
                    });
                }
                Some(b'{') => {
                    self.bump();
                    self.enter()?;
                    let inner = self.body(true)?;
                    self.depth -= 1;
                    return Ok(Entry {
                        key,
                        labels,
                        value: entries_to_object(inner),
                        line,
                    });
                }
                Some(b'"') => labels.push(self.string()?),
                Some(c) if is_ident_start(c) => labels.push(self.identifier()),
                _ => return Err(self.error(format!("expected '=' or '{{' after {key:?}"))),
            }
        }
    }

    fn skip_inline_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    fn skip_trivia_no_comma(&mut self) -> Result<(), HclError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => self.skip_line(),
                Some(b'/') if matches!(self.src.get(self.pos + 1), Some(b'/' | b'*')) => {
                    self.skip_trivia()?
                }
                _ => return Ok(()),
            }
        }
    }

    fn key(&mut self) -> Result<String, HclError> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(c) if is_ident_start(c) => Ok(self.identifier()),
            Some(c) => Err(self.error(format!("unexpected {:?}: expected a key", c as char))),
            None => Err(self.error("unexpected end of policy")),
        }
    }

    fn identifier(&mut self) -> String {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if is_ident_char(c)) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    fn string(&mut self) -> Result<String, HclError> {
        let start_line = self.line;
        self.bump(); // opening quote
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None | Some(b'\n') => {
                    return Err(HclError {
                        line: start_line,
                        message: "unterminated string".into(),
                    });
                }
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'u') => {
                        let hex = self
                            .src
                            .get(self.pos..self.pos + 4)
                            .and_then(|h| std::str::from_utf8(h).ok());
                        let c = hex
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                            .ok_or_else(|| self.error("invalid \\u escape"))?;
                        self.pos += 4;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err(self.error("invalid escape in string")),
                },
                Some(b) => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| HclError {
            line: start_line,
            message: "string is not valid UTF-8".into(),
        })
    }

    /// `<<EOF` ... `EOF` (or `<<-EOF`, which strips the common indentation).
    fn heredoc(&mut self) -> Result<String, HclError> {
        let start_line = self.line;
        self.pos += 2;
        let indent = self.peek() == Some(b'-');
        if indent {
            self.pos += 1;
        }
        let marker = self.identifier();
        if marker.is_empty() || self.bump() != Some(b'\n') {
            return Err(self.error("heredoc needs a marker followed by a newline, like <<EOF"));
        }
        let mut lines = Vec::new();
        loop {
            let start = self.pos;
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.pos += 1;
            }
            let line = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
            if line.trim() == marker {
                break;
            }
            if self.bump().is_none() {
                return Err(HclError {
                    line: start_line,
                    message: format!("heredoc {marker} is not terminated"),
                });
            }
            lines.push(line);
        }
        if indent {
            let common = lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            for l in &mut lines {
                *l = l.get(common..).unwrap_or("").to_string();
            }
        }
        let mut text = lines.join("\n");
        text.push('\n');
        Ok(text)
    }

    fn value(&mut self) -> Result<Value, HclError> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(b'<') if self.src.get(self.pos + 1) == Some(&b'<') => {
                self.heredoc().map(Value::String)
            }
            Some(b'[') => {
                self.bump();
                self.enter()?;
                let mut items = Vec::new();
                loop {
                    self.skip_trivia()?;
                    match self.peek() {
                        Some(b']') => {
                            self.bump();
                            break;
                        }
                        None => return Err(self.error("expected ']' before the end of the policy")),
                        _ => items.push(self.value()?),
                    }
                }
                self.depth -= 1;
                Ok(Value::Array(items))
            }
            Some(b'{') => {
                self.bump();
                self.enter()?;
                let inner = self.body(true)?;
                self.depth -= 1;
                Ok(entries_to_object(inner))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.pos;
                self.pos += 1;
                while matches!(self.peek(), Some(c) if c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.src[start..self.pos]).unwrap_or("");
                if let Ok(i) = text.parse::<i64>() {
                    return Ok(Value::from(i));
                }
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| self.error(format!("invalid number {text:?}")))
            }
            Some(c) if is_ident_start(c) => {
                let word = self.identifier();
                match word.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => Err(self.error(format!("unexpected {word:?}: values are quoted strings, numbers, true/false, lists or maps"))),
                }
            }
            Some(c) => Err(self.error(format!("unexpected {:?}: expected a value", c as char))),
            None => Err(self.error("expected a value before the end of the policy")),
        }
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// A block's entries as a JSON object; labelled entries nest under their labels.
fn entries_to_object(entries: Vec<Entry>) -> Value {
    let mut map = Map::new();
    for entry in entries {
        let mut value = entry.value;
        for label in entry.labels.into_iter().rev() {
            let mut wrapped = Map::new();
            wrapped.insert(label, value);
            value = Value::Object(wrapped);
        }
        match map.get_mut(&entry.key) {
            Some(Value::Object(existing)) if value.is_object() => {
                if let Value::Object(new) = value {
                    existing.extend(new);
                }
            }
            _ => {
                map.insert(entry.key, value);
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vault_style_hcl1() {
        let text = r#"
# comment
// another
/* block
   comment */
path "secret/*" { capabilities = ["read", "list"] policy = "read" }
path "a" { capabilities = ["update"]
  allowed_parameters = {
    "foo" = []
    bar = ["x", "y",]
  }
}
path "b" {
  denied_parameters {
    "c" = []
  }
  min_wrapping_ttl = 10
  max_wrapping_ttl = "1h"
  flag = true
}
"#;
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].labels, vec!["secret/*"]);
        assert_eq!(
            entries[0].value,
            json!({"capabilities": ["read", "list"], "policy": "read"})
        );
        assert_eq!(entries[0].line, 6);
        assert_eq!(
            entries[1].value["allowed_parameters"],
            json!({"foo": [], "bar": ["x", "y"]})
        );
        assert_eq!(entries[2].value["denied_parameters"], json!({"c": []}));
        assert_eq!(entries[2].value["min_wrapping_ttl"], 10);
        assert_eq!(entries[2].value["flag"], true);
    }

    #[test]
    fn strings_and_heredocs() {
        let entries = parse("a = \"q\\\"\\n\\u00e9\"\nb = <<EOF\nline1\nline2\nEOF\nc = <<-X\n    x\n      y\n    X\n").unwrap();
        assert_eq!(entries[0].value, json!("q\"\né"));
        assert_eq!(entries[1].value, json!("line1\nline2\n"));
        assert_eq!(entries[2].value, json!("x\n  y\n"));
    }

    #[test]
    fn errors_carry_lines() {
        let err = parse("path \"x\" {\n capabilities = [\"read\"\n").unwrap_err();
        assert!(err.message.contains("expected ']'"), "{err}");
        assert_eq!(parse("garbage {{").unwrap_err().line, 1);
        assert!(
            parse("a = \"unterminated\n")
                .unwrap_err()
                .message
                .contains("unterminated")
        );
        assert!(parse("}").is_err());
        assert!(parse("a = nope").unwrap_err().message.contains("nope"));
        let deep = format!("a = {}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("too deep"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_structured_noise(text in "[a-z\"{}\\[\\]=,#/*<\\-\n 0-9.]{0,120}") {
            let _ = parse(&text);
        }
    }
}
