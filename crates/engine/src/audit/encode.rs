//! Audit entries serialised straight from the borrowed request, response and token —
//! secret strings HMAC-ed on the way — with no intermediate JSON tree. This runs twice per
//! request, so it avoids allocation: the profile of the KV read path was dominated by
//! building and dropping `serde_json::Value` maps here.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use super::{AuditAuth, AuditRequest, AuditResponse, Device};

/// `hmac-sha256:` and 64 hex digits.
#[derive(Clone)]
pub(super) struct HashStr([u8; 76]);

impl HashStr {
    pub(super) fn as_str(&self) -> &str {
        // Built from an ASCII prefix and hex digits only.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl Device {
    pub(super) fn hash_str(&self, value: &str) -> HashStr {
        use hmac::Mac;
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; 76];
        out[..12].copy_from_slice(b"hmac-sha256:");
        for (i, b) in digest.iter().enumerate() {
            out[12 + 2 * i] = DIGITS[(b >> 4) as usize];
            out[13 + 2 * i] = DIGITS[(b & 0xf) as usize];
        }
        HashStr(out)
    }
}

/// A secret string: HMAC-ed unless the device logs raw.
struct Secret<'a> {
    value: &'a str,
    device: &'a Device,
    /// Accessors stay readable when the device sets `hmac_accessor=false`.
    accessor: bool,
}

impl Serialize for Secret<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.device.log_raw || (self.accessor && !self.device.hmac_accessor) {
            s.serialize_str(self.value)
        } else {
            s.serialize_str(self.device.hash_str(self.value).as_str())
        }
    }
}

/// A secret string whose HMAC may already be known (a token or accessor that appears in
/// several places of a line): the known hash is written, else it is hashed now.
struct Prehashed<'a> {
    value: &'a str,
    hash: Option<&'a HashStr>,
    device: &'a Device,
    accessor: bool,
}

impl Serialize for Prehashed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.hash {
            Some(hash) => s.serialize_str(hash.as_str()),
            None => Secret {
                value: self.value,
                device: self.device,
                accessor: self.accessor,
            }
            .serialize(s),
        }
    }
}

/// Request or response data: every string inside HMAC-ed, keys readable.
struct Hashed<'a> {
    value: &'a Value,
    device: &'a Device,
}

impl Serialize for Hashed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::String(v) => Secret {
                value: v,
                device: self.device,
                accessor: false,
            }
            .serialize(s),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Hashed {
                        value: item,
                        device: self.device,
                    })?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(
                        k,
                        &Hashed {
                            value: v,
                            device: self.device,
                        },
                    )?;
                }
                m.end()
            }
            other => other.serialize(s),
        }
    }
}

/// A JSON object whose string leaves are HMAC-ed.
struct HashedMap<'a> {
    map: &'a serde_json::Map<String, Value>,
    device: &'a Device,
}

impl Serialize for HashedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.map.len()))?;
        for (k, v) in self.map {
            m.serialize_entry(
                k,
                &Hashed {
                    value: v,
                    device: self.device,
                },
            )?;
        }
        m.end()
    }
}

struct AuthOut<'a> {
    auth: Option<&'a AuditAuth>,
    device: &'a Device,
    /// The HMAC of the request's token, when it is this auth's token too (computed once).
    token_hash: Option<&'a HashStr>,
    /// Likewise for the accessor.
    accessor_hash: Option<&'a HashStr>,
}

