//! The response envelope of Vault's API (the Go client's `api.Secret`), how the Vault
//! client decodes it, and how the Vault CLI prints it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::duration::human_seconds;
use crate::output::{
    Format, Json, Ui, go_quoted_list, go_value, key_value_table, map_rows, wrap_with_padding,
};

/// A response body: what a read, write or login returned.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Secret {
    #[serde(default, deserialize_with = "null_as_default")]
    pub request_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub lease_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub lease_duration: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub renewable: bool,
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    #[serde(default)]
    pub auth: Option<SecretAuth>,
    #[serde(default)]
    pub wrap_info: Option<Value>,
}

/// The `auth` block of a login or token response.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SecretAuth {
    #[serde(default, deserialize_with = "null_as_default")]
    pub client_token: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub accessor: String,
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    #[serde(default)]
    pub token_policies: Option<Vec<String>>,
    #[serde(default)]
    pub identity_policies: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub orphan: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub entity_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub lease_duration: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub renewable: bool,
    #[serde(default)]
    pub mfa_requirement: Option<Value>,
}

/// Go decodes `null` into a plain field as "leave the zero value"; serde would refuse it.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Why a response body could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the server's response is not the JSON Vault clients expect: {0}")]
    Json(#[from] serde_json::Error),
    /// A body with `errors` beside other fields (the Go client reports the errors).
    #[error("{0}")]
    Errors(String),
}

/// Decodes a body as the Go client's `api.ParseSecret` does: an empty body is no secret;
/// a body that is not shaped like a secret becomes the secret's `data`, unless all it holds
/// is `errors`.
pub fn parse_secret(body: &[u8]) -> Result<Option<Secret>, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut secret: Secret = serde_json::from_slice(body)?;
    if secret == Secret::default() {
        let raw: Map<String, Value> = serde_json::from_slice(body)?;
        if let Some(errors) = raw.get("errors") {
            if raw.len() == 1 {
                return Ok(None);
            }
            let list: Vec<String> = serde_json::from_value(errors.clone())?;
            return Err(ParseError::Errors(list.join(" ")));
        }
        if !raw.is_empty() {
            secret.data = Some(raw);
        }
    }
    Ok(Some(secret))
}

impl Secret {
    pub fn has_data_or_warnings(&self) -> bool {
        self.data.as_ref().is_some_and(|d| !d.is_empty())
            || self.warnings.as_ref().is_some_and(|w| !w.is_empty())
    }

    pub fn data_field(&self, key: &str) -> Option<&Value> {
        self.data.as_ref().and_then(|d| d.get(key))
    }

    /// The JSON the Vault CLI prints for `-format=json`: the Go client's struct, in its
    /// field order.
    pub fn to_json(&self) -> Json {
        let mut fields = vec![
            (
                "request_id".to_owned(),
                Json::from(self.request_id.as_str()),
            ),
            ("lease_id".to_owned(), Json::from(self.lease_id.as_str())),
            ("lease_duration".to_owned(), Json::int(self.lease_duration)),
            ("renewable".to_owned(), Json::Bool(self.renewable)),
            (
                "data".to_owned(),
                self.data
                    .as_ref()
                    .map_or(Json::Null, |d| Json::from(&Value::Object(d.clone()))),
            ),
            (
                "warnings".to_owned(),
                self.warnings
                    .as_ref()
                    .map_or(Json::Null, |w| Json::string_list(w)),
            ),
        ];
        if let Some(auth) = &self.auth {
            fields.push(("auth".to_owned(), auth.to_json()));
        }
        if let Some(wrap) = &self.wrap_info {
            fields.push(("wrap_info".to_owned(), Json::from(wrap)));
        }
        Json::Object(fields)
    }

