//! Property tests for the parsers of untrusted input, the normal-test-suite companions of
//! the fuzz targets in `fuzz/` (which run the same checks for minutes, not milliseconds):
//! transit ciphertexts, sealed values, ACL policies (HCL and JSON), signed tokens and
//! Kubernetes ServiceAccount JWTs, and KV v2 request bodies.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use secretvault_engine::Operation;
use secretvault_engine::fuzzing::{format_ciphertext, parse_ciphertext};
use secretvault_engine::logical::Request;
use secretvault_engine::policy::{Capabilities, Capability, Parameters, PathRule, Policy};
use secretvault_engine::seal::SealedValue;
use secretvault_engine::token::{Claims, Signer};
use secretvault_engine::vault::Vault;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

#[path = "support/policy_print.rs"]
mod policy_print;

// ---------------------------------------------------------------------------------------
// Transit ciphertexts
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ciphertext_parse_never_panics(
        text in "\\PC{0,80}",
        near in "vault:v[-+0-9a-z]{0,22}:[A-Za-z0-9+/=:\n]{0,40}",
    ) {
        let _ = parse_ciphertext(&text);
        if let Ok((version, payload)) = parse_ciphertext(&near) {
            prop_assert_ne!(version, 0);
            prop_assert!(near.ends_with(payload));
        }
    }

    #[test]
    fn ciphertext_format_then_parse_is_identity(
        version in 1u32..,
        sealed in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let text = format_ciphertext(version, &sealed);
        let encoded = STANDARD.encode(&sealed);
        prop_assert_eq!(parse_ciphertext(&text), Ok((i64::from(version), encoded.as_str())));
    }

    #[test]
    fn ciphertext_parse_then_format_is_identity(
        version in 1u32..,
        sealed in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        // A canonical ciphertext (as the engine writes them) formats back byte for byte.
        let text = format!("vault:v{version}:{}", STANDARD.encode(&sealed));
        let (v, payload) = parse_ciphertext(&text).unwrap();
        let bytes = STANDARD.decode(payload).unwrap();
        prop_assert_eq!(format_ciphertext(u32::try_from(v).unwrap(), &bytes), text);
    }
}