impl Serialize for AuthOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let Some(a) = self.auth else {
            m.serialize_entry("token_type", "default")?;
            return m.end();
        };
        let device = self.device;
        if let Some(value) = &a.client_token {
            m.serialize_entry(
                "client_token",
                &Prehashed {
                    value,
                    hash: self.token_hash,
                    device,
                    accessor: false,
                },
            )?;
        }
        if let Some(value) = &a.accessor {
            m.serialize_entry(
                "accessor",
                &Prehashed {
                    value,
                    hash: self.accessor_hash,
                    device,
                    accessor: true,
                },
            )?;
        }
        if !a.display_name.is_empty() {
            m.serialize_entry("display_name", &a.display_name)?;
        }
        m.serialize_entry("policies", &a.policies)?;
        m.serialize_entry("token_policies", &a.token_policies)?;
        if !a.identity_policies.is_empty() {
            m.serialize_entry("identity_policies", &a.identity_policies)?;
        }
        if !a.metadata.is_empty() {
            let metadata: Vec<(&String, Secret<'_>)> = a
                .metadata
                .iter()
                .map(|(k, v)| {
                    (
                        k,
                        Secret {
                            value: v,
                            device,
                            accessor: false,
                        },
                    )
                })
                .collect();
            m.serialize_entry("metadata", &MapOut(&metadata))?;
        }
        if !a.entity_id.is_empty() {
            m.serialize_entry("entity_id", &a.entity_id)?;
        }
        m.serialize_entry("token_type", &a.token_type)?;
        if a.token_ttl > 0 {
            m.serialize_entry("token_ttl", &a.token_ttl)?;
        }
        if let Some(t) = &a.token_issue_time {
            m.serialize_entry("token_issue_time", t)?;
        }
        if let Some(n) = a.remaining_uses {
            m.serialize_entry("remaining_uses", &n)?;
        }
        m.end()
    }
}

struct MapOut<'a, 'b>(&'a [(&'a String, Secret<'b>)]);

impl Serialize for MapOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct RequestOut<'a> {
    req: &'a AuditRequest<'a>,
    device: &'a Device,
    token_hash: Option<&'a HashStr>,
    accessor_hash: Option<&'a HashStr>,
}

impl Serialize for RequestOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (req, device) = (self.req, self.device);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &req.id)?;
        m.serialize_entry("operation", req.operation.as_str())?;
        if !req.mount_point.is_empty() {
            m.serialize_entry("mount_point", &req.mount_point)?;
            m.serialize_entry("mount_type", &req.mount_type)?;
            m.serialize_entry("mount_accessor", &req.mount_accessor)?;
        }
        if let Some(value) = &req.client_token {
            m.serialize_entry(
                "client_token",
                &Prehashed {
                    value,
                    hash: self.token_hash,
                    device,
                    accessor: false,
                },
            )?;
        }
        if let Some(value) = &req.client_token_accessor {
            m.serialize_entry(
                "client_token_accessor",
                &Prehashed {
                    value,
                    hash: self.accessor_hash,
                    device,
                    accessor: true,
                },
            )?;
        }
        m.serialize_entry("namespace", &NamespaceRoot)?;
        m.serialize_entry("path", &req.path)?;
        if let Some(data) = req.data {
            m.serialize_entry("data", &HashedMap { map: data, device })?;
        }
        if let Some(addr) = &req.remote_address {
            m.serialize_entry("remote_address", addr)?;
        }
        if let Some(port) = req.remote_port {
            m.serialize_entry("remote_port", &port)?;
        }
        m.end()
    }
}

struct NamespaceRoot;

impl Serialize for NamespaceRoot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("id", "root")?;
        m.end()
    }
}

struct ResponseOut<'a> {
    req: &'a AuditRequest<'a>,
    resp: &'a AuditResponse<'a>,
    device: &'a Device,
}

impl Serialize for ResponseOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (req, resp, device) = (self.req, self.resp, self.device);
        let mut m = s.serialize_map(None)?;
        if !req.mount_point.is_empty() {
            m.serialize_entry("mount_point", &req.mount_point)?;
            m.serialize_entry("mount_type", &req.mount_type)?;
            m.serialize_entry("mount_accessor", &req.mount_accessor)?;
        }
        m.serialize_entry("status_code", &resp.status)?;
        if let Some(auth) = &resp.auth {
            m.serialize_entry(
                "auth",
                &AuthOut {
                    auth: Some(auth),
                    device,
                    token_hash: None,
                    accessor_hash: None,
                },
            )?;
        }
        if let Some(data) = resp.data {
            m.serialize_entry(
                "data",
                &Hashed {
                    value: data,
                    device,
                },
            )?;
        }
        if !resp.warnings.is_empty() {
            m.serialize_entry("warnings", &resp.warnings)?;
        }
        m.end()
    }
}

