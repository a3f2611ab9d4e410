//! Sealing for Git (DESIGN.md §4): values encrypted to the cluster's public sealing key so
//! they can be committed, and only the server can open them.
//!
//! - [`seal`] encrypts a value to a [`SealingPublicKey`] with HPKE (RFC 9180, base mode,
//!   DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM). It needs no server, so
//!   `svctl` links it for offline sealing.
//! - The associated data is the [`Binding`] `NAMESPACE/NAME/KEY`: a value sealed for one
//!   resource and key does not open in another.
//! - [`SealingKeys`] keeps the server's key pairs in the barrier: one is created on first
//!   start, a new one every renewal period, and every old private key stays to unseal what
//!   was sealed before.
//!
//! The sealed form is printable (see [`format`]):
//! `sv:v1:<key id>:<binding tag>:<base64url(enc ‖ ciphertext)>`.

mod api;
mod cipher;
pub mod format;
mod keys;

#[cfg(test)]
mod tests;

use std::fmt;

pub use cipher::{PublicKeyDocument, SealingPublicKey, seal};
pub use format::SealedValue;
pub use keys::{SealingKeyInfo, SealingKeys};

/// The suite, as RFC 9180 names its parts; served with the public key and checked when a
/// public key file is read, so a client never seals with a suite the server does not use.
pub const ALGORITHM: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM";

/// HPKE `info`: ties every sealed value to this protocol and version, so a ciphertext made
/// by another HPKE application with the same key cannot be passed off as a sealed value.
pub const HPKE_INFO: &[u8] = b"secretvault.io/sealed-value/v1";

/// The longest namespace, name or key accepted (Kubernetes' own limit for names).
const MAX_NAME_LEN: usize = 253;

/// Where a sealed value may be opened: one key of one `SecretVault` resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl Binding {
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Binding {
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        }
    }

    /// Checks the three parts so the `NAMESPACE/NAME/KEY` string is unambiguous: the
    /// namespace is a DNS-1123 label, the name a DNS-1123 subdomain (the Kubernetes rules
    /// for those), and the key a Secret data key (`[-._a-zA-Z0-9]+`), none holding a `/`.
    pub fn validate(&self) -> Result<(), SealError> {
        let invalid = |field: &'static str, value: &str, reason: &'static str| {
            Err(SealError::InvalidBinding {
                field,
                value: truncate(value, 80),
                reason,
            })
        };
        let ns = &self.namespace;
        if ns.is_empty() {
            return invalid("namespace", ns, "it is empty");
        }
        if ns.len() > 63 {
            return invalid("namespace", ns, "it is longer than 63 characters");
        }
        if !is_dns_label(ns) {
            return invalid(
                "namespace",
                ns,
                "it must be lower-case letters, digits and '-', starting and ending with a letter or digit",
            );
        }
        let name = &self.name;
        if name.is_empty() {
            return invalid("name", name, "it is empty");
        }
        if name.len() > MAX_NAME_LEN {
            return invalid("name", name, "it is longer than 253 characters");
        }
        if !name.split('.').all(is_dns_label) {
            return invalid(
                "name",
                name,
                "it must be lower-case letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit",
            );
        }
        let key = &self.key;
        if key.is_empty() {
            return invalid("key", key, "it is empty");
        }
        if key.len() > MAX_NAME_LEN {
            return invalid("key", key, "it is longer than 253 characters");
        }
        if key == "." || key == ".." {
            return invalid("key", key, "it must not be '.' or '..'");
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return invalid(
                "key",
                key,
                "it must be letters, digits, '-', '_' and '.' (a Kubernetes Secret key)",
            );
        }
        Ok(())
    }

    /// The HPKE associated data.
    pub fn aad(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.name, self.key)
    }
}

fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    !bytes.is_empty()
        && bytes.len() <= 63
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// At most `max` characters of untrusted text for an error message.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "sealed value is malformed: {reason}; a sealed value looks like sv:v1:<key id>:<binding tag>:<data>, as printed by svctl seal"
    )]
    Malformed { reason: &'static str },
    #[error(
        "sealed value has format version {version:?}, which this server does not know (it knows v1); seal it again with this version's svctl seal"
    )]
    UnsupportedVersion { version: String },
    #[error(
        "sealed value was sealed with key {key_id}, which this cluster does not have: it was sealed for another cluster, or with a public key that is not this cluster's; seal it again with the cluster's current key (svctl seal)"
    )]
    UnknownKey { key_id: String },
    #[error(
        "sealed value was sealed for another resource, not for {binding} (namespace/name/key): a sealed value opens only in the resource and key it was sealed for; seal it again with svctl seal --namespace {ns} --name {name} --key {key}",
        ns = binding.namespace, name = binding.name, key = binding.key
    )]
    WrongBinding { binding: Binding },
    #[error(
        "sealed value for {binding} failed authentication: it was altered or truncated after sealing; seal the value again with svctl seal"
    )]
    Tampered { binding: Binding },
    #[error("invalid {field} {value:?} for sealing: {reason}")]
    InvalidBinding {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid sealing public key: {reason}")]
    InvalidPublicKey { reason: String },
    #[error("the stored sealing keys are unreadable: {reason}")]
    CorruptKeyRing { reason: &'static str },
    #[error("sealing key storage: {0}")]
    Storage(#[from] crate::crypto::BarrierError),
}

impl SealError {
    fn invalid_public_key(reason: impl Into<String>) -> Self {
        SealError::InvalidPublicKey {
            reason: reason.into(),
        }
    }
}

/// The operating system's CSPRNG behind the `rand_core` 0.9 traits `hpke` takes (the
/// workspace's `rand` is 0.8, whose traits are distinct types).
pub(crate) struct OsCsprng;

impl hpke::rand_core::RngCore for OsCsprng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(crate::crypto::random_bytes::<4>())
    }

    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(crate::crypto::random_bytes::<8>())
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, dst);
    }
}

impl hpke::rand_core::CryptoRng for OsCsprng {}
