//! Vault's request/response model, independent of HTTP.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// What a request does, as Vault's ACLs see it.
///
/// HTTP maps onto these as Vault does: GET → `Read` (or `List` with `?list=true`),
/// `LIST` → `List`, POST/PUT → `Create` when nothing exists at the path and `Update`
/// otherwise (for backends that make the distinction), PATCH → `Patch`, DELETE → `Delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
}

impl Operation {
    /// The name Vault uses in audit logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One API request, already decoded from HTTP.
#[derive(Debug, Default)]
pub struct Request {
    /// Vault's `request_id`, returned in the response and written to the audit log.
    pub id: String,
    /// `None` until the router resolves POST/PUT into create or update.
    pub operation: Option<Operation>,
    /// The path after `/v1/`, without a leading slash.
    pub path: String,
    /// The JSON body (writes) or the query parameters (reads, lists, deletes).
    pub data: Map<String, Value>,
    pub token: Option<Zeroizing<String>>,
    pub remote_addr: Option<SocketAddr>,
    /// The body's content type; KV v2 PATCH insists on `application/merge-patch+json`.
    pub content_type: Option<String>,
    /// POST/PUT: the router decides between create and update.
    pub is_write: bool,
}

/// Vault's token-issuing response block (`auth` in the envelope).
#[derive(Debug, Clone, Serialize)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identity_policies: Vec<String>,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    pub lease_duration: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: &'static str,
    pub orphan: bool,
    pub mfa_requirement: Option<()>,
    pub num_uses: u64,
}

/// What a handler returns on success.
#[derive(Debug, Default)]
pub struct Response {
    /// 200 by default; 204 when there is nothing to say; 404 for KV's soft-deleted reads.
    pub status: Option<u16>,
    pub data: Option<Value>,
    pub auth: Option<Auth>,
    pub warnings: Vec<String>,
    /// Endpoints such as `sys/health` answer with a bare JSON object, not the envelope.
    pub raw: Option<Value>,
    /// `sys/mounts` and `sys/auth` repeat `data`'s fields at the top level, as Vault does.
    pub data_also_at_top_level: bool,
}

impl Response {
    pub fn no_content() -> Self {
        Response {
            status: Some(204),
            ..Default::default()
        }
    }

    pub fn data(data: Value) -> Self {
        Response {
            data: Some(data),
            ..Default::default()
        }
    }

    pub fn raw(status: u16, body: Value) -> Self {
        Response {
            status: Some(status),
            raw: Some(body),
            ..Default::default()
        }
    }

    pub fn status(&self) -> u16 {
        self.status.unwrap_or(
            if self.data.is_none()
                && self.auth.is_none()
                && self.warnings.is_empty()
                && self.raw.is_none()
            {
                204
            } else {
                200
            },
        )
    }

    /// The JSON body, or `None` for 204 (and for a bare status with nothing to say, as
    /// Vault answers a PATCH of a missing secret). Vault's envelope unless the handler
    /// gave a raw body. Consumes the response: the data moves into the body uncopied.
    pub fn into_body(self, request_id: &str) -> Option<Value> {
        let status = self.status();
        if let Some(raw) = self.raw {
            return Some(raw);
        }
        if status == 204 || (self.data.is_none() && self.auth.is_none() && self.warnings.is_empty())
        {
            return None;
        }
        let mut envelope = Map::new();
        let data = match self.data {
            Some(Value::Object(fields)) if self.data_also_at_top_level => {
                envelope.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                Value::Object(fields)
            }
            Some(data) => data,
            None => Value::Null,
        };
        envelope.insert("request_id".into(), Value::String(request_id.to_string()));
        envelope.insert("lease_id".into(), Value::String(String::new()));
        envelope.insert("renewable".into(), Value::Bool(false));
        envelope.insert("lease_duration".into(), Value::from(0));
        envelope.insert("data".into(), data);
        envelope.insert("wrap_info".into(), Value::Null);
        envelope.insert(
            "warnings".into(),
            if self.warnings.is_empty() {
                Value::Null
            } else {
                Value::from(self.warnings)
            },
        );
        envelope.insert(
            "auth".into(),
            self.auth
                .as_ref()
                .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
                .unwrap_or(Value::Null),
        );
        Some(Value::Object(envelope))
    }

