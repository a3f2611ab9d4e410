//! The differential harness: one scenario of requests sent to OpenBao (`bao server -dev`,
//! the reference) and to secretvault, compared by status code and JSON shape. Values that
//! differ between any two servers (times, ids, tokens, ciphertexts) are compared by type
//! only. Every remaining difference must be in the test's allow-list with a reason; an
//! allow-list entry that matches nothing fails the test too, so the list stays honest.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

/// One request of a scenario.
pub struct Step {
    pub name: String,
    /// Token variable to send (`root` or one captured earlier); `None` sends no token.
    pub token: Option<String>,
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
    pub content_type: Option<&'static str>,
    /// Store these JSON pointers of the response under these variable names.
    pub capture: Vec<(String, String)>,
    /// Keys compared by type only in this step's responses (beyond the global list).
    pub volatile: Vec<&'static str>,
}

#[derive(Default)]
pub struct Scenario(pub Vec<Step>);

impl Scenario {
    pub fn step(&mut self, name: &str, method: &str, path: &str, body: Option<Value>) -> &mut Step {
        self.0.push(Step {
            name: name.to_string(),
            token: Some("root".into()),
            method: method.into(),
            path: path.into(),
            body,
            content_type: None,
            capture: Vec::new(),
            volatile: Vec::new(),
        });
        self.0.last_mut().expect("just pushed")
    }
}

impl Step {
    pub fn as_token(&mut self, var: &str) -> &mut Self {
        self.token = Some(var.into());
        self
    }

    pub fn anonymous(&mut self) -> &mut Self {
        self.token = None;
        self
    }

    pub fn capture(&mut self, var: &str, pointer: &str) -> &mut Self {
        self.capture.push((var.into(), pointer.into()));
        self
    }

    pub fn merge_patch(&mut self) -> &mut Self {
        self.content_type = Some("application/merge-patch+json");
        self
    }

    /// Compares these keys by type only (random outputs such as a data key).
    pub fn volatile(&mut self, keys: &[&'static str]) -> &mut Self {
        self.volatile.extend_from_slice(keys);
        self
    }
}

/// Fills `{var}` placeholders in strings.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn substitute_value(value: &Value, vars: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(substitute(s, vars)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute_value(v, vars)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute_value(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Sends one request outside a scenario (setup such as enabling a mount on OpenBao).
pub fn send(base: &str, token: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let http = reqwest::blocking::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let resp = http
        .request(method, format!("{base}/v1/{path}"))
        .header("X-Vault-Token", token)
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// Mounts transit at `transit/` on an OpenBao dev server (secretvault's is built in).
pub fn enable_transit_on_openbao(base: &str, token: &str) {
    let (status, body) = send(
        base,
        token,
        "POST",
        "sys/mounts/transit",
        &serde_json::json!({"type": "transit"}),
    );
    assert_eq!(status, 204, "enabling transit on OpenBao: {body}");
}

/// Runs the scenario against one server; returns each step's status and body.
pub fn run(base: &str, root: &str, scenario: &Scenario) -> Vec<(u16, Value)> {
    let http = reqwest::blocking::Client::new();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("root".into(), root.into());
    vars.insert("bogus".into(), "not-a-token-either-server-issued".into());
    let mut results = Vec::new();
    for step in &scenario.0 {
        let method = reqwest::Method::from_bytes(step.method.as_bytes()).expect("method");
        let mut req = http.request(
            method,
            format!("{base}/v1/{}", substitute(&step.path, &vars)),
        );
        if let Some(var) = &step.token {
            let token = vars
                .get(var)
                .unwrap_or_else(|| panic!("step {}: no token variable {var}", step.name));
            req = req.header("X-Vault-Token", token);
        }
        if let Some(body) = &step.body {
            req = req
                .header(
                    "Content-Type",
                    step.content_type.unwrap_or("application/json"),
                )
                .body(serde_json::to_vec(&substitute_value(body, &vars)).expect("JSON"));
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("step {}: {e}", step.name));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        for (var, pointer) in &step.capture {
            // A missing capture shows up as a difference in this or a later step.
            let captured = body
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .unwrap_or("<not captured>");
            vars.insert(var.clone(), captured.to_string());
        }
        results.push((status, body));
    }
    results
}

/// Keys whose values differ between any two servers (times, ids, secrets, build info);
/// compared by type, and for strings by emptiness.
pub const VOLATILE: &[&str] = &[
    "request_id",
    "created_time",
    "updated_time",
    "creation_time",
    "issue_time",
    "expire_time",
    "last_renewal",
    "last_renewal_time",
    "last_update_time",
    "deletion_time",
    "accessor",
    "client_token",
    "id",
    "entity_id",
    "canonical_id",
    "cluster_id",
    "cluster_name",
    "server_time_utc",
    "uuid",
    "running_plugin_version",
    "install_time",
    "hash",
    "ttl",
    "token_accessor",
    "mount_accessor",
    "build_date",
    "storage_type",
    // Transit: random nonces and key material make every ciphertext differ.
    "ciphertext",
];

pub fn normalize(value: &Value, key: Option<&str>, extra_volatile: &[&str]) -> Value {
    let volatile = key.is_some_and(|k| VOLATILE.contains(&k) || extra_volatile.contains(&k))
        || (key == Some("version") && value.is_string())
        // Per-version creation times (transit's `keys` map: {"1": <unix time>}).
        || (value.is_number() && key.is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())));
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalize(v, Some(k), extra_volatile)))
                .collect(),
        ),
        // LIST results are sets: Vault returns some (identity names) in map order.
        Value::Array(items) if key == Some("keys") => {
            let mut items: Vec<Value> = items
                .iter()
                .map(|v| normalize(v, None, extra_volatile))
                .collect();
            items.sort_by_key(|v| v.to_string());
            Value::Array(items)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| normalize(v, None, extra_volatile))
                .collect(),
        ),
        Value::String(s) if volatile => Value::String(if s.is_empty() {
            String::new()
        } else {
            "<string>".into()
        }),
        Value::Number(_) if volatile => Value::String("<number>".into()),
        // Generated entity names: `entity_<8 hex>` (OpenBao appends a namespace suffix).
        Value::String(s) if s.starts_with("entity_") && s.len() >= 15 => {
            Value::String("<entity-name>".into())
        }
        other => other.clone(),
    }
}

