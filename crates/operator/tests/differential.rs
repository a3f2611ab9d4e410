//! The differential suite: one sequence of KV v2, token, policy, identity and sys
//! requests sent to OpenBao (`bao server -dev`, the reference) and to secretvault; status
//! codes and JSON shapes must match. Times, ids, tokens and accessors are compared by
//! type only. Every remaining difference must be listed, with its reason, in
//! `tests/data/differential-allowlist.json` (documented in docs/compatibility.md); an
//! allow-list entry that no longer matches anything fails the test too, so the list
//! stays honest.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::DevServer;
use secretvault_testsupport::{BAO_ROOT_TOKEN, BaoDev};
use serde::Deserialize;
use serde_json::{Value, json};

/// One request of the scenario.
struct Step {
    name: String,
    /// Token variable to send (`root` or one captured earlier); `None` sends no token.
    token: Option<String>,
    method: String,
    path: String,
    body: Option<Value>,
    content_type: Option<&'static str>,
    /// Store these JSON pointers of the response under these variable names.
    capture: Vec<(String, String)>,
}

struct Scenario(Vec<Step>);

impl Scenario {
    fn step(&mut self, name: &str, method: &str, path: &str, body: Option<Value>) -> &mut Step {
        self.0.push(Step {
            name: name.to_string(),
            token: Some("root".into()),
            method: method.into(),
            path: path.into(),
            body,
            content_type: None,
            capture: Vec::new(),
        });
        self.0.last_mut().expect("just pushed")
    }
}

impl Step {
    fn as_token(&mut self, var: &str) -> &mut Self {
        self.token = Some(var.into());
        self
    }

    fn anonymous(&mut self) -> &mut Self {
        self.token = None;
        self
    }

    fn capture(&mut self, var: &str, pointer: &str) -> &mut Self {
        self.capture.push((var.into(), pointer.into()));
        self
    }

    fn merge_patch(&mut self) -> &mut Self {
        self.content_type = Some("application/merge-patch+json");
        self
    }
}

/// Fills `{var}` placeholders in strings.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
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

fn run(base: &str, root: &str, scenario: &Scenario) -> Vec<(u16, Value)> {
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
const VOLATILE: &[&str] = &[
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
];

fn normalize(value: &Value, key: Option<&str>) -> Value {
    let volatile =
        key.is_some_and(|k| VOLATILE.contains(&k)) || (key == Some("version") && value.is_string());
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalize(v, Some(k))))
                .collect(),
        ),
        // LIST results are sets: Vault returns some (identity names) in map order.
        Value::Array(items) if key == Some("keys") => {
            let mut items: Vec<Value> = items.iter().map(|v| normalize(v, None)).collect();
            items.sort_by_key(|v| v.to_string());
            Value::Array(items)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| normalize(v, None)).collect()),
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
struct Difference {
    step: String,
    pointer: String,
    kind: &'static str,
    detail: String,
}