    /// Appends the JSON body [`Self::into_body`] would give to `out`; false when there is
    /// no body. The common envelope (data or warnings, no token issued) is serialised
    /// directly, without first building it as a JSON tree; anything else goes through
    /// `into_body`. The bytes are the same either way (keys in the sorted order a
    /// `serde_json` map writes them).
    pub fn write_body(self, request_id: &str, out: &mut Vec<u8>) -> bool {
        let plain = self.raw.is_none()
            && self.auth.is_none()
            && !self.data_also_at_top_level
            && self.status() != 204
            && (self.data.is_some() || !self.warnings.is_empty());
        if !plain {
            return match self.into_body(request_id) {
                Some(body) => {
                    crate::json_out::value(out, &body);
                    true
                }
                None => false,
            };
        }
        // The keys in the order a `serde_json` map sorts them.
        out.extend_from_slice(b"{\"auth\":null,\"data\":");
        match &self.data {
            Some(data) => crate::json_out::value(out, data),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(
            b",\"lease_duration\":0,\"lease_id\":\"\",\"renewable\":false,\"request_id\":",
        );
        crate::json_out::string(out, request_id);
        out.extend_from_slice(b",\"warnings\":");
        if self.warnings.is_empty() {
            out.extend_from_slice(b"null");
        } else {
            crate::json_out::strings(out, &self.warnings);
        }
        out.extend_from_slice(b",\"wrap_info\":null}");
        true
    }
}

/// A failed request, as Vault reports it: a status code and `{"errors": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {}", errors.join("; "))]
pub struct ApiError {
    pub status: u16,
    pub errors: Vec<String>,
    /// Seconds a client should wait before retrying (`Retry-After`), for 429/503 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![message.into()],
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// A missing, invalid, expired or revoked token: Vault says only this.
    pub fn permission_denied() -> Self {
        Self::new(403, "permission denied")
    }

    /// An ACL denial, worded as Vault wraps it.
    pub fn acl_denied() -> Self {
        Self::new(403, "1 error occurred:\n\t* permission denied\n\n")
    }

    /// Vault's bare 404 (`{"errors":[]}`).
    pub fn not_found() -> Self {
        ApiError {
            status: 404,
            errors: vec![],
            retry_after: None,
        }
    }

    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            format!("no handler for route \"{path}\". route entry not found."),
        )
    }

    pub fn unsupported_operation() -> Self {
        Self::new(405, "unsupported operation")
    }

    /// Vault's wording for one error wrapped by go-multierror.
    pub fn multi(status: u16, message: impl std::fmt::Display) -> Self {
        Self::new(status, format!("1 error occurred:\n\t* {message}\n\n"))
    }

    /// Adds a `Retry-After` hint (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(500, message.to_string())
    }

    pub fn body(&self) -> Value {
        serde_json::json!({ "errors": self.errors })
    }
}

impl From<crate::crypto::BarrierError> for ApiError {
    fn from(e: crate::crypto::BarrierError) -> Self {
        // Storage and integrity failures are the operator's problem, not the caller's;
        // the message names the storage key, never a value.
        tracing::error!(error = %e, "storage failure");
        ApiError::internal(e)
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

/// Formats a time as Go's `time.RFC3339Nano` (trailing fractional zeros trimmed), which is
/// what every timestamp in Vault's JSON looks like.
pub fn format_time(t: &DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // Written by hand, digits included: this runs for every audit entry and every KV read,
    // and both chrono's formatter and `write!` showed up in their profiles.
    fn digits(mut value: u32, width: usize) -> ([u8; 10], usize) {
        let mut digits = [b'0'; 10];
        for d in digits[..width].iter_mut().rev() {
            *d = b'0' + (value % 10) as u8;
            value /= 10;
        }
        (digits, width)
    }
    fn push_digits(out: &mut Vec<u8>, value: u32, width: usize) {
        let (digits, width) = digits(value, width);
        out.extend_from_slice(&digits[..width]);
    }
    let mut out = Vec::with_capacity(30);
    // Years outside 0..=9999 (outside RFC 3339) as Go prints them: a sign, and at least
    // four digits.
    let year = t.year();
    if year < 0 {
        out.push(b'-');
    }
    let year = year.unsigned_abs();
    let width = (year.checked_ilog10().unwrap_or(0) as usize + 1).max(4);
    push_digits(&mut out, year, width);
    for (separator, value) in [
        (b'-', t.month()),
        (b'-', t.day()),
        (b'T', t.hour()),
        (b':', t.minute()),
        (b':', t.second()),
    ] {
        out.push(separator);
        push_digits(&mut out, value, 2);
    }
    let nanos = t.timestamp_subsec_nanos();
    if nanos != 0 {
        let (fraction, width) = digits(nanos, 9);
        let len = fraction[..width]
            .iter()
            .rposition(|d| *d != b'0')
            .map_or(0, |i| i + 1);
        out.push(b'.');
        out.extend_from_slice(&fraction[..len]);
    }
    out.push(b'Z');
    // Only ASCII digits and separators were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Typed access to request fields, with Vault's error wording for wrong types.
pub struct Fields<'a>(pub &'a Map<String, Value>);

fn convert_error(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "error converting input for field \"{field}\": {why}"
    ))
}