    /// The value `-field=NAME` prints (the Vault CLI's `RawSecretField`); `None` when the
    /// field is absent or null.
    pub fn raw_field(&self, field: &str) -> Option<Value> {
        let from_data = || self.data_field(field).filter(|v| !v.is_null()).cloned();
        if let Some(auth) = &self.auth {
            let list = |l: &Option<Vec<String>>| Value::from(l.clone().unwrap_or_default());
            return match field {
                "token" => Some(Value::from(auth.client_token.clone())),
                "token_accessor" => Some(Value::from(auth.accessor.clone())),
                "token_duration" => Some(Value::from(auth.lease_duration)),
                "token_renewable" => Some(Value::from(auth.renewable)),
                "token_policies" => Some(list(&auth.token_policies)),
                "identity_policies" => Some(list(&auth.identity_policies)),
                "policies" => Some(list(&auth.policies)),
                _ => from_data(),
            };
        }
        match field {
            "lease_duration" | "refresh_interval" => Some(Value::from(self.lease_duration)),
            "lease_id" => Some(Value::from(self.lease_id.clone())),
            "request_id" => Some(Value::from(self.request_id.clone())),
            "renewable" => Some(Value::from(self.renewable)),
            "data" => match self.data_field("data") {
                Some(v) if !v.is_null() => Some(v.clone()),
                Some(_) => None,
                None => self.data.as_ref().map(|d| Value::Object(d.clone())),
            },
            _ => from_data(),
        }
    }

    /// The `Key  Value` rows of the Vault CLI's `TableFormatter.OutputSecret`.
    pub fn table_rows(&self) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        if self.lease_duration > 0 {
            if self.lease_id.is_empty() {
                rows.push((
                    "refresh_interval".to_owned(),
                    human_seconds(self.lease_duration),
                ));
            } else {
                rows.push(("lease_id".to_owned(), self.lease_id.clone()));
                rows.push((
                    "lease_duration".to_owned(),
                    human_seconds(self.lease_duration),
                ));
                rows.push(("lease_renewable".to_owned(), self.renewable.to_string()));
            }
        }
        if let Some(auth) = &self.auth {
            let list = |l: &Option<Vec<String>>| go_quoted_list(l.as_deref().unwrap_or_default());
            rows.push(("token".to_owned(), auth.client_token.clone()));
            rows.push(("token_accessor".to_owned(), auth.accessor.clone()));
            let duration = if auth.lease_duration == 0 {
                "∞".to_owned()
            } else {
                human_seconds(auth.lease_duration)
            };
            rows.push(("token_duration".to_owned(), duration));
            rows.push(("token_renewable".to_owned(), auth.renewable.to_string()));
            rows.push(("token_policies".to_owned(), list(&auth.token_policies)));
            rows.push((
                "identity_policies".to_owned(),
                list(&auth.identity_policies),
            ));
            rows.push(("policies".to_owned(), list(&auth.policies)));
            for (key, value) in auth.metadata.iter().flatten() {
                rows.push((format!("token_meta_{key}"), value.clone()));
            }
        }
        if let Some(data) = &self.data {
            rows.extend(map_rows(data));
        }
        rows
    }
}

impl SecretAuth {
    fn to_json(&self) -> Json {
        let list =
            |l: &Option<Vec<String>>| l.as_ref().map_or(Json::Null, |l| Json::string_list(l));
        let metadata = self.metadata.as_ref().map_or(Json::Null, |m| {
            Json::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Json::from(v.as_str())))
                    .collect(),
            )
        });
        Json::Object(vec![
            (
                "client_token".to_owned(),
                Json::from(self.client_token.as_str()),
            ),
            ("accessor".to_owned(), Json::from(self.accessor.as_str())),
            ("policies".to_owned(), list(&self.policies)),
            ("token_policies".to_owned(), list(&self.token_policies)),
            (
                "identity_policies".to_owned(),
                list(&self.identity_policies),
            ),
            ("metadata".to_owned(), metadata),
            ("orphan".to_owned(), Json::Bool(self.orphan)),
            ("entity_id".to_owned(), Json::from(self.entity_id.as_str())),
            ("lease_duration".to_owned(), Json::int(self.lease_duration)),
            ("renewable".to_owned(), Json::Bool(self.renewable)),
            (
                "mfa_requirement".to_owned(),
                self.mfa_requirement.as_ref().map_or(Json::Null, Json::from),
            ),
        ])
    }
}

/// Prints the server's warnings to stderr (table format only), as the Vault CLI does.
pub fn print_warnings(ui: &mut Ui, secret: &Secret) {
    let Some(warnings) = secret.warnings.as_ref().filter(|w| !w.is_empty()) else {
        return;
    };
    ui.error("WARNING! The following warnings were returned from the server:\n");
    for warning in warnings {
        ui.error(&wrap_with_padding(&format!("* {warning}"), 2));
        ui.error("");
    }
}