fn compare(step: &str, pointer: &str, reference: &Value, ours: &Value, out: &mut Vec<Difference>) {
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

#[derive(Debug, Deserialize)]
struct Allowed {
    step: String,
    pointer: String,
    kind: String,
    reason: String,
}

fn matches_glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

fn allowlist() -> Vec<Allowed> {
    let text = include_str!("data/differential-allowlist.json");
    let entries: Vec<Allowed> =
        serde_json::from_str(text).expect("differential-allowlist.json is valid");
    for e in &entries {
        assert!(
            e.reason.len() >= 20,
            "allow-list entry {}:{} needs a real reason",
            e.step,
            e.pointer
        );
    }
    entries
}

fn scenario() -> Scenario {
    let mut s = Scenario(Vec::new());
    // --- KV v2 -------------------------------------------------------------------------
    s.step(
        "kv write v1",
        "POST",
        "secret/data/d/app",
        Some(json!({"data": {"user": "app", "password": "one", "n": 5, "nested": {"a": [1, 2]}}})),
    );
    s.step("kv read latest", "GET", "secret/data/d/app", None);
    s.step(
        "kv write cas ok",
        "POST",
        "secret/data/d/app",
        Some(json!({"data": {"password": "two"}, "options": {"cas": 1}})),
    );
    s.step(
        "kv write cas mismatch",
        "POST",
        "secret/data/d/app",
        Some(json!({"data": {"password": "x"}, "options": {"cas": 1}})),
    );
    s.step(
        "kv create-only",
        "POST",
        "secret/data/d/new",
        Some(json!({"data": {"a": "1"}, "options": {"cas": 0}})),
    );
    s.step(
        "kv create-only again",
        "POST",
        "secret/data/d/new",
        Some(json!({"data": {"a": "2"}, "options": {"cas": 0}})),
    );
    s.step(
        "kv read version 1",
        "GET",
        "secret/data/d/app?version=1",
        None,
    );
    s.step(
        "kv read missing version",
        "GET",
        "secret/data/d/app?version=99",
        None,
    );
    s.step("kv read missing secret", "GET", "secret/data/d/none", None);
    s.step(
        "kv write no data",
        "POST",
        "secret/data/d/x",
        Some(json!({"options": {}})),
    );
    s.step(
        "kv write data not a map",
        "POST",
        "secret/data/d/x",
        Some(json!({"data": "str"})),
    );
    s.step(
        "kv patch",
        "PATCH",
        "secret/data/d/app",
        Some(json!({"data": {"password": "three", "user": null}})),
    )
    .merge_patch();
    s.step(
        "kv patch wrong content type",
        "PATCH",
        "secret/data/d/app",
        Some(json!({"data": {"a": "b"}})),
    );
    s.step(
        "kv patch missing",
        "PATCH",
        "secret/data/d/none",
        Some(json!({"data": {"a": "b"}})),
    )
    .merge_patch();
    s.step("kv read after patch", "GET", "secret/data/d/app", None);
    s.step("kv soft delete latest", "DELETE", "secret/data/d/app", None);
    s.step("kv read soft-deleted", "GET", "secret/data/d/app", None);
    s.step(
        "kv undelete",
        "POST",
        "secret/undelete/d/app",
        Some(json!({"versions": [3]})),
    );
    s.step("kv read undeleted", "GET", "secret/data/d/app", None);
    s.step(
        "kv delete versions",
        "POST",
        "secret/delete/d/app",
        Some(json!({"versions": [1]})),
    );
    s.step(
        "kv delete no versions",
        "POST",
        "secret/delete/d/app",
        Some(json!({})),
    );
    s.step(
        "kv destroy",
        "PUT",
        "secret/destroy/d/app",
        Some(json!({"versions": [2]})),
    );
    s.step(
        "kv read destroyed",
        "GET",
        "secret/data/d/app?version=2",
        None,
    );
    s.step("kv metadata read", "GET", "secret/metadata/d/app", None);
    s.step(
        "kv metadata write",
        "POST",
        "secret/metadata/d/app",
        Some(json!({"max_versions": 2, "custom_metadata": {"owner": "payments", "tier": "1"}})),
    );
    s.step(
        "kv metadata read after write",
        "GET",
        "secret/metadata/d/app",
        None,
    );
    s.step(
        "kv write past max_versions",
        "POST",
        "secret/data/d/app",
        Some(json!({"data": {"password": "four"}})),
    );
    s.step(
        "kv metadata after trim",
        "GET",
        "secret/metadata/d/app",
        None,
    );
    s.step(
        "kv metadata patch",
        "PATCH",
        "secret/metadata/d/app",
        Some(json!({"custom_metadata": {"tier": null}})),
    )
    .merge_patch();
    s.step(
        "kv metadata read after patch",
        "GET",
        "secret/metadata/d/app",
        None,
    );
    s.step(
        "kv metadata custom too long",
        "POST",
        "secret/metadata/d/app",
        Some(json!({"custom_metadata": {"k": "x".repeat(600)}})),
    );
    s.step(
        "kv metadata bad max_versions",
        "POST",
        "secret/metadata/d/app",
        Some(json!({"max_versions": "abc"})),
    );
    s.step("kv list method", "LIST", "secret/metadata/d", None);
    s.step("kv list query", "GET", "secret/metadata/?list=true", None);
    s.step(
        "kv list missing",
        "LIST",
        "secret/metadata/nothing-here",
        None,
    );
    s.step("kv subkeys", "GET", "secret/subkeys/d/new", None);
    s.step("kv config read", "GET", "secret/config", None);
    s.step(
        "kv cas_required on secret",
        "POST",
        "secret/metadata/d/strict",
        Some(json!({"cas_required": true})),
    );
    s.step(
        "kv write without cas when required",
        "POST",
        "secret/data/d/strict",
        Some(json!({"data": {"a": "1"}})),
    );
    s.step(
        "kv write with cas when required",
        "POST",
        "secret/data/d/strict",
        Some(json!({"data": {"a": "1"}, "options": {"cas": 0}})),
    );
    s.step("kv invalid path", "GET", "secret/nope/x", None);
    s.step(
        "kv metadata delete",
        "DELETE",
        "secret/metadata/d/app",
        None,
    );
    s.step(
        "kv read after metadata delete",
        "GET",
        "secret/data/d/app",
        None,
    );
    s.step("kv delete missing", "DELETE", "secret/data/d/never", None);

    // --- Tokens ------------------------------------------------------------------------
    s.step(
        "token maker policy",
        "PUT",
        "sys/policies/acl/token-maker",
        Some(json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"})),
    );
    s.step("token create", "POST", "auth/token/create", Some(json!({"policies": ["default", "token-maker"], "ttl": "1h", "meta": {"team": "a"}, "display_name": "Bob Smith"})))
        .capture("t1", "/auth/client_token")
        .capture("a1", "/auth/accessor");
    s.step("token lookup-self", "GET", "auth/token/lookup-self", None)
        .as_token("t1");
    s.step(
        "token renew-self",
        "POST",
        "auth/token/renew-self",
        Some(json!({"increment": "30m"})),
    )
    .as_token("t1");
    s.step(
        "token lookup by token",
        "POST",
        "auth/token/lookup",
        Some(json!({"token": "{t1}"})),
    );
    s.step(
        "token lookup-accessor",
        "POST",
        "auth/token/lookup-accessor",
        Some(json!({"accessor": "{a1}"})),
    );
    s.step(
        "token child not subset",
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["other"]})),
    )
    .as_token("t1");
    s.step(
        "token child inherits",
        "POST",
        "auth/token/create",
        Some(json!({"ttl": "10m"})),
    )
    .as_token("t1")
    .capture("child", "/auth/client_token");
    s.step(
        "token orphan",
        "POST",
        "auth/token/create",
        Some(json!({"no_parent": true, "policies": ["default"]})),
    );
    s.step(
        "token create-orphan",
        "POST",
        "auth/token/create-orphan",
        Some(json!({"policies": ["default"]})),
    );
    s.step(
        "token not renewable",
        "POST",
        "auth/token/create",
        Some(json!({"renewable": false, "policies": ["default"]})),
    )
    .capture("fixed", "/auth/client_token");
    s.step(
        "token renew not renewable",
        "POST",
        "auth/token/renew-self",
        Some(json!({})),
    )
    .as_token("fixed");
    s.step(
        "token use limit",
        "POST",
        "auth/token/create",
        Some(json!({"num_uses": 2, "policies": ["default"]})),
    )
    .capture("limited", "/auth/client_token");
    s.step("token use 1", "GET", "auth/token/lookup-self", None)
        .as_token("limited");
    s.step("token use 2", "GET", "auth/token/lookup-self", None)
        .as_token("limited");
    s.step("token use 3 refused", "GET", "auth/token/lookup-self", None)
        .as_token("limited");
    s.step(
        "token revoke parent",
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({"accessor": "{a1}"})),
    );
    s.step(
        "token revoked lookup",
        "GET",
        "auth/token/lookup-self",
        None,
    )
    .as_token("t1");
    s.step(
        "token child of revoked",
        "GET",
        "auth/token/lookup-self",
        None,
    )
    .as_token("child");
    s.step(
        "token bad ttl",
        "POST",
        "auth/token/create",
        Some(json!({"ttl": "forever"})),
    );
    s.step(
        "token role write",
        "POST",
        "auth/token/roles/agents",
        Some(json!({"allowed_policies": ["default"], "allowed_entity_aliases": ["agent-*"]})),
    );
    s.step("token role read", "GET", "auth/token/roles/agents", None);
    s.step("token role list", "LIST", "auth/token/roles", None);
    s.step(
        "token create by role",
        "POST",
        "auth/token/create/agents",
        Some(json!({"entity_alias": "agent-1"})),
    )
    .capture("agent", "/auth/client_token");
    s.step(
        "token role bad alias",
        "POST",
        "auth/token/create/agents",
        Some(json!({"entity_alias": "human"})),
    );
    s.step(
        "token revoke-self",
        "POST",
        "auth/token/revoke-self",
        Some(json!({})),
    )
    .as_token("agent");
    s.step(
        "token after revoke-self",
        "GET",
        "auth/token/lookup-self",
        None,
    )
    .as_token("agent");
    s.step("no token", "GET", "secret/data/d/new", None)
        .anonymous();
    s.step("bogus token", "GET", "secret/data/d/new", None)
        .as_token("bogus");

    // --- Policies ----------------------------------------------------------------------
    s.step("policy write", "PUT", "sys/policies/acl/reader", Some(json!({"policy": "path \"secret/data/d/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/metadata/d/*\" { capabilities = [\"list\"] }\n"})));
    s.step("policy read", "GET", "sys/policies/acl/reader", None);
    s.step("policy list", "LIST", "sys/policies/acl", None);
    s.step("policy legacy list", "GET", "sys/policy", None);
    s.step("policy legacy read", "GET", "sys/policy/reader", None);
    s.step(
        "policy bad capability",
        "PUT",
        "sys/policies/acl/bad",
        Some(json!({"policy": "path \"x\" { capabilities = [\"raed\"] }"})),
    );
    s.step(
        "policy update root",
        "PUT",
        "sys/policies/acl/root",
        Some(json!({"policy": "path \"x\" { capabilities = [\"read\"] }"})),
    );
    s.step(
        "policy delete default",
        "DELETE",
        "sys/policies/acl/default",
        None,
    );
    s.step(
        "policy read missing",
        "GET",
        "sys/policies/acl/missing",
        None,
    );
    s.step(
        "policy token",
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["reader"]})),
    )
    .capture("reader", "/auth/client_token");
    s.step("policy allowed read", "GET", "secret/data/d/new", None)
        .as_token("reader");
    s.step(
        "policy denied write",
        "POST",
        "secret/data/d/new",
        Some(json!({"data": {"a": "b"}})),
    )
    .as_token("reader");
    s.step("policy denied other path", "GET", "sys/mounts", None)
        .as_token("reader");
    s.step("policy list allowed", "LIST", "secret/metadata/d/", None)
        .as_token("reader");
    s.step(
        "capabilities-self",
        "POST",
        "sys/capabilities-self",
        Some(json!({"paths": ["secret/data/d/x", "secret/metadata/d/x", "sys/mounts"]})),
    )
    .as_token("reader");
    s.step(
        "capabilities of token",
        "POST",
        "sys/capabilities",
        Some(json!({"token": "{reader}", "paths": ["secret/data/d/x"]})),
    );
    s.step(
        "ui mounts preflight allowed",
        "GET",
        "sys/internal/ui/mounts/secret/d/x",
        None,
    )
    .as_token("reader");
    s.step("policy delete", "DELETE", "sys/policies/acl/reader", None);
    s.step(
        "policy deleted applies at once",
        "GET",
        "secret/data/d/new",
        None,
    )
    .as_token("reader");

    // --- Identity ----------------------------------------------------------------------
    s.step(
        "entity create",
        "POST",
        "identity/entity",
        Some(json!({"name": "alice", "metadata": {"agent_id": "a1"}, "policies": ["default"]})),
    )
    .capture("e1", "/data/id");
    s.step(
        "entity update by name",
        "POST",
        "identity/entity",
        Some(json!({"name": "alice", "metadata": {"agent_id": "a2"}})),
    );
    s.step(
        "entity read by name",
        "GET",
        "identity/entity/name/alice",
        None,
    );
    s.step("entity read by id", "GET", "identity/entity/id/{e1}", None);
    s.step("entity list names", "LIST", "identity/entity/name", None);

    // --- sys -----------------------------------------------------------------------------
    s.step("health", "GET", "sys/health", None).anonymous();
    s.step("seal-status", "GET", "sys/seal-status", None)
        .anonymous();
    // Built in on ours, mounted here on OpenBao, so both list it.
    s.step(
        "enable transit",
        "POST",
        "sys/mounts/transit",
        Some(json!({"type": "transit"})),
    );
    s.step("mounts", "GET", "sys/mounts", None);
    s.step(
        "ui mounts for kv",
        "GET",
        "sys/internal/ui/mounts/secret/d/app",
        None,
    );
    // Built in on ours, enabled here on OpenBao, so both list it.
    s.step(
        "enable kubernetes auth",
        "POST",
        "sys/auth/kubernetes",
        Some(json!({"type": "kubernetes"})),
    );
    s.step("auth methods", "GET", "sys/auth", None);
    s.step("rotate keyring", "POST", "sys/rotate", Some(json!({})));
    s.step("key status", "GET", "sys/key-status", None);
    s.step("unknown route", "GET", "nope/x", None);
    s
}

#[test]
fn secretvault_answers_like_openbao() {
    let Some(bao) = BaoDev::start("differential suite") else {
        return;
    };
    let ours = DevServer::start();
    let scenario = scenario();
    let reference = run(&bao.url(), BAO_ROOT_TOKEN, &scenario);
    let actual = run(&ours.url, common::ROOT, &scenario);

    let mut differences = Vec::new();
    for (step, ((s1, b1), (s2, b2))) in scenario.0.iter().zip(reference.iter().zip(&actual)) {
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
            &normalize(b1, None),
            &normalize(b2, None),
            &mut differences,
        );
    }

    let allowed = allowlist();
    let mut used = vec![false; allowed.len()];
    let mut unexplained = Vec::new();
    for d in &differences {
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
        "{} unexplained differences from OpenBao:\n{report}",
        unexplained.len()
    );
    assert!(
        stale.is_empty(),
        "allow-list entries that no longer match any difference (remove them): {stale:?}"
    );
    println!(
        "differential suite: {} steps, {} known differences, all documented",
        scenario.0.len(),
        differences.len()
    );
}