impl<'a> Fields<'a> {
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    pub fn string(&self, field: &str) -> ApiResult<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(convert_error(field, "expected a string")),
        }
    }

    pub fn bool(&self, field: &str) -> ApiResult<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
                _ => Err(convert_error(
                    field,
                    format!("cannot parse {s:?} as a boolean"),
                )),
            },
            Some(Value::Number(n)) => Ok(Some(n.as_f64().is_some_and(|f| f != 0.0))),
            Some(_) => Err(convert_error(field, "expected a boolean")),
        }
    }

    pub fn int(&self, field: &str) -> ApiResult<Option<i64>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .map(Some)
                .ok_or_else(|| convert_error(field, format!("cannot parse {n} as an integer"))),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| convert_error(field, format!("cannot parse {s:?} as an integer"))),
            Some(_) => Err(convert_error(field, "expected an integer")),
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint(&self, field: &str, max: u64) -> ApiResult<Option<u64>> {
        match self.int(field)? {
            None => Ok(None),
            Some(n) if n < 0 => Err(convert_error(field, format!("{n} is negative"))),
            Some(n) if n as u64 > max => {
                Err(convert_error(field, format!("{n} is larger than {max}")))
            }
            Some(n) => Ok(Some(n as u64)),
        }
    }

    pub fn duration(&self, field: &str) -> ApiResult<Option<std::time::Duration>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => crate::util::duration::parse_duration_value(v)
                .map(Some)
                .map_err(|e| convert_error(field, e)),
        }
    }

    /// A list of strings; a comma-separated string is accepted too, as Vault does.
    pub fn string_list(&self, field: &str) -> ApiResult<Option<Vec<String>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.trim().to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(convert_error(field, "expected a list of strings")),
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(|v| Some(v.into_iter().filter(|s| !s.is_empty()).collect())),
            Some(_) => Err(convert_error(field, "expected a list of strings")),
        }
    }

    /// A list of integers (`versions`), from a JSON list or a comma-separated string.
    pub fn int_list(&self, field: &str) -> ApiResult<Option<Vec<i64>>> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let parse_one = |v: &Value| -> ApiResult<i64> {
            match v {
                Value::Number(n) => n
                    .as_i64()
                    .ok_or_else(|| convert_error(field, format!("cannot parse {n} as an integer"))),
                Value::String(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| convert_error(field, format!("cannot parse {s:?} as an integer"))),
                _ => Err(convert_error(field, "expected a list of integers")),
            }
        };
        match value {
            Value::Array(items) => items
                .iter()
                .map(parse_one)
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Value::String(s) => s
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| parse_one(&Value::String(p.to_string())))
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            other => parse_one(other).map(|n| Some(vec![n])),
        }
    }

    /// A map of string → string (`meta`, `custom_metadata`); a JSON map with string values,
    /// or a list of `k=v` strings as the Vault CLI sends for some fields.
    pub fn string_map(
        &self,
        field: &str,
    ) -> ApiResult<Option<std::collections::BTreeMap<String, String>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    Value::Null => Ok((k.clone(), String::new())),
                    _ => Err(convert_error(
                        field,
                        format!("value of key {k:?} must be a string"),
                    )),
                })
                .collect::<ApiResult<_>>()
                .map(Some),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .and_then(|s| s.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| {
                            convert_error(field, "expected a map or a list of key=value strings")
                        })
                })
                .collect::<ApiResult<_>>()
                .map(Some),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(Default::default())),
            Some(_) => Err(convert_error(field, "expected a map of strings")),
        }
    }

    /// A JSON object.
    pub fn object(&self, field: &str) -> ApiResult<Option<&'a Map<String, Value>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(convert_error(
                field,
                format!(
                    "expected a JSON object (map), got {}",
                    json_type_name(other)
                ),
            )),
        }
    }
}

