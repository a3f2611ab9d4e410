//! `auth/kubernetes/config`: where the cluster is and which keys sign its tokens.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::jwks::validate_jwks_url;
use super::verify::{KeySet, LEGACY_ISSUER};
use crate::logical::{ApiError, ApiResult, Fields};

/// The method's configuration, as stored (encrypted) and as `config` reads show it.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct KubernetesConfig {
    pub kubernetes_host: String,
    #[serde(default)]
    pub kubernetes_ca_cert: String,
    /// PEM public keys (RSA or EC) that verify ServiceAccount tokens locally.
    #[serde(default)]
    pub pem_keys: Vec<String>,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub disable_iss_validation: bool,
    #[serde(default)]
    pub disable_local_ca_jwt: bool,
    /// Presented to the API server (JWKS fetches from `kubernetes_host`, TokenReview).
    /// Never shown: reads say only whether it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_reviewer_jwt: Option<SecretString>,
    /// A JWKS document (what the cluster serves at `/openid/v1/jwks`), as JSON text.
    #[serde(default)]
    pub jwks: String,
    /// Where to fetch the JWKS on demand.
    #[serde(default)]
    pub jwks_url: String,
}

/// A credential: wiped from memory when dropped, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString(s.to_string())
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Debug for KubernetesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesConfig")
            .field("kubernetes_host", &self.kubernetes_host)
            .field("pem_keys", &self.pem_keys.len())
            .field("issuer", &self.issuer)
            .field("disable_iss_validation", &self.disable_iss_validation)
            .field("token_reviewer_jwt_set", &self.token_reviewer_jwt.is_some())
            .field("jwks", &!self.jwks.is_empty())
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl KubernetesConfig {
    /// A configuration from a write request. Like Vault, a write replaces the whole
    /// configuration: fields left out take their defaults.
    ///
    /// Returns the configuration and any warnings for the response.
    pub fn from_fields(fields: &Fields<'_>) -> ApiResult<(KubernetesConfig, Vec<String>)> {
        let kubernetes_host = fields
            .string("kubernetes_host")?
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ApiError::bad_request("no host provided"))?;

        let kubernetes_ca_cert = fields.string("kubernetes_ca_cert")?.unwrap_or_default();
        if !kubernetes_ca_cert.trim().is_empty() {
            let certs = reqwest::Certificate::from_pem_bundle(kubernetes_ca_cert.as_bytes())
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "kubernetes_ca_cert is not a PEM certificate bundle: {e}"
                    ))
                })?;
            if certs.is_empty() {
                return Err(ApiError::bad_request(
                    "kubernetes_ca_cert holds no PEM certificate: give the cluster's CA certificate (ca.crt), starting with -----BEGIN CERTIFICATE-----",
                ));
            }
        }

        let pem_keys = fields.string_list("pem_keys")?.unwrap_or_default();
        KeySet::from_pem(&pem_keys).map_err(|e| ApiError::bad_request(e.to_string()))?;

        let issuer = fields.string("issuer")?.unwrap_or_default();
        // Vault defaults to not checking the issuer at all; secretvault checks it whenever
        // one is configured, unless told not to.
        let disable_iss_validation = fields
            .bool("disable_iss_validation")?
            .unwrap_or(issuer.is_empty());
        let disable_local_ca_jwt = fields.bool("disable_local_ca_jwt")?.unwrap_or(false);
        let token_reviewer_jwt = fields
            .string("token_reviewer_jwt")?
            .map(|t| SecretString(t.trim().to_string()))
            .filter(|t| !t.0.is_empty());

        let jwks = match fields.get("jwks") {
            None => String::new(),
            Some(Value::String(s)) if s.trim().is_empty() => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Object(_)) => v.to_string(),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "jwks must be a JWKS document: a JSON object with a \"keys\" array, or that object as a string",
                ));
            }
        };
        if !jwks.is_empty() {
            KeySet::from_jwks(&jwks).map_err(|e| ApiError::bad_request(e.to_string()))?;
        }

        let jwks_url = fields
            .string("jwks_url")?
            .map(|u| u.trim().to_string())
            .unwrap_or_default();
        if !jwks_url.is_empty() {
            validate_jwks_url(&jwks_url)
                .map_err(|e| ApiError::bad_request(format!("jwks_url: {e}")))?;
        }

        let mut warnings = Vec::new();
        if pem_keys.is_empty() && jwks.is_empty() && jwks_url.is_empty() {
            warnings.push(
                "no pem_keys, jwks or jwks_url: logins will fail until one of them is set, because secretvault verifies ServiceAccount tokens with these keys".to_string(),
            );
        }
        Ok((
            KubernetesConfig {
                kubernetes_host,
                kubernetes_ca_cert,
                pem_keys,
                issuer,
                disable_iss_validation,
                disable_local_ca_jwt,
                token_reviewer_jwt,
                jwks,
                jwks_url,
            },
            warnings,
        ))
    }

    /// The `data` of a config read: Vault's fields, then ours (`jwks`, `jwks_url`).
    pub fn json(&self) -> Value {
        json!({
            "disable_iss_validation": self.disable_iss_validation,
            "disable_local_ca_jwt": self.disable_local_ca_jwt,
            "issuer": self.issuer,
            "kubernetes_ca_cert": self.kubernetes_ca_cert,
            "kubernetes_host": self.kubernetes_host,
            "pem_keys": self.pem_keys,
            "token_reviewer_jwt_set": self.token_reviewer_jwt.is_some(),
            "jwks": self.jwks,
            "jwks_url": self.jwks_url,
        })
    }

    /// The issuer a token must carry; `None` when issuer validation is disabled.
    pub fn required_issuer(&self) -> Option<&str> {
        if self.disable_iss_validation {
            None
        } else if self.issuer.is_empty() {
            Some(LEGACY_ISSUER)
        } else {
            Some(&self.issuer)
        }
    }
}
