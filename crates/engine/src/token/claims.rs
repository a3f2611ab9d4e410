//! The signed token format.
//!
//! A token is `svs.` followed by a compact HS256 JWT without its (constant) header:
//! `svs.<payload>.<signature>`. The payload carries everything needed to authorise a
//! request (policies, expiry, parents, identity), so issuing one — a login — needs no
//! storage write. What can change after issue (renewal, revocation, remaining uses) is
//! kept by accessor in the token store's state.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::identity::Identity;

/// Prefix of every signed secretvault token.
pub const TOKEN_PREFIX: &str = "svs.";

/// The longest token string we will even try to parse (headers are bounded anyway).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A parent in the token's lineage: revoking (or expiry of) any parent ends the child,
/// as in Vault's token hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// The parent's accessor.
    #[serde(rename = "a")]
    pub accessor: String,
    /// The parent's expiry (unix seconds) when the child was made; 0 when it had none.
    /// Renewals of the parent are looked up by accessor.
    #[serde(rename = "e", default, skip_serializing_if = "is_zero_i64")]
    pub expires: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The accessor: the token's public handle.
    pub jti: String,
    /// Issue time, unix seconds, and its nanoseconds (Vault reports nanosecond issue times).
    pub iat: i64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub iatn: u32,
    /// TTL at creation, seconds; 0 means the token never expires (root tokens only).
    pub ttl: u64,
    /// `explicit_max_ttl` as requested, seconds.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub emx: u64,
    /// Absolute latest expiry (unix seconds); 0 means none.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max: i64,
    /// Periodic token: every renewal sets the TTL to this many seconds.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub period: u64,
    pub pol: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    pub dn: String,
    pub ren: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub par: Vec<ParentRef>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub orph: bool,
    /// Entity id resolved through the identity store at request time.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ent: String,
    /// Identity carried in the token itself (logins that must not write storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idn: Option<Identity>,
    /// Use limit (0 = unlimited).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub uses: u64,
    /// The path that created the token (`auth/token/create`, `auth/kubernetes/login` …).
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
}

// Default-valued claims are left out: every byte of a token is hashed on every request
// (the audit log HMACs it) and sent with every request.
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn header_prefix() -> String {
    // The encoded header of every token we sign; stripped from the token string and
    // put back before verification, so tokens are shorter and the algorithm is pinned.
    URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256"}"#)
}

pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: String,
}

impl Signer {
    pub fn new(key: &[u8; 32]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is decided by the token store (renewals move it), not by the JWT library.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Signer {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            header: header_prefix(),
        }
    }

    pub fn sign(&self, claims: &Claims) -> Zeroizing<String> {
        let header = Header::new(Algorithm::HS256);
        // Serialising these claims cannot fail (no maps with non-string keys, no floats).
        let jwt = Zeroizing::new(
            jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_default(),
        );
        let body = jwt
            .split_once('.')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        Zeroizing::new(format!("{TOKEN_PREFIX}{body}"))
    }

    /// Verifies the signature and decodes the claims; `None` for anything that is not a
    /// token we signed.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let body = token.strip_prefix(TOKEN_PREFIX)?;
        if body.split('.').count() != 2 {
            return None;
        }
        let jwt = Zeroizing::new(format!("{}.{body}", self.header));
        jsonwebtoken::decode::<Claims>(jwt.as_str(), &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            jti: "acc".into(),
            iat: 1,
            iatn: 0,
            ttl: 60,
            emx: 0,
            max: 0,
            period: 0,
            pol: vec!["default".into()],
            meta: BTreeMap::new(),
            dn: "token".into(),
            ren: true,
            par: vec![],
            orph: false,
            ent: String::new(),
            idn: None,
            uses: 0,
            path: "auth/token/create".into(),
            role: String::new(),
        }
    }

    #[test]
    fn round_trip() {
        let signer = Signer::new(&[1; 32]);
        let token = signer.sign(&claims());
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(signer.verify(&token).unwrap(), claims());
    }

    #[test]
    fn forgeries_fail() {
        let signer = Signer::new(&[1; 32]);
        let token = signer.sign(&claims());
        assert!(Signer::new(&[2; 32]).verify(&token).is_none(), "other key");
        let (payload, sig) = token
            .strip_prefix(TOKEN_PREFIX)
            .unwrap()
            .split_once('.')
            .unwrap();
        let mut forged: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        forged["pol"] = serde_json::json!(["root"]);
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(
            signer
                .verify(&format!("{TOKEN_PREFIX}{forged_payload}.{sig}"))
                .is_none(),
            "altered claims"
        );
        // alg=none: a token whose header says "none" and has no signature.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(
            signer
                .verify(&format!("{TOKEN_PREFIX}{payload}."))
                .is_none()
        );
        assert!(
            signer
                .verify(&format!("{none_header}.{payload}."))
                .is_none()
        );
        for junk in ["", "svs.", "svs.a.b", "svs.a.b.c", "hvs.xyz", "root"] {
            assert!(signer.verify(junk).is_none(), "{junk}");
        }
        assert!(
            signer
                .verify(&format!("svs.{}", "a".repeat(MAX_TOKEN_LEN)))
                .is_none()
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_garbage(s in "\\PC{0,300}") {
            let signer = Signer::new(&[1; 32]);
            let _ = signer.verify(&s);
            let _ = signer.verify(&format!("svs.{s}"));
        }
    }
}
