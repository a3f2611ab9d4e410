use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::crypto::RootKey;
use crate::identity::AuthMountRef;
use crate::storage::{Backend, MemoryBackend};

struct Fixture {
    backend: Arc<MemoryBackend>,
    root_key: [u8; 32],
    tokens: TokenStore,
    identity: IdentityStore,
    root: Zeroizing<String>,
}

async fn fixture() -> Fixture {
    let backend = Arc::new(MemoryBackend::new());
    open(backend, [9; 32], Some("root")).await
}

async fn open(
    backend: Arc<MemoryBackend>,
    root_key: [u8; 32],
    root_token: Option<&str>,
) -> Fixture {
    let barrier = Arc::new(
        Barrier::open(
            backend.clone() as Arc<dyn Backend>,
            RootKey::from_bytes(Zeroizing::new(root_key)),
        )
        .await
        .unwrap(),
    );
    let tokens = TokenStore::open(barrier.clone()).await.unwrap();
    let mounts = vec![AuthMountRef {
        accessor: TOKEN_MOUNT_ACCESSOR.into(),
        mount_type: "token".into(),
        path: "auth/token/".into(),
    }];
    let identity = IdentityStore::open(barrier, mounts).await.unwrap();
    let root = tokens.ensure_root_token(root_token).await.unwrap();
    Fixture {
        backend,
        root_key,
        tokens,
        identity,
        root,
    }
}

impl Fixture {
    fn caller(&self, token: &str) -> Caller {
        let entry = self.tokens.verify(token).expect("caller token is valid");
        Caller {
            token: Zeroizing::new(token.to_string()),
            entry,
            sudo: false,
        }
    }

    async fn call(
        &self,
        token: &str,
        op: Operation,
        path: &str,
        body: Value,
    ) -> ApiResult<Response> {
        let req = Request {
            data: body.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        };
        self.tokens
            .handle(op, path, &req, Some(&self.caller(token)), &self.identity)
            .await
    }

    async fn create(&self, parent: &str, body: Value) -> Auth {
        self.call(parent, Operation::Update, "create", body)
            .await
            .unwrap()
            .auth
            .unwrap()
    }
}

#[tokio::test]
async fn root_token_verifies_and_persists() {
    let f = fixture().await;
    let entry = f.tokens.verify("root").unwrap();
    assert!(entry.is_root());
    assert!(f.tokens.verify("rooT").is_none());
    assert!(f.tokens.verify("").is_none());
    // Restart on the same storage: the same root token still works.
    let again = open(f.backend.clone(), f.root_key, None).await;
    assert_eq!(again.root.as_str(), "root");
    assert!(again.tokens.verify("root").is_some());
    // Asking for a different root token replaces the old one.
    let replaced = open(f.backend.clone(), f.root_key, Some("new-root")).await;
    assert!(replaced.tokens.verify("new-root").is_some());
    assert!(replaced.tokens.verify("root").is_none());
}

