//! `batch_input`: the list of items encrypt, decrypt and rewrap accept, decoded with the
//! checks and messages of Vault's batch decoder, and the per-item results.

use serde_json::{Map, Value};

/// Which endpoint is decoding: each requires a different field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Encrypt,
    Decrypt,
    Rewrap,
}

/// One item, borrowing its strings from the request.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Item<'a> {
    pub context: &'a str,
    pub ciphertext: &'a str,
    pub plaintext: &'a str,
    pub key_version: i64,
    pub associated_data: &'a str,
    pub reference: &'a str,
}

/// How Go names the type of a decoded JSON value, as Vault's messages show it.
pub(super) fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Decodes `batch_input`. The error is Vault's text, to be prefixed with
/// "failed to parse batch input: ".
pub(super) fn decode(raw: &Value, kind: Kind) -> Result<Vec<Item<'_>>, String> {
    let Value::Array(raw_items) = raw else {
        let lead = if kind == Kind::Rewrap { "'' " } else { "" };
        return Err(format!(
            "{lead}source data must be an array or slice, got {}",
            go_type(raw)
        ));
    };
    let mut items = Vec::with_capacity(raw_items.len());
    let mut errors: Vec<String> = Vec::new();
    for (i, raw_item) in raw_items.iter().enumerate() {
        let Value::Object(map) = raw_item else {
            return Err(format!("[{i}] expected a map, got '{}'", go_type(raw_item)));
        };
        // Fields in the order Vault's decoder checks them, so errors list in its order.
        let mut item = Item {
            context: optional_string(map, "context", i, true, &mut errors),
            ..Item::default()
        };
        match map.get("ciphertext") {
            Some(_) => item.ciphertext = optional_string(map, "ciphertext", i, true, &mut errors),
            None if kind == Kind::Decrypt => {
                errors.push(format!("'[{i}].ciphertext' missing ciphertext to decrypt"))
            }
            None => {}
        }
        match map.get("plaintext") {
            // Vault's decoder does not let plaintext be null.
            Some(_) => item.plaintext = optional_string(map, "plaintext", i, false, &mut errors),
            None if kind == Kind::Encrypt => {
                errors.push(format!("'[{i}].plaintext' missing plaintext to encrypt"))
            }
            None => {}
        }
        match map.get("key_version") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) => item.key_version = v,
                None => errors.push(format!(
                    "error decoding json.Number into [{i}].key_version: strconv.ParseInt: parsing \"{n}\": invalid syntax"
                )),
            },
            Some(other) => errors.push(format!(
                "'[{i}].key_version' expected type 'int', got unconvertible type '{}'",
                go_type(other)
            )),
        }
        item.associated_data = optional_string(map, "associated_data", i, true, &mut errors);
        item.reference = optional_string(map, "reference", i, true, &mut errors);
        items.push(item);
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors.join("\n"))
    }
}

fn optional_string<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    index: usize,
    null_ok: bool,
    errors: &mut Vec<String>,
) -> &'a str {
    match map.get(field) {
        None => "",
        Some(Value::Null) if null_ok => "",
        Some(Value::String(s)) => s,
        Some(other) => {
            errors.push(format!(
                "'[{index}].{field}' expected type 'string', got unconvertible type '{}'",
                go_type(other)
            ));
            ""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_items() {
        let raw = json!([
            {"plaintext": "aGk=", "context": "Y3R4", "key_version": 2, "reference": "r", "extra": 1},
            {"plaintext": "", "key_version": null, "context": null}
        ]);
        let items = decode(&raw, Kind::Encrypt).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].plaintext, "aGk=");
        assert_eq!(items[0].context, "Y3R4");
        assert_eq!(items[0].key_version, 2);
        assert_eq!(items[0].reference, "r");
        assert_eq!(items[1].key_version, 0);
        assert!(decode(&json!([]), Kind::Decrypt).unwrap().is_empty());
    }

    #[test]
    fn errors_read_like_vaults() {
        // Each message checked against OpenBao's answers.
        assert_eq!(
            decode(&json!("x"), Kind::Encrypt).unwrap_err(),
            "source data must be an array or slice, got string"
        );
        assert_eq!(
            decode(&json!("x"), Kind::Rewrap).unwrap_err(),
            "'' source data must be an array or slice, got string"
        );
        assert_eq!(
            decode(&json!({"a": 1}), Kind::Encrypt).unwrap_err(),
            "source data must be an array or slice, got map[string]interface {}"
        );
        assert_eq!(
            decode(&json!([1]), Kind::Encrypt).unwrap_err(),
            "[0] expected a map, got 'json.Number'"
        );
        assert_eq!(
            decode(&json!([[1]]), Kind::Encrypt).unwrap_err(),
            "[0] expected a map, got '[]interface {}'"
        );
        assert_eq!(
            decode(&json!([{"plaintext": 1}, {"context": 2}]), Kind::Encrypt).unwrap_err(),
            "'[0].plaintext' expected type 'string', got unconvertible type 'json.Number'\n'[1].context' expected type 'string', got unconvertible type 'json.Number'\n'[1].plaintext' missing plaintext to encrypt"
        );
        assert_eq!(
            decode(&json!([{"plaintext": null}]), Kind::Encrypt).unwrap_err(),
            "'[0].plaintext' expected type 'string', got unconvertible type '<nil>'"
        );
        assert_eq!(
            decode(
                &json!([{"plaintext": "aGk=", "key_version": 1.5}]),
                Kind::Encrypt
            )
            .unwrap_err(),
            "error decoding json.Number into [0].key_version: strconv.ParseInt: parsing \"1.5\": invalid syntax"
        );
        assert_eq!(
            decode(
                &json!([{"plaintext": "aGk=", "key_version": "1"}]),
                Kind::Encrypt
            )
            .unwrap_err(),
            "'[0].key_version' expected type 'int', got unconvertible type 'string'"
        );
        assert_eq!(
            decode(&json!([{"plaintext": "x"}]), Kind::Decrypt).unwrap_err(),
            "'[0].ciphertext' missing ciphertext to decrypt"
        );
        assert!(decode(&json!([{}]), Kind::Rewrap).is_ok());
        assert_eq!(
            decode(&json!([{"ciphertext": null}]), Kind::Decrypt).unwrap()[0].ciphertext,
            ""
        );
    }
}
