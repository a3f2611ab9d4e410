//! The differential suite: one sequence of KV v2, token, policy, identity and sys
//! requests sent to OpenBao (`bao server -dev`, the reference) and to secretvault; status
//! codes and JSON shapes must match. Times, ids, tokens and accessors are compared by
//! type only. Every remaining difference must be listed, with its reason, in
//! `tests/data/differential-allowlist.json` (documented in docs/compatibility.md); an
//! allow-list entry that no longer matches anything fails the test too, so the list
//! stays honest.

mod common;

use common::DevServer;
use common::differential::{
    Scenario, allowlist, assert_all_explained, differences, enable_transit_on_openbao,
    matches_glob, run,
};
use secretvault_testsupport::{BAO_ROOT_TOKEN, BaoDev};
use serde_json::json;

fn scenario() -> Scenario {
    let mut s = Scenario::default();
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
    // secretvault's transit mount is built in; give OpenBao one so sys/mounts compare.
    enable_transit_on_openbao(&bao.url(), BAO_ROOT_TOKEN);
    let ours = DevServer::start();
    let scenario = scenario();
    let reference = run(&bao.url(), BAO_ROOT_TOKEN, &scenario);
    let actual = run(&ours.url, common::ROOT, &scenario);
    let allowed = allowlist(
        "differential-allowlist.json",
        include_str!("data/differential-allowlist.json"),
    );
    assert_all_explained(
        "differential suite",
        scenario.0.len(),
        &differences(&scenario, &reference, &actual),
        &allowed,
    );
}

#[test]
fn allowlist_globs_match_like_shell_patterns() {
    assert!(matches_glob("abc", "abc"));
    assert!(!matches_glob("abc", "abcd"));
    assert!(matches_glob("a*", "abc"));
    assert!(matches_glob("*c", "abc"));
    assert!(matches_glob("*", ""));
    assert!(matches_glob("list keys*", "list keys at the end"));
    assert!(!matches_glob("list keys*", "key list"));
    assert!(matches_glob(
        "batch * missing *",
        "batch encrypt missing plaintext"
    ));
    assert!(!matches_glob(
        "batch * missing *",
        "batch encrypt not a list"
    ));
    assert!(matches_glob("a*b*a", "aba"));
    assert!(matches_glob("a*b*a", "abba"));
    assert!(!matches_glob("a*b*a", "ab"));
    assert!(!matches_glob("ab*ba", "aba"));
}
