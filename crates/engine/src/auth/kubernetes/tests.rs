//! Kubernetes auth: token verification, roles, configuration, and logins through the
//! router. Tokens are minted here with RSA and EC keys generated for the test run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::*;
use crate::crypto::RootKey;
use crate::logical::{Fields, Operation, Request};
use crate::storage::{Backend, Entry, MemoryBackend, Precondition, Revision};
use crate::vault::{Reply, Vault, VaultConfig};

// ---------------------------------------------------------------------------------------
// Keys and tokens
// ---------------------------------------------------------------------------------------

struct TestKey {
    private_pem: Zeroizing<String>,
    public_pem: String,
    jwk: Value,
    alg: Algorithm,
}

impl TestKey {
    fn encoding(&self) -> EncodingKey {
        match self.alg.family() {
            jsonwebtoken::AlgorithmFamily::Rsa => {
                EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap()
            }
            _ => EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap(),
        }
    }

    fn jwk_with_kid(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    }
}

fn rsa_key() -> TestKey {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public = key.to_public_key();
    TestKey {
        private_pem: Zeroizing::new(key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()),
        public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        jwk: json!({
            "use": "sig",
            "kty": "RSA",
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }),
        alg: Algorithm::RS256,
    }
}

fn p256_key() -> TestKey {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let point = key.public_key().to_encoded_point(false);
    TestKey {
        private_pem: Zeroizing::new(key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()),
        public_pem: key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        jwk: json!({
            "use": "sig",
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        }),
        alg: Algorithm::ES256,
    }
}

fn p384_key() -> TestKey {
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    use p384::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = p384::SecretKey::random(&mut rand::rngs::OsRng);
    let point = key.public_key().to_encoded_point(false);
    TestKey {
        private_pem: Zeroizing::new(key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()),
        public_pem: key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        jwk: json!({
            "kty": "EC",
            "crv": "P-384",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        }),
        alg: Algorithm::ES384,
    }
}

/// Keys made once per test run (RSA generation is the slow part).
struct Keys {
    rsa: TestKey,
    rsa2: TestKey,
    ec: TestKey,
    ec384: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: rsa_key(),
        rsa2: rsa_key(),
        ec: p256_key(),
        ec384: p384_key(),
    })
}

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a projected ServiceAccount token for a pod.
fn projected(namespace: &str, name: &str) -> Value {
    json!({
        "aud": ["secretvault"],
        "exp": now() + 600,
        "iat": now() - 5,
        "nbf": now() - 5,
        "iss": ISSUER,
        "jti": "d5a4c2a3-6f0e-4c7b-9b40-5a8e3c1e0f11",
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "node-uid"},
            "pod": {"name": format!("{name}-pod"), "uid": format!("{name}-pod-uid")},
            "serviceaccount": {"name": name, "uid": format!("{namespace}-{name}-uid")},
        },
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    })
}

fn mint_with(key: &TestKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, &key.encoding()).unwrap()
}