/// One difference: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    pub step: String,
    pub pointer: String,
    pub kind: &'static str,
    pub detail: String,
}

pub fn compare(
    step: &str,
    pointer: &str,
    reference: &Value,
    ours: &Value,
    out: &mut Vec<Difference>,
) {
    let diff = |kind: &'static str, detail: String| Difference {
        step: step.to_string(),
        pointer: pointer.to_string(),
        kind,
        detail,
    };
    match (reference, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let child = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => compare(step, &child, x, y, out),
                    (Some(x), None) => out.push(Difference {
                        step: step.into(),
                        pointer: child,
                        kind: "only_in_openbao",
                        detail: x.to_string(),
                    }),
                    (None, Some(y)) => out.push(Difference {
                        step: step.into(),
                        pointer: child,
                        kind: "only_in_secretvault",
                        detail: y.to_string(),
                    }),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(step, &format!("{pointer}/{i}"), x, y, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(diff("value", format!("openbao {a} vs secretvault {b}"))),
    }
}

/// Every difference between the two runs of `scenario`.
pub fn differences(
    scenario: &Scenario,
    reference: &[(u16, Value)],
    actual: &[(u16, Value)],
) -> Vec<Difference> {
    let mut differences = Vec::new();
    for (step, ((s1, b1), (s2, b2))) in scenario.0.iter().zip(reference.iter().zip(actual)) {
        if s1 != s2 {
            differences.push(Difference {
                step: step.name.clone(),
                pointer: String::new(),
                kind: "status",
                detail: format!("openbao {s1} vs secretvault {s2}: {b1} / {b2}"),
            });
            continue;
        }
        compare(
            &step.name,
            "",
            &normalize(b1, None, &step.volatile),
            &normalize(b2, None, &step.volatile),
            &mut differences,
        );
    }
    differences
}

/// One explained difference; `*` in `step` and `pointer` matches any text.
#[derive(Debug, Deserialize)]
pub struct Allowed {
    pub step: String,
    pub pointer: String,
    pub kind: String,
    pub reason: String,
}

pub fn matches_glob(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    // `split` yields at least one part.
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Parses an allow-list file's text; every entry needs a real reason.
pub fn allowlist(file: &str, text: &str) -> Vec<Allowed> {
    let entries: Vec<Allowed> =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{file} is not valid: {e}"));
    for e in &entries {
        assert!(
            e.reason.len() >= 20,
            "{file}: entry {}:{} needs a real reason",
            e.step,
            e.pointer
        );
    }
    entries
}

/// Fails unless every difference is allowed and every allow-list entry is used.
pub fn assert_all_explained(
    suite: &str,
    steps: usize,
    differences: &[Difference],
    allowed: &[Allowed],
) {
    let mut used = vec![false; allowed.len()];
    let mut unexplained = Vec::new();
    for d in differences {
        match allowed.iter().position(|a| {
            matches_glob(&a.step, &d.step)
                && matches_glob(&a.pointer, &d.pointer)
                && a.kind == d.kind
        }) {
            Some(i) => used[i] = true,
            None => unexplained.push(d),
        }
    }
    let stale: Vec<&Allowed> = allowed
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a)
        .collect();
    let report: String = unexplained
        .iter()
        .map(|d| format!("  [{}] {} {}: {}\n", d.step, d.kind, d.pointer, d.detail))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{suite}: {} unexplained differences from OpenBao:\n{report}",
        unexplained.len()
    );
    assert!(
        stale.is_empty(),
        "{suite}: allow-list entries that no longer match any difference (remove them): {stale:?}"
    );
    println!(
        "{suite}: {steps} steps, {} known differences, all documented",
        differences.len()
    );
}
