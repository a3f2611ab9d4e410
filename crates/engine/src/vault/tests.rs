use serde_json::{Value, json};

use super::*;

struct Harness {
    vault: Vault,
    root: String,
    _dir: tempfile::TempDir,
    audit_path: std::path::PathBuf,
}

async fn harness() -> Harness {
    let root = "root-token".to_string();
    let vault = Vault::open_in_memory(&root).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.log");
    vault
        .enable_file_audit("file", audit_path.to_str().unwrap())
        .await
        .unwrap();
    Harness {
        vault,
        root,
        _dir: dir,
        audit_path,
    }
}

fn request(token: &str, op: Option<Operation>, path: &str, body: Value) -> Request {
    Request {
        operation: op,
        is_write: op.is_none(),
        path: path.to_string(),
        data: body.as_object().cloned().unwrap_or_default(),
        token: Some(Zeroizing::new(token.to_string())),
        content_type: Some("application/merge-patch+json".into()),
        ..Default::default()
    }
}

impl Harness {
    async fn write(&self, token: &str, path: &str, body: Value) -> Reply {
        self.vault.handle(request(token, None, path, body)).await
    }

    async fn read(&self, token: &str, path: &str) -> Reply {
        self.vault
            .handle(request(token, Some(Operation::Read), path, json!({})))
            .await
    }

    async fn policy(&self, name: &str, hcl: &str) {
        let r = self
            .write(
                &self.root,
                &format!("sys/policies/acl/{name}"),
                json!({ "policy": hcl }),
            )
            .await;
        assert_eq!(r.status, 204, "{r:?}");
    }

