//! Verifying a ServiceAccount token: who it belongs to, and whether to believe it.
//!
//! [`TokenVerifier`] is the seam: the login handler only asks it for a checked
//! [`ServiceAccount`]. [`LocalKeysVerifier`] checks the signature against the keys in the
//! configuration (`pem_keys`, `jwks`) or the cluster's JWKS (`jwks_url`), then expiry,
//! issuer and audience, without calling the cluster. A TokenReview verifier, or a wrapper
//! that also checks that the pod still exists, implements the same trait and is installed
//! with [`super::KubernetesAuth::set_verifier`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config::KubernetesConfig;
use super::jwks::{JwksCache, JwksFetcher, JwksRequest};

/// The longest JWT we will parse. Projected tokens are about 1 KiB.
pub const MAX_JWT_LEN: usize = 64 * 1024;

/// Clock skew allowed on `exp` and `nbf`, seconds (what the Kubernetes API server allows).
pub const DEFAULT_LEEWAY_SECS: i64 = 60;

/// The issuer Vault assumes when issuer validation is on and none is configured: the
/// one in legacy (Secret-based) ServiceAccount tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// Why a login was refused. The `Display` text is what the client sees: Vault's wording
/// where Vault has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Malformed, unsigned, wrongly signed or signed with a disallowed algorithm. Vault
    /// says no more than this; the reason is for the server log (never the token).
    #[error("permission denied")]
    InvalidToken(&'static str),
    #[error("invalid expiration time (exp) claim: token is expired")]
    Expired,
    #[error("invalid not before (nbf) claim: token not yet valid")]
    NotYetValid,
    #[error("invalid audience (aud) claim: audience claim does not match any expected audience")]
    Audience,
    #[error("invalid issuer (iss) claim")]
    Issuer,
    #[error(
        "the token has no expiry (exp claim): secretvault verifies tokens locally and accepts only tokens that expire; log in with a projected ServiceAccount token (serviceAccountToken volume projection or the TokenRequest API)"
    )]
    NoExpiry,
    #[error("the token is not a Kubernetes ServiceAccount token: {0}")]
    NotServiceAccount(&'static str),
    #[error("service account name not authorized")]
    ServiceAccountName,
    #[error("namespace not authorized")]
    Namespace,
    #[error(
        "no keys to verify ServiceAccount tokens: set pem_keys, jwks or jwks_url in auth/kubernetes/config"
    )]
    NoKeys,
    #[error("could not fetch the JWKS from {url}: {reason}")]
    Jwks { url: String, reason: String },
    /// A verifier's backing service (the cluster) could not answer.
    #[error("{0}")]
    Unavailable(String),
}

impl LoginError {
    /// The HTTP status Vault answers with.
    pub fn status(&self) -> u16 {
        match self {
            LoginError::NoKeys | LoginError::Jwks { .. } | LoginError::Unavailable(_) => 500,
            _ => 403,
        }
    }
}

/// Who a verified token belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    /// Empty only for legacy tokens minted without one.
    pub uid: String,
    /// Set for tokens bound to a pod (projected tokens of a running pod).
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    /// Legacy (Secret-based) tokens name their Secret.
    pub secret_name: Option<String>,
}

/// What the token must say besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct ClaimChecks<'a> {
    /// Required member of `aud`; `None` skips the audience check (roles without one).
    pub audience: Option<&'a str>,
    /// Required `iss`; `None` when issuer validation is disabled.
    pub issuer: Option<&'a str>,
}

/// Verifies a ServiceAccount JWT against a configuration and returns its service account.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    async fn verify(
        &self,
        jwt: &str,
        config: &KubernetesConfig,
        checks: &ClaimChecks<'_>,
    ) -> Result<ServiceAccount, LoginError>;
}

/// One public key that may have signed a token.
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// A set of public keys, from PEM or from a JWKS document.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
}

/// A key that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The ECDSA algorithm an EC key serves (its curve decides), or `None` for a key that is
/// neither a P-256 nor a P-384 point.
fn ec_algorithm(key: &DecodingKey) -> Option<Algorithm> {
    // Building a verifier parses the point; only a key on the right curve gets that far,
    // so a dummy signature tells the curves apart without another dependency.
    [Algorithm::ES256, Algorithm::ES384]
        .into_iter()
        .find(|alg| jsonwebtoken::crypto::verify("AA", b"probe", key, *alg).is_ok())
}

