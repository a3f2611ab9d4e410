//! The values a template computes with, modelled on the Go types consul-template hands
//! to `text/template`: the `*dependency.Secret` struct, `map[string]interface{}` and
//! `[]interface{}` decoded from JSON, `json.Number` (the Vault client decodes with
//! `UseNumber`), and the Go `int`/`float64`/`string`/`bool` that literals produce.

use std::collections::BTreeMap;
use std::rc::Rc;

/// A Go `map[string]interface{}`; `BTreeMap` iterates in the byte order Go sorts keys in.
pub(crate) type GoMap = BTreeMap<String, Value>;

/// How deeply a secret's JSON may nest before we refuse it (serde_json's parser stops at
/// 128, but a `SecretSource` may build a `serde_json::Value` by hand).
const MAX_JSON_DEPTH: usize = 200;

#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// Go's zero `reflect.Value`: "no value" (a missing key under the default option,
    /// an unset variable, the template's nil data).
    Invalid,
    /// A nil `interface{}` held in a typed slot (a JSON null in a map, the zero value a
    /// missing map key yields under `missingkey=zero`).
    Nil,
    Bool(bool),
    Int(i64),
    /// `int64`, which `json.Number.Int64` returns; behaves as `Int` but prints its type.
    Int64(i64),
    Float(f64),
    Str(Rc<str>),
    /// `json.Number`: a string-kinded Go type, so it prints as its text and compares
    /// equal to strings, but is not assignable to a `string` parameter.
    Number(Rc<str>),
    Map(Rc<GoMap>),
    /// `[]interface{}`.
    List(Rc<Vec<Value>>),
    /// `[]string` (`split`, `Secret.Warnings`, `SecretAuth.Policies`).
    StrList(Rc<Vec<String>>),
    /// `*dependency.Secret`, what `secret` returns.
    Secret(Rc<Secret>),
    /// `*dependency.SecretAuth`.
    Auth(Rc<SecretAuth>),
    /// A typed nil pointer; the payload is its Go type.
    NilPtr(&'static str),
}

/// consul-template's `dependency.Secret`.
#[derive(Debug, Default)]
pub(crate) struct Secret {
    pub request_id: String,
    pub lease_id: String,
    pub lease_duration: i64,
    pub renewable: bool,
    /// `None` is Go's nil map (consul-template keeps Data nil when the response has none).
    pub data: Option<Rc<GoMap>>,
    pub warnings: Option<Rc<Vec<String>>>,
    pub auth: Option<Rc<SecretAuth>>,
}

/// consul-template's `dependency.SecretAuth`.
#[derive(Debug, Default)]
pub(crate) struct SecretAuth {
    pub client_token: String,
    pub accessor: String,
    pub policies: Option<Rc<Vec<String>>>,
    pub metadata: Option<Rc<GoMap>>,
    pub lease_duration: i64,
    pub renewable: bool,
}

pub(crate) const SECRET_TYPE: &str = "*dependency.Secret";
pub(crate) const AUTH_TYPE: &str = "*dependency.SecretAuth";
pub(crate) const WRAP_INFO_TYPE: &str = "*dependency.SecretWrapInfo";

pub(crate) const SECRET_FIELDS: [&str; 8] = [
    "RequestID",
    "LeaseID",
    "LeaseDuration",
    "Renewable",
    "Data",
    "Warnings",
    "Auth",
    "WrapInfo",
];
pub(crate) const AUTH_FIELDS: [&str; 6] = [
    "ClientToken",
    "Accessor",
    "Policies",
    "Metadata",
    "LeaseDuration",
    "Renewable",
];

impl Value {
    pub(crate) fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    /// The Go type name, as `%T` and error messages print it.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Invalid => "<nil>",
            Value::Nil => "interface {}",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Number(_) => "json.Number",
            Value::Map(_) => "map[string]interface {}",
            Value::List(_) => "[]interface {}",
            Value::StrList(_) => "[]string",
            Value::Secret(_) => SECRET_TYPE,
            Value::Auth(_) => AUTH_TYPE,
            Value::NilPtr(t) => t,
        }
    }

    /// The integer of an integer-kinded value (`int` or `int64`).
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Int64(i) => Some(*i),
            _ => None,
        }
    }

    /// The string content of a string-kinded value (`string` or `json.Number`).
    pub(crate) fn as_go_string(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Number(s) => Some(s),
            _ => None,
        }
    }

    /// Go's `isTrue` after `indirectInterface`: empty and zero values are false.
    pub(crate) fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil | Value::NilPtr(_) => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Number(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::StrList(l) => !l.is_empty(),
            Value::Secret(_) | Value::Auth(_) => true,
        }
    }
}