    async fn token(&self, body: Value) -> String {
        let r = self.write(&self.root, "auth/token/create", body).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body.unwrap()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn errors(reply: &Reply) -> Vec<String> {
    reply
        .body
        .as_ref()
        .and_then(|b| b["errors"].as_array())
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn deny_by_default_then_grant() {
    let h = harness().await;
    h.write(
        &h.root,
        "secret/data/app/db",
        json!({"data": {"password": "pw"}}),
    )
    .await;
    let plain = h.token(json!({"policies": ["default"]})).await;
    let denied = h.read(&plain, "secret/data/app/db").await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        errors(&denied),
        vec!["1 error occurred:\n\t* permission denied\n\n"]
    );
    h.policy(
        "app-read",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    )
    .await;
    let reader = h.token(json!({"policies": ["app-read"]})).await;
    let ok = h.read(&reader, "secret/data/app/db").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body.unwrap()["data"]["data"]["password"], "pw");
    assert_eq!(
        h.write(&reader, "secret/data/app/db", json!({"data": {"x": "y"}}))
            .await
            .status,
        403
    );
    // A policy change applies to existing tokens at once.
    h.policy(
        "app-read",
        r#"path "secret/data/other/*" { capabilities = ["read"] }"#,
    )
    .await;
    assert_eq!(h.read(&reader, "secret/data/app/db").await.status, 403);
}

#[tokio::test]
async fn bad_tokens_are_permission_denied() {
    let h = harness().await;
    for token in ["", "nope", "svs.abc.def"] {
        let r = h.read(token, "secret/data/x").await;
        assert_eq!(r.status, 403);
        assert_eq!(errors(&r), vec!["permission denied"]);
    }
    let mut no_token = request("", Some(Operation::Read), "secret/data/x", json!({}));
    no_token.token = None;
    assert_eq!(h.vault.handle(no_token).await.status, 403);
    let revoked = h.token(json!({"policies": ["default"]})).await;
    assert_eq!(
        h.write(&revoked, "auth/token/revoke-self", json!({}))
            .await
            .status,
        204
    );
    assert_eq!(
        errors(&h.read(&revoked, "auth/token/lookup-self").await),
        vec!["permission denied"]
    );
}

#[tokio::test]
async fn create_and_update_are_distinct_capabilities() {
    let h = harness().await;
    h.policy(
        "creator",
        r#"path "secret/data/*" { capabilities = ["create"] }"#,
    )
    .await;
    let creator = h.token(json!({"policies": ["creator"]})).await;
    assert_eq!(
        h.write(&creator, "secret/data/new", json!({"data": {"a": "1"}}))
            .await
            .status,
        200
    );
    assert_eq!(
        h.write(&creator, "secret/data/new", json!({"data": {"a": "2"}}))
            .await
            .status,
        403,
        "update needs update"
    );
}

#[tokio::test]
async fn templated_policy_gives_each_identity_its_own_path() {
    let h = harness().await;
    h.policy("agent", r#"path "secret/data/agents/{{identity.entity.metadata.agent_id}}" { capabilities = ["read"] }"#).await;
    let role = h
        .write(
            &h.root,
            "auth/token/roles/agents",
            json!({"allowed_policies": ["agent"], "allowed_entity_aliases": ["agent-*"]}),
        )
        .await;
    assert_eq!(role.status, 204);
    let mut tokens = Vec::new();
    for (alias, agent_id) in [("agent-alice", "a1"), ("agent-bob", "b2")] {
        let auth = h
            .write(
                &h.root,
                "auth/token/create/agents",
                json!({"entity_alias": alias}),
            )
            .await
            .body
            .unwrap();
        let entity_id = auth["auth"]["entity_id"].as_str().unwrap().to_string();
        let r = h
            .write(
                &h.root,
                &format!("identity/entity/id/{entity_id}"),
                json!({"metadata": {"agent_id": agent_id}}),
            )
            .await;
        assert_eq!(r.status, 204, "{r:?}");
        h.write(
            &h.root,
            &format!("secret/data/agents/{agent_id}"),
            json!({"data": {"key": format!("secret-of-{agent_id}")}}),
        )
        .await;
        tokens.push(auth["auth"]["client_token"].as_str().unwrap().to_string());
    }
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let own = h.read(alice, "secret/data/agents/a1").await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body.unwrap()["data"]["data"]["key"], "secret-of-a1");
    assert_eq!(h.read(alice, "secret/data/agents/b2").await.status, 403);
    assert_eq!(h.read(bob, "secret/data/agents/b2").await.status, 200);
    assert_eq!(h.read(bob, "secret/data/agents/a1").await.status, 403);
    // Changing the entity's metadata moves its access at once.
    let lookup = h.read(alice, "auth/token/lookup-self").await.body.unwrap();
    let alice_entity = lookup["data"]["entity_id"].as_str().unwrap().to_string();
    h.write(
        &h.root,
        &format!("identity/entity/id/{alice_entity}"),
        json!({"metadata": {"agent_id": "b2"}}),
    )
    .await;
    assert_eq!(h.read(alice, "secret/data/agents/a1").await.status, 403);
    assert_eq!(h.read(alice, "secret/data/agents/b2").await.status, 200);
}

#[tokio::test]
async fn audit_failure_refuses_the_request() {
    let h = harness().await;
    h.write(&h.root, "secret/data/x", json!({"data": {"a": "1"}}))
        .await;
    // A re-point that cannot open its file keeps the old device recording.
    let missing_dir = h.audit_path.with_file_name("no-such-dir").join("audit.log");
    assert!(
        h.vault
            .enable_file_audit("file", missing_dir.to_str().unwrap())
            .await
            .is_err()
    );
    assert_eq!(h.read(&h.root, "secret/data/x").await.status, 200);
    // Point the only device at a full disk: every write fails.
    h.vault
        .enable_file_audit("file", "/dev/full")
        .await
        .unwrap();
    let r = h.read(&h.root, "secret/data/x").await;
    assert_eq!(r.status, 500, "nothing is served unaudited: {r:?}");
    assert!(!serde_json::to_string(&r.body).unwrap().contains("\"a\""));
}

#[tokio::test]
async fn audit_log_holds_no_plaintext() {
    let h = harness().await;
    let secret_value = "correct-horse-battery-staple";
    h.write(
        &h.root,
        "secret/data/plain",
        json!({"data": {"password": secret_value}}),
    )
    .await;
    let child = h.token(json!({"policies": ["default"]})).await;
    h.read(&h.root, "secret/data/plain").await;
    h.read(&child, "auth/token/lookup-self").await;
    let log = std::fs::read_to_string(&h.audit_path).unwrap();
    assert!(log.lines().count() >= 6);
    for needle in [secret_value, h.root.as_str(), child.as_str()] {
        assert!(!log.contains(needle), "audit log leaks {needle}");
    }
    assert!(log.contains("hmac-sha256:"));
    let hashed = h
        .write(
            &h.root,
            "sys/audit-hash/file",
            json!({"input": secret_value}),
        )
        .await
        .body
        .unwrap();
    assert!(
        log.contains(hashed["data"]["hash"].as_str().unwrap()),
        "the HMAC of the value is what was logged"
    );
}

#[tokio::test]
async fn sudo_paths_need_sudo() {
    let h = harness().await;
    h.policy(
        "ops",
        r#"path "sys/rotate" { capabilities = ["update"] }
path "sys/audit" { capabilities = ["read"] }"#,
    )
    .await;
    let ops = h.token(json!({"policies": ["ops"]})).await;
    assert_eq!(h.write(&ops, "sys/rotate", json!({})).await.status, 403);
    h.policy(
        "ops",
        r#"path "sys/rotate" { capabilities = ["update", "sudo"] }"#,
    )
    .await;
    assert_eq!(h.write(&ops, "sys/rotate", json!({})).await.status, 204);
    let status = h.read(&h.root, "sys/key-status").await.body.unwrap();
    assert_eq!(status["data"]["term"], 2);
}

#[tokio::test]
async fn capabilities_and_ui_mounts() {
    let h = harness().await;
    h.policy(
        "kv-reader",
        r#"path "secret/data/team/*" { capabilities = ["read", "list"] }"#,
    )
    .await;
    let t = h.token(json!({"policies": ["kv-reader"]})).await;
    let caps = h
        .write(
            &t,
            "sys/capabilities-self",
            json!({"paths": ["secret/data/team/x", "secret/data/other"]}),
        )
        .await
        .body
        .unwrap();
    assert_eq!(caps["data"]["secret/data/team/x"], json!(["list", "read"]));
    assert_eq!(caps["data"]["secret/data/other"], json!(["deny"]));
    let mount = h.read(&t, "sys/internal/ui/mounts/secret/team/x").await;
    assert_eq!(mount.status, 200, "{mount:?}");
    let body = mount.body.unwrap();
    assert_eq!(body["data"]["type"], "kv");
    assert_eq!(body["data"]["options"]["version"], "2");
    assert_eq!(body["data"]["path"], "secret/");
    let plain = h.token(json!({"policies": ["default"]})).await;
    assert_eq!(
        h.read(&plain, "sys/internal/ui/mounts/secret/team/x")
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn unknown_routes_and_public_endpoints() {
    let h = harness().await;
    let r = h.read(&h.root, "nope/x").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        errors(&r),
        vec!["no handler for route \"nope/x\". route entry not found."]
    );
    let mut health = request("", Some(Operation::Read), "sys/health", json!({}));
    health.token = None;
    let r = h.vault.handle(health).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.unwrap()["sealed"], false);
    let mounts = h.read(&h.root, "sys/mounts").await.body.unwrap();
    assert_eq!(mounts["secret/"]["type"], "kv");
    assert_eq!(mounts["data"]["secret/"]["options"]["version"], "2");
}

/// Found by the `kv_request` fuzz target: a NUL in a path reached the storage backend,
/// which refuses such keys, and came back as a 500.
#[tokio::test]
async fn paths_with_nul_bytes_are_400s() {
    let h = harness().await;
    for path in [
        "secret/data/a\0b",
        "secret/metadata/a\0b",
        "sys/policies/acl/a\0b",
        "transit/keys/a\0b",
    ] {
        let r = h.write(&h.root, path, json!({"data": {"k": "v"}})).await;
        assert_eq!(r.status, 400, "{path:?}: {r:?}");
        assert_eq!(
            errors(&r),
            vec!["invalid request path: it contains a NUL byte (%00)"]
        );
        assert_eq!(h.read(&h.root, path).await.status, 400, "{path:?}");
    }
}

#[tokio::test]
async fn policies_round_trip_through_sys() {
    let h = harness().await;
    h.policy("Mixed", r#"path "secret/*" { capabilities = ["read"] }"#)
        .await;
    let r = h
        .read(&h.root, "sys/policies/acl/mixed")
        .await
        .body
        .unwrap();
    assert_eq!(r["data"]["name"], "mixed");
    let list = h
        .vault
        .handle(request(
            &h.root,
            Some(Operation::List),
            "sys/policies/acl",
            json!({}),
        ))
        .await
        .body
        .unwrap();
    assert_eq!(list["data"]["keys"], json!(["default", "mixed", "root"]));
    let bad = h
        .write(
            &h.root,
            "sys/policies/acl/bad",
            json!({"policy": "path \"x\" { capabilities = [\"raed\"] }"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(errors(&bad)[0].starts_with("failed to parse policy"));
    assert_eq!(
        errors(
            &h.write(&h.root, "sys/policies/acl/root", json!({"policy": "x"}))
                .await
        ),
        vec!["cannot update \"root\" policy"]
    );
    let del = h
        .vault
        .handle(request(
            &h.root,
            Some(Operation::Delete),
            "sys/policies/acl/default",
            json!({}),
        ))
        .await;
    assert_eq!(errors(&del), vec!["cannot delete default policy"]);
}

fn watch_request(token: &str, body: Value) -> Request {
    request(token, None, crate::watch::WATCH_PATH, body)
}

/// Audit entries (type, path) in the order written.
fn audit_entries(h: &Harness) -> Vec<(String, String)> {
    std::fs::read_to_string(&h.audit_path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["type"].as_str().unwrap_or("").to_string(),
                v["request"]["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_watch_is_audited_before_and_after_its_wait_and_holds_no_lock() {
    let h = harness().await;
    h.policy(
        "app-read",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    )
    .await;
    let reader = h.token(json!({"policies": ["app-read"]})).await;
    let first = h
        .vault
        .handle(watch_request(
            &reader,
            json!({"paths": ["secret/data/app/db"]}),
        ))
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let body = first.body.unwrap();
    assert_eq!(body["data"]["changed"], json!([]));
    assert_eq!(body["data"]["reset"], false);
    assert!(body["request_id"].is_string() && body["lease_id"] == "");
    let index = body["data"]["index"].as_str().unwrap().to_string();

    let watch = h.vault.handle(watch_request(
        &reader,
        json!({"paths": ["secret/data/app/db", "secret/data/app/cache"], "index": index, "wait": "30s"}),
    ));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The waiting watch's request is already on record, its response not yet.
        let entries = audit_entries(&h);
        let watch_entries: Vec<_> = entries
            .iter()
            .filter(|(_, p)| p == crate::watch::WATCH_PATH)
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(watch_entries, vec!["request", "response", "request"]);
        // Other requests, by this token too, run while it waits.
        assert_eq!(h.read(&reader, "secret/data/app/db").await.status, 404);
        let w = h
            .write(&h.root, "secret/data/app/db", json!({"data": {"k": "v"}}))
            .await;
        assert_eq!(w.status, 200);
        std::time::Instant::now()
    };
    let (reply, written_at) = tokio::join!(watch, meanwhile);
    assert!(written_at.elapsed() < Duration::from_secs(1));
    assert_eq!(reply.status, 200, "{reply:?}");
    let data = &reply.body.unwrap()["data"];
    assert_eq!(data["changed"], json!(["secret/data/app/db"]));
    assert_ne!(data["index"], json!(index));
    let entries = audit_entries(&h);
    assert_eq!(
        entries.last().unwrap(),
        &("response".to_string(), crate::watch::WATCH_PATH.to_string())
    );
    let log = std::fs::read_to_string(&h.audit_path).unwrap();
    assert!(!log.contains(&reader), "the audit log holds the token");
}

#[tokio::test]
async fn watches_need_read_on_every_path_and_kv_data_paths() {
    let h = harness().await;
    h.policy(
        "app-read",
        r#"path "secret/data/app/*" { capabilities = ["read"] }
path "secret/data/app/secret" { capabilities = ["deny"] }
path "secret/data/list-only" { capabilities = ["list"] }"#,
    )
    .await;
    let reader = h.token(json!({"policies": ["app-read"]})).await;
    let denied = h
        .vault
        .handle(watch_request(
            &reader,
            json!({"paths": ["secret/data/app/ok", "secret/data/other", "secret/data/app/secret", "secret/data/list-only"]}),
        ))
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        errors(&denied),
        vec![
            "permission denied",
            "paths[1] \"secret/data/other\": no read capability",
            "paths[2] \"secret/data/app/secret\": no read capability",
            "paths[3] \"secret/data/list-only\": no read capability",
        ]
    );
    let bad = h
        .vault
        .handle(watch_request(
            &reader,
            json!({"paths": ["secret/data/app/ok", "transit/keys/x"]}),
        ))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        errors(&bad),
        vec![
            "paths[1]: \"transit/keys/x\" is not a KV v2 data path (secret/data/...); only those can be watched"
        ]
    );
    // Only POST/PUT watch.
    let get = h
        .vault
        .handle(request(
            &reader,
            Some(Operation::Read),
            crate::watch::WATCH_PATH,
            json!({}),
        ))
        .await;
    assert_eq!(get.status, 405);
    // No token, no watch.
    assert_eq!(
        h.vault
            .handle(watch_request(
                "nope",
                json!({"paths": ["secret/data/app/ok"]})
            ))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn an_abandoned_watch_frees_its_slot() {
    let h = harness().await;
    let index = h.vault.kv().changes().current_index();
    let accessor = h
        .vault
        .tokens
        .verify(&h.root)
        .unwrap()
        .accessor()
        .to_string();
    let mut watch = Box::pin(h.vault.handle(watch_request(
        &h.root,
        json!({"paths": ["secret/data/a"], "index": index, "wait": "60s"}),
    )));
    // Poll it until it waits, holding its slot...
    let timed_out = tokio::time::timeout(Duration::from_millis(100), &mut watch).await;
    assert!(timed_out.is_err(), "the watch should still be waiting");
    assert_eq!(h.vault.watch_limits.in_use(&accessor), (1, 1));
    // ...then drop it, as hyper drops a disconnected client's request.
    drop(watch);
    assert_eq!(h.vault.watch_limits.in_use(&accessor), (0, 0));
    // Its audit record is complete: the request, then how it ended (queued when the
    // request was dropped; the audit writer records it right after).
    let mut last = Value::Null;
    for _ in 0..200 {
        let log = std::fs::read_to_string(&h.audit_path).unwrap();
        last = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        if last["type"] == "response" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last["type"], "response");
    assert_eq!(last["request"]["path"], crate::watch::WATCH_PATH);
    assert_eq!(last["response"]["status_code"], 499, "{last}");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("closed the connection")
    );
    // Requests that complete (a read, a write) leave exactly one response entry each.
    h.read(&h.root, "sys/mounts").await;
    h.write(&h.root, "secret/data/x", json!({"data": {"a": "1"}}))
        .await;
    let responses = |path: &str| {
        audit_entries(&h)
            .iter()
            .filter(|(t, p)| t == "response" && p == path)
            .count()
    };
    assert_eq!(responses("sys/mounts"), 1);
    assert_eq!(responses("secret/data/x"), 1);
    assert_eq!(responses(crate::watch::WATCH_PATH), 1);
}

#[tokio::test]
async fn shutdown_answers_pending_watches() {
    let h = harness().await;
    let index = h.vault.kv().changes().current_index();
    let watch = h.vault.handle(watch_request(
        &h.root,
        json!({"paths": ["secret/data/a"], "index": index, "wait": "60s"}),
    ));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.vault.begin_shutdown();
        std::time::Instant::now()
    };
    let (reply, stopped_at) = tokio::join!(watch, stop);
    assert!(stopped_at.elapsed() < Duration::from_secs(1));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.unwrap()["data"]["changed"], json!([]));
}

#[tokio::test]
async fn a_full_server_answers_503_with_retry_after() {
    let mut h = harness().await;
    h.vault.watch_limits = crate::watch::WatchLimits::new(8, 1);
    let other = h.token(json!({"policies": ["root"]})).await;
    let index = h.vault.kv().changes().current_index();
    let pending = h.vault.handle(watch_request(
        &h.root,
        json!({"paths": ["secret/data/a"], "index": index, "wait": "30s"}),
    ));
    let refused = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = h
            .vault
            .handle(watch_request(&other, json!({"paths": ["secret/data/a"]})))
            .await;
        h.vault.begin_shutdown();
        r
    };
    let (first, refused) = tokio::join!(pending, refused);
    assert_eq!(first.status, 200);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.retry_after, Some(1));
    assert!(errors(&refused)[0].starts_with("too many concurrent watches on this server"));
}