impl KeySet {
    /// Parses PEM public keys (`PUBLIC KEY` for RSA or EC, `RSA PUBLIC KEY`), as Vault's
    /// `pem_keys`. Every entry must hold a usable key.
    pub fn from_pem(pems: &[String]) -> Result<KeySet, KeyError> {
        let mut keys = Vec::new();
        for pem in pems {
            let bytes = pem.as_bytes();
            if pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(KeyError(
                    "pem_keys: certificates are not accepted, only public keys; extract the key with `openssl x509 -pubkey -noout -in <cert>`".into(),
                ));
            }
            // Private keys parse as keys too; only public ones belong here.
            if !(pem.contains("-----BEGIN PUBLIC KEY-----")
                || pem.contains("-----BEGIN RSA PUBLIC KEY-----"))
            {
                return Err(KeyError(
                    "data does not contain any valid public keys".into(),
                ));
            }
            if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
                keys.push(VerifyKey {
                    kid: None,
                    key,
                    algorithms: RSA_ALGORITHMS.to_vec(),
                });
                continue;
            }
            let key = DecodingKey::from_ec_pem(bytes)
                .ok()
                .and_then(|key| ec_algorithm(&key).map(|alg| (key, alg)));
            match key {
                Some((key, alg)) => keys.push(VerifyKey {
                    kid: None,
                    key,
                    algorithms: vec![alg],
                }),
                // Vault's words for an unusable pem_keys entry.
                None => {
                    return Err(KeyError(
                        "data does not contain any valid public keys".into(),
                    ));
                }
            }
        }
        Ok(KeySet { keys })
    }

    /// Parses a JWKS document (`{"keys": [...]}`, what a cluster serves at
    /// `/openid/v1/jwks`). RSA and EC signing keys are kept; encryption keys and other key
    /// types (symmetric `oct` keys above all) are skipped. At least one key must be usable.
    pub fn from_jwks(document: &str) -> Result<KeySet, KeyError> {
        let value: Value = serde_json::from_str(document)
            .map_err(|e| KeyError(format!("jwks is not a JSON document: {e}")))?;
        let Some(entries) = value.get("keys").and_then(Value::as_array) else {
            return Err(KeyError(
                "jwks must be a JSON object with a \"keys\" array (a JWKS document, as served at /openid/v1/jwks)".into(),
            ));
        };
        let mut keys = Vec::new();
        for entry in entries {
            // One odd key (an unknown kty) must not hide the usable ones.
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                continue;
            };
            if let Some(key) = Self::from_jwk(&jwk) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(KeyError(
                "jwks holds no usable signing key: expected RSA or EC (P-256, P-384) public keys"
                    .into(),
            ));
        }
        Ok(KeySet { keys })
    }

    fn from_jwk(jwk: &Jwk) -> Option<VerifyKey> {
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return None;
        }
        let declared: Option<Algorithm> = jwk
            .common
            .key_algorithm
            .and_then(|a| Algorithm::try_from(a).ok());
        let (key, algorithms) = match &jwk.algorithm {
            AlgorithmParameters::RSA(params) => {
                let key = DecodingKey::from_rsa_components(&params.n, &params.e).ok()?;
                (key, RSA_ALGORITHMS.to_vec())
            }
            AlgorithmParameters::EllipticCurve(params) => {
                let key = DecodingKey::from_ec_components(&params.x, &params.y).ok()?;
                let alg = ec_algorithm(&key)?;
                let expected = match params.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => return None,
                };
                if alg != expected {
                    return None;
                }
                (key, vec![alg])
            }
            // Symmetric and Edwards keys never sign ServiceAccount tokens; accepting an
            // `oct` key would let anyone who reads the JWKS forge tokens.
            _ => return None,
        };
        let algorithms = match declared {
            Some(alg) if algorithms.contains(&alg) => vec![alg],
            Some(_) => return None,
            None => algorithms,
        };
        Some(VerifyKey {
            kid: jwk.common.key_id.clone(),
            key,
            algorithms,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys worth trying for a token header: those with its `kid` when any has it,
    /// else those without a kid (PEM keys); all keys when the token names none.
    fn candidates<'a>(&'a self, header: &'a Header) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        let by_kid = header.kid.as_deref().filter(|kid| self.has_kid(kid));
        self.keys.iter().filter(move |k| {
            k.algorithms.contains(&header.alg)
                && match (&header.kid, by_kid) {
                    (_, Some(kid)) => k.kid.as_deref() == Some(kid),
                    (Some(_), None) => k.kid.is_none(),
                    (None, _) => true,
                }
        })
    }

    /// The token's claims if one of the keys signed it.
    fn verify_signature(&self, jwt: &str, header: &Header) -> Option<Value> {
        let mut validation = Validation::new(header.alg);
        // Claims are checked by `check_claims`, with Vault's error wording.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        self.candidates(header).find_map(|k| {
            jsonwebtoken::decode::<Value>(jwt, &k.key, &validation)
                .ok()
                .map(|data| data.claims)
        })
    }
}