#[tokio::test]
async fn create_and_lookup() {
    let f = fixture().await;
    let auth = f.create(&f.root, json!({"policies": ["app"], "ttl": "1h", "meta": {"team": "a"}, "display_name": "Bob Smith"})).await;
    assert_eq!(auth.policies, vec!["app", "default"]);
    assert_eq!(auth.lease_duration, 3600);
    assert!(auth.renewable);
    assert!(auth.client_token.starts_with(TOKEN_PREFIX));
    let data = f
        .call(
            &auth.client_token,
            Operation::Read,
            "lookup-self",
            json!({}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(data["display_name"], "token-Bob-Smith");
    assert_eq!(data["meta"]["team"], "a");
    assert_eq!(data["id"], auth.client_token.as_str());
    assert_eq!(data["accessor"], auth.accessor.as_str());
    assert_eq!(data["creation_ttl"], 3600);
    assert_eq!(data["orphan"], false);
    let by_accessor = f
        .call(
            &f.root,
            Operation::Update,
            "lookup-accessor",
            json!({"accessor": auth.accessor}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(by_accessor["id"], "");
    assert_eq!(by_accessor["display_name"], "token-Bob-Smith");
    let by_token = f
        .call(
            &f.root,
            Operation::Update,
            "lookup",
            json!({"token": auth.client_token}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(by_token["accessor"], auth.accessor.as_str());
    let bad = f
        .call(
            &f.root,
            Operation::Update,
            "lookup",
            json!({"token": "svs.bogus.x"}),
        )
        .await
        .unwrap_err();
    assert_eq!((bad.status, bad.errors[0].as_str()), (403, "bad token"));
}

#[tokio::test]
async fn default_ttl_and_caps() {
    let f = fixture().await;
    let auth = f.create(&f.root, json!({"policies": ["app"]})).await;
    assert_eq!(auth.lease_duration, SYSTEM_MAX_TTL.as_secs());
    let capped = f
        .call(
            &f.root,
            Operation::Update,
            "create",
            json!({"ttl": "2h", "explicit_max_ttl": "1h"}),
        )
        .await
        .unwrap();
    assert_eq!(capped.auth.unwrap().lease_duration, 3600);
    assert!(capped.warnings[0].contains("capped"));
    let root_child = f.create(&f.root, json!({})).await;
    assert_eq!(root_child.policies, vec!["root"]);
    assert_eq!(root_child.lease_duration, 0, "root tokens never expire");
}

#[tokio::test]
async fn children_are_subsets_and_die_with_their_parent() {
    let f = fixture().await;
    let parent = f
        .create(&f.root, json!({"policies": ["a", "b"], "ttl": "1h"}))
        .await;
    let err = f
        .call(
            &parent.client_token,
            Operation::Update,
            "create",
            json!({"policies": ["c"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.errors[0], "child policies must be subset of parent");
    let err = f
        .call(
            &parent.client_token,
            Operation::Update,
            "create",
            json!({"policies": ["root"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status, 400);
    let child = f
        .create(&parent.client_token, json!({"policies": ["a"]}))
        .await;
    let grandchild = f.create(&child.client_token, json!({})).await;
    assert_eq!(grandchild.policies, vec!["a", "default"]);
    let orphan = f
        .create(&f.root, json!({"no_parent": true, "policies": ["a"]}))
        .await;
    assert!(orphan.orphan);
    // Revoking the parent revokes the whole subtree, not the orphan.
    f.call(
        &f.root,
        Operation::Update,
        "revoke",
        json!({"token": parent.client_token}),
    )
    .await
    .unwrap();
    for t in [&parent, &child, &grandchild] {
        assert!(f.tokens.verify(&t.client_token).is_none());
    }
    assert!(f.tokens.verify(&orphan.client_token).is_some());
    // Non-root callers need sudo for orphans.
    let plain = f.create(&f.root, json!({"policies": ["a"]})).await;
    let err = f
        .call(
            &plain.client_token,
            Operation::Update,
            "create",
            json!({"no_parent": true}),
        )
        .await
        .unwrap_err();
    assert!(err.errors[0].contains("root or sudo"));
}

#[tokio::test]
async fn revoke_orphan_keeps_children() {
    let f = fixture().await;
    let parent = f.create(&f.root, json!({"policies": ["a"]})).await;
    let child = f.create(&parent.client_token, json!({})).await;
    f.call(
        &f.root,
        Operation::Update,
        "revoke-orphan",
        json!({"token": parent.client_token}),
    )
    .await
    .unwrap();
    assert!(f.tokens.verify(&parent.client_token).is_none());
    assert!(f.tokens.verify(&child.client_token).is_some());
}

#[tokio::test]
async fn revoke_self_and_by_accessor_survive_restart() {
    let f = fixture().await;
    let a = f.create(&f.root, json!({"policies": ["x"]})).await;
    let b = f.create(&f.root, json!({"policies": ["x"]})).await;
    f.call(&a.client_token, Operation::Update, "revoke-self", json!({}))
        .await
        .unwrap();
    f.call(
        &f.root,
        Operation::Update,
        "revoke-accessor",
        json!({"accessor": b.accessor}),
    )
    .await
    .unwrap();
    let err = f
        .call(
            &f.root,
            Operation::Update,
            "revoke-accessor",
            json!({"accessor": "nope"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.errors[0], "invalid accessor");
    let restarted = open(f.backend.clone(), f.root_key, None).await;
    assert!(restarted.tokens.verify(&a.client_token).is_none());
    assert!(restarted.tokens.verify(&b.client_token).is_none());
}

#[tokio::test]
async fn renewal_moves_expiry_within_max() {
    let f = fixture().await;
    let t = f
        .create(
            &f.root,
            json!({"policies": ["x"], "ttl": "1h", "explicit_max_ttl": "2h"}),
        )
        .await;
    let renewed = f
        .call(
            &t.client_token,
            Operation::Update,
            "renew-self",
            json!({"increment": "30m"}),
        )
        .await
        .unwrap();
    assert_eq!(
        renewed.auth.unwrap().lease_duration,
        1800,
        "renewal can shorten, as in Vault"
    );
    let lookup = f
        .call(&t.client_token, Operation::Read, "lookup-self", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(lookup["ttl"].as_u64().unwrap() <= 1800);
    assert!(lookup.get("last_renewal_time").is_some());
    let capped = f
        .call(
            &t.client_token,
            Operation::Update,
            "renew-self",
            json!({"increment": "5h"}),
        )
        .await
        .unwrap();
    assert!(capped.auth.unwrap().lease_duration <= 7200);
    assert!(capped.warnings[0].contains("capped"));
    let fixed = f
        .create(&f.root, json!({"policies": ["x"], "renewable": false}))
        .await;
    assert!(
        f.call(
            &fixed.client_token,
            Operation::Update,
            "renew-self",
            json!({})
        )
        .await
        .is_err()
    );
}

/// Found by the `token` fuzz target: TTLs, periods and increments beyond any date
/// panicked in date arithmetic, on every use of such a token or on its renewal.
#[tokio::test]
async fn durations_beyond_any_date_are_refused_not_panicked_on() {
    let f = fixture().await;
    for body in [
        json!({"ttl": "2562048h"}),
        json!({"explicit_max_ttl": 99_999_999_999_999_u64, "ttl": 99_999_999_999_999_u64}),
        json!({"period": "18446744073709551615"}),
    ] {
        let err = f
            .call(&f.root, Operation::Update, "create", body.clone())
            .await
            .unwrap_err();
        assert_eq!(err.status, 400, "{body}: {err}");
        assert!(
            err.errors[0].contains("longer than the longest duration allowed"),
            "{err}"
        );
    }
    let t = f
        .create(&f.root, json!({"policies": ["x"], "ttl": "1h"}))
        .await;
    let err = f
        .call(
            &t.client_token,
            Operation::Update,
            "renew-self",
            json!({"increment": u64::MAX}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status, 400, "{err}");

    // Tokens signed before durations were bounded may still carry such values.
    let mut claims = (*f.tokens.verify(&t.client_token).unwrap().claims).clone();
    claims.jti = "huge-period".into();
    claims.period = u64::MAX;
    let periodic = f.tokens.issue(&claims);
    let err = f
        .call(&periodic, Operation::Update, "renew-self", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status, 400, "{err}");
    assert!(
        err.errors[0].starts_with("cannot renew: a TTL of 18446744073709551615s"),
        "{err}"
    );
    for (iat, ttl) in [
        (claims.iat, u64::MAX),
        (claims.iat, i64::MAX as u64),
        (i64::MAX / 2, 1 << 40),
    ] {
        claims.jti = format!("huge-ttl-{iat}-{ttl}");
        claims.period = 0;
        claims.iat = iat;
        claims.ttl = ttl;
        assert!(
            f.tokens.verify(&f.tokens.issue(&claims)).is_none(),
            "{iat} {ttl}"
        );
    }
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let f = fixture().await;
    let t = f
        .create(&f.root, json!({"policies": ["x"], "ttl": "1s"}))
        .await;
    assert!(f.tokens.verify(&t.client_token).is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(f.tokens.verify(&t.client_token).is_none());
}

#[tokio::test]
async fn use_limits() {
    let f = fixture().await;
    let t = f
        .create(&f.root, json!({"policies": ["x"], "num_uses": 2}))
        .await;
    let mut entry = f.tokens.verify(&t.client_token).unwrap();
    assert_eq!(entry.remaining_uses, 2);
    f.tokens.consume_use(&mut entry).await.unwrap();
    assert_eq!(entry.remaining_uses, 1, "what is left after this use");
    let mut entry = f.tokens.verify(&t.client_token).unwrap();
    assert_eq!(entry.remaining_uses, 1);
    f.tokens.consume_use(&mut entry).await.unwrap();
    assert_eq!(entry.remaining_uses, -1, "Vault shows -1 on the last use");
    assert!(f.tokens.verify(&t.client_token).is_none());
    let restarted = open(f.backend.clone(), f.root_key, None).await;
    assert!(restarted.tokens.verify(&t.client_token).is_none());
}

#[tokio::test]
async fn roles_bind_entity_aliases() {
    let f = fixture().await;
    f.call(
        &f.root,
        Operation::Update,
        "roles/agents",
        json!({"allowed_policies": ["agent"], "allowed_entity_aliases": ["agent-*"]}),
    )
    .await
    .unwrap();
    let role = f
        .call(&f.root, Operation::Read, "roles/agents", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(role["allowed_entity_aliases"], json!(["agent-*"]));
    let t = f
        .call(
            &f.root,
            Operation::Update,
            "create/agents",
            json!({"entity_alias": "agent-a1"}),
        )
        .await
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(t.token_policies, vec!["agent", "default"]);
    assert!(!t.entity_id.is_empty());
    // The same alias maps to the same entity.
    let again = f
        .call(
            &f.root,
            Operation::Update,
            "create/agents",
            json!({"entity_alias": "agent-a1"}),
        )
        .await
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(again.entity_id, t.entity_id);
    let err = f
        .call(
            &f.root,
            Operation::Update,
            "create/agents",
            json!({"entity_alias": "human"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.errors[0], "invalid 'entity_alias' value");
    let err = f
        .call(
            &f.root,
            Operation::Update,
            "create/agents",
            json!({"policies": ["admin"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status, 400);
    let err = f
        .call(
            &f.root,
            Operation::Update,
            "create",
            json!({"entity_alias": "agent-a1"}),
        )
        .await
        .unwrap_err();
    assert!(err.errors[0].contains("token role"));
    let identity = f.identity.resolve(&t.entity_id).unwrap();
    assert_eq!(identity.aliases[0].name, "agent-a1");
}

#[tokio::test]
async fn unsupported_inputs_are_explained() {
    let f = fixture().await;
    let err = f
        .call(
            &f.root,
            Operation::Update,
            "create",
            json!({"id": "custom"}),
        )
        .await
        .unwrap_err();
    assert!(err.errors[0].contains("custom token IDs are not supported"));
    let err = f
        .call(
            &f.root,
            Operation::Update,
            "create",
            json!({"type": "batch"}),
        )
        .await
        .unwrap_err();
    assert!(err.errors[0].contains("service tokens only"));
    let err = f
        .call(&f.root, Operation::Update, "create", json!({"ttl": "soon"}))
        .await
        .unwrap_err();
    assert!(err.errors[0].contains("\"ttl\""));
    assert_eq!(
        f.call(&f.root, Operation::Read, "nope", json!({}))
            .await
            .unwrap_err()
            .status,
        404
    );
}