// ---------------------------------------------------------------------------------------
// Sealed values
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sealed_value_parse_never_panics_and_round_trips(
        text in "\\PC{0,120}",
        key_id in "[0-9a-fA-F]{15,17}",
        tag in "[0-9a-f]{7,9}",
        payload in "[A-Za-z0-9_=+/-]{60,90}",
        space in "[ \t\n]{0,2}",
    ) {
        let near = format!("{space}sv:v1:{key_id}:{tag}:{payload}{space}");
        for candidate in [text.as_str(), near.as_str()] {
            if let Ok(value) = SealedValue::parse(candidate) {
                let printed = value.to_string();
                prop_assert_eq!(printed.as_str(), candidate.trim());
                prop_assert_eq!(SealedValue::parse(&printed).unwrap(), value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// ACL policies
// ---------------------------------------------------------------------------------------

fn parameter_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1_000_000i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 64.0)),
        "\\PC{0,12}".prop_map(Value::from),
        "[\"\\\\\n\t\r{}=#]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z\"/ ]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn parameters() -> impl Strategy<Value = std::collections::BTreeMap<String, Vec<Value>>> {
    proptest::collection::btree_map(
        "[a-z_]{1,8}",
        proptest::collection::vec(parameter_value(), 0..3),
        0..3,
    )
}

fn path_rule() -> impl Strategy<Value = PathRule> {
    const CAPS: [Capability; 8] = [
        Capability::Deny,
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Patch,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
    ];
    (
        "[a-z0-9_.{}+ -]{0,8}(/[a-z0-9+]{1,6}){0,3}\\*?",
        proptest::collection::vec(0usize..CAPS.len(), 0..5),
        parameters(),
        parameters(),
        proptest::collection::vec("[a-z_]{1,8}", 0..3),
        proptest::option::of(0u64..1_000_000_000_000),
        proptest::option::of(0u64..1_000_000_000_000),
    )
        .prop_filter("'+*' is refused", |(path, ..)| !path.contains("+*"))
        .prop_map(|(path, caps, allowed, denied, required, min, max)| {
            let caps: Vec<Capability> = caps.into_iter().map(|i| CAPS[i]).collect();
            let capabilities = if caps.contains(&Capability::Deny) {
                Capabilities::of(&[Capability::Deny])
            } else {
                Capabilities::of(&caps)
            };
            let (min, max) = match (min, max) {
                (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b))),
                other => other,
            };
            PathRule {
                path: path.trim_start_matches('/').to_string(),
                capabilities,
                parameters: Parameters {
                    allowed,
                    denied,
                    required,
                    min_wrapping_ttl: min.map(std::time::Duration::from_nanos),
                    max_wrapping_ttl: max.map(std::time::Duration::from_nanos),
                },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn policy_parse_never_panics(
        text in "\\PC{0,200}",
        noise in "(path|capabilities|allowed_parameters|[\"{}\\[\\]=,#/*<\\-\n a-z0-9.:])*",
    ) {
        for candidate in [&text, &noise] {
            if let Ok(policy) = Policy::parse("prop", candidate) {
                // Whatever parses prints back to text that parses the same.
                let json = Policy::parse("prop", &policy_print::to_json(policy.rules())).unwrap();
                prop_assert_eq!(json.rules(), policy.rules());
                if let Some(hcl) = policy_print::to_hcl(policy.rules()) {
                    let hcl = Policy::parse("prop", &hcl).unwrap();
                    prop_assert_eq!(hcl.rules(), policy.rules());
                }
            }
        }
    }

    #[test]
    fn policy_hcl_and_json_forms_parse_equal(rules in proptest::collection::vec(path_rule(), 0..4)) {
        let json = policy_print::to_json(&rules);
        let hcl = policy_print::to_hcl(&rules).expect("shallow values print as HCL");
        let from_json = Policy::parse("prop", &json)
            .unwrap_or_else(|e| panic!("{json}: {e}"));
        let from_hcl = Policy::parse("prop", &hcl)
            .unwrap_or_else(|e| panic!("{hcl}: {e}"));
        prop_assert_eq!(from_json.rules(), from_hcl.rules());
        prop_assert_eq!(from_json.rules(), rules.as_slice());
    }
}

/// The same policy written the ways Vault users write it: HCL 1 with its quirks, and the
/// JSON form.
#[test]
fn handwritten_hcl_and_json_policies_parse_equal() {
    let hcl = r#"
        # Vault-style: several attributes on one line, legacy `policy`, optional commas.
        path "secret/data/{{identity.entity.metadata.team}}/*" { capabilities = ["read", "list"], }
        path "/secret/metadata/+/config" {
          policy = "write"
          allowed_parameters = { "max_versions" = [] "cas_required" = [true] }
          required_parameters = ["CAS_required"]
          min_wrapping_ttl = "1m"
          max_wrapping_ttl = 3600
        }
        path "sys/*" { capabilities = ["deny", "read"] }
    "#;
    let json = json!({
        "path": {
            "secret/data/{{identity.entity.metadata.team}}/*": {"capabilities": ["read", "list"]},
            "/secret/metadata/+/config": [{
                "capabilities": ["read", "list", "create", "update", "delete"],
                "allowed_parameters": {"max_versions": [], "cas_required": [true]},
                "required_parameters": ["cas_required"],
                "min_wrapping_ttl": 60,
                "max_wrapping_ttl": "1h",
            }],
            "sys/*": {"capabilities": ["deny"]},
        }
    })
    .to_string();
    let mut from_hcl = Policy::parse("h", hcl).unwrap().rules().to_vec();
    let mut from_json = Policy::parse("j", &json).unwrap().rules().to_vec();
    // The JSON object's keys come back sorted; the HCL blocks in the order written.
    from_hcl.sort_by(|a, b| a.path.cmp(&b.path));
    from_json.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(from_hcl, from_json);
    assert_eq!(from_hcl.len(), 3);
}

// ---------------------------------------------------------------------------------------
// Signed tokens and ServiceAccount JWTs
// ---------------------------------------------------------------------------------------

fn claims() -> impl Strategy<Value = Claims> {
    (
        "[A-Za-z0-9]{1,24}",
        any::<i64>(),
        any::<u64>(),
        proptest::collection::vec("[a-z-]{1,10}", 0..3),
        proptest::collection::btree_map("[a-z]{1,6}", "\\PC{0,10}", 0..3),
        "\\PC{0,16}",
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(jti, iat, ttl, pol, meta, dn, ren, uses)| Claims {
            jti,
            iat,
            iatn: 0,
            ttl,
            emx: 0,
            max: 0,
            period: 0,
            pol,
            meta,
            dn,
            ren,
            par: vec![],
            orph: false,
            ent: String::new(),
            idn: None,
            uses,
            path: "auth/token/create".into(),
            role: String::new(),
        })
}

/// One change to a token: replace, insert or remove a byte.
fn damage(token: &str, at: usize, byte: u8, how: u8) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    let at = at % bytes.len();
    match how % 3 {
        0 => bytes[at] = if bytes[at] == byte { byte ^ 1 } else { byte },
        1 => bytes.insert(at, byte),
        _ => {
            bytes.remove(at);
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn token_verify_never_panics(text in "\\PC{0,300}", body in "[A-Za-z0-9_.-]{0,200}") {
        let signer = Signer::new(&[9; 32]);
        prop_assert!(signer.verify(&text).is_none());
        let prefixed = format!("svs.{body}");
        prop_assert!(signer.verify(&prefixed).is_none());
    }

    #[test]
    fn token_verify_rejects_any_mutation(
        claims in claims(),
        at in any::<usize>(),
        byte in any::<u8>(),
        how in any::<u8>(),
    ) {
        let signer = Signer::new(&[9; 32]);
        let token = signer.sign(&claims);
        prop_assert_eq!(signer.verify(&token), Some(claims));
        let damaged = damage(&token, at, byte, how);
        if let Ok(damaged) = String::from_utf8(damaged) {
            prop_assert!(signer.verify(&damaged).is_none(), "accepted {}", damaged);
        }
        prop_assert!(Signer::new(&[8; 32]).verify(&token).is_none(), "another key");
    }
}

/// An ES256 key pair for ServiceAccount tokens, made once.
fn service_account_key() -> &'static (jsonwebtoken::EncodingKey, String) {
    static KEY: OnceLock<(jsonwebtoken::EncodingKey, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public = key.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        (
            jsonwebtoken::EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
            public,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn service_account_jwt_verify_rejects_any_mutation(
        namespace in "[a-z0-9-]{1,12}",
        name in "[a-z0-9-]{1,12}",
        at in any::<usize>(),
        byte in any::<u8>(),
        how in any::<u8>(),
    ) {
        use secretvault_engine::auth::kubernetes::verify::{ClaimChecks, LocalKeysVerifier, TokenVerifier};
        use secretvault_engine::auth::kubernetes::{HttpJwksFetcher, KubernetesConfig};
        let (encoding, public) = service_account_key();
        let claims = json!({
            "aud": ["secretvault"],
            "exp": chrono::Utc::now().timestamp() + 600,
            "iss": "https://kubernetes.default.svc",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": "u"}},
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        });
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            encoding,
        )
        .unwrap();
        let verifier = LocalKeysVerifier::new(Arc::new(HttpJwksFetcher::with_pod_dir(
            "/nonexistent".into(),
            std::time::Duration::from_secs(1),
        )));
        let config = KubernetesConfig {
            pem_keys: vec![public.clone()],
            issuer: "https://kubernetes.default.svc".into(),
            ..Default::default()
        };
        let checks = ClaimChecks { audience: Some("secretvault"), issuer: Some("https://kubernetes.default.svc") };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let sa = rt.block_on(verifier.verify(&jwt, &config, &checks)).unwrap();
        prop_assert_eq!((sa.namespace.as_str(), sa.name.as_str()), (namespace.as_str(), name.as_str()));
        if let Ok(damaged) = String::from_utf8(damage(&jwt, at, byte, how)) {
            let result = rt.block_on(verifier.verify(&damaged, &config, &checks));
            prop_assert!(result.is_err(), "accepted {}", damaged);
        }
    }
}

// ---------------------------------------------------------------------------------------
// KV v2 request bodies
// ---------------------------------------------------------------------------------------

/// Arbitrary JSON, biased towards the fields KV v2 reads.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        "-?[0-9]{1,4}(,[0-9]{1,3}){0,2}|[0-9]{1,3}[smhd]|true|false".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "data", "options", "cas", "versions", "version", "max_versions", "cas_required",
            "delete_version_after", "custom_metadata",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,8}",
    ]
}

