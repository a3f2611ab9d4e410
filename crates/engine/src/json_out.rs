//! JSON written straight into a byte buffer, for the two things every request writes:
//! its audit lines and its response body.
//!
//! The output is byte for byte what `serde_json` writes (a property test holds it to
//! that); the difference is speed. `serde_json` checks every byte of every string against
//! its escape table, and on the KV read path that loop alone was the largest cost after
//! SHA-256 (~3 KB of strings per request: two audit lines and the reply). Here a string is
//! checked eight bytes at a time; one that needs no escaping — nearly all of them — is
//! then copied whole, and the rest are copied in runs between their escapes.

use serde_json::Value;

/// What follows the backslash for each byte that must be escaped, 0 for the rest; `u` for
/// `\u00XX`. The same set and forms as `serde_json`: control characters, `"` and `\`.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// True when any of the eight bytes in `word` is a control character, `"` or `\`.
/// (The "has a zero byte / a byte less than n" bit tricks: exact about whether any byte
/// matches, which is all that is asked here.)
#[inline]
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let quote = word ^ (ONES * b'"' as u64);
    let quote = quote.wrapping_sub(ONES) & !quote & HIGH;
    let backslash = word ^ (ONES * b'\\' as u64);
    let backslash = backslash.wrapping_sub(ONES) & !backslash & HIGH;
    (below_space | quote | backslash) != 0
}

fn escape(out: &mut Vec<u8>, byte: u8, form: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if form == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 0xf) as usize],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', form]);
    }
}

/// `s` as a JSON string, quoted and escaped.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if needs_escape(bytes) {
        escaped_string(out, bytes);
    } else {
        // Nearly every string (map keys, mount paths, HMACs, ids): one copy.
        ascii(out, bytes);
    }
}

/// True when any byte of `bytes` must be escaped.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    let (words, tail) = bytes.as_chunks::<8>();
    words
        .iter()
        .any(|word| word_needs_escape(u64::from_le_bytes(*word)))
        || tail.iter().any(|&byte| ESCAPE[byte as usize] != 0)
}

/// A string with at least one byte to escape: the runs between escapes copied whole.
#[inline(never)]
fn escaped_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 8);
    out.push(b'"');
    // `bytes[run..at]` needs no escaping and is not written yet.
    let mut run = 0;
    let (words, _) = bytes.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        if !word_needs_escape(u64::from_le_bytes(*word)) {
            continue;
        }
        let at = n * 8;
        for (i, &byte) in word.iter().enumerate() {
            let form = ESCAPE[byte as usize];
            if form != 0 {
                out.extend_from_slice(&bytes[run..at + i]);
                escape(out, byte, form);
                run = at + i + 1;
            }
        }
    }
    for (i, &byte) in bytes.iter().enumerate().skip(words.len() * 8) {
        let form = ESCAPE[byte as usize];
        if form != 0 {
            out.extend_from_slice(&bytes[run..i]);
            escape(out, byte, form);
            run = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// A string known to need no escaping (hex digits, fixed ASCII names): quoted, copied.
pub fn plain_string(out: &mut Vec<u8>, s: &str) {
    ascii(out, s.as_bytes());
}

/// Like [`plain_string`], from UTF-8 bytes known to need no escaping.
pub fn ascii(out: &mut Vec<u8>, s: &[u8]) {
    debug_assert!(!needs_escape(s));
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
}

pub fn uint(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

pub fn int(out: &mut Vec<u8>, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

pub fn bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// An IP address as a string, as `IpAddr`'s `Display` writes it.
pub fn ip(out: &mut Vec<u8>, addr: std::net::IpAddr) {
    match addr {
        // Every request's audit entry has one: written without `fmt`.
        std::net::IpAddr::V4(v4) => {
            out.push(b'"');
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                uint(out, (*octet).into());
            }
            out.push(b'"');
        }
        std::net::IpAddr::V6(v6) => plain_string(out, &v6.to_string()),
    }
}

/// `"key":` for a key that needs no escaping.
pub fn key(out: &mut Vec<u8>, key: &str) {
    plain_string(out, key);
    out.push(b':');
}

/// `["a","b"]`.
pub fn strings(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, item);
    }
    out.push(b']');
}

/// A JSON value, exactly as `serde_json::to_writer` writes it.
pub fn value(out: &mut Vec<u8>, v: &Value) {
    value_with_strings(out, v, &mut |out, s| string(out, s));
}

/// A JSON value whose string leaves (not keys) are written by `leaf` — how audit entries
/// write request and response data with every value HMAC-ed.
pub fn value_with_strings(out: &mut Vec<u8>, v: &Value, leaf: &mut impl FnMut(&mut Vec<u8>, &str)) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => bool(out, *b),
        Value::Number(n) => number(out, n),
        Value::String(s) => leaf(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value_with_strings(out, item, leaf);
            }
            out.push(b']');
        }
        Value::Object(map) => object_with_strings(out, map, leaf),
    }
}

/// A JSON object whose string leaves are written by `leaf`.
pub fn object_with_strings(
    out: &mut Vec<u8>,
    map: &serde_json::Map<String, Value>,
    leaf: &mut impl FnMut(&mut Vec<u8>, &str),
) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, k);
        out.push(b':');
        value_with_strings(out, v, leaf);
    }
    out.push(b'}');
}

fn number(out: &mut Vec<u8>, n: &serde_json::Number) {
    if let Some(u) = n.as_u64() {
        uint(out, u);
    } else if let Some(i) = n.as_i64() {
        int(out, i);
    } else {
        // Floats (rare in Vault's API): `serde_json`'s own formatting. Writing to a Vec
        // cannot fail, and a `Number` is always finite.
        let _ = serde_json::to_writer(&mut *out, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn written(v: &Value) -> String {
        let mut out = Vec::new();
        value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "plain",
            "exactly8",
            "quote\" and \\ backslash",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}",
            "long run of clean text, then a quote at the end of a word\"",
            "ünïcødé ✓ and emoji 🦀 stay as they are",
            "/slashes/are/not/escaped",
        ] {
            let v = Value::String(s.into());
            assert_eq!(written(&v), serde_json::to_string(&v).unwrap(), "{s:?}");
        }
    }

    /// Every escapable byte at every offset of a string long enough for several blocks.
    #[test]
    fn escapes_at_every_offset_like_serde_json() {
        for byte in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..100 {
                let mut text = "x".repeat(100).into_bytes();
                text[at] = byte;
                let v = Value::String(String::from_utf8(text).unwrap());
                assert_eq!(
                    written(&v),
                    serde_json::to_string(&v).unwrap(),
                    "{byte} at {at}"
                );
            }
        }
    }

    #[test]
    fn values_like_serde_json() {
        let v = json!({
            "z": [1, -2, 3.5, 1e300, u64::MAX, i64::MIN, null, true, false],
            "a": {"nested": {"deeper": ["x", {"y\n": "z\""}]}, "empty": {}, "list": []},
            "n": 0.1,
        });
        assert_eq!(written(&v), serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn addresses_like_display() {
        for addr in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.20.3.4",
            "::1",
            "fe80::1:2",
            "::ffff:1.2.3.4",
        ] {
            let ip: std::net::IpAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            super::ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{ip}\""));
        }
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            // Mostly-clean strings with escapes at every offset inside an 8-byte word.
            "[a-z\"\\\\\\n\\x00\\x1f]{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_is_written_as_serde_json_writes_it(v in any_json()) {
            prop_assert_eq!(written(&v), serde_json::to_string(&v).unwrap());
        }

        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(s in any::<String>()) {
            let mut out = Vec::new();
            string(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }
}
