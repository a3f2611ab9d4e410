//! Encryption at rest (DESIGN.md §4).
//!
//! A 256-bit [`RootKey`] encrypts the [`Keyring`], a versioned set of data keys. The
//! [`Barrier`] encrypts every stored value with the keyring's active data key using
//! AES-256-GCM, a fresh random 96-bit nonce, and the storage key as associated data, so
//! a blob copied or moved to another key fails to decrypt. Old keyring terms keep
//! decrypting after rotation.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

mod barrier;
mod cache;
mod keyring;
mod root_key;

pub use barrier::{Barrier, BarrierError, KeyStatus};
pub use keyring::Keyring;
pub use root_key::{RootKey, create_private_dir};

/// 256 bits of key material, wiped from memory when dropped.
pub type Key256 = Zeroizing<[u8; 32]>;

/// Plaintext bytes, wiped from memory when dropped.
pub type Plaintext = Zeroizing<Vec<u8>>;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, wrong associated data (the blob was moved to
    /// another storage key), or the bytes were altered.
    #[error(
        "stored value at {key:?} failed authentication: it was altered, moved from another key, or encrypted under another root key"
    )]
    Tampered { key: String },
    #[error("stored value at {key:?} is malformed: {reason}")]
    Malformed { key: String, reason: &'static str },
    #[error("stored value at {key:?} needs keyring term {term}, which this keyring does not have")]
    UnknownTerm { key: String, term: u32 },
    #[error("root key: {0}")]
    RootKey(String),
}

/// Fresh random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// A fresh random 256-bit key.
pub fn random_key() -> Key256 {
    Zeroizing::new(random_bytes::<32>())
}

/// AES-256-GCM encryption: returns `nonce ‖ ciphertext ‖ tag`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce = random_bytes::<NONCE_LEN>();
    // Encryption only fails when the plaintext exceeds AES-GCM's 64 GiB limit, far
    // beyond any request body the server accepts.
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// AES-256-GCM decryption of `nonce ‖ ciphertext ‖ tag`; `None` when authentication fails.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Plaintext> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Compares two secrets (tokens, MACs) in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = random_key();
        let sealed = seal(&key, b"kv/a", b"hunter2");
        assert_eq!(open(&key, b"kv/a", &sealed).unwrap().as_slice(), b"hunter2");
        assert!(
            open(&key, b"kv/b", &sealed).is_none(),
            "moved blob must not decrypt"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(open(&key, b"kv/a", &altered).is_none());
        assert!(open(&random_key(), b"kv/a", &sealed).is_none());
        assert!(open(&key, b"kv/a", &sealed[..10]).is_none());
    }

    #[test]
    fn nonces_are_fresh() {
        let key = random_key();
        assert_ne!(seal(&key, b"k", b"same"), seal(&key, b"k", b"same"));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