/// The header of a token we are willing to verify at all.
fn parse_header(jwt: &str) -> Result<Header, LoginError> {
    if jwt.len() > MAX_JWT_LEN {
        return Err(LoginError::InvalidToken("token too long"));
    }
    if jwt.split('.').count() != 3 {
        return Err(LoginError::InvalidToken("not a compact JWS"));
    }
    // `alg: none` and unknown algorithms fail to parse here.
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|_| LoginError::InvalidToken("malformed header or unsupported algorithm"))?;
    match header.alg.family() {
        AlgorithmFamily::Rsa | AlgorithmFamily::Ec => Ok(header),
        // An HMAC "signature" made with a public key as the secret is the classic forgery;
        // ServiceAccount tokens are only ever signed with RSA or ECDSA.
        AlgorithmFamily::Hmac | AlgorithmFamily::Ed => {
            Err(LoginError::InvalidToken("algorithm not allowed"))
        }
    }
}

fn numeric_claim(claims: &Value, name: &'static str) -> Result<Option<i64>, LoginError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(LoginError::InvalidToken("time claim out of range")),
        Some(_) => Err(LoginError::InvalidToken("time claim is not a number")),
    }
}

/// Checks expiry, not-before, issuer and audience, in that order.
pub fn check_claims(
    claims: &Value,
    checks: &ClaimChecks<'_>,
    now: i64,
    leeway: i64,
) -> Result<(), LoginError> {
    let exp = numeric_claim(claims, "exp")?.ok_or(LoginError::NoExpiry)?;
    if now > exp.saturating_add(leeway) {
        return Err(LoginError::Expired);
    }
    if let Some(nbf) = numeric_claim(claims, "nbf")?
        && now.saturating_add(leeway) < nbf
    {
        return Err(LoginError::NotYetValid);
    }
    if let Some(issuer) = checks.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer)
    {
        return Err(LoginError::Issuer);
    }
    if let Some(audience) = checks.audience {
        let matches = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !matches {
            return Err(LoginError::Audience);
        }
    }
    Ok(())
}