/// `OutputSecret`: the whole response as a table (with warnings) or as JSON.
pub fn output_secret(ui: &mut Ui, format: Format, secret: &Secret) {
    match format {
        Format::Json => ui.output(&secret.to_json().pretty()),
        Format::Table => {
            print_warnings(ui, secret);
            if let Some(table) = key_value_table(secret.table_rows()) {
                ui.output(&table);
            }
        }
    }
}

/// `OutputData` for a map: sorted `Key  Value` rows, or the map as JSON.
pub fn output_map(ui: &mut Ui, format: Format, map: &Map<String, Value>) {
    match format {
        Format::Json => ui.output(&Json::from(&Value::Object(map.clone())).pretty()),
        Format::Table => {
            if let Some(table) = key_value_table(map_rows(map)) {
                ui.output(&table);
            }
        }
    }
}

/// `PrintRawField`: one value, bare for scripts (`%v` in table format, JSON otherwise).
/// `Err` carries the message for a missing field.
pub fn print_raw_field(
    ui: &mut Ui,
    format: Format,
    value: Option<Value>,
    field: &str,
    kind: &str,
    warnings_from: Option<&Secret>,
) -> Result<(), String> {
    let Some(value) = value else {
        return Err(format!("Field \"{field}\" not present in {kind}"));
    };
    match format {
        Format::Table => {
            if let Some(secret) = warnings_from {
                print_warnings(ui, secret);
            }
            ui.raw(&go_value(&value));
        }
        Format::Json => ui.raw(&Json::from(&value).pretty()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_error_only_bodies_are_no_secret() {
        assert_eq!(parse_secret(b"").unwrap(), None);
        assert_eq!(parse_secret(br#"{"errors":[]}"#).unwrap(), None);
        let err = parse_secret(br#"{"errors":["a","b"],"x":1}"#).unwrap_err();
        assert_eq!(err.to_string(), "a b");
    }

    #[test]
    fn raw_bodies_become_data() {
        let s = parse_secret(br#"{"keys":["a"]}"#).unwrap().unwrap();
        assert_eq!(s.data_field("keys"), Some(&json!(["a"])));
    }

    #[test]
    fn nulls_decode_to_zero_values() {
        let s = parse_secret(br#"{"request_id":null,"lease_duration":null,"data":{"a":"1"},"warnings":null,"auth":null}"#)
            .unwrap()
            .unwrap();
        assert_eq!(s.request_id, "");
        assert_eq!(s.data_field("a"), Some(&json!("1")));
    }

    #[test]
    fn token_rows_match_the_vault_cli() {
        let s = parse_secret(
            br#"{"auth":{"client_token":"s.x","accessor":"acc","policies":["app","default"],
                 "token_policies":["app","default"],"identity_policies":null,
                 "metadata":{"team":"x","owner":"me"},"lease_duration":3600,"renewable":true}}"#,
        )
        .unwrap()
        .unwrap();
        let table = key_value_table(s.table_rows()).unwrap();
        let want = "\
Key                  Value
---                  -----
token                s.x
token_accessor       acc
token_duration       1h
token_renewable      true
token_policies       [\"app\" \"default\"]
identity_policies    []
policies             [\"app\" \"default\"]
token_meta_owner     me
token_meta_team      x";
        assert_eq!(table, want);
        assert_eq!(
            s.raw_field("token_policies"),
            Some(json!(["app", "default"]))
        );
        assert_eq!(s.raw_field("identity_policies"), Some(json!([])));
        assert_eq!(s.raw_field("nope"), None);
    }

    #[test]
    fn json_keeps_the_go_struct_order() {
        let s = parse_secret(br#"{"data":{"b":1,"a":2},"request_id":"r","mount_type":"kv"}"#)
            .unwrap()
            .unwrap();
        let text = s.to_json().pretty();
        let order: Vec<usize> = [
            "request_id",
            "lease_id",
            "lease_duration",
            "renewable",
            "\"data\"",
            "warnings",
        ]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(
            !text.contains("mount_type"),
            "the Go client drops fields it does not know"
        );
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
    }

    #[test]
    fn lease_rows() {
        let s = Secret {
            lease_duration: 60,
            ..Secret::default()
        };
        assert_eq!(
            s.table_rows(),
            vec![("refresh_interval".to_owned(), "1m".to_owned())]
        );
    }
}
