//! Audit entries written straight from the borrowed request, response and token —
//! secret strings HMAC-ed on the way — with no intermediate JSON tree, through
//! [`crate::json_out`]. This runs twice per request, so it avoids allocation and
//! `serde_json`'s byte-at-a-time string escaping: the profile of the KV read path was
//! dominated first by building and dropping `serde_json::Value` maps here, then by that
//! escaping loop.

use std::sync::Arc;

use serde_json::Value;

use super::{AuditAuth, AuditRequest, AuditResponse, Device};
use crate::json_out as json;

/// `hmac-sha256:` and 64 hex digits.
#[derive(Clone)]
pub(super) struct HashStr([u8; 76]);

impl HashStr {
    pub(super) fn as_str(&self) -> &str {
        // Built from an ASCII prefix and hex digits only.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Quoted, as it appears in a line (no escaping needed: ASCII letters and digits).
    fn write(&self, out: &mut Vec<u8>) {
        json::ascii(out, &self.0);
    }
}

impl Device {
    pub(super) fn hash_str(&self, value: &str) -> HashStr {
        use hmac::Mac;
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; 76];
        out[..12].copy_from_slice(b"hmac-sha256:");
        out[12..].copy_from_slice(&crate::util::hex32(&digest));
        HashStr(out)
    }
}

impl Device {
    /// A secret string: HMAC-ed unless the device logs raw. Accessors stay readable when
    /// the device sets `hmac_accessor=false`.
    fn write_secret(&self, out: &mut Vec<u8>, value: &str, accessor: bool) {
        if self.log_raw || (accessor && !self.hmac_accessor) {
            json::string(out, value);
        } else {
            self.hash_str(value).write(out);
        }
    }

    /// A secret string whose HMAC may already be known (a token or accessor that appears
    /// in several places of a line): the known hash is written, else it is hashed now.
    fn write_prehashed(
        &self,
        out: &mut Vec<u8>,
        value: &str,
        hash: Option<&HashStr>,
        accessor: bool,
    ) {
        match hash {
            Some(hash) => hash.write(out),
            None => self.write_secret(out, value, accessor),
        }
    }

    /// Request or response data: every string inside HMAC-ed, keys readable.
    fn write_hashed(&self, out: &mut Vec<u8>, value: &Value) {
        json::value_with_strings(out, value, &mut |out, s| self.write_secret(out, s, false));
    }
}