fn string_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The service account a token speaks for: projected-token claims (`kubernetes.io`
/// object), else the legacy `kubernetes.io/serviceaccount/...` claims.
pub fn service_account(claims: &Value) -> Result<ServiceAccount, LoginError> {
    let sa = if let Some(k8s) = claims.get("kubernetes.io").filter(|v| v.is_object()) {
        ServiceAccount {
            namespace: string_at(k8s, &["namespace"])
                .ok_or(LoginError::NotServiceAccount(
                    "no kubernetes.io.namespace claim",
                ))?
                .to_string(),
            name: string_at(k8s, &["serviceaccount", "name"])
                .ok_or(LoginError::NotServiceAccount(
                    "no kubernetes.io.serviceaccount.name claim",
                ))?
                .to_string(),
            uid: string_at(k8s, &["serviceaccount", "uid"])
                .unwrap_or_default()
                .to_string(),
            pod_name: string_at(k8s, &["pod", "name"]).map(String::from),
            pod_uid: string_at(k8s, &["pod", "uid"]).map(String::from),
            secret_name: string_at(k8s, &["secret", "name"]).map(String::from),
        }
    } else {
        let legacy = |suffix: &str| {
            claims
                .get(format!("kubernetes.io/serviceaccount/{suffix}"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        ServiceAccount {
            namespace: legacy("namespace")
                .ok_or(LoginError::NotServiceAccount(
                    "no kubernetes.io claims naming a namespace",
                ))?
                .to_string(),
            name: legacy("service-account.name")
                .ok_or(LoginError::NotServiceAccount(
                    "no kubernetes.io/serviceaccount/service-account.name claim",
                ))?
                .to_string(),
            uid: legacy("service-account.uid")
                .unwrap_or_default()
                .to_string(),
            pod_name: None,
            pod_uid: None,
            secret_name: legacy("secret.name").map(String::from),
        }
    };
    // `sub` is `system:serviceaccount:<namespace>:<name>`; one that names someone else
    // means the claims were assembled, not issued by the API server.
    if let Some(sub) = claims.get("sub").and_then(Value::as_str)
        && sub != format!("system:serviceaccount:{}:{}", sa.namespace, sa.name)
    {
        return Err(LoginError::NotServiceAccount(
            "the sub claim names a different service account",
        ));
    }
    Ok(sa)
}

/// Verifies tokens with public keys: `pem_keys` and `jwks` from the configuration, and
/// the JWKS at `jwks_url`, fetched on demand and cached.
pub struct LocalKeysVerifier {
    jwks: JwksCache,
    /// Parsed `pem_keys` + `jwks`, keyed by a digest of their text.
    static_keys: Mutex<Option<([u8; 32], Arc<KeySet>)>>,
    leeway: i64,
}

impl LocalKeysVerifier {
    pub fn new(fetcher: Arc<dyn JwksFetcher>) -> Self {
        Self::with_cache(JwksCache::new(fetcher))
    }

    pub fn with_cache(jwks: JwksCache) -> Self {
        LocalKeysVerifier {
            jwks,
            static_keys: Mutex::new(None),
            leeway: DEFAULT_LEEWAY_SECS,
        }
    }

    pub fn jwks_cache(&self) -> &JwksCache {
        &self.jwks
    }

    fn static_keys(&self, config: &KubernetesConfig) -> Result<Arc<KeySet>, LoginError> {
        let mut hasher = Sha256::new();
        for pem in &config.pem_keys {
            hasher.update((pem.len() as u64).to_be_bytes());
            hasher.update(pem.as_bytes());
        }
        hasher.update([0xff]);
        hasher.update(config.jwks.as_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        let mut cache = self.static_keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((d, keys)) = cache.as_ref()
            && *d == digest
        {
            return Ok(keys.clone());
        }
        // The configuration was validated when written; a failure now means storage was
        // edited behind our back, which is the operator's problem, not the caller's.
        let mut keys = KeySet::from_pem(&config.pem_keys)
            .map_err(|e| LoginError::Unavailable(format!("stored pem_keys are unusable: {e}")))?;
        if !config.jwks.is_empty() {
            let jwks = KeySet::from_jwks(&config.jwks)
                .map_err(|e| LoginError::Unavailable(format!("stored jwks is unusable: {e}")))?;
            keys.keys.extend(jwks.keys);
        }
        let keys = Arc::new(keys);
        *cache = Some((digest, keys.clone()));
        Ok(keys)
    }

    async fn verified_claims(
        &self,
        jwt: &str,
        header: &Header,
        config: &KubernetesConfig,
    ) -> Result<Value, LoginError> {
        let statics = self.static_keys(config)?;
        if let Some(claims) = statics.verify_signature(jwt, header) {
            return Ok(claims);
        }
        if config.jwks_url.is_empty() {
            return Err(if statics.is_empty() {
                LoginError::NoKeys
            } else {
                LoginError::InvalidToken("signature does not verify with any configured key")
            });
        }
        let request = JwksRequest::for_config(config);
        let remote = self.jwks.keys(&request, false).await?;
        if let Some(claims) = remote.verify_signature(jwt, header) {
            return Ok(claims);
        }
        // A kid we have not seen: the cluster may have rotated its signing key.
        if let Some(kid) = &header.kid
            && !remote.has_kid(kid)
        {
            let refreshed = self.jwks.keys(&request, true).await?;
            if let Some(claims) = refreshed.verify_signature(jwt, header) {
                return Ok(claims);
            }
        }
        Err(LoginError::InvalidToken(
            "signature does not verify with any key of the JWKS",
        ))
    }
}

#[async_trait]
impl TokenVerifier for LocalKeysVerifier {
    async fn verify(
        &self,
        jwt: &str,
        config: &KubernetesConfig,
        checks: &ClaimChecks<'_>,
    ) -> Result<ServiceAccount, LoginError> {
        let header = parse_header(jwt)?;
        let claims = self.verified_claims(jwt, &header, config).await?;
        check_claims(&claims, checks, chrono::Utc::now().timestamp(), self.leeway)?;
        service_account(&claims)
    }
}
