//! Named transit keys: the stored record (every version's key material, the version
//! limits and settings) and the in-memory form that encrypts and decrypts.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{base64, ciphertext};

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// Why an encryption or decryption failed; the texts are Vault's, which clients match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("requested version for encryption is negative")]
    NegativeVersion,
    #[error("requested version for encryption is higher than the latest key version")]
    VersionTooHigh,
    #[error("requested version for encryption is less than the minimum encryption key version")]
    BelowMinEncryption,
    #[error("no such key version")]
    NoSuchVersion,
    #[error(
        "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
    )]
    MissingContext,
    #[error("invalid ciphertext: no prefix")]
    NoPrefix,
    #[error("invalid ciphertext: wrong number of fields")]
    WrongFields,
    #[error("invalid ciphertext: version number could not be decoded")]
    BadVersionNumber,
    #[error("invalid ciphertext: version is too new")]
    VersionTooNew,
    #[error("ciphertext or signature version is disallowed by policy (too old)")]
    TooOld,
    #[error("invalid ciphertext: could not decode base64")]
    BadBase64,
    #[error("invalid ciphertext length")]
    BadLength,
    /// Go's AES-GCM text, which Vault passes through for AES keys.
    #[error("cipher: message authentication failed")]
    AuthenticationFailed,
    /// Go's ChaCha20-Poly1305 text, which Vault passes through for ChaCha keys.
    #[error("chacha20poly1305: message authentication failed")]
    ChaChaAuthenticationFailed,
}

/// The key types secretvault's transit engine supports (Vault's symmetric AEAD types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

/// Why a `type` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTypeError {
    #[error("unknown key type {0}")]
    Unknown(String),
    /// Vault has this type, secretvault does not.
    #[error(
        "key type {0} is not supported by secretvault's transit engine; use aes256-gcm96, aes128-gcm96 or chacha20-poly1305"
    )]
    Unsupported(String),
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    pub fn parse(name: &str) -> Result<KeyType, KeyTypeError> {
        match name {
            "aes128-gcm96" => Ok(KeyType::Aes128Gcm96),
            "aes256-gcm96" => Ok(KeyType::Aes256Gcm96),
            "chacha20-poly1305" => Ok(KeyType::ChaCha20Poly1305),
            "xchacha20-poly1305" | "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "ed25519"
            | "rsa-2048" | "rsa-3072" | "rsa-4096" | "hmac" | "managed_key" | "aes128-cmac"
            | "aes256-cmac" => Err(KeyTypeError::Unsupported(name.to_string())),
            other => Err(KeyTypeError::Unknown(other.to_string())),
        }
    }

    /// Bytes of key material per version.
    pub fn key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => 32,
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a new key is created with; fixed for the key's life once created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOptions {
    pub key_type: KeyType,
    pub derived: bool,
    pub convergent_encryption: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub auto_rotate_period: Duration,
}

impl Default for KeyOptions {
    fn default() -> Self {
        KeyOptions {
            key_type: KeyType::Aes256Gcm96,
            derived: false,
            convergent_encryption: false,
            exportable: false,
            allow_plaintext_backup: false,
            auto_rotate_period: Duration::ZERO,
        }
    }
}

/// A key as in-process callers (the operator's TransitKey controller) see it; no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: String,
    pub key_type: KeyType,
    pub derived: bool,
    pub convergent_encryption: bool,
    pub exportable: bool,
    pub deletion_allowed: bool,
    pub latest_version: u32,
    pub min_decryption_version: u32,
    pub min_encryption_version: u32,
    pub min_available_version: u32,
    pub auto_rotate_period: Duration,
    /// Creation time of every version still usable for decryption.
    pub versions: BTreeMap<u32, DateTime<Utc>>,
}

/// One version's key material.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    #[serde(with = "secret_bytes")]
    pub key: Zeroizing<Vec<u8>>,
    pub created: DateTime<Utc>,
}