/// Writes an object's members, with the commas between them.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    fn start(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, empty: true }
    }

    fn comma(&mut self) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
    }

    /// Writes `"key":` for a key that needs no escaping; returns the buffer for the value.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        self.comma();
        json::key(self.out, key);
        self.out
    }

    /// Like [`Self::key`], for any key.
    fn any_key(&mut self, key: &str) -> &mut Vec<u8> {
        self.comma();
        json::string(self.out, key);
        self.out.push(b':');
        self.out
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// A token's `auth` object. `token_hash` / `accessor_hash`: the HMACs of its token and
/// accessor when already computed.
fn write_auth(
    out: &mut Vec<u8>,
    auth: Option<&AuditAuth>,
    device: &Device,
    token_hash: Option<&HashStr>,
    accessor_hash: Option<&HashStr>,
) {
    let mut m = Object::start(out);
    let Some(a) = auth else {
        json::plain_string(m.key("token_type"), "default");
        return m.end();
    };
    if let Some(value) = &a.client_token {
        device.write_prehashed(m.key("client_token"), value, token_hash, false);
    }
    if let Some(value) = &a.accessor {
        device.write_prehashed(m.key("accessor"), value, accessor_hash, true);
    }
    if !a.display_name.is_empty() {
        json::string(m.key("display_name"), &a.display_name);
    }
    json::strings(m.key("policies"), &a.policies);
    json::strings(m.key("token_policies"), &a.token_policies);
    if !a.identity_policies.is_empty() {
        json::strings(m.key("identity_policies"), &a.identity_policies);
    }
    if !a.metadata.is_empty() {
        let mut metadata = Object::start(m.key("metadata"));
        for (k, v) in &a.metadata {
            device.write_secret(metadata.any_key(k), v, false);
        }
        metadata.end();
    }
    if !a.entity_id.is_empty() {
        json::string(m.key("entity_id"), &a.entity_id);
    }
    json::string(m.key("token_type"), &a.token_type);
    if a.token_ttl > 0 {
        json::int(m.key("token_ttl"), a.token_ttl);
    }
    if let Some(t) = &a.token_issue_time {
        json::string(m.key("token_issue_time"), t);
    }
    if let Some(n) = a.remaining_uses {
        json::int(m.key("remaining_uses"), n);
    }
    m.end();
}

/// The `mount_point`, `mount_type` and `mount_accessor` members, when the request hit a
/// mount.
fn write_mount(m: &mut Object<'_>, req: &AuditRequest<'_>) {
    if !req.mount_point.is_empty() {
        json::string(m.key("mount_point"), req.mount_point);
        json::string(m.key("mount_type"), req.mount_type);
        json::string(m.key("mount_accessor"), req.mount_accessor);
    }
}

fn write_request(
    out: &mut Vec<u8>,
    req: &AuditRequest<'_>,
    device: &Device,
    token_hash: Option<&HashStr>,
    accessor_hash: Option<&HashStr>,
) {
    let mut m = Object::start(out);
    json::string(m.key("id"), req.id);
    json::plain_string(m.key("operation"), req.operation.as_str());
    write_mount(&mut m, req);
    if let Some(value) = &req.client_token {
        device.write_prehashed(m.key("client_token"), value, token_hash, false);
    }
    if let Some(value) = &req.client_token_accessor {
        device.write_prehashed(m.key("client_token_accessor"), value, accessor_hash, true);
    }
    m.key("namespace").extend_from_slice(br#"{"id":"root"}"#);
    json::string(m.key("path"), req.path);
    if let Some(data) = req.data {
        json::object_with_strings(m.key("data"), data, &mut |out, s| {
            device.write_secret(out, s, false)
        });
    }
    if let Some(addr) = &req.remote_address {
        json::ip(m.key("remote_address"), *addr);
    }
    if let Some(port) = req.remote_port {
        json::uint(m.key("remote_port"), port.into());
    }
    m.end();
}

fn write_response(
    out: &mut Vec<u8>,
    req: &AuditRequest<'_>,
    resp: &AuditResponse<'_>,
    device: &Device,
) {
    let mut m = Object::start(out);
    write_mount(&mut m, req);
    json::uint(m.key("status_code"), resp.status.into());
    if let Some(auth) = &resp.auth {
        write_auth(m.key("auth"), Some(auth), device, None, None);
    }
    if let Some(data) = resp.data {
        device.write_hashed(m.key("data"), data);
    }
    if !resp.warnings.is_empty() {
        json::strings(m.key("warnings"), &resp.warnings);
    }
    m.end();
}

/// The part of an audit line that is the same in the request line and the response
/// line of one request: `"auth":{..},"request":{..}` (no enclosing braces).
pub(super) fn shared_part(
    auth: Option<&AuditAuth>,
    request: &AuditRequest<'_>,
    device: &Device,
) -> Vec<u8> {
    let auth_part = match auth {
        Some(a) if a.accessor.is_some() => device.cached_auth_part(a),
        other => Arc::new(AuthPart::encode(other, device)),
    };
    // The caller's token and accessor appear in the request part too: reuse their hashes.
    let same_token = auth.and_then(|a| a.client_token.as_deref()) == request.client_token;
    let same_accessor =
        auth.and_then(|a| a.accessor.as_ref()) == request.client_token_accessor.as_ref();
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"\"auth\":");
    out.extend_from_slice(&auth_part.json);
    out.extend_from_slice(b",\"request\":");
    write_request(
        &mut out,
        request,
        device,
        auth_part.token_hash.as_ref().filter(|_| same_token),
        auth_part.accessor_hash.as_ref().filter(|_| same_accessor),
    );
    out
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
    pub(super) fn encode(auth: Option<&AuditAuth>, device: &Device) -> AuthPart {
        let hashed = |value: Option<&String>, accessor: bool| {
            value
                .filter(|_| !device.log_raw && (!accessor || device.hmac_accessor))
                .map(|v| device.hash_str(v))
        };
        let token_hash = hashed(auth.and_then(|a| a.client_token.as_ref()), false);
        let accessor_hash = hashed(auth.and_then(|a| a.accessor.as_ref()), true);
        let mut json = Vec::with_capacity(512);
        write_auth(
            &mut json,
            auth,
            device,
            token_hash.as_ref(),
            accessor_hash.as_ref(),
        );
        AuthPart {
            source: auth.cloned(),
            token_hash,
            accessor_hash,
            json,
        }
    }
}

/// One audit line without its closing `prev_hash` (added when the line is chained):
/// `{"time":..,"type":..,` + the shared part + for a response, `"response"` and `"error"`.
pub(super) fn line_body(
    time: &str,
    shared: &[u8],
    response: Option<(&AuditRequest<'_>, &AuditResponse<'_>)>,
    device: &Device,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(shared.len() + 512);
    out.extend_from_slice(b"{\"time\":");
    json::string(&mut out, time);
    out.extend_from_slice(if response.is_some() {
        b",\"type\":\"response\","
    } else {
        b",\"type\":\"request\","
    });
    out.extend_from_slice(shared);
    if let Some((req, resp)) = response {
        out.extend_from_slice(b",\"response\":");
        write_response(&mut out, req, resp, device);
        if let Some(error) = &resp.error {
            out.extend_from_slice(b",\"error\":");
            json::string(&mut out, error);
        }
    }
    out
}