fn json_body() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(field_name(), json_value(), 0..5)
        .prop_map(|m| m.into_iter().collect())
}

const ROOT: &str = "prop-root";

async fn kv_vault() -> Vault {
    Vault::open_in_memory(ROOT).await.unwrap()
}

fn kv_request(operation: Option<Operation>, path: &str, data: Map<String, Value>) -> Request {
    Request {
        operation,
        is_write: operation.is_none(),
        path: format!("secret/{path}"),
        data,
        token: Some(Zeroizing::new(ROOT.to_string())),
        content_type: Some("application/merge-patch+json".into()),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn kv_bodies_never_panic_and_answer_200_204_or_400(
        bodies in proptest::collection::vec(json_body(), 8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let vault = kv_vault().await;
            let seed = json!({"data": {"k": "v", "n": {"x": 1}}});
            let Value::Object(seed) = seed else { unreachable!() };
            let reply = vault.handle(kv_request(None, "data/s", seed)).await;
            assert_eq!(reply.status, 200, "{reply:?}");
            let requests = [
                (None, "data/s"),
                (None, "metadata/s"),
                (Some(Operation::Patch), "data/s"),
                (Some(Operation::Patch), "metadata/s"),
                (None, "delete/s"),
                (None, "undelete/s"),
                (None, "destroy/s"),
                (None, "config"),
            ];
            for ((operation, path), body) in requests.into_iter().zip(bodies) {
                let shown = Value::Object(body.clone());
                let reply = vault.handle(kv_request(operation, path, body)).await;
                assert!(
                    matches!(reply.status, 200 | 204 | 400),
                    "{operation:?} {path} {shown}: {} {:?}",
                    reply.status,
                    reply.body
                );
            }
        });
    }
}
