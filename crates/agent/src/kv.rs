//! Reading secrets as consul-template does: find the path's mount through
//! `sys/internal/ui/mounts/<path>`, and on a KV v2 mount turn `secret/foo` into
//! `secret/data/foo` (its `shimKVv2Path`). A deleted KV v2 version reads as "no secret".

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use serde_json::Value;

use crate::vault::{TransportError, VaultClient};

pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What to read for a path written in a config or template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The API path to GET, with the template's query (`?version=2`) if any.
    pub read_path: String,
    /// The KV v2 data path (`secret/data/x`, no query) when this is one: what the
    /// server's watch endpoint can watch, and whose body nests the keys in `data.data`.
    pub kv2_data_path: Option<String>,
}

/// A read that did not produce a secret. Messages name paths, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the server failed reading {path:?} ({detail}); it will be retried")]
    Server { path: String, detail: String },
    #[error(
        "permission denied reading {path:?}: the token's policies do not grant read on it; grant read on that path to the policies of the agent's role, or remove it from the secret"
    )]
    Denied { path: String },
    #[error("no secret exists at {path:?}; write it, or fix the path")]
    NotFound { path: String },
    #[error("reading {path:?} failed ({detail})")]
    Other { path: String, detail: String },
}

impl ReadError {
    /// Whether the server as a whole is unwell (as opposed to this one path failing).
    pub fn is_server_wide(&self) -> bool {
        matches!(self, ReadError::Transport(_) | ReadError::Server { .. })
    }
}

/// Mount lookups, cached per path for the life of the agent (as consul-template caches
/// them per dependency). Denied lookups are not cached: a policy may change.
#[derive(Default)]
pub struct Mounts {
    cache: HashMap<String, (String, bool)>,
}

impl Mounts {
    /// What to read for `raw` (trimmed of spaces and slashes, maybe with a query).
    pub async fn resolve(
        &mut self,
        client: &VaultClient,
        token: &str,
        raw: &str,
    ) -> Result<Target, ReadError> {
        let (path, query) = match raw.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw, None),
        };
        let (mount, kv2) = match self.cache.get(path) {
            Some(m) => m.clone(),
            None => {
                let resp = client
                    .send(
                        Method::GET,
                        &format!("sys/internal/ui/mounts/{path}"),
                        Some(token),
                        None,
                        READ_TIMEOUT,
                    )
                    .await?;
                match resp.status {
                    200 => {
                        let data = &resp.body["data"];
                        let mount = data["path"].as_str().unwrap_or_default().to_string();
                        let kv2 = data["options"]["version"].as_str() == Some("2");
                        self.cache.insert(path.to_string(), (mount.clone(), kv2));
                        (mount, kv2)
                    }
                    // A server without the endpoint: KV v1 semantics, as consul-template.
                    404 => {
                        self.cache.insert(path.to_string(), (String::new(), false));
                        (String::new(), false)
                    }
                    // Not allowed to look: consul-template assumes KV v1 too.
                    403 => (String::new(), false),
                    429 | 500..=599 => {
                        return Err(ReadError::Server {
                            path: format!("sys/internal/ui/mounts/{path}"),
                            detail: resp.describe(),
                        });
                    }
                    _ => (String::new(), false),
                }
            }
        };
        let read = if kv2 {
            shim_kv2_path(path, &mount)
        } else {
            path.to_string()
        };
        let kv2_data_path =
            (kv2 && !mount.is_empty() && read.starts_with(&format!("{mount}data/")))
                .then(|| read.clone());
        Ok(Target {
            read_path: match query {
                Some(q) => format!("{read}?{q}"),
                None => read,
            },
            kv2_data_path,
        })
    }
}

/// consul-template's `shimKVv2Path`: put `data/` after a KV v2 mount unless the path
/// already goes to `data/` or `metadata/`.
pub fn shim_kv2_path(raw: &str, mount: &str) -> String {
    if raw == mount || raw == mount.trim_end_matches('/') {
        return clean(&format!("{mount}/data"));
    }
    let p = raw.strip_prefix(mount).unwrap_or(raw);
    if p.starts_with("data/") || p.starts_with("metadata/") {
        return raw.to_string();
    }
    clean(&format!("{mount}/data/{p}"))
}

/// Go's `path.Clean` for relative paths: no empty or `.` segments, `..` resolved.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// Reads `target`. A 404 and a deleted KV v2 version are both "no secret exists", as in
/// consul-template.
pub async fn read(client: &VaultClient, token: &str, target: &Target) -> Result<Value, ReadError> {
    let resp = client
        .send(
            Method::GET,
            &target.read_path,
            Some(token),
            None,
            READ_TIMEOUT,
        )
        .await?;
    let path = target.read_path.clone();
    match resp.status {
        200 if deleted_kv2(&resp.body) => Err(ReadError::NotFound { path }),
        200 if resp.body.is_object() => Ok(resp.body),
        200 | 204 => Err(ReadError::NotFound { path }),
        404 => Err(ReadError::NotFound { path }),
        403 => Err(ReadError::Denied { path }),
        429 | 500..=599 => Err(ReadError::Server {
            path,
            detail: resp.describe(),
        }),
        _ => Err(ReadError::Other {
            path,
            detail: resp.describe(),
        }),
    }
}

/// The key/value map of a secret read from `target`: `data.data` on KV v2, `data`
/// elsewhere.
pub fn secret_data<'v>(
    target: &Target,
    body: &'v Value,
) -> Option<&'v serde_json::Map<String, Value>> {
    if target.kv2_data_path.is_some() {
        body["data"]["data"].as_object()
    } else {
        body["data"].as_object()
    }
}

/// consul-template's `deletedKVv2`: the version's `deletion_time` has passed.
fn deleted_kv2(body: &Value) -> bool {
    let Some(t) = body["data"]["metadata"]["deletion_time"].as_str() else {
        return false;
    };
    match parse_rfc3339(t) {
        Some(when) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            now > when
        }
        None => false,
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = crate::log::days_from_civil(y, mo as u32, d as u32);
    Some(days * 86400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shims_like_consul_template() {
        assert_eq!(shim_kv2_path("secret/foo", "secret/"), "secret/data/foo");
        assert_eq!(
            shim_kv2_path("secret/data/foo", "secret/"),
            "secret/data/foo"
        );
        assert_eq!(
            shim_kv2_path("secret/metadata/foo", "secret/"),
            "secret/metadata/foo"
        );
        assert_eq!(shim_kv2_path("secret", "secret/"), "secret/data");
        assert_eq!(shim_kv2_path("secret/", "secret/"), "secret/data");
        assert_eq!(shim_kv2_path("kv/team/a/b", "kv/team/"), "kv/team/data/a/b");
        assert_eq!(shim_kv2_path("secret/./x//y", "secret/"), "secret/data/x/y");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("1970-01-01T01:00:00.123456789+01:00"),
            Some(0)
        );
        assert_eq!(parse_rfc3339("2000-02-29T12:34:56Z"), Some(951_827_696));
        assert_eq!(parse_rfc3339(""), None);
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
    }

    #[test]
    fn deletion_time_in_the_past_means_deleted() {
        assert!(deleted_kv2(
            &json!({"data": {"data": null, "metadata": {"deletion_time": "2001-01-01T00:00:00Z"}}})
        ));
        assert!(!deleted_kv2(
            &json!({"data": {"data": {}, "metadata": {"deletion_time": ""}}})
        ));
        assert!(!deleted_kv2(
            &json!({"data": {"data": {}, "metadata": {"deletion_time": "2999-01-01T00:00:00Z"}}})
        ));
    }
}
