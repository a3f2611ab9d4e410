use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::identity::Identity;
use crate::logical::Operation;

fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Arc<Policy>> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Arc::new(Policy::parse(&format!("p{i}"), t).unwrap()))
        .collect();
    Acl::new(&policies, &Identity::default())
}

fn caps(acl: &Acl, path: &str) -> Vec<&'static str> {
    acl.capabilities(path).names()
}

#[test]
fn exact_beats_glob_and_longest_prefix_wins() {
    let a = acl(&[r#"
        path "secret/*" { capabilities = ["read"] }
        path "secret/data/*" { capabilities = ["list"] }
        path "secret/data/exact" { capabilities = ["update"] }
    "#]);
    assert_eq!(caps(&a, "secret/data/exact"), vec!["update"]);
    assert_eq!(caps(&a, "secret/data/other"), vec!["list"]);
    assert_eq!(caps(&a, "secret/metadata/x"), vec!["read"]);
    assert_eq!(caps(&a, "transit/x"), vec!["deny"]);
}

#[test]
fn vault_priority_examples() {
    // From Vault's policy documentation: "the most specific match wins".
    let a = acl(&[r#"
        path "secret/+/bar" { capabilities = ["read"] }
        path "secret/foo/+" { capabilities = ["update"] }
        path "secret/foo/*" { capabilities = ["list"] }
        path "secret/+/+/baz" { capabilities = ["delete"] }
        path "secret/foo/+/baz" { capabilities = ["create"] }
        path "secret/foo/ba*" { capabilities = ["patch"] }
    "#]);
    // foo/ba* beats foo/+ and +/bar: its first wildcard comes latest.
    assert_eq!(caps(&a, "secret/foo/bar"), vec!["patch"]);
    // Without the ba* glob in play, foo/+ beats +/bar.
    assert_eq!(caps(&a, "secret/foo/qux"), vec!["update"]);
    // foo/+/baz beats +/+/baz (later wildcard) and foo/* (non-prefix over prefix at same position? later wildcard).
    assert_eq!(caps(&a, "secret/foo/x/baz"), vec!["create"]);
    assert_eq!(caps(&a, "secret/other/x/baz"), vec!["delete"]);
    // foo/ba* (prefix, glob at 10) vs foo/* (glob at 11?) — the glob that starts later wins.
    assert_eq!(caps(&a, "secret/foo/bat/x"), vec!["patch"]);
    assert_eq!(caps(&a, "secret/foo/zzz/q"), vec!["list"]);
}

#[test]
fn plus_matches_exactly_one_segment() {
    let a = acl(&[r#"path "kv/+/config" { capabilities = ["read"] }"#]);
    assert_eq!(caps(&a, "kv/app/config"), vec!["read"]);
    assert_eq!(caps(&a, "kv/app/x/config"), vec!["deny"]);
    assert_eq!(caps(&a, "kv/config"), vec!["deny"]);
    assert_eq!(caps(&a, "kv/app/config/more"), vec!["deny"]);
}

#[test]
fn policies_merge_and_deny_wins() {
    let a = acl(&[
        r#"path "secret/data/x" { capabilities = ["read"] }"#,
        r#"path "secret/data/x" { capabilities = ["update"] }"#,
    ]);
    assert_eq!(caps(&a, "secret/data/x"), vec!["read", "update"]);
    let d = acl(&[
        r#"path "secret/*" { capabilities = ["read", "update"] }"#,
        r#"path "secret/*" { capabilities = ["deny"] }"#,
    ]);
    assert_eq!(caps(&d, "secret/x"), vec!["deny"]);
    assert!(!d.authorize("secret/x", Operation::Read, None).allowed);
    // A more specific deny carves a hole; a more specific grant escapes a broad deny.
    let hole = acl(&[r#"path "secret/*" { capabilities = ["read"] }
path "secret/private/*" { capabilities = ["deny"] }"#]);
    assert!(
        hole.authorize("secret/public", Operation::Read, None)
            .allowed
    );
    assert!(
        !hole
            .authorize("secret/private/x", Operation::Read, None)
            .allowed
    );
}

#[test]
fn operations_need_their_capability() {
    let a = acl(&[
        r#"path "secret/data/*" { capabilities = ["create", "read"] }
path "secret/metadata/*" { capabilities = ["list"] }
path "sys/rotate" { capabilities = ["update", "sudo"] }"#,
    ]);
    assert!(
        a.authorize("secret/data/a", Operation::Create, None)
            .allowed
    );
    assert!(
        !a.authorize("secret/data/a", Operation::Update, None)
            .allowed
    );
    assert!(
        !a.authorize("secret/data/a", Operation::Delete, None)
            .allowed
    );
    assert!(!a.authorize("secret/data/a", Operation::Patch, None).allowed);
    assert!(
        a.authorize("secret/metadata/", Operation::List, None)
            .allowed
    );
    let sudo = a.authorize("sys/rotate", Operation::Update, None);
    assert!(sudo.allowed && sudo.sudo);
    assert!(!a.authorize("secret/data/a", Operation::Read, None).sudo);
}

#[test]
fn list_matches_exact_rule_without_trailing_slash() {
    let a = acl(&[r#"path "secret/metadata/team" { capabilities = ["list"] }"#]);
    assert!(
        a.authorize("secret/metadata/team/", Operation::List, None)
            .allowed
    );
}

#[test]
fn parameters_are_enforced() {
    let a = acl(&[r#"path "p/*" {
        capabilities = ["create", "update"]
        allowed_parameters = {
            "a" = []
            "b" = ["x", "y*"]
        }
        denied_parameters = { "c" = [] }
        required_parameters = ["a"]
    }"#]);
    let ok = |body: serde_json::Value| {
        a.authorize("p/1", Operation::Update, body.as_object())
            .allowed
    };
    assert!(ok(json!({"a": "anything", "b": "x"})));
    assert!(ok(json!({"a": 1, "b": "yes"})));
    assert!(!ok(json!({"a": 1, "b": "z"})), "value not allowed");
    assert!(!ok(json!({"b": "x"})), "a is required");
    assert!(!ok(json!({"a": 1, "c": "q"})), "c is denied");
    assert!(!ok(json!({"a": 1, "d": "q"})), "d is not allowed");
    assert!(
        ok(json!({"a": 1, "b": ["x", "yy"]})),
        "every list element allowed"
    );
    assert!(!ok(json!({"a": 1, "b": ["x", "z"]})));
    let star = acl(&[r#"path "p/*" { capabilities = ["update"]
        allowed_parameters = { "*" = [] }
        denied_parameters = { "secret" = [] } }"#]);
    assert!(
        star.authorize("p/1", Operation::Update, json!({"any": 1}).as_object())
            .allowed
    );
    assert!(
        !star
            .authorize("p/1", Operation::Update, json!({"secret": 1}).as_object())
            .allowed
    );
}

#[test]
fn legacy_policy_shorthand() {
    let a = acl(&[r#"path "w/*" { policy = "write" }
path "r/*" { policy = "read" }
path "s/*" { policy = "sudo" }
path "d/*" { policy = "deny" }"#]);
    assert_eq!(
        caps(&a, "w/a"),
        vec!["create", "delete", "list", "read", "update"]
    );
    assert_eq!(caps(&a, "r/a"), vec!["list", "read"]);
    assert_eq!(
        caps(&a, "s/a"),
        vec!["create", "delete", "list", "read", "sudo", "update"]
    );
    assert_eq!(caps(&a, "d/a"), vec!["deny"]);
}

#[test]
fn json_policies_parse_like_hcl() {
    let hcl = acl(&[r#"path "j/*" { capabilities = ["read", "list"] }"#]);
    let json = acl(&[r#"{"path": {"j/*": {"capabilities": ["read", "list"]}}}"#]);
    assert_eq!(caps(&hcl, "j/x"), caps(&json, "j/x"));
    let listed = acl(&[r#"{"path": [{"j/*": [{"capabilities": ["read"]}]}]}"#]);
    assert_eq!(caps(&listed, "j/x"), vec!["read"]);
}

#[test]
fn parse_errors_name_the_problem() {
    let cases = [
        (
            r#"path "x" { capabilities = ["raed"] }"#,
            "invalid capability \"raed\"",
        ),
        (
            r#"path "x" { capabilities = ["read"] foo = 1 }"#,
            "invalid key \"foo\"",
        ),
        (r#"bar = 1"#, "invalid key \"bar\""),
        (r#"path "x" { capabilities = "read" }"#, "must be a list"),
        (
            r#"path "a/+*" { capabilities = ["read"] }"#,
            "'+*' is forbidden",
        ),
        (r#"path "x" { policy = "maybe" }"#, "invalid policy"),
        (
            r#"path "x" { capabilities = ["scan"] }"#,
            "OpenBao-specific",
        ),
        (
            r#"path "x" { capabilities = ["read"] control_group = {} }"#,
            "Enterprise",
        ),
        (
            r#"path "x" { capabilities = ["${var.x}"] }"#,
            "invalid capability \"${var.x}\"",
        ),
        ("garbage {{", ""),
        (r#"{"path": 5}"#, "\"path\" must be an object"),
    ];
    for (text, expected) in cases {
        let err = Policy::parse("t", text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text:?} gave {err:?}");
    }
    assert!(
        Policy::parse("empty", "# nothing here\n")
            .unwrap()
            .rules()
            .is_empty()
    );
    assert!(Policy::parse("nocaps", r#"path "n/*" { }"#).is_ok());
}

#[test]
fn default_policy_parses_and_grants_self_service() {
    let default = Arc::new(Policy::parse("default", DEFAULT_POLICY).unwrap());
    let a = Acl::new(&[default], &Identity::default());
    assert!(
        a.authorize("auth/token/lookup-self", Operation::Read, None)
            .allowed
    );
    assert!(
        a.authorize("auth/token/renew-self", Operation::Update, None)
            .allowed
    );
    assert!(
        a.authorize("sys/capabilities-self", Operation::Update, None)
            .allowed
    );
    assert!(!a.authorize("secret/data/x", Operation::Read, None).allowed);
    assert!(
        !a.authorize("identity/entity/id/", Operation::Read, None)
            .allowed,
        "no entity: templated rules dropped"
    );
}

#[test]
fn templated_rules_follow_the_identity() {
    let policy = Arc::new(Policy::parse("agent", r#"path "secret/data/agents/{{identity.entity.metadata.agent_id}}" { capabilities = ["read"] }"#).unwrap());
    let mut alice = Identity {
        entity_id: "e1".into(),
        entity_name: "alice".into(),
        ..Default::default()
    };
    alice.entity_metadata.insert("agent_id".into(), "a1".into());
    let a = Acl::new(std::slice::from_ref(&policy), &alice);
    assert!(
        a.authorize("secret/data/agents/a1", Operation::Read, None)
            .allowed
    );
    assert!(
        !a.authorize("secret/data/agents/b2", Operation::Read, None)
            .allowed
    );
    let nobody = Acl::new(&[policy], &Identity::default());
    assert!(
        !nobody
            .authorize("secret/data/agents/", Operation::Read, None)
            .allowed
    );
}

#[test]
fn root_acl_allows_everything() {
    let root = Acl::new(
        &[Arc::new(Policy::parse("root", "").unwrap())],
        &Identity::default(),
    );
    assert!(root.is_root());
    assert_eq!(caps(&root, "anything"), vec!["root"]);
    let auth = root.authorize("sys/audit/x", Operation::Update, None);
    assert!(auth.allowed && auth.sudo);
}

/// Found by the `policy` fuzz target: HCL numbers were parsed exactly, JSON ones (policies
/// and request bodies alike) with serde_json's fast, inexact float parser, so the same
/// allowed value differed between the two syntaxes and a request could not match it.
#[test]
fn hcl_and_json_numbers_parse_alike() {
    let hcl = Policy::parse(
        "h",
        r#"path "a" { capabilities = ["update"] allowed_parameters = { "n" = [6e93, 0.1, 1e-300] } }"#,
    )
    .unwrap();
    let json = Policy::parse(
        "j",
        r#"{"path": {"a": {"capabilities": ["update"], "allowed_parameters": {"n": [6e+93, 0.1, 1e-300]}}}}"#,
    )
    .unwrap();
    assert_eq!(hcl.rules(), json.rules());
    assert_eq!(
        json.rules()[0].parameters.allowed["n"][0].as_f64(),
        Some(6e93)
    );
    let acl = Acl::new(&[Arc::new(hcl)], &Identity::default());
    let body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"n": 6e93}"#).unwrap();
    assert!(acl.authorize("a", Operation::Update, Some(&body)).allowed);
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        let _ = Policy::parse("fuzz", &text);
    }

    #[test]
    fn parse_never_panics_on_policy_like_text(path in "[a-z/+*{}.]{0,20}", cap in "[a-z]{0,8}") {
        let text = format!("path \"{path}\" {{ capabilities = [\"{cap}\"] }}");
        if let Ok(policy) = Policy::parse("fuzz", &text) {
            let acl = Acl::new(&[Arc::new(policy)], &Identity::default());
            let _ = acl.capabilities(&path);
            let _ = acl.authorize(&path, Operation::List, None);
        }
    }

    #[test]
    fn authorize_never_panics(rules in proptest::collection::vec("[a-z]{1,3}(/[a-z+]{1,3}){0,3}\\*?", 0..6), path in "[a-z/]{0,16}") {
        let text: String = rules.iter().map(|r| format!("path \"{r}\" {{ capabilities = [\"read\"] }}\n")).collect();
        if let Ok(policy) = Policy::parse("fuzz", &text) {
            let acl = Acl::new(&[Arc::new(policy)], &Identity::default());
            let _ = acl.authorize(&path, Operation::Read, None);
        }
    }
}
