//! Kubernetes ServiceAccount JWTs, as `auth/kubernetes/login` verifies them
//! (`LocalKeysVerifier` with `pem_keys`, and JWKS documents).
//!
//! Modes (first byte):
//! 0. the rest is a JWT: verification never panics, and what it accepts names a service
//!    account (the seeds hold tokens signed with the keys in `keys/`);
//! 1. the rest is a header and claims (JSON, split at the first 0xff byte), signed with the
//!    EC test key when the header says ES256: whatever verifies passes the claim checks
//!    and names the service account the claims name; damaged copies (edits after a second
//!    0xff byte) are refused or verify to the same account;
//! 2. the rest is a JWKS document: parsing never panics, and verification with it as the
//!    only keys never panics.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use secretvault_engine::auth::kubernetes::verify::{
    ClaimChecks, KeySet, LocalKeysVerifier, ServiceAccount, TokenVerifier, check_claims,
    service_account,
};
use secretvault_engine::auth::kubernetes::{HttpJwksFetcher, KubernetesConfig};
use secretvault_fuzz::harness;
use serde_json::{Value, json};

const EC_PRIVATE: &str = include_str!("../keys/ec-p256-private.pem");
const EC_PUBLIC: &str = include_str!("../keys/ec-p256-public.pem");
const RSA_PRIVATE: &str = include_str!("../keys/rsa-2048-private.pem");
const RSA_PUBLIC: &str = include_str!("../keys/rsa-2048-public.pem");

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const CHECKS: ClaimChecks<'static> = ClaimChecks {
    audience: Some("secretvault"),
    issuer: Some(ISSUER),
};

struct Keys {
    ec: EncodingKey,
    verifier: LocalKeysVerifier,
    pem_config: KubernetesConfig,
    /// Valid tokens for a JWKS to verify: ES256 with kid `ec`, RS256 with kid `rsa`.
    tokens: [String; 2],
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("EC test key");
        let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("RSA test key");
        let claims = json!({
            "aud": ["secretvault"],
            "exp": 4_102_444_800_i64,
            "iss": ISSUER,
            "kubernetes.io": {
                "namespace": "payments",
                "serviceaccount": {"name": "api", "uid": "uid-1"},
            },
            "sub": "system:serviceaccount:payments:api",
        });
        let mint = |alg, kid: &str, key: &EncodingKey| {
            let mut header = Header::new(alg);
            header.kid = Some(kid.to_string());
            jsonwebtoken::encode(&header, &claims, key).expect("sign")
        };
        let tokens = [
            mint(Algorithm::ES256, "ec", &ec),
            mint(Algorithm::RS256, "rsa", &rsa),
        ];
        Keys {
            // No jwks_url is configured, so the fetcher is never called.
            verifier: LocalKeysVerifier::new(std::sync::Arc::new(HttpJwksFetcher::with_pod_dir(
                "/nonexistent".into(),
                Duration::from_secs(1),
            ))),
            pem_config: config(vec![EC_PUBLIC.to_string(), RSA_PUBLIC.to_string()], ""),
            ec,
            tokens,
        }
    })
}

fn config(pem_keys: Vec<String>, jwks: &str) -> KubernetesConfig {
    KubernetesConfig {
        kubernetes_host: "https://kubernetes.default.svc".into(),
        pem_keys,
        issuer: ISSUER.into(),
        jwks: jwks.to_string(),
        ..Default::default()
    }
}

fn verify(jwt: &str, config: &KubernetesConfig) -> Result<ServiceAccount, String> {
    let h = harness();
    h.rt.block_on(keys().verifier.verify(jwt, config, &CHECKS))
        .map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = secretvault_fuzz::split_mode(data, 3) else {
        return;
    };
    match mode {
        0 => {
            if let Ok(jwt) = std::str::from_utf8(rest) {
                any_jwt(jwt);
            }
        }
        1 => signed(rest),
        _ => {
            if let Ok(document) = std::str::from_utf8(rest) {
                jwks(document);
            }
        }
    }
});

fn any_jwt(jwt: &str) {
    if let Ok(sa) = verify(jwt, &keys().pem_config) {
        assert!(!sa.namespace.is_empty() && !sa.name.is_empty(), "{sa:?}");
    }
}

fn signed(bytes: &[u8]) {
    let mut parts = bytes.splitn(3, |b| *b == 0xff);
    let (Some(header), Some(claims)) = (parts.next(), parts.next()) else {
        return;
    };
    let edits = parts.next().unwrap_or_default();
    let Ok(header_value) = serde_json::from_slice::<Value>(header) else {
        return;
    };
    let key = match header_value
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<Algorithm>().ok())
    {
        // RSA signing costs ~100 ms per input under the fuzzer's instrumentation, so only
        // ES256 tokens are signed here; RSA verification is reached through the seeds
        // (mode 0) and the JWKS mode.
        Some(Algorithm::ES256) => Some((Algorithm::ES256, &keys().ec)),
        _ => None,
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = match key {
        Some((alg, key)) => match jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg) {
            Ok(s) => s,
            Err(_) => return,
        },
        // An algorithm no test key serves: the signature is whatever the claims hash to.
        None => URL_SAFE_NO_PAD.encode(&claims[..claims.len().min(64)]),
    };
    let jwt = format!("{signing_input}.{signature}");
    let config = &keys().pem_config;
    let result = verify(&jwt, config);
    if let Ok(sa) = &result {
        let claims: Value = serde_json::from_slice(claims).expect("verified claims are JSON");
        // The verifier allows 60 s of clock skew; two more cover the clock moving on.
        assert!(
            check_claims(&claims, &CHECKS, unix_now(), 62).is_ok(),
            "accepted claims that fail the checks: {claims}"
        );
        assert_eq!(service_account(&claims).as_ref(), Ok(sa));
    }
    let damaged = secretvault_fuzz::mutate(&jwt, edits);
    if damaged == jwt.as_bytes() {
        return;
    }
    if let Ok(damaged) = std::str::from_utf8(&damaged)
        && let Ok(sa) = verify(damaged, config)
    {
        assert_eq!(
            result.as_ref().ok(),
            Some(&sa),
            "the damaged token {damaged:?} verified"
        );
    }
}

fn jwks(document: &str) {
    let Ok(set) = KeySet::from_jwks(document) else {
        return;
    };
    assert!(!set.is_empty());
    let config = config(Vec::new(), document);
    for token in &keys().tokens {
        let _ = verify(token, &config);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