/// Converts decoded JSON the way the Vault Go client decodes it (`UseNumber`).
fn from_json_depth(v: &serde_json::Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_JSON_DEPTH {
        return Err(format!(
            "secret data nests deeper than {MAX_JSON_DEPTH} levels"
        ));
    }
    Ok(match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(Rc::from(json_number_text(n).as_str())),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::List(Rc::new(
            a.iter()
                .map(|e| from_json_depth(e, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        serde_json::Value::Object(o) => Value::Map(Rc::new(
            o.iter()
                .map(|(k, e)| Ok((k.clone(), from_json_depth(e, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        )),
    })
}

/// The text a Go server (Vault, OpenBao) would have sent for this number: integers as
/// they are, floats as Go's `encoding/json` writes a `float64`. The Go client keeps that
/// text verbatim as a `json.Number`, so this is what consul-template prints.
pub(crate) fn json_number_text(n: &serde_json::Number) -> String {
    if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        n.as_f64()
            .map(super::gofmt::json_float)
            .unwrap_or_else(|| n.to_string())
    }
}

/// Builds consul-template's `Secret` from a Vault response body.
pub(crate) fn secret_from_response(resp: &serde_json::Value) -> Result<Secret, String> {
    let obj = resp
        .as_object()
        .ok_or_else(|| format!("the response is a JSON {}, not an object", json_kind(resp)))?;
    let str_field = |k: &str| {
        obj.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let int_field = |o: &serde_json::Map<String, serde_json::Value>, k: &str| {
        o.get(k)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .unwrap_or(0)
    };
    let mut secret = Secret {
        request_id: str_field("request_id"),
        lease_id: str_field("lease_id"),
        lease_duration: int_field(obj, "lease_duration"),
        renewable: obj
            .get("renewable")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        ..Secret::default()
    };
    // consul-template's updateSecret copies only non-empty fields, so an empty object or
    // list stays a nil map or slice.
    if let Some(serde_json::Value::Object(d)) = obj.get("data")
        && !d.is_empty()
    {
        let data = d
            .iter()
            .map(|(k, v)| Ok((k.clone(), from_json_depth(v, 1)?)))
            .collect::<Result<GoMap, String>>()?;
        secret.data = Some(Rc::new(data));
    }
    secret.warnings = string_list(obj.get("warnings"));
    if let Some(serde_json::Value::Object(a)) = obj.get("auth") {
        let astr = |k: &str| {
            a.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let metadata = match a.get("metadata") {
            Some(serde_json::Value::Object(m)) if !m.is_empty() => Some(Rc::new(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::str(v.as_str().unwrap_or_default())))
                    .collect(),
            )),
            _ => None,
        };
        secret.auth = Some(Rc::new(SecretAuth {
            client_token: astr("client_token"),
            accessor: astr("accessor"),
            policies: string_list(a.get("policies")),
            metadata,
            lease_duration: int_field(a, "lease_duration"),
            renewable: a
                .get("renewable")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        }));
    }
    Ok(secret)
}

fn string_list(v: Option<&serde_json::Value>) -> Option<Rc<Vec<String>>> {
    match v {
        Some(serde_json::Value::Array(a)) if !a.is_empty() => Some(Rc::new(
            a.iter()
                .map(|e| e.as_str().unwrap_or_default().to_string())
                .collect(),
        )),
        _ => None,
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

impl Secret {
    pub(crate) fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "RequestID" => Value::str(&self.request_id),
            "LeaseID" => Value::str(&self.lease_id),
            "LeaseDuration" => Value::Int(self.lease_duration),
            "Renewable" => Value::Bool(self.renewable),
            "Data" => Value::Map(self.data.clone().unwrap_or_default()),
            "Warnings" => Value::StrList(self.warnings.clone().unwrap_or_default()),
            "Auth" => match &self.auth {
                Some(a) => Value::Auth(a.clone()),
                None => Value::NilPtr(AUTH_TYPE),
            },
            "WrapInfo" => Value::NilPtr(WRAP_INFO_TYPE),
            _ => return None,
        })
    }
}

impl SecretAuth {
    pub(crate) fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "ClientToken" => Value::str(&self.client_token),
            "Accessor" => Value::str(&self.accessor),
            "Policies" => Value::StrList(self.policies.clone().unwrap_or_default()),
            "Metadata" => Value::Map(self.metadata.clone().unwrap_or_default()),
            "LeaseDuration" => Value::Int(self.lease_duration),
            "Renewable" => Value::Bool(self.renewable),
            _ => return None,
        })
    }
}