/// How to name a JSON value's type in an error message.
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bytes the HTTP server sends are exactly the JSON of the body in-process callers
    /// get, for every shape of response.
    #[test]
    fn written_bodies_match_the_json_body() {
        let auth = Auth {
            client_token: "s.token".into(),
            accessor: "acc".into(),
            policies: vec!["default".into()],
            token_policies: vec!["default".into()],
            identity_policies: vec![],
            metadata: None,
            lease_duration: 60,
            renewable: true,
            entity_id: String::new(),
            token_type: "service",
            orphan: false,
            mfa_requirement: None,
            num_uses: 0,
        };
        let data = json!({"data": {"value": "s3cr\"et\n", "n": 1.5}, "metadata": {"version": 2}});
        type Make = fn(Value, Auth) -> Response;
        let shapes: Vec<(&str, Make)> = vec![
            ("data", |d, _| Response::data(d)),
            ("warnings only", |_, _| Response {
                warnings: vec!["careful".into()],
                ..Default::default()
            }),
            ("data and warnings", |d, _| Response {
                data: Some(d),
                warnings: vec!["a".into(), "b".into()],
                ..Default::default()
            }),
            ("auth", |_, a| Response {
                auth: Some(a),
                ..Default::default()
            }),
            ("raw", |d, _| Response::raw(429, d)),
            ("top level", |d, _| Response {
                data: Some(d),
                data_also_at_top_level: true,
                ..Default::default()
            }),
            ("404 with data", |d, _| Response {
                status: Some(404),
                data: Some(d),
                ..Default::default()
            }),
            ("null data", |_, _| Response::data(Value::Null)),
            ("no content", |_, _| Response::no_content()),
            ("nothing to say", |_, _| Response::default()),
        ];
        for (name, make) in shapes {
            let expected = make(data.clone(), auth.clone())
                .into_body("req-1")
                .map(|b| serde_json::to_vec(&b).unwrap());
            let mut out = Vec::new();
            let written = make(data.clone(), auth.clone()).write_body("req-1", &mut out);
            assert_eq!(written.then_some(out), expected, "{name}");
        }
    }

    #[test]
    fn times_format_like_go() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T07:52:22.627492480Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(&t), "2026-11-23T07:52:22.62749248Z");
        let t = DateTime::parse_from_rfc3339("2026-11-23T07:52:22Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(&t), "2026-11-23T07:52:22Z");
        let far = chrono::NaiveDate::from_ymd_opt(12345, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap()
            .and_utc();
        assert_eq!(format_time(&far), "12345-01-02T03:04:05Z");
        let early = chrono::NaiveDate::from_ymd_opt(-1, 1, 2)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        assert_eq!(format_time(&early), "-0001-01-02T00:00:00Z");
    }

    proptest::proptest! {
        #[test]
        fn times_read_back_exactly(secs in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            let text = format_time(&t);
            proptest::prop_assert_eq!(DateTime::parse_from_rfc3339(&text).unwrap(), t);
            // Go trims every trailing zero of the fraction.
            proptest::prop_assert!(!text.trim_end_matches('Z').ends_with('0') || nanos == 0);
        }
    }

    #[test]
    fn envelope_has_vaults_fields() {
        let body = Response::data(json!({"a": 1})).into_body("req-1").unwrap();
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["data"]["a"], 1);
        assert!(
            body["warnings"].is_null() && body["auth"].is_null() && body["wrap_info"].is_null()
        );
        assert_eq!(Response::no_content().into_body("x"), None);
        assert_eq!(Response::default().status(), 204);
    }

    #[test]
    fn fields_convert_like_vault() {
        let data = json!({"n": "12", "b": "true", "l": "a, b,,c", "v": [1, "2"], "m": {"k": "v"}, "bad": [1]});
        let f = Fields(data.as_object().unwrap());
        assert_eq!(f.int("n").unwrap(), Some(12));
        assert_eq!(f.bool("b").unwrap(), Some(true));
        assert_eq!(f.string_list("l").unwrap().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(f.int_list("v").unwrap().unwrap(), vec![1, 2]);
        assert_eq!(f.string_map("m").unwrap().unwrap()["k"], "v");
        let err = f.string("bad").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.errors[0].contains("field \"bad\""));
        assert_eq!(f.int("missing").unwrap(), None);
        assert!(f.uint("n", 5).is_err());
    }
}
