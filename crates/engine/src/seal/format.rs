//! The printable form of a sealed value:
//!
//! ```text
//! sv:v1:<key id>:<binding tag>:<payload>
//! ```
//!
//! - `key id`: 16 lower-case hex digits, the first 8 bytes of SHA-256 of the 32-byte X25519
//!   public key the value was sealed to ([`key_id`]); it picks the private key to open with.
//! - `binding tag`: 8 lower-case hex digits, the first 4 bytes of SHA-256 of a label and the
//!   binding `NAMESPACE/NAME/KEY` ([`binding_tag`]). It only tells a value used in the wrong
//!   resource apart from an altered one, for the error message; the binding itself is
//!   enforced by HPKE's associated data.
//! - `payload`: unpadded base64url of `enc ‖ ciphertext`: the 32-byte HPKE encapsulated key,
//!   then the AES-256-GCM ciphertext with its 16-byte tag.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{Binding, SealError, truncate};

pub const PREFIX: &str = "sv";
pub const VERSION: &str = "v1";
/// Length of the HPKE encapsulated key for DHKEM(X25519).
pub const ENC_LEN: usize = 32;
/// Length of the AES-256-GCM tag.
pub const TAG_LEN: usize = 16;
pub const KEY_ID_LEN: usize = 16;
pub const BINDING_TAG_LEN: usize = 8;

/// A parsed sealed value. Parsing checks the shape only; opening checks the cryptography.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub key_id: String,
    pub binding_tag: String,
    /// `enc ‖ ciphertext ‖ tag`.
    pub payload: Vec<u8>,
}

impl SealedValue {
    /// Parses the printable form. Surrounding whitespace (a YAML block scalar's newline) is
    /// ignored; anything else out of shape is refused with the reason. Never panics.
    pub fn parse(text: &str) -> Result<SealedValue, SealError> {
        let malformed = |reason| Err(SealError::Malformed { reason });
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if text.is_empty() {
            return malformed("it is empty");
        }
        let mut head = text.splitn(3, ':');
        if head.next() != Some(PREFIX) {
            return malformed("it does not start with \"sv:\"");
        }
        let Some(version) = head.next().filter(|v| !v.is_empty()) else {
            return malformed("it has no format version after \"sv:\"");
        };
        if version != VERSION {
            return Err(SealError::UnsupportedVersion {
                version: truncate(version, 16),
            });
        }
        let rest = head.next().unwrap_or_default();
        let mut parts = rest.split(':');
        let (Some(key_id), Some(binding_tag), Some(payload), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return malformed("it does not have the five ':'-separated parts of format v1");
        };
        if !is_lower_hex(key_id, KEY_ID_LEN) {
            return malformed("the key id is not 16 lower-case hex digits");
        }
        if !is_lower_hex(binding_tag, BINDING_TAG_LEN) {
            return malformed("the binding tag is not 8 lower-case hex digits");
        }
        let Ok(payload) = URL_SAFE_NO_PAD.decode(payload) else {
            return malformed("the data is not unpadded base64url");
        };
        if payload.len() < ENC_LEN + TAG_LEN {
            return malformed("the data is too short to hold an encapsulated key and a tag");
        }
        Ok(SealedValue {
            key_id: key_id.to_string(),
            binding_tag: binding_tag.to_string(),
            payload,
        })
    }

    /// The encapsulated key and the ciphertext (checked long enough by [`Self::parse`]).
    pub(crate) fn split(&self) -> Option<(&[u8], &[u8])> {
        (self.payload.len() >= ENC_LEN + TAG_LEN).then(|| self.payload.split_at(ENC_LEN))
    }
}

impl fmt::Display for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}:{VERSION}:{}:{}:{}",
            self.key_id,
            self.binding_tag,
            URL_SAFE_NO_PAD.encode(&self.payload)
        )
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The id of a public key: the first 8 bytes of its SHA-256, in hex. Anyone holding the
/// public key computes the same id, so offline sealing needs nothing else.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..KEY_ID_LEN / 2])
}

/// The binding tag of [`SealedValue`]: a short hash of the binding under a label of its own.
pub fn binding_tag(binding: &Binding) -> String {
    let mut hash = Sha256::new();
    hash.update(b"secretvault.io/binding-tag/v1\0");
    hash.update(binding.aad().as_bytes());
    hex::encode(&hash.finalize()[..BINDING_TAG_LEN / 2])
}