/// The part of an audit line that is the same in the request line and the response
/// line of one request: `"auth":{..},"request":{..}` (no enclosing braces).
pub(super) fn shared_part(
    auth: Option<&AuditAuth>,
    request: &AuditRequest<'_>,
    device: &Device,
) -> serde_json::Result<Vec<u8>> {
    let auth_part = match auth {
        Some(a) if a.accessor.is_some() => device.cached_auth_part(a)?,
        other => Arc::new(AuthPart::encode(other, device)?),
    };
    // The caller's token and accessor appear in the request part too: reuse their hashes.
    let same_token = auth.and_then(|a| a.client_token.as_ref()) == request.client_token.as_ref();
    let same_accessor =
        auth.and_then(|a| a.accessor.as_ref()) == request.client_token_accessor.as_ref();
    let part = RequestOut {
        req: request,
        device,
        token_hash: auth_part.token_hash.as_ref().filter(|_| same_token),
        accessor_hash: auth_part.accessor_hash.as_ref().filter(|_| same_accessor),
    };
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"\"auth\":");
    out.extend_from_slice(&auth_part.json);
    out.extend_from_slice(b",\"request\":");
    serde_json::to_writer(&mut out, &part)?;
    Ok(out)
}

/// A token's `auth` object as the device writes it, with the HMACs of its token and
/// accessor (reused in the request part). The same for every request the token makes.
pub(super) struct AuthPart {
    /// What this was encoded from: a cached part is reused only for an equal `auth`.
    pub(super) source: Option<AuditAuth>,
    token_hash: Option<HashStr>,
    accessor_hash: Option<HashStr>,
    json: Vec<u8>,
}

impl AuthPart {
    pub(super) fn encode(
        auth: Option<&AuditAuth>,
        device: &Device,
    ) -> serde_json::Result<AuthPart> {
        let hashed = |value: Option<&String>, accessor: bool| {
            value
                .filter(|_| !device.log_raw && (!accessor || device.hmac_accessor))
                .map(|v| device.hash_str(v))
        };
        let token_hash = hashed(auth.and_then(|a| a.client_token.as_ref()), false);
        let accessor_hash = hashed(auth.and_then(|a| a.accessor.as_ref()), true);
        let json = serde_json::to_vec(&AuthOut {
            auth,
            device,
            token_hash: token_hash.as_ref(),
            accessor_hash: accessor_hash.as_ref(),
        })?;
        Ok(AuthPart {
            source: auth.cloned(),
            token_hash,
            accessor_hash,
            json,
        })
    }
}

/// One audit line without its closing `prev_hash` (added when the line is chained):
/// `{"time":..,"type":..,` + the shared part + for a response, `"response"` and `"error"`.
pub(super) fn line_body(
    time: &str,
    shared: &[u8],
    response: Option<(&AuditRequest<'_>, &AuditResponse<'_>)>,
    device: &Device,
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(shared.len() + 512);
    out.extend_from_slice(b"{\"time\":");
    serde_json::to_writer(&mut out, time)?;
    out.extend_from_slice(if response.is_some() {
        b",\"type\":\"response\","
    } else {
        b",\"type\":\"request\","
    });
    out.extend_from_slice(shared);
    if let Some((req, resp)) = response {
        out.extend_from_slice(b",\"response\":");
        serde_json::to_writer(&mut out, &ResponseOut { req, resp, device })?;
        if let Some(error) = &resp.error {
            out.extend_from_slice(b",\"error\":");
            serde_json::to_writer(&mut out, error)?;
        }
    }
    Ok(out)
}