/// What is stored (encrypted by the barrier) for one named key.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub derived: bool,
    pub convergent_encryption: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub deletion_allowed: bool,
    pub latest_version: u32,
    pub min_decryption_version: u32,
    pub min_encryption_version: u32,
    pub min_available_version: u32,
    /// Seconds; zero disables automatic rotation.
    pub auto_rotate_period: u64,
    /// Versions from `max(min_available_version, 1)` to `latest_version`; trimmed ones are gone.
    pub versions: BTreeMap<u32, VersionRecord>,
}

fn random_key(len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(vec![0u8; len]);
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

impl KeyRecord {
    pub fn new(name: &str, options: &KeyOptions, now: DateTime<Utc>) -> KeyRecord {
        let mut versions = BTreeMap::new();
        versions.insert(
            1,
            VersionRecord {
                key: random_key(options.key_type.key_len()),
                created: now,
            },
        );
        KeyRecord {
            name: name.to_string(),
            key_type: options.key_type,
            derived: options.derived,
            convergent_encryption: options.convergent_encryption,
            exportable: options.exportable,
            allow_plaintext_backup: options.allow_plaintext_backup,
            deletion_allowed: false,
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            auto_rotate_period: options.auto_rotate_period.as_secs(),
            versions,
        }
    }

    /// Adds a new latest version with fresh key material.
    pub fn rotate(&mut self, now: DateTime<Utc>) {
        self.latest_version += 1;
        self.versions.insert(
            self.latest_version,
            VersionRecord {
                key: random_key(self.key_type.key_len()),
                created: now,
            },
        );
    }

    /// When the latest version was created.
    pub fn latest_created(&self) -> Option<DateTime<Utc>> {
        self.versions.get(&self.latest_version).map(|v| v.created)
    }

    /// Whether automatic rotation is due at `now`.
    pub fn rotation_due(&self, now: DateTime<Utc>) -> bool {
        if self.auto_rotate_period == 0 {
            return false;
        }
        // A period longer than any date can be away (stored before durations were bounded)
        // is never due.
        let Some(period) = i64::try_from(self.auto_rotate_period)
            .ok()
            .and_then(chrono::Duration::try_seconds)
        else {
            return false;
        };
        match self.latest_created() {
            Some(created) => created
                .checked_add_signed(period)
                .is_some_and(|due| now >= due),
            None => true,
        }
    }

    /// Removes key material below `min_available_version` for good.
    pub fn drop_trimmed_versions(&mut self) {
        let keep_from = self.min_available_version.max(1);
        self.versions = self.versions.split_off(&keep_from);
    }

    /// Versions a read shows: those still allowed to decrypt.
    fn visible_versions(&self) -> impl Iterator<Item = (&u32, &VersionRecord)> {
        self.versions
            .range(self.min_decryption_version.max(1)..=self.latest_version)
    }

    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            name: self.name.clone(),
            key_type: self.key_type,
            derived: self.derived,
            convergent_encryption: self.convergent_encryption,
            exportable: self.exportable,
            deletion_allowed: self.deletion_allowed,
            latest_version: self.latest_version,
            min_decryption_version: self.min_decryption_version,
            min_encryption_version: self.min_encryption_version,
            min_available_version: self.min_available_version,
            auto_rotate_period: Duration::from_secs(self.auto_rotate_period),
            versions: self
                .visible_versions()
                .map(|(v, r)| (*v, r.created))
                .collect(),
        }
    }

    /// The key as `GET transit/keys/<name>` shows it.
    pub fn json(&self) -> Value {
        let keys: Map<String, Value> = self
            .visible_versions()
            .map(|(v, r)| (v.to_string(), json!(r.created.timestamp())))
            .collect();
        let mut data = json!({
            "allow_plaintext_backup": self.allow_plaintext_backup,
            "auto_rotate_period": self.auto_rotate_period,
            "deletion_allowed": self.deletion_allowed,
            "derived": self.derived,
            "exportable": self.exportable,
            "imported_key": false,
            "keys": keys,
            "latest_version": self.latest_version,
            "min_available_version": self.min_available_version,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "name": self.name,
            "supports_decryption": true,
            "supports_derivation": true,
            "supports_encryption": true,
            "supports_signing": false,
            "type": self.key_type.as_str(),
        });
        if self.derived {
            data["kdf"] = json!("hkdf_sha256");
            data["convergent_encryption"] = json!(self.convergent_encryption);
            if self.convergent_encryption {
                // Vault keeps the convergent scheme per version and shows -1 here.
                data["convergent_encryption_version"] = json!(-1);
            }
        }
        data
    }
}

