//! KV v2 requests with arbitrary paths and bodies, through the vault's router.
//!
//! The input is a script, one request per line: `METHOD path [JSON body]`, with METHOD one
//! of GET, LIST, PUT, POST, PATCH, DELETE; the path is relative to the `secret/` mount
//! (`data/a`, `metadata/a`, `delete/a`, `undelete/a`, `destroy/a`, `subkeys/a`, `config`)
//! and may use `%XX` escapes. Bodies that are not JSON objects are skipped: the HTTP
//! server refuses them before the engine sees them. GET, LIST and DELETE pass the body as
//! their query parameters.
//!
//! Checks: no panic; every answer is one a client may get for its own mistakes (200, 204,
//! 400, 404 or 405 — never a 5xx); and once the script's secrets are deleted, nothing is
//! left in storage (no orphaned version data). Each input cleans up after itself, so
//! inputs do not depend on one another and memory stays bounded.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use secretvault_engine::Operation;
use secretvault_engine::storage::Backend;
use secretvault_fuzz::{harness, json_object};
use serde_json::{Map, Value, json};

/// Enough requests for write → patch → delete → undelete → destroy → read sequences.
const MAX_REQUESTS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let h = harness();
    let mut secrets = BTreeSet::new();
    let mut touched_config = false;
    for line in text.lines().take(MAX_REQUESTS) {
        let (method, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (path, body) = rest.split_once(' ').unwrap_or((rest, ""));
        let operation = match method {
            "GET" => Some(Operation::Read),
            "LIST" => Some(Operation::List),
            "PUT" | "POST" => None,
            "PATCH" => Some(Operation::Patch),
            "DELETE" => Some(Operation::Delete),
            _ => continue,
        };
        let Some(body) = json_object(body.as_bytes()) else {
            continue;
        };
        let path = percent_decode(path);
        match path.split_once('/') {
            // Folders (`metadata/` for LIST) hold nothing of their own to clean up.
            Some((_, secret)) if !secret.is_empty() && !secret.ends_with('/') => {
                secrets.insert(secret.to_string());
            }
            Some(_) => {}
            None => touched_config |= path == "config",
        }
        let reply = h.request(operation, &format!("secret/{path}"), body);
        assert!(
            matches!(reply.status, 200 | 204 | 400 | 404 | 405),
            "{method} {path:?}: status {} {:?}",
            reply.status,
            reply.body
        );
    }

    for secret in &secrets {
        let reply = h.request(
            Some(Operation::Delete),
            &format!("secret/metadata/{secret}"),
            Map::new(),
        );
        assert!(
            matches!(reply.status, 204 | 400 | 404),
            "cleanup of {secret:?}: {reply:?}"
        );
    }
    if touched_config {
        let defaults = json!({"max_versions": 0, "cas_required": false, "delete_version_after": 0});
        let Value::Object(defaults) = defaults else {
            unreachable!("a JSON object literal")
        };
        let reply = h.request(None, "secret/config", defaults);
        assert_eq!(reply.status, 204, "config reset: {reply:?}");
    }
    for prefix in ["kv/secret/meta/", "kv/secret/blob/"] {
        let left = h.rt.block_on(h.storage.list(prefix)).expect("list storage");
        assert!(left.is_empty(), "left in storage under {prefix}: {left:?}");
    }
});

/// `%XX` escapes decoded (so paths can hold spaces, newlines and NULs, as URLs can);
/// anything else as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