fn mint(key: &TestKey, claims: &Value) -> String {
    mint_with(key, None, claims)
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A token with a hand-written header and signature bytes.
fn forged(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64json(&header),
        b64json(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn config_with(pem_keys: Vec<String>) -> KubernetesConfig {
    KubernetesConfig {
        kubernetes_host: "https://kubernetes.default.svc".into(),
        pem_keys,
        issuer: ISSUER.into(),
        ..Default::default()
    }
}

fn pem_config() -> KubernetesConfig {
    config_with(vec![
        keys().rsa.public_pem.clone(),
        keys().ec.public_pem.clone(),
        keys().ec384.public_pem.clone(),
    ])
}

fn checks() -> ClaimChecks<'static> {
    ClaimChecks {
        audience: Some("secretvault"),
        issuer: Some(ISSUER),
    }
}

/// A fetcher that serves a JWKS document from memory and counts fetches.
#[derive(Default)]
struct FakeFetcher {
    document: Mutex<Option<String>>,
    fetches: AtomicUsize,
    requests: Mutex<Vec<JwksRequest>>,
}

impl FakeFetcher {
    fn serving(doc: Value) -> Arc<Self> {
        let f = Arc::new(FakeFetcher::default());
        f.set(Some(doc));
        f
    }

    fn set(&self, doc: Option<Value>) {
        *self.document.lock().unwrap() = doc.map(|d| d.to_string());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl JwksFetcher for FakeFetcher {
    async fn fetch(&self, request: &JwksRequest) -> Result<String, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().unwrap().push(request.clone());
        self.document
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| FetchError("connection refused".into()))
    }
}

fn local_verifier() -> LocalKeysVerifier {
    LocalKeysVerifier::new(FakeFetcher::serving(json!({"keys": []})))
}

async fn verify(jwt: &str) -> Result<ServiceAccount, LoginError> {
    local_verifier().verify(jwt, &pem_config(), &checks()).await
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rsa_and_ec_signed_tokens_verify() {
    for key in [&keys().rsa, &keys().ec, &keys().ec384] {
        let sa = verify(&mint(key, &projected("payments", "api")))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(
            sa,
            ServiceAccount {
                namespace: "payments".into(),
                name: "api".into(),
                uid: "payments-api-uid".into(),
                pod_name: Some("api-pod".into()),
                pod_uid: Some("api-pod-uid".into()),
                secret_name: None,
            }
        );
    }
    // RSA-PSS is an RSA key's algorithm too.
    let mut header = Header::new(Algorithm::PS256);
    header.kid = None;
    let ps = jsonwebtoken::encode(&header, &projected("a", "b"), &keys().rsa.encoding()).unwrap();
    assert!(verify(&ps).await.is_ok());
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_tokens_are_refused() {
    let claims = projected("payments", "api");
    let good = mint(&keys().rsa, &claims);
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();

    let none = format!(
        "{}.{}.",
        b64json(&json!({"alg": "none", "typ": "JWT"})),
        b64json(&claims)
    );
    // HMAC with the (public) RSA key as the secret: the classic algorithm confusion.
    let confused = hs256(keys().rsa.public_pem.as_bytes(), &claims);
    let confused_der = hs256(b"any shared secret", &claims);
    let other_key = mint(&keys().rsa2, &claims);
    let mut altered = claims.clone();
    altered["kubernetes.io"]["namespace"] = json!("kube-system");
    let tampered = format!("{head}.{}.{sig}", b64json(&altered));
    // An RS256 header on an ES256 signature, and the other way round.
    let ec_as_rsa = {
        let t = mint(&keys().ec, &claims);
        let sig = t.rsplit('.').next().unwrap().to_string();
        format!(
            "{}.{}.{sig}",
            b64json(&json!({"alg": "RS256", "typ": "JWT"})),
            b64json(&claims)
        )
    };
    let eddsa = forged(json!({"alg": "EdDSA", "typ": "JWT"}), &claims, &[7; 64]);

    for (what, jwt) in [
        ("alg none", none.as_str()),
        ("HS256 with the public key", confused.as_str()),
        ("HS256", confused_der.as_str()),
        ("unknown key", other_key.as_str()),
        ("tampered claims", tampered.as_str()),
        ("signature of another algorithm", ec_as_rsa.as_str()),
        ("EdDSA", eddsa.as_str()),
        ("garbage", "not.a.jwt"),
        ("two parts", "abc.def"),
        ("empty", ""),
    ] {
        let err = verify(jwt).await.expect_err(what);
        assert!(
            matches!(err, LoginError::InvalidToken(_)),
            "{what}: {err:?}"
        );
        assert_eq!(err.to_string(), "permission denied", "{what}");
        assert_eq!(err.status(), 403);
    }
    let huge = format!("{}.{}.x", "a".repeat(verify::MAX_JWT_LEN), "b");
    assert!(matches!(
        verify(&huge).await,
        Err(LoginError::InvalidToken(_))
    ));
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_leeway() {
    let mut claims = projected("ns", "sa");
    claims["exp"] = json!(now() - 3600);
    let err = verify(&mint(&keys().rsa, &claims)).await.unwrap_err();
    assert_eq!(err, LoginError::Expired);
    assert_eq!(
        err.to_string(),
        "invalid expiration time (exp) claim: token is expired"
    );

    // Expired 20 s ago: within the clock-skew leeway.
    claims["exp"] = json!(now() - 20);
    assert!(verify(&mint(&keys().rsa, &claims)).await.is_ok());

    let mut claims = projected("ns", "sa");
    claims["nbf"] = json!(now() + 3600);
    let err = verify(&mint(&keys().ec, &claims)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid not before (nbf) claim: token not yet valid"
    );
    claims["nbf"] = json!(now() + 20);
    assert!(verify(&mint(&keys().ec, &claims)).await.is_ok());

    // No expiry at all: refused (a local check could never revoke it).
    let mut claims = projected("ns", "sa");
    claims.as_object_mut().unwrap().remove("exp");
    let err = verify(&mint(&keys().rsa, &claims)).await.unwrap_err();
    assert_eq!(err, LoginError::NoExpiry);
    assert!(err.to_string().contains("projected ServiceAccount token"));

    // A time claim that is not a number is malformed.
    let mut claims = projected("ns", "sa");
    claims["exp"] = json!("tomorrow");
    assert!(matches!(
        verify(&mint(&keys().rsa, &claims)).await,
        Err(LoginError::InvalidToken(_))
    ));
}

#[tokio::test]
async fn audience_is_checked_when_the_role_has_one() {
    let verifier = local_verifier();
    let config = pem_config();
    let mut claims = projected("ns", "sa");
    claims["aud"] = json!(["https://kubernetes.default.svc"]);
    let jwt = mint(&keys().rsa, &claims);
    let err = verifier.verify(&jwt, &config, &checks()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid audience (aud) claim: audience claim does not match any expected audience"
    );
    assert_eq!(err.status(), 403);
    // A role without an audience accepts any.
    let no_audience = ClaimChecks {
        audience: None,
        ..checks()
    };
    assert!(verifier.verify(&jwt, &config, &no_audience).await.is_ok());

    // `aud` as a single string, and as one of several.
    claims["aud"] = json!("secretvault");
    assert!(
        verifier
            .verify(&mint(&keys().rsa, &claims), &config, &checks())
            .await
            .is_ok()
    );
    claims["aud"] = json!(["other", "secretvault"]);
    assert!(
        verifier
            .verify(&mint(&keys().rsa, &claims), &config, &checks())
            .await
            .is_ok()
    );
    claims.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        verifier
            .verify(&mint(&keys().rsa, &claims), &config, &checks())
            .await
            .unwrap_err(),
        LoginError::Audience
    );
}

#[tokio::test]
async fn issuer_is_checked_unless_disabled() {
    let verifier = local_verifier();
    let mut claims = projected("ns", "sa");
    claims["iss"] = json!("https://evil.example");
    let jwt = mint(&keys().rsa, &claims);
    let mut config = pem_config();
    let err = verifier
        .verify(
            &jwt,
            &config,
            &ClaimChecks {
                issuer: config.required_issuer(),
                ..checks()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid issuer (iss) claim");

    config.disable_iss_validation = true;
    assert_eq!(config.required_issuer(), None);
    assert!(
        verifier
            .verify(
                &jwt,
                &config,
                &ClaimChecks {
                    issuer: config.required_issuer(),
                    ..checks()
                }
            )
            .await
            .is_ok()
    );

    // Validation on, no issuer configured: Vault's legacy default.
    config.disable_iss_validation = false;
    config.issuer.clear();
    assert_eq!(config.required_issuer(), Some("kubernetes/serviceaccount"));
}

#[tokio::test]
async fn legacy_service_account_claims_are_understood() {
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "exp": now() + 600,
        "kubernetes.io/serviceaccount/namespace": "legacy-ns",
        "kubernetes.io/serviceaccount/secret.name": "app-token-x7k2p",
        "kubernetes.io/serviceaccount/service-account.name": "app",
        "kubernetes.io/serviceaccount/service-account.uid": "legacy-uid",
        "sub": "system:serviceaccount:legacy-ns:app",
    });
    let sa = local_verifier()
        .verify(
            &mint(&keys().rsa, &claims),
            &pem_config(),
            &ClaimChecks {
                audience: None,
                issuer: Some("kubernetes/serviceaccount"),
            },
        )
        .await
        .unwrap();
    assert_eq!(sa.namespace, "legacy-ns");
    assert_eq!(sa.name, "app");
    assert_eq!(sa.uid, "legacy-uid");
    assert_eq!(sa.secret_name.as_deref(), Some("app-token-x7k2p"));
    assert_eq!(sa.pod_name, None);
}

#[test]
fn claims_must_name_one_consistent_service_account() {
    let mut claims = projected("ns", "sa");
    claims["sub"] = json!("system:serviceaccount:kube-system:admin");
    assert!(matches!(
        verify::service_account(&claims),
        Err(LoginError::NotServiceAccount(_))
    ));
    let mut claims = projected("ns", "sa");
    claims["kubernetes.io"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    assert!(matches!(
        verify::service_account(&claims),
        Err(LoginError::NotServiceAccount(_))
    ));
    let not_k8s = json!({"sub": "alice", "exp": now() + 60});
    let err = verify::service_account(&not_k8s).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the token is not a Kubernetes ServiceAccount token"),
        "{err}"
    );
}

#[tokio::test]
async fn key_ids_pick_the_key_from_a_jwks() {
    let jwks = json!({"keys": [
        keys().rsa.jwk_with_kid("old"),
        keys().rsa2.jwk_with_kid("new"),
        keys().ec.jwk_with_kid("ec"),
    ]});
    let config = KubernetesConfig {
        jwks: jwks.to_string(),
        ..config_with(vec![])
    };
    let verifier = local_verifier();
    let claims = projected("ns", "sa");
    for (key, kid) in [
        (&keys().rsa, "old"),
        (&keys().rsa2, "new"),
        (&keys().ec, "ec"),
    ] {
        let jwt = mint_with(key, Some(kid), &claims);
        assert!(
            verifier.verify(&jwt, &config, &checks()).await.is_ok(),
            "{kid}"
        );
    }
    // A kid naming another key than the one that signed: refused, not tried elsewhere.
    let wrong = mint_with(&keys().rsa, Some("new"), &claims);
    assert!(matches!(
        verifier.verify(&wrong, &config, &checks()).await,
        Err(LoginError::InvalidToken(_))
    ));
    // No kid in the token: every key is tried.
    assert!(
        verifier
            .verify(&mint(&keys().rsa2, &claims), &config, &checks())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn no_keys_at_all_is_a_configuration_error() {
    let err = local_verifier()
        .verify(
            &mint(&keys().rsa, &projected("ns", "sa")),
            &config_with(vec![]),
            &checks(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, LoginError::NoKeys);
    assert_eq!(err.status(), 500);
    assert!(err.to_string().contains("pem_keys, jwks or jwks_url"));
}

fn url_config() -> KubernetesConfig {
    KubernetesConfig {
        jwks_url: "https://kubernetes.default.svc/openid/v1/jwks".into(),
        ..config_with(vec![])
    }
}

#[tokio::test]
async fn jwks_url_is_fetched_once_and_cached() {
    let fetcher = FakeFetcher::serving(json!({"keys": [keys().rsa.jwk_with_kid("k1")]}));
    let verifier = LocalKeysVerifier::new(fetcher.clone());
    let config = url_config();
    for _ in 0..5 {
        let jwt = mint_with(&keys().rsa, Some("k1"), &projected("ns", "sa"));
        verifier.verify(&jwt, &config, &checks()).await.unwrap();
    }
    assert_eq!(fetcher.fetches(), 1, "cached within the TTL");
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_after_key_rotation() {
    let fetcher = FakeFetcher::serving(json!({"keys": [keys().rsa.jwk_with_kid("k1")]}));
    let cache = JwksCache::with_timing(
        fetcher.clone(),
        Duration::from_secs(3600),
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    let verifier = LocalKeysVerifier::with_cache(cache);
    let config = url_config();
    let claims = projected("ns", "sa");
    verifier
        .verify(
            &mint_with(&keys().rsa, Some("k1"), &claims),
            &config,
            &checks(),
        )
        .await
        .unwrap();
    // The cluster rotates to a new key.
    fetcher.set(Some(json!({"keys": [
        keys().rsa.jwk_with_kid("k1"),
        keys().rsa2.jwk_with_kid("k2"),
    ]})));
    verifier
        .verify(
            &mint_with(&keys().rsa2, Some("k2"), &claims),
            &config,
            &checks(),
        )
        .await
        .unwrap();
    assert_eq!(fetcher.fetches(), 2);
    // A kid nobody has: one refetch, then refused.
    let stranger = mint_with(&keys().ec, Some("nobody"), &claims);
    assert!(matches!(
        verifier.verify(&stranger, &config, &checks()).await,
        Err(LoginError::InvalidToken(_))
    ));
    assert_eq!(fetcher.fetches(), 3);
}

#[tokio::test]
async fn refetches_are_rate_limited() {
    let fetcher = FakeFetcher::serving(json!({"keys": [keys().rsa.jwk_with_kid("k1")]}));
    let verifier = LocalKeysVerifier::new(fetcher.clone());
    let config = url_config();
    let stranger = mint_with(&keys().ec, Some("nobody"), &projected("ns", "sa"));
    for _ in 0..10 {
        assert!(
            verifier
                .verify(&stranger, &config, &checks())
                .await
                .is_err()
        );
    }
    assert_eq!(
        fetcher.fetches(),
        1,
        "unknown kids must not hammer the API server"
    );
}

#[tokio::test]
async fn fetch_failures_fall_back_to_recent_keys_only() {
    let fetcher = FakeFetcher::serving(json!({"keys": [keys().rsa.jwk_with_kid("k1")]}));
    let cache = JwksCache::with_timing(
        fetcher.clone(),
        Duration::ZERO, // every login refetches
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    let verifier = LocalKeysVerifier::with_cache(cache);
    let config = url_config();
    let jwt = mint_with(&keys().rsa, Some("k1"), &projected("ns", "sa"));
    verifier.verify(&jwt, &config, &checks()).await.unwrap();
    fetcher.set(None);
    // The API server is down: the keys fetched a moment ago still work.
    verifier.verify(&jwt, &config, &checks()).await.unwrap();

    // With nothing fetched before, the failure is reported (500, naming the URL).
    let empty = FakeFetcher::serving(json!({}));
    empty.set(None);
    let err = LocalKeysVerifier::new(empty)
        .verify(&jwt, &config, &checks())
        .await
        .unwrap_err();
    assert_eq!(err.status(), 500);
    assert_eq!(
        err.to_string(),
        "could not fetch the JWKS from https://kubernetes.default.svc/openid/v1/jwks: connection refused"
    );

    // A document without usable keys is a failure too.
    let junk = FakeFetcher::serving(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}));
    let err = LocalKeysVerifier::new(junk)
        .verify(&jwt, &config, &checks())
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::Jwks { .. }), "{err:?}");
}

#[test]
fn jwks_credentials_go_only_to_the_cluster() {
    let mut config = url_config();
    config.kubernetes_ca_cert = "-----BEGIN CERTIFICATE-----\n...".into();
    config.token_reviewer_jwt = Some("reviewer-token".into());
    let same = JwksRequest::for_config(&config);
    assert_eq!(
        same.bearer.as_deref().map(|b| b.as_str()),
        Some("reviewer-token")
    );
    assert!(same.ca_pem.is_some());
    assert!(same.use_pod_credentials);

    config.jwks_url = "https://oidc.example.com/keys".into();
    let other = JwksRequest::for_config(&config);
    assert!(other.bearer.is_none(), "never send the token elsewhere");
    assert!(other.ca_pem.is_none());
    assert!(!other.use_pod_credentials);
    // Debug output shows neither the token nor the CA.
    assert!(!format!("{same:?}").contains("reviewer-token"));
}

#[test]
fn jwks_documents_keep_only_signing_keys() {
    let doc = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "weird"},
        {"use": "enc", "kty": "RSA", "n": keys().rsa.jwk["n"], "e": "AQAB"},
        keys().rsa.jwk_with_kid("ok"),
        keys().ec.jwk_with_kid("ec"),
        // A P-256 point that claims to be P-384.
        {"kty": "EC", "crv": "P-384", "x": keys().ec.jwk["x"], "y": keys().ec.jwk["y"]},
        // An RSA key that says it is for ES256.
        {"kty": "RSA", "alg": "ES256", "n": keys().rsa.jwk["n"], "e": "AQAB"},
    ]});
    let set = KeySet::from_jwks(&doc.to_string()).unwrap();
    let kids: Vec<_> = set.keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids, vec![Some("ok".to_string()), Some("ec".to_string())]);

    let err = KeySet::from_jwks(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap_err();
    assert!(err.to_string().contains("no usable signing key"), "{err}");
    assert!(KeySet::from_jwks("[]").is_err());
    assert!(KeySet::from_jwks("{not json").is_err());
}

#[test]
fn pem_keys_must_be_public_keys() {
    assert!(KeySet::from_pem(&[keys().rsa.public_pem.clone()]).is_ok());
    // PKCS#1 `RSA PUBLIC KEY` too.
    let pkcs1 = {
        use rsa::pkcs1::EncodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_pem(&keys().rsa.public_pem)
            .unwrap()
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
    };
    assert!(KeySet::from_pem(&[pkcs1]).is_ok());
    for bad in [
        "garbage".to_string(),
        keys().rsa.private_pem.to_string(),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".to_string(),
    ] {
        assert_eq!(
            KeySet::from_pem(&[bad]).unwrap_err().to_string(),
            "data does not contain any valid public keys"
        );
    }
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".to_string();
    assert!(
        KeySet::from_pem(&[cert])
            .unwrap_err()
            .to_string()
            .contains("openssl x509 -pubkey")
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn verification_never_panics_on_garbage(
        head in "\\PC{0,60}",
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        sig in "[A-Za-z0-9_-]{0,90}",
        alg in proptest::sample::select(vec!["RS256", "ES256", "ES384", "PS256", "HS256", "none", "x"]),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let verifier = local_verifier();
        let config = pem_config();
        let candidates = [
            format!("{head}.{}.{sig}", URL_SAFE_NO_PAD.encode(&body)),
            format!(
                "{}.{}.{sig}",
                b64json(&json!({"alg": alg, "kid": head})),
                URL_SAFE_NO_PAD.encode(&body)
            ),
        ];
        for jwt in candidates {
            let result = rt.block_on(verifier.verify(&jwt, &config, &checks()));
            proptest::prop_assert!(result.is_err());
        }
    }

    #[test]
    fn claim_parsing_never_panics(raw in "\\PC{0,300}") {
        if let Ok(v) = serde_json::from_str::<Value>(&raw) {
            let _ = verify::service_account(&v);
            let _ = verify::check_claims(&v, &checks(), now(), 60);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------

fn role_from(body: Value) -> Result<KubernetesRole, String> {
    KubernetesRole::updated(None, &Fields(body.as_object().unwrap()))
        .map_err(|e| e.errors.join("; "))
}

fn sa(namespace: &str, name: &str) -> ServiceAccount {
    ServiceAccount {
        namespace: namespace.into(),
        name: name.into(),
        uid: "uid-1".into(),
        ..Default::default()
    }
}

#[test]
fn role_validation_speaks_vaults_words() {
    let bound = |extra: Value| {
        let mut body = json!({
            "bound_service_account_names": "app",
            "bound_service_account_namespaces": "ns",
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        role_from(body)
    };
    for (body, expected) in [
        (
            json!({}),
            "\"bound_service_account_names\" can not be empty",
        ),
        (
            json!({"bound_service_account_names": "a"}),
            "\"bound_service_account_namespaces\" can not be empty if \"bound_service_account_namespace_selector\" is not set",
        ),
        (
            json!({"bound_service_account_names": ["*", "a"], "bound_service_account_namespaces": "x"}),
            "can not mix \"*\" with values",
        ),
        (
            json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "*,x"}),
            "can not mix \"*\" with values",
        ),
    ] {
        assert_eq!(role_from(body).unwrap_err(), expected);
    }
    for (extra, expected) in [
        (
            json!({"ttl": "2h", "max_ttl": "1h"}),
            "token ttl should not be greater than token max ttl",
        ),
        (
            json!({"token_ttl": "2h", "token_max_ttl": "1h"}),
            "'token_ttl' cannot be greater than 'token_max_ttl'",
        ),
        (
            json!({"token_ttl": "5h"}),
            "'token_ttl' cannot be greater than 'token_max_ttl' (token_max_ttl is 4h0m0s; set it too)",
        ),
        (
            json!({"alias_name_source": "bogus"}),
            "invalid alias_name_source, must be one of: serviceaccount_uid, serviceaccount_name",
        ),
        (
            json!({"token_num_uses": -1}),
            "'token_num_uses' cannot be negative",
        ),
        (
            json!({"token_type": "bogus"}),
            "invalid 'token_type' value \"bogus\"",
        ),
    ] {
        assert_eq!(bound(extra.clone()).unwrap_err(), expected, "{extra}");
    }
    for extra in [
        json!({"token_type": "batch"}),
        json!({"token_bound_cidrs": ["10.0.0.0/8"]}),
        json!({"bound_cidrs": "10.0.0.0/8"}),
        json!({"token_strictly_bind_ip": true}),
        json!({"bound_service_account_namespace_selector": "{\"matchLabels\":{\"a\":\"b\"}}"}),
        json!({"alias_metadata": {"service_account_name": "spoof"}}),
        json!({"alias_metadata": {"k": "v".repeat(2048)}}),
        json!({"alias_metadata": (0..33).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        json!({"audience": ["a", "b"]}),
    ] {
        let err = bound(extra.clone()).unwrap_err();
        assert!(!err.is_empty(), "{extra}");
    }
    assert!(bound(json!({"token_type": "service", "token_bound_cidrs": []})).is_ok());
}

#[test]
fn new_roles_get_the_design_defaults() {
    let role = role_from(json!({
        "bound_service_account_names": "app",
        "bound_service_account_namespaces": "ns",
    }))
    .unwrap();
    assert_eq!(role.audience, "secretvault");
    assert_eq!(role.token_ttl, 3600);
    assert_eq!(role.token_max_ttl, 4 * 3600);
    assert_eq!(role.alias_name_source, AliasNameSource::ServiceaccountUid);
    let data = role.json();
    assert_eq!(data["audience"], "secretvault");
    assert_eq!(data["token_ttl"], 3600);
    assert_eq!(data["token_max_ttl"], 14400);
    assert_eq!(data["token_type"], "default");
    assert_eq!(data["bound_service_account_namespace_selector"], "");
    assert_eq!(data["token_bound_cidrs"], json!([]));
    assert!(data.get("policies").is_none());
    assert!(data.get("ttl").is_none());

    // An empty audience switches the audience check off, and is not shown, as in Vault.
    let open = KubernetesRole::updated(
        Some(role),
        &Fields(json!({"audience": ""}).as_object().unwrap()),
    )
    .unwrap();
    assert!(open.json().get("audience").is_none());
}

#[test]
fn deprecated_field_names_still_work_and_show() {
    let role = role_from(json!({
        "bound_service_account_names": ["a", "b"],
        "bound_service_account_namespaces": ["ns*"],
        "policies": "p1,P2",
        "ttl": "1h",
        "max_ttl": 7200,
        "period": "5m",
        "num_uses": 3,
    }))
    .unwrap();
    let data = role.json();
    assert_eq!(data["policies"], json!(["p1", "p2"]));
    assert_eq!(data["token_policies"], json!(["p1", "p2"]));
    assert_eq!(data["ttl"], 3600);
    assert_eq!(data["token_ttl"], 3600);
    assert_eq!(data["max_ttl"], 7200);
    assert_eq!(data["period"], 300);
    assert_eq!(data["num_uses"], 3);
    assert_eq!(data["token_num_uses"], 3);

    // A new name given alone clears the old one from reads; other fields are kept.
    let role = KubernetesRole::updated(
        Some(role),
        &Fields(json!({"token_policies": "zz"}).as_object().unwrap()),
    )
    .unwrap();
    let data = role.json();
    assert!(data.get("policies").is_none());
    assert_eq!(data["token_policies"], json!(["zz"]));
    assert_eq!(data["ttl"], 3600, "untouched fields keep their names");
    assert_eq!(data["bound_service_account_names"], json!(["a", "b"]));

    // Both names at once: the new one wins, and both show it.
    let role = role_from(json!({
        "bound_service_account_names": "a",
        "bound_service_account_namespaces": "x",
        "policies": "a",
        "token_policies": "b",
    }))
    .unwrap();
    assert_eq!(role.json()["policies"], json!(["b"]));
    assert_eq!(role.json()["token_policies"], json!(["b"]));
}

#[test]
fn globs_match_anywhere_as_in_vault() {
    use role::glob_match;
    for (pattern, value, expected) in [
        ("*", "anything", true),
        ("app", "app", true),
        ("app", "apps", false),
        ("app-*", "app-web", true),
        ("*-web", "app-web", true),
        ("a*p", "app", true),
        ("a*p", "apx", false),
        ("n*1", "ns1", true),
        ("team-*-prod", "team-pay-prod", true),
        ("team-*-prod", "team-pay-dev", false),
        ("*mid*", "a-mid-b", true),
        ("a*a", "a", false),
        ("", "", true),
        ("", "x", false),
    ] {
        assert_eq!(glob_match(pattern, value), expected, "{pattern} ~ {value}");
    }
}

#[test]
fn bindings_check_names_then_namespaces() {
    let role = role_from(json!({
        "bound_service_account_names": ["api", "worker-*"],
        "bound_service_account_namespaces": ["payments", "team-*"],
    }))
    .unwrap();
    assert!(role.authorize(&sa("payments", "api")).is_ok());
    assert!(role.authorize(&sa("team-a", "worker-1")).is_ok());
    assert_eq!(
        role.authorize(&sa("payments", "other"))
            .unwrap_err()
            .to_string(),
        "service account name not authorized"
    );
    assert_eq!(
        role.authorize(&sa("default", "api"))
            .unwrap_err()
            .to_string(),
        "namespace not authorized"
    );
    assert_eq!(
        role.authorize(&sa("default", "other")).unwrap_err(),
        LoginError::ServiceAccountName,
        "names are checked first, as in Vault"
    );
    let any = role_from(json!({
        "bound_service_account_names": "*",
        "bound_service_account_namespaces": "*",
    }))
    .unwrap();
    assert!(any.authorize(&sa("kube-system", "anything")).is_ok());
}

#[test]
fn alias_names_come_from_the_uid_or_the_name() {
    let mut role = role_from(json!({
        "bound_service_account_names": "*",
        "bound_service_account_namespaces": "*",
    }))
    .unwrap();
    assert_eq!(role.alias_name(&sa("ns", "app")).unwrap(), "uid-1");
    let mut no_uid = sa("ns", "app");
    no_uid.uid.clear();
    assert!(role.alias_name(&no_uid).is_err());
    role.alias_name_source = AliasNameSource::ServiceaccountName;
    assert_eq!(role.alias_name(&no_uid).unwrap(), "ns/app");
}

#[test]
fn role_names_follow_vaults_pattern() {
    for ok in ["a", "app", "a.b_c-d", "A1", "x_"] {
        assert!(role::valid_role_name(ok), "{ok}");
    }
    for bad in ["", "-bad", "bad-", ".x", "a/b", "a b", "ü"] {
        assert!(!role::valid_role_name(bad), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

fn config_from(body: Value) -> Result<(KubernetesConfig, Vec<String>), String> {
    KubernetesConfig::from_fields(&Fields(body.as_object().unwrap()))
        .map_err(|e| e.errors.join("; "))
}

const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIUaEMDU2obHgj9sIZgPs73E94YKkowCgYIKoZIzj0EAwIw
ETEPMA0GA1UEAwwGazhzLWNhMB4XDTI2MTEyMzA5MDYxN1oXDTI2MTIyMzA5MDYx
N1owETEPMA0GA1UEAwwGazhzLWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
YYPmxQibtk9zrDEysxykiEoW+MKY56Q/HbPfNcVxCPEJUuhJsqtP1+4tXYUGW3Md
qiZfiMrGZxS6thw5swAz/qNTMFEwHQYDVR0OBBYEFEfxx/rf4f4Vc7aCE23zXo1H
BPX4MB8GA1UdIwQYMBaAFEfxx/rf4f4Vc7aCE23zXo1HBPX4MA8GA1UdEwEB/wQF
MAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgRRsZZsMUhSA7FTryEvN1PZOs5rskWulx
+DBHilAAH00CIQDdBILZ2ueYktveXuy91FnlofqY3uB2AZLpoadCahvi9g==
-----END CERTIFICATE-----
";

#[test]
fn config_validation() {
    assert_eq!(config_from(json!({})).unwrap_err(), "no host provided");
    assert_eq!(
        config_from(json!({"kubernetes_host": "https://k8s", "pem_keys": "garbage"})).unwrap_err(),
        "data does not contain any valid public keys"
    );
    assert!(
        config_from(json!({"kubernetes_host": "https://k8s", "kubernetes_ca_cert": "garbage"}))
            .unwrap_err()
            .contains("kubernetes_ca_cert")
    );
    assert!(
        config_from(json!({"kubernetes_host": "https://k8s", "kubernetes_ca_cert": TEST_CA}))
            .is_ok()
    );
    for url in [
        "http://kubernetes.default.svc/openid/v1/jwks",
        "ftp://x/jwks",
        "not a url",
    ] {
        let err =
            config_from(json!({"kubernetes_host": "https://k8s", "jwks_url": url})).unwrap_err();
        assert!(err.starts_with("jwks_url:"), "{url}: {err}");
    }
    for url in [
        "https://kubernetes.default.svc/openid/v1/jwks",
        "http://127.0.0.1:8080/jwks",
        "http://[::1]:8080/jwks",
        "http://localhost/jwks",
    ] {
        assert!(
            config_from(json!({"kubernetes_host": "https://k8s", "jwks_url": url})).is_ok(),
            "{url}"
        );
    }
    assert!(
        config_from(json!({"kubernetes_host": "https://k8s", "jwks": "{\"keys\": []}"}))
            .unwrap_err()
            .contains("no usable signing key")
    );
    assert!(config_from(json!({"kubernetes_host": "https://k8s", "jwks": 5})).is_err());
}

#[test]
fn config_defaults_and_read_shape() {
    let (config, warnings) = config_from(json!({
        "kubernetes_host": "https://k8s:6443",
        "kubernetes_ca_cert": TEST_CA,
        "pem_keys": [keys().rsa.public_pem.clone(), keys().ec.public_pem.clone()],
        "issuer": ISSUER,
        "token_reviewer_jwt": "reviewer-secret",
        "jwks": {"keys": [keys().ec.jwk_with_kid("k")]},
    }))
    .unwrap();
    assert!(warnings.is_empty());
    assert!(
        !config.disable_iss_validation,
        "a configured issuer is checked"
    );
    let data = config.json();
    let mut keys_seen: Vec<_> = data.as_object().unwrap().keys().cloned().collect();
    keys_seen.sort();
    assert_eq!(
        keys_seen,
        [
            "disable_iss_validation",
            "disable_local_ca_jwt",
            "issuer",
            "jwks",
            "jwks_url",
            "kubernetes_ca_cert",
            "kubernetes_host",
            "pem_keys",
            "token_reviewer_jwt_set",
        ]
    );
    assert_eq!(data["token_reviewer_jwt_set"], true);
    assert!(!data.to_string().contains("reviewer-secret"));
    assert!(!format!("{config:?}").contains("reviewer-secret"));
    // pem_keys come back trimmed, as Vault's comma-string-slice fields do.
    assert_eq!(data["pem_keys"][0], keys().rsa.public_pem.trim());
    assert!(data["jwks"].as_str().unwrap().contains("\"keys\""));

    // Without an issuer, Vault's default: no issuer check.
    let (config, warnings) = config_from(json!({"kubernetes_host": "https://k8s"})).unwrap();
    assert!(config.disable_iss_validation);
    assert_eq!(warnings.len(), 1, "no keys: logins cannot work yet");
}

// ---------------------------------------------------------------------------------------
// Through the router
// ---------------------------------------------------------------------------------------

/// A backend that counts writes, to prove logins make none.
struct CountingBackend {
    inner: MemoryBackend,
    writes: AtomicUsize,
}

#[async_trait]
impl Backend for CountingBackend {
    fn name(&self) -> &'static str {
        "counting"
    }

    async fn get(&self, key: &str) -> crate::storage::Result<Option<Entry>> {
        self.inner.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> crate::storage::Result<Revision> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, value, precondition).await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> crate::storage::Result<bool> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key, precondition).await
    }

    async fn list(&self, prefix: &str) -> crate::storage::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
}

struct Harness {
    vault: Vault,
    backend: Arc<CountingBackend>,
    root: String,
    audit_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let backend = Arc::new(CountingBackend {
        inner: MemoryBackend::new(),
        writes: AtomicUsize::new(0),
    });
    let vault = Vault::open(backend.clone(), RootKey::generate(), VaultConfig::default())
        .await
        .unwrap();
    let root = vault
        .ensure_root_token(Some("root-token"))
        .await
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.log");
    vault
        .enable_file_audit("file", audit_path.to_str().unwrap())
        .await
        .unwrap();
    Harness {
        vault,
        backend,
        root,
        audit_path,
        _dir: dir,
    }
}

fn request(token: Option<&str>, op: Option<Operation>, path: &str, body: Value) -> Request {
    Request {
        operation: op,
        is_write: op.is_none(),
        path: path.to_string(),
        data: body.as_object().cloned().unwrap_or_default(),
        token: token.map(|t| Zeroizing::new(t.to_string())),
        ..Default::default()
    }
}

fn errors(reply: &Reply) -> Vec<String> {
    reply.body.as_ref().map_or_else(Vec::new, |b| {
        b["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    })
}

impl Harness {
    async fn call(
        &self,
        token: Option<&str>,
        op: Option<Operation>,
        path: &str,
        body: Value,
    ) -> Reply {
        self.vault.handle(request(token, op, path, body)).await
    }

    async fn write(&self, path: &str, body: Value) -> Reply {
        self.call(Some(&self.root), None, path, body).await
    }

    async fn read(&self, token: &str, path: &str) -> Reply {
        self.call(Some(token), Some(Operation::Read), path, json!({}))
            .await
    }

    async fn login(&self, role: &str, jwt: &str) -> Reply {
        self.call(
            None,
            None,
            "auth/kubernetes/login",
            json!({"role": role, "jwt": jwt}),
        )
        .await
    }

    async fn configure(&self) {
        let r = self
            .write(
                "auth/kubernetes/config",
                json!({
                    "kubernetes_host": "https://kubernetes.default.svc",
                    "pem_keys": [keys().rsa.public_pem.clone(), keys().ec.public_pem.clone()],
                    "issuer": ISSUER,
                }),
            )
            .await;
        assert_eq!(r.status, 204, "{r:?}");
    }

    async fn policy(&self, name: &str, hcl: &str) {
        let r = self
            .write(&format!("sys/policies/acl/{name}"), json!({"policy": hcl}))
            .await;
        assert_eq!(r.status, 204, "{r:?}");
    }

    fn writes(&self) -> usize {
        self.backend.writes.load(Ordering::SeqCst)
    }

    fn accessor(&self) -> String {
        self.vault.kubernetes_auth().accessor().to_string()
    }
}

fn token_of(reply: &Reply) -> String {
    reply.body.as_ref().unwrap()["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {reply:?}"))
        .to_string()
}

#[tokio::test]
async fn login_issues_a_token_with_the_roles_policies() {
    let h = harness().await;
    h.configure().await;
    h.policy(
        "payments-read",
        r#"path "secret/data/payments/*" { capabilities = ["read"] }"#,
    )
    .await;
    assert_eq!(
        h.write(
            "auth/kubernetes/role/payments",
            json!({
                "bound_service_account_names": "api",
                "bound_service_account_namespaces": "payments",
                "token_policies": "payments-read",
            }),
        )
        .await
        .status,
        204
    );
    h.write(
        "secret/data/payments/db",
        json!({"data": {"password": "pw"}}),
    )
    .await;
    h.write("secret/data/other/db", json!({"data": {"password": "no"}}))
        .await;

    let jwt = mint(&keys().rsa, &projected("payments", "api"));
    let reply = h.login("payments", &jwt).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.body.clone().unwrap();
    assert_eq!(body["data"], Value::Null);
    let auth = &body["auth"];
    assert_eq!(auth["policies"], json!(["default", "payments-read"]));
    assert_eq!(auth["token_policies"], json!(["default", "payments-read"]));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["orphan"], true);
    assert_eq!(auth["token_type"], "service");
    assert_eq!(
        auth["metadata"],
        json!({
            "role": "payments",
            "service_account_name": "api",
            "service_account_namespace": "payments",
            "service_account_secret_name": "",
            "service_account_uid": "payments-api-uid",
            "pod_name": "api-pod",
            "pod_uid": "api-pod-uid",
        })
    );
    let entity = auth["entity_id"].as_str().unwrap().to_string();
    assert_eq!(entity.len(), 36);

    let token = token_of(&reply);
    let ok = h.read(&token, "secret/data/payments/db").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body.unwrap()["data"]["data"]["password"], "pw");
    let denied = h.read(&token, "secret/data/other/db").await;
    assert_eq!(denied.status, 403);

    let me = h.read(&token, "auth/token/lookup-self").await.body.unwrap();
    assert_eq!(me["data"]["path"], "auth/kubernetes/login");
    assert_eq!(me["data"]["display_name"], "kubernetes-payments-api");
    assert_eq!(me["data"]["meta"]["service_account_name"], "api");
    assert_eq!(me["data"]["entity_id"], entity.as_str());
    assert_eq!(me["data"]["orphan"], true);

    // The same service account always maps to the same entity.
    let again = h
        .login("payments", &mint(&keys().ec, &projected("payments", "api")))
        .await;
    assert_eq!(again.body.unwrap()["auth"]["entity_id"], entity.as_str());
    let other = h
        .login(
            "payments",
            &mint(&keys().rsa, &{
                let mut c = projected("payments", "api");
                c["kubernetes.io"]["serviceaccount"]["uid"] = json!("recreated-uid");
                c
            }),
        )
        .await;
    assert_ne!(other.body.unwrap()["auth"]["entity_id"], entity.as_str());
}

#[tokio::test]
async fn login_writes_nothing_to_storage() {
    let h = harness().await;
    h.configure().await;
    h.write(
        "auth/kubernetes/role/app",
        json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*"}),
    )
    .await;
    let before = h.writes();
    for i in 0..5 {
        let jwt = mint(&keys().rsa, &projected(&format!("ns{i}"), "app"));
        let reply = h.login("app", &jwt).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let token = token_of(&reply);
        assert_eq!(h.read(&token, "auth/token/lookup-self").await.status, 200);
    }
    // Refused logins write nothing either.
    assert_eq!(h.login("app", "junk").await.status, 403);
    assert_eq!(h.login("nope", "junk").await.status, 400);
    assert_eq!(h.writes(), before, "a login must not write to storage");
}

#[tokio::test]
async fn templated_policies_see_the_service_account() {
    let h = harness().await;
    h.configure().await;
    let accessor = h.accessor();
    h.policy(
        "per-namespace",
        &format!(
            r#"path "secret/data/{{{{identity.entity.aliases.{accessor}.metadata.service_account_namespace}}}}/*" {{ capabilities = ["read"] }}
path "secret/data/by-sa/{{{{identity.entity.metadata.service_account_name}}}}" {{ capabilities = ["read"] }}
path "secret/data/teams/{{{{identity.entity.aliases.{accessor}.metadata.team}}}}" {{ capabilities = ["read"] }}"#
        ),
    )
    .await;
    h.write(
        "auth/kubernetes/role/apps",
        json!({
            "bound_service_account_names": "*",
            "bound_service_account_namespaces": ["team-*"],
            "token_policies": ["per-namespace"],
            "alias_metadata": {"team": "blue"},
        }),
    )
    .await;
    for path in [
        "secret/data/team-a/db",
        "secret/data/team-b/db",
        "secret/data/by-sa/web",
        "secret/data/teams/blue",
    ] {
        h.write(path, json!({"data": {"k": "v"}})).await;
    }
    let a = token_of(
        &h.login("apps", &mint(&keys().rsa, &projected("team-a", "web")))
            .await,
    );
    let b = token_of(
        &h.login("apps", &mint(&keys().ec, &projected("team-b", "db")))
            .await,
    );
    assert_eq!(h.read(&a, "secret/data/team-a/db").await.status, 200);
    assert_eq!(h.read(&a, "secret/data/team-b/db").await.status, 403);
    assert_eq!(h.read(&b, "secret/data/team-b/db").await.status, 200);
    assert_eq!(h.read(&b, "secret/data/team-a/db").await.status, 403);
    assert_eq!(h.read(&a, "secret/data/by-sa/web").await.status, 200);
    assert_eq!(h.read(&b, "secret/data/by-sa/web").await.status, 403);
    assert_eq!(h.read(&a, "secret/data/teams/blue").await.status, 200);
    // Outside the role's namespaces there is no login at all.
    let refused = h
        .login("apps", &mint(&keys().rsa, &projected("kube-system", "web")))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(errors(&refused), vec!["namespace not authorized"]);
}

#[tokio::test]
async fn login_errors_match_vault() {
    let h = harness().await;
    let jwt = mint(&keys().rsa, &projected("ns", "app"));
    h.write(
        "auth/kubernetes/role/app",
        json!({"bound_service_account_names": "app", "bound_service_account_namespaces": "ns"}),
    )
    .await;

    let no_config = h.login("app", &jwt).await;
    assert_eq!(no_config.status, 500);
    assert_eq!(
        errors(&no_config),
        vec!["could not load backend configuration"]
    );
    h.configure().await;

    for (body, status, message) in [
        (json!({"jwt": jwt}), 400, "missing role"),
        (json!({"role": "app"}), 400, "missing jwt"),
        (
            json!({"role": "nope", "jwt": jwt}),
            400,
            "invalid role name \"nope\"",
        ),
        (
            json!({"role": "../x", "jwt": jwt}),
            400,
            "invalid role name \"../x\"",
        ),
        (
            json!({"role": "app", "jwt": "abc"}),
            403,
            "permission denied",
        ),
        (
            json!({"role": "app", "jwt": mint(&keys().rsa, &projected("ns", "other"))}),
            403,
            "service account name not authorized",
        ),
        (
            json!({"role": "app", "jwt": mint(&keys().rsa, &projected("zz", "app"))}),
            403,
            "namespace not authorized",
        ),
        (
            json!({"role": "app", "jwt": mint(&keys().rsa, &{
                let mut c = projected("ns", "app");
                c["exp"] = json!(1000);
                c
            })}),
            403,
            "invalid expiration time (exp) claim: token is expired",
        ),
        (
            json!({"role": "app", "jwt": mint(&keys().rsa, &{
                let mut c = projected("ns", "app");
                c["aud"] = json!(["vault"]);
                c
            })}),
            403,
            "invalid audience (aud) claim: audience claim does not match any expected audience",
        ),
        (
            json!({"role": "app", "jwt": mint(&keys().rsa, &{
                let mut c = projected("ns", "app");
                c["iss"] = json!("evil");
                c
            })}),
            403,
            "invalid issuer (iss) claim",
        ),
    ] {
        let r = h
            .call(None, None, "auth/kubernetes/login", body.clone())
            .await;
        assert_eq!(
            (r.status, errors(&r)),
            (status, vec![message.to_string()]),
            "{body}"
        );
    }
    let get = h
        .call(
            None,
            Some(Operation::Read),
            "auth/kubernetes/login",
            json!({}),
        )
        .await;
    assert_eq!(get.status, 405);
    assert_eq!(errors(&get), vec!["unsupported operation"]);
}

#[tokio::test]
async fn logins_are_audited_without_secrets() {
    let h = harness().await;
    h.configure().await;
    h.write(
        "auth/kubernetes/role/app",
        json!({"bound_service_account_names": "app", "bound_service_account_namespaces": "ns"}),
    )
    .await;
    let jwt = mint(&keys().rsa, &projected("ns", "app"));
    let reply = h.login("app", &jwt).await;
    let token = token_of(&reply);
    h.login("app", "refused.jwt.value").await;

    let log = std::fs::read_to_string(&h.audit_path).unwrap();
    assert!(
        !log.contains(&jwt),
        "the JWT must not be written in the clear"
    );
    assert!(
        !log.contains(&token),
        "the issued token must not be written in the clear"
    );
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["request"]["path"] == "auth/kubernetes/login")
        .collect();
    assert_eq!(entries.len(), 4, "request and response of both logins");
    assert_eq!(entries[0]["type"], "request");
    assert_eq!(entries[0]["request"]["mount_type"], "kubernetes");
    assert_eq!(
        entries[0]["request"]["mount_accessor"],
        h.accessor().as_str()
    );
    let jwt_field = entries[0]["request"]["data"]["jwt"].as_str().unwrap();
    assert!(jwt_field.starts_with("hmac-sha256:"), "{jwt_field}");
    assert_eq!(entries[1]["type"], "response");
    let issued = entries[1]["response"]["auth"]["client_token"]
        .as_str()
        .unwrap();
    assert!(issued.starts_with("hmac-sha256:"), "{issued}");
    assert_eq!(entries[3]["error"], "permission denied");
}

#[tokio::test]
async fn role_and_config_endpoints() {
    let h = harness().await;
    let root = h.root.clone();
    let read = |path: &'static str| h.read(&root, path);
    assert_eq!(read("auth/kubernetes/config").await.status, 404);
    assert_eq!(read("auth/kubernetes/role/app").await.status, 404);
    let list = h
        .call(
            Some(&h.root),
            Some(Operation::List),
            "auth/kubernetes/role",
            json!({}),
        )
        .await;
    assert_eq!((list.status, errors(&list)), (404, vec![]));

    for name in ["b-role", "a.role"] {
        let r = h
            .write(
                &format!("auth/kubernetes/role/{name}"),
                json!({"bound_service_account_names": "x", "bound_service_account_namespaces": "y"}),
            )
            .await;
        assert_eq!(r.status, 204, "{r:?}");
    }
    let list = h
        .call(
            Some(&h.root),
            Some(Operation::List),
            "auth/kubernetes/role",
            json!({}),
        )
        .await;
    assert_eq!(
        list.body.unwrap()["data"]["keys"],
        json!(["a.role", "b-role"])
    );
    let role = read("auth/kubernetes/role/b-role").await.body.unwrap();
    assert_eq!(role["data"]["bound_service_account_names"], json!(["x"]));

    let bad = h.write("auth/kubernetes/role/-bad", json!({})).await;
    assert_eq!(bad.status, 404);
    assert_eq!(
        errors(&bad),
        vec!["1 error occurred:\n\t* unsupported path\n\n"]
    );
    assert_eq!(read("auth/kubernetes/bogus").await.status, 404);

    let del = h
        .call(
            Some(&h.root),
            Some(Operation::Delete),
            "auth/kubernetes/role/b-role",
            json!({}),
        )
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(read("auth/kubernetes/role/b-role").await.status, 404);

    h.configure().await;
    let config = read("auth/kubernetes/config").await.body.unwrap();
    assert_eq!(
        config["data"]["kubernetes_host"],
        "https://kubernetes.default.svc"
    );
    assert_eq!(config["data"]["issuer"], ISSUER);
    assert_eq!(config["data"]["disable_iss_validation"], false);
    let del = h
        .call(
            Some(&h.root),
            Some(Operation::Delete),
            "auth/kubernetes/config",
            json!({}),
        )
        .await;
    assert_eq!(del.status, 405);

    // A config without keys is accepted with a warning, as a 200.
    let warned = h
        .write(
            "auth/kubernetes/config",
            json!({"kubernetes_host": "https://k8s"}),
        )
        .await;
    assert_eq!(warned.status, 200);
    assert!(
        warned.body.unwrap()["warnings"][0]
            .as_str()
            .unwrap()
            .contains("pem_keys")
    );
}

#[tokio::test]
async fn managing_roles_needs_policy_grants() {
    let h = harness().await;
    h.policy(
        "role-creator",
        r#"path "auth/kubernetes/role/*" { capabilities = ["create", "read"] }"#,
    )
    .await;
    let t = h
        .write("auth/token/create", json!({"policies": ["role-creator"]}))
        .await;
    let token = token_of(&t);
    let body = json!({"bound_service_account_names": "x", "bound_service_account_namespaces": "y"});
    let create = h
        .call(Some(&token), None, "auth/kubernetes/role/r", body.clone())
        .await;
    assert_eq!(create.status, 204, "{create:?}");
    let update = h
        .call(Some(&token), None, "auth/kubernetes/role/r", body)
        .await;
    assert_eq!(update.status, 403, "an existing role needs update");
    let config = h
        .call(
            Some(&token),
            None,
            "auth/kubernetes/config",
            json!({"kubernetes_host": "h"}),
        )
        .await;
    assert_eq!(config.status, 403);
    let anonymous = h
        .call(
            None,
            Some(Operation::Read),
            "auth/kubernetes/role/r",
            json!({}),
        )
        .await;
    assert_eq!(anonymous.status, 403);
}

#[tokio::test]
async fn the_mount_is_listed_and_enabling_it_is_a_no_op() {
    let h = harness().await;
    let auth = h.read(&h.root, "sys/auth").await.body.unwrap();
    let mount = &auth["data"]["kubernetes/"];
    assert_eq!(mount["type"], "kubernetes");
    assert_eq!(mount["accessor"], h.accessor().as_str());
    assert!(h.accessor().starts_with("auth_kubernetes_"));
    assert_eq!(auth["data"]["token/"]["type"], "token");

    assert_eq!(
        h.write("sys/auth/kubernetes", json!({"type": "kubernetes"}))
            .await
            .status,
        204
    );
    assert_eq!(
        h.write("sys/auth/approle", json!({"type": "approle"}))
            .await
            .status,
        400
    );
    assert_eq!(
        h.write("sys/auth/k8s-2", json!({"type": "kubernetes"}))
            .await
            .status,
        400
    );
    let ui = h
        .read(&h.root, "sys/internal/ui/mounts/auth/kubernetes/login")
        .await
        .body
        .unwrap();
    assert_eq!(ui["data"]["type"], "kubernetes");
    assert_eq!(ui["data"]["path"], "auth/kubernetes/");
}

#[tokio::test]
async fn an_entity_made_by_an_administrator_is_used() {
    let h = harness().await;
    h.configure().await;
    h.policy(
        "extra",
        r#"path "secret/data/extra" { capabilities = ["read"] }"#,
    )
    .await;
    h.write("secret/data/extra", json!({"data": {"k": "v"}}))
        .await;
    h.write(
        "auth/kubernetes/role/app",
        json!({"bound_service_account_names": "app", "bound_service_account_namespaces": "ns"}),
    )
    .await;
    let entity = h
        .write(
            "identity/entity",
            json!({"name": "billing", "policies": ["extra"], "metadata": {"team": "billing"}}),
        )
        .await;
    let entity_id = entity.body.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let alias = h
        .write(
            "identity/entity-alias",
            json!({"name": "ns-app-uid", "canonical_id": entity_id, "mount_accessor": h.accessor()}),
        )
        .await;
    assert_eq!(alias.status, 200, "{alias:?}");

    let reply = h
        .login("app", &mint(&keys().rsa, &projected("ns", "app")))
        .await;
    let body = reply.body.clone().unwrap();
    assert_eq!(body["auth"]["entity_id"], entity_id.as_str());
    assert_eq!(body["auth"]["identity_policies"], json!(["extra"]));
    let token = token_of(&reply);
    assert_eq!(h.read(&token, "secret/data/extra").await.status, 200);

    // Disabling the entity cuts its tokens off.
    h.write(
        &format!("identity/entity/id/{entity_id}"),
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(h.read(&token, "auth/token/lookup-self").await.status, 403);
    // ... and its service account cannot log in again (not even as a fresh entity).
    let again = h
        .login("app", &mint(&keys().rsa, &projected("ns", "app")))
        .await;
    assert_eq!(
        (again.status, errors(&again)),
        (403, vec!["permission denied".to_string()])
    );
}

#[tokio::test]
async fn token_ttls_follow_the_role() {
    let h = harness().await;
    h.configure().await;
    h.write(
        "auth/kubernetes/role/short",
        json!({
            "bound_service_account_names": "app",
            "bound_service_account_namespaces": "ns",
            "token_ttl": "10m",
            "token_max_ttl": "20m",
            "token_policies": ["p"],
            "token_num_uses": 2,
        }),
    )
    .await;
    let reply = h
        .login("short", &mint(&keys().rsa, &projected("ns", "app")))
        .await;
    let auth = reply.body.clone().unwrap()["auth"].clone();
    assert_eq!(auth["lease_duration"], 600);
    assert_eq!(auth["policies"], json!(["default", "p"]));
    assert_eq!(auth["num_uses"], 2);
    let token = token_of(&reply);
    let renewed = h
        .call(
            Some(&token),
            None,
            "auth/token/renew-self",
            json!({"increment": "1h"}),
        )
        .await;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    let lease = renewed.body.unwrap()["auth"]["lease_duration"]
        .as_u64()
        .unwrap();
    assert!(
        (1190..=1200).contains(&lease),
        "capped at the max TTL: {lease}"
    );
    // The renewal was the first of two uses.
    assert_eq!(h.read(&token, "auth/token/lookup-self").await.status, 200);
    assert_eq!(h.read(&token, "auth/token/lookup-self").await.status, 403);

    h.write(
        "auth/kubernetes/role/periodic",
        json!({
            "bound_service_account_names": "app",
            "bound_service_account_namespaces": "ns",
            "token_period": "30m",
        }),
    )
    .await;
    let reply = h
        .login("periodic", &mint(&keys().rsa, &projected("ns", "app")))
        .await;
    assert_eq!(reply.body.unwrap()["auth"]["lease_duration"], 1800);

    h.write(
        "auth/kubernetes/role/bare",
        json!({
            "bound_service_account_names": "app",
            "bound_service_account_namespaces": "ns",
            "token_no_default_policy": true,
            "token_policies": ["p"],
        }),
    )
    .await;
    let reply = h
        .login("bare", &mint(&keys().rsa, &projected("ns", "app")))
        .await;
    let auth = reply.body.unwrap()["auth"].clone();
    assert_eq!(auth["policies"], json!(["p"]));
    assert_eq!(auth["lease_duration"], 3600, "the default TTL");
}

#[tokio::test]
async fn the_largest_allowed_metadata_still_fits_in_a_token() {
    let h = harness().await;
    h.configure().await;
    // 32 entries, 2048 bytes in all: the most a role may carry.
    let metadata: serde_json::Map<String, Value> = (0..32)
        .map(|i| (format!("key-{i:02}"), json!("v".repeat(64 - 6))))
        .collect();
    let r = h
        .write(
            "auth/kubernetes/role/big",
            json!({
                "bound_service_account_names": "*",
                "bound_service_account_namespaces": "*",
                "alias_metadata": metadata,
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    // Long (but valid: 253 characters) Kubernetes names.
    let long = "n".repeat(253);
    let reply = h
        .login("big", &mint(&keys().rsa, &projected(&long[..63], &long)))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let token = token_of(&reply);
    assert_eq!(h.read(&token, "auth/token/lookup-self").await.status, 200);
}

#[tokio::test]
async fn a_custom_verifier_can_be_installed() {
    struct Fixed;
    #[async_trait]
    impl TokenVerifier for Fixed {
        async fn verify(
            &self,
            jwt: &str,
            _config: &KubernetesConfig,
            checks: &ClaimChecks<'_>,
        ) -> Result<ServiceAccount, LoginError> {
            assert_eq!(checks.audience, Some("secretvault"));
            if jwt == "pod-gone" {
                return Err(LoginError::InvalidToken("pod no longer exists"));
            }
            Ok(ServiceAccount {
                namespace: "ns".into(),
                name: "app".into(),
                uid: "u".into(),
                ..Default::default()
            })
        }
    }
    let h = harness().await;
    h.configure().await;
    h.write(
        "auth/kubernetes/role/app",
        json!({"bound_service_account_names": "app", "bound_service_account_namespaces": "ns"}),
    )
    .await;
    h.vault.kubernetes_auth().set_verifier(Arc::new(Fixed));
    assert_eq!(h.login("app", "anything").await.status, 200);
    assert_eq!(h.login("app", "pod-gone").await.status, 403);
}

#[tokio::test]
async fn jwks_url_logins_through_the_router() {
    let h = harness().await;
    let fetcher = FakeFetcher::serving(json!({"keys": [keys().ec.jwk_with_kid("cluster-key")]}));
    h.vault
        .kubernetes_auth()
        .set_verifier(Arc::new(LocalKeysVerifier::new(fetcher.clone())));
    let r = h
        .write(
            "auth/kubernetes/config",
            json!({
                "kubernetes_host": "https://kubernetes.default.svc",
                "kubernetes_ca_cert": TEST_CA,
                "jwks_url": "https://kubernetes.default.svc/openid/v1/jwks",
                "issuer": ISSUER,
                "token_reviewer_jwt": "operator-sa-token",
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    h.write(
        "auth/kubernetes/role/app",
        json!({"bound_service_account_names": "app", "bound_service_account_namespaces": "ns"}),
    )
    .await;
    let jwt = mint_with(&keys().ec, Some("cluster-key"), &projected("ns", "app"));
    assert_eq!(h.login("app", &jwt).await.status, 200);
    assert_eq!(h.login("app", &jwt).await.status, 200);
    assert_eq!(fetcher.fetches(), 1);
    let sent = fetcher.requests.lock().unwrap()[0].clone();
    assert_eq!(
        sent.bearer.as_deref().map(|b| b.as_str()),
        Some("operator-sa-token")
    );
    assert_eq!(sent.ca_pem.as_deref(), Some(TEST_CA));
}

// ---------------------------------------------------------------------------------------
// The HTTP fetcher, against a loopback server
// ---------------------------------------------------------------------------------------

/// Serves one canned HTTP response per connection; returns the URL and the requests seen.
async fn serve(responses: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/openid/v1/jwks", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for response in responses {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&request).to_lowercase());
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.ok();
        }
    });
    (url, seen)
}

fn http_response(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn the_http_fetcher_gets_the_jwks_with_the_clusters_credentials() {
    let jwks = json!({"keys": [keys().rsa.jwk_with_kid("k1")]}).to_string();
    let (url, seen) = serve(vec![
        http_response("200 OK", "", &jwks),
        http_response("200 OK", "", &jwks),
    ])
    .await;
    let pod_dir = tempfile::tempdir().unwrap();
    std::fs::write(pod_dir.path().join("token"), "pod-own-token\n").unwrap();
    let fetcher = HttpJwksFetcher::with_pod_dir(pod_dir.path().into(), Duration::from_secs(5));

    let body = fetcher
        .fetch(&JwksRequest {
            url: url.clone(),
            bearer: Some(Zeroizing::new("reviewer".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(body, jwks);
    // Without a configured token, the pod's own one (when allowed).
    fetcher
        .fetch(&JwksRequest {
            url: url.clone(),
            use_pod_credentials: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen[0].starts_with("get /openid/v1/jwks http/1.1"),
        "{}",
        seen[0]
    );
    assert!(
        seen[0].contains("authorization: bearer reviewer"),
        "{}",
        seen[0]
    );
    assert!(
        seen[1].contains("authorization: bearer pod-own-token"),
        "{}",
        seen[1]
    );
}

#[tokio::test]
async fn the_http_fetcher_reports_failures() {
    let (url, seen) = serve(vec![
        http_response("403 Forbidden", "", "{}"),
        http_response(
            "302 Found",
            "Location: http://127.0.0.1:1/elsewhere\r\n",
            "",
        ),
        http_response("200 OK", "", &"x".repeat(jwks::MAX_JWKS_BYTES + 1)),
    ])
    .await;
    let fetcher = HttpJwksFetcher::default();
    let request = JwksRequest {
        url: url.clone(),
        ..Default::default()
    };
    let err = fetcher.fetch(&request).await.unwrap_err();
    assert_eq!(err.to_string(), "the server answered HTTP 403 Forbidden");
    let err = fetcher.fetch(&request).await.unwrap_err();
    assert!(
        err.to_string().contains("302"),
        "redirects are not followed: {err}"
    );
    let err = fetcher.fetch(&request).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 3);
    // No request at all to a plain-http, non-loopback URL, or with an unusable CA.
    let err = fetcher
        .fetch(&JwksRequest {
            url: "http://kubernetes.default.svc/openid/v1/jwks".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    let err = fetcher
        .fetch(&JwksRequest {
            url,
            ca_pem: Some("not a certificate".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CA certificate"), "{err}");
}

/// An HTTPS server for `localhost` with a self-signed certificate (a cluster's API
/// server and its CA in one); returns its port and certificate PEM.
async fn serve_tls(body: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                // Handshakes from clients that do not trust us fail; that is the point.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(http_response("200 OK", "", &body).as_bytes())
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, pem)
}

#[tokio::test]
async fn the_http_fetcher_trusts_exactly_the_cluster_ca() {
    let jwks = json!({"keys": [keys().ec.jwk_with_kid("k")]}).to_string();
    let (port, cluster_ca) = serve_tls(jwks.clone()).await;
    let url = format!("https://localhost:{port}/openid/v1/jwks");
    let fetcher = HttpJwksFetcher::default();
    let body = fetcher
        .fetch(&JwksRequest {
            url: url.clone(),
            ca_pem: Some(cluster_ca),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(body, jwks);

    let other_ca = rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .unwrap()
        .cert
        .pem();
    for ca in [Some(other_ca), None] {
        let err = fetcher
            .fetch(&JwksRequest {
                url: url.clone(),
                ca_pem: ca.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("request failed"),
            "{ca:?}: {err}"
        );
    }
}