/// The key material of a record, base64 in the (barrier-encrypted) JSON.
mod secret_bytes {
    use ::base64::Engine;
    use serde::{Deserializer, Serializer, de};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(bytes: &Zeroizing<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let text =
            Zeroizing::new(::base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()));
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Zeroizing<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("base64 key material")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let mut out = Zeroizing::new(Vec::with_capacity(v.len()));
                ::base64::engine::general_purpose::STANDARD
                    .decode_vec(v, &mut out)
                    .map_err(|_| E::custom("key material is not base64"))?;
                Ok(out)
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// An AEAD instance, its key schedule computed once per key version.
enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(key_type: KeyType, key: &[u8]) -> Option<Cipher> {
        Some(match key_type {
            KeyType::Aes128Gcm96 => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            KeyType::Aes256Gcm96 => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            KeyType::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
        })
    }

    /// Encrypts `buf` in place and returns the tag.
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let nonce = aes_gcm::Nonce::from(*nonce);
        let nonce = &nonce;
        let tag = match self {
            Cipher::Aes128(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Cipher::Aes256(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Cipher::ChaCha(c) => c.encrypt_in_place_detached(nonce, aad, buf),
        }
        .ok()?;
        Some(tag.into())
    }

    /// Decrypts `buf` in place; false when authentication fails.
    fn open(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let (Ok(nonce), Ok(tag)) = (
            <[u8; NONCE_LEN]>::try_from(nonce),
            <[u8; TAG_LEN]>::try_from(tag),
        ) else {
            return false;
        };
        let (nonce, tag) = (&aes_gcm::Nonce::from(nonce), &aes_gcm::Tag::from(tag));
        match self {
            Cipher::Aes128(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Cipher::Aes256(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Cipher::ChaCha(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
        }
        .is_ok()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for part in parts {
        mac.update(part);
    }
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// HKDF-SHA256 (RFC 5869) with no salt, as Vault derives per-context keys (`hkdf_sha256`).
pub(crate) fn hkdf_sha256(ikm: &[u8], info: &[&[u8]], len: usize) -> Zeroizing<Vec<u8>> {
    let prk = hmac(&[0u8; 32], &[ikm]);
    let mut okm = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut block: Zeroizing<[u8; 32]> = Zeroizing::new([0; 32]);
    let mut counter = 1u8;
    while okm.len() < len {
        let previous: &[u8] = if counter == 1 { &[] } else { block.as_slice() };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(info.len() + 2);
        parts.push(previous);
        parts.extend_from_slice(info);
        let counter_bytes = [counter];
        parts.push(&counter_bytes);
        let next = hmac(prk.as_slice(), &parts);
        *block = *next;
        okm.extend_from_slice(block.as_slice());
        counter = counter.wrapping_add(1);
    }
    okm.truncate(len);
    okm
}

/// A key ready to use: the stored record plus a cipher per version for non-derived keys.
pub(crate) struct LoadedKey {
    pub record: KeyRecord,
    pub loaded_at: Instant,
    ciphers: HashMap<u32, Cipher>,
}

impl LoadedKey {
    pub fn new(record: KeyRecord) -> LoadedKey {
        let ciphers = if record.derived {
            HashMap::new()
        } else {
            record
                .versions
                .iter()
                .filter_map(|(v, r)| Some((*v, Cipher::new(record.key_type, &r.key)?)))
                .collect()
        };
        LoadedKey {
            record,
            loaded_at: Instant::now(),
            ciphers,
        }
    }

    /// The version an encryption uses: `requested`, or the latest for 0.
    fn encryption_version(&self, requested: i64) -> Result<u32, CryptoError> {
        let r = &self.record;
        let version = match requested {
            0 => return Ok(r.latest_version),
            n if n < 0 => return Err(CryptoError::NegativeVersion),
            n if n > i64::from(r.latest_version) => return Err(CryptoError::VersionTooHigh),
            n if n < i64::from(r.min_encryption_version) => {
                return Err(CryptoError::BelowMinEncryption);
            }
            // In range of u32: checked against latest_version above.
            n => n as u32,
        };
        if version < r.min_decryption_version {
            // Archived (and possibly trimmed): Vault no longer holds it for use.
            return Err(CryptoError::NoSuchVersion);
        }
        Ok(version)
    }

    /// Runs `f` with the cipher for `version` under `context` (derived keys) and the
    /// derived key's bytes (for convergent nonces).
    fn with_cipher<T>(
        &self,
        version: u32,
        context: &[u8],
        f: impl FnOnce(&Cipher, Option<&[u8]>) -> T,
    ) -> Result<T, CryptoError> {
        let record = self
            .record
            .versions
            .get(&version)
            .ok_or(CryptoError::NoSuchVersion)?;
        if !self.record.derived {
            let cipher = self
                .ciphers
                .get(&version)
                .ok_or(CryptoError::NoSuchVersion)?;
            return Ok(f(cipher, None));
        }
        if context.is_empty() {
            return Err(CryptoError::MissingContext);
        }
        let derived = hkdf_sha256(&record.key, &[context], self.record.key_type.key_len());
        let cipher =
            Cipher::new(self.record.key_type, &derived).ok_or(CryptoError::NoSuchVersion)?;
        Ok(f(&cipher, Some(&derived)))
    }

    /// Encrypts `plaintext` and returns the ciphertext string and the version used.
    pub fn encrypt(
        &self,
        requested_version: i64,
        context: &[u8],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(String, u32), CryptoError> {
        let version = self.encryption_version(requested_version)?;
        let convergent = self.record.convergent_encryption;
        let sealed = self.with_cipher(version, context, |cipher, derived| {
            let mut nonce = [0u8; NONCE_LEN];
            match derived {
                Some(derived) if convergent => {
                    // Same context, associated data and plaintext → same nonce → same
                    // ciphertext; the associated data is in the nonce so that two messages
                    // never share a nonce under one key.
                    let nonce_key =
                        hkdf_sha256(derived, &[b"secretvault transit convergent nonce"], 32);
                    let aad_len = (aad.len() as u64).to_be_bytes();
                    let mac = hmac(&nonce_key, &[&aad_len, aad, plaintext]);
                    nonce.copy_from_slice(&mac[..NONCE_LEN]);
                }
                _ => rand::thread_rng().fill_bytes(&mut nonce),
            }
            let mut buf = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
            buf.extend_from_slice(&nonce);
            buf.extend_from_slice(plaintext);
            let tag = cipher.seal(&nonce, aad, &mut buf[NONCE_LEN..])?;
            buf.extend_from_slice(&tag);
            Some(buf)
        })?;
        // Sealing fails only past AES-GCM's 64 GiB message limit, far above any request.
        let sealed = sealed.ok_or(CryptoError::BadLength)?;
        Ok((ciphertext::format(version, &sealed), version))
    }

    /// Decrypts a `vault:v<N>:…` ciphertext, with Vault's checks in Vault's order.
    pub fn decrypt(
        &self,
        context: &[u8],
        text: &str,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (version, payload) = ciphertext::parse(text)?;
        let r = &self.record;
        if version > i64::from(r.latest_version) {
            return Err(CryptoError::VersionTooNew);
        }
        if version < i64::from(r.min_decryption_version) {
            return Err(CryptoError::TooOld);
        }
        // In range of u32: between min_decryption_version and latest_version.
        let version = version as u32;
        let mut decoded = base64::decode(payload).map_err(|_| CryptoError::BadBase64)?;
        let auth_failed = match r.key_type {
            KeyType::ChaCha20Poly1305 => CryptoError::ChaChaAuthenticationFailed,
            KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 => CryptoError::AuthenticationFailed,
        };
        self.with_cipher(version, context, |cipher, _| {
            if decoded.len() < NONCE_LEN {
                return Err(CryptoError::BadLength);
            }
            if decoded.len() < NONCE_LEN + TAG_LEN {
                return Err(auth_failed);
            }
            let (nonce, rest) = decoded.split_at_mut(NONCE_LEN);
            let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
            if !cipher.open(nonce, aad, body, tag) {
                return Err(auth_failed);
            }
            Ok(())
        })??;
        let body_len = decoded.len() - TAG_LEN;
        decoded.truncate(body_len);
        decoded.drain(..NONCE_LEN);
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_test_case_3() {
        // RFC 5869 A.3: no salt, no info.
        let ikm = [0x0bu8; 22];
        let okm = hkdf_sha256(&ikm, &[], 42);
        assert_eq!(
            hex::encode(okm.as_slice()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn key_types_parse_and_refuse() {
        assert_eq!(KeyType::parse("aes128-gcm96"), Ok(KeyType::Aes128Gcm96));
        assert_eq!(
            KeyType::parse("bogus").unwrap_err().to_string(),
            "unknown key type bogus"
        );
        assert!(matches!(
            KeyType::parse("ed25519"),
            Err(KeyTypeError::Unsupported(_))
        ));
        for t in [
            KeyType::Aes128Gcm96,
            KeyType::Aes256Gcm96,
            KeyType::ChaCha20Poly1305,
        ] {
            assert_eq!(KeyType::parse(t.as_str()), Ok(t));
        }
    }

    /// A period beyond any date (stored before durations were bounded) panicked in the
    /// periodic rotation check; such a key is simply never due.
    #[test]
    fn rotation_periods_beyond_any_date_are_never_due() {
        let now = Utc::now();
        let mut record = KeyRecord::new("k", &KeyOptions::default(), now);
        for period in [u64::MAX, i64::MAX as u64, 1 << 60] {
            record.auto_rotate_period = period;
            assert!(!record.rotation_due(now + chrono::Duration::days(365 * 1000)));
        }
        record.auto_rotate_period = 3600;
        assert!(record.rotation_due(now + chrono::Duration::hours(2)));
    }

    #[test]
    fn records_round_trip_through_json() {
        let now = Utc::now();
        let mut record = KeyRecord::new("k", &KeyOptions::default(), now);
        record.rotate(now);
        let bytes = serde_json::to_vec(&record).unwrap();
        let back: KeyRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.versions.len(), 2);
        assert_eq!(
            back.versions[&2].key.as_slice(),
            record.versions[&2].key.as_slice()
        );
        assert_ne!(
            back.versions[&1].key.as_slice(),
            back.versions[&2].key.as_slice()
        );
    }

    #[test]
    fn every_type_round_trips() {
        for (key_type, auth_failed) in [
            (KeyType::Aes128Gcm96, CryptoError::AuthenticationFailed),
            (KeyType::Aes256Gcm96, CryptoError::AuthenticationFailed),
            (
                KeyType::ChaCha20Poly1305,
                CryptoError::ChaChaAuthenticationFailed,
            ),
        ] {
            let options = KeyOptions {
                key_type,
                ..Default::default()
            };
            let key = LoadedKey::new(KeyRecord::new("k", &options, Utc::now()));
            let (ct, v) = key.encrypt(0, b"", b"secret", b"").unwrap();
            assert_eq!(v, 1);
            assert!(ct.starts_with("vault:v1:"));
            assert_eq!(key.decrypt(b"", &ct, b"").unwrap().as_slice(), b"secret");
            let (ct, _) = key.encrypt(0, b"", b"with ad", b"ad").unwrap();
            assert_eq!(key.decrypt(b"", &ct, b"other"), Err(auth_failed.clone()));
            // Too short to hold a tag: the same error, as Go's AEADs give.
            assert_eq!(
                key.decrypt(b"", "vault:v1:AAAAAAAAAAAAAAAAAAAAAA==", b""),
                Err(auth_failed)
            );
            assert_eq!(key.decrypt(b"", &ct, b"ad").unwrap().as_slice(), b"with ad");
        }
    }
}
