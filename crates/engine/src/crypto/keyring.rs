//! The keyring: data keys by term. The highest term encrypts; every term decrypts.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{CryptoError, Key256, random_key};

/// Storage key of the encrypted keyring (encrypted under the root key, not the barrier).
pub(crate) const KEYRING_KEY: &str = "core/keyring";

pub struct Keyring {
    terms: BTreeMap<u32, DataKey>,
}

pub(crate) struct DataKey {
    pub key: Key256,
    pub installed: DateTime<Utc>,
}

/// The serialised form; key bytes travel base64-encoded inside a zeroized buffer.
#[derive(Serialize, Deserialize)]
struct Stored {
    terms: Vec<StoredTerm>,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    installed: DateTime<Utc>,
}

impl Drop for StoredTerm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl Keyring {
    /// A keyring with one fresh key at term 1.
    pub fn new(now: DateTime<Utc>) -> Self {
        let mut terms = BTreeMap::new();
        terms.insert(
            1,
            DataKey {
                key: random_key(),
                installed: now,
            },
        );
        Keyring { terms }
    }

    /// The term new values are encrypted with.
    pub fn active_term(&self) -> u32 {
        self.terms.keys().next_back().copied().unwrap_or(0)
    }

    pub(crate) fn active(&self) -> Option<(u32, &DataKey)> {
        self.terms.iter().next_back().map(|(t, k)| (*t, k))
    }

    pub(crate) fn get(&self, term: u32) -> Option<&DataKey> {
        self.terms.get(&term)
    }

    /// A copy of this keyring with a fresh key at the next term.
    pub fn rotated(&self, now: DateTime<Utc>) -> Self {
        let mut terms: BTreeMap<u32, DataKey> = self
            .terms
            .iter()
            .map(|(t, k)| {
                (
                    *t,
                    DataKey {
                        key: k.key.clone(),
                        installed: k.installed,
                    },
                )
            })
            .collect();
        terms.insert(
            self.active_term() + 1,
            DataKey {
                key: random_key(),
                installed: now,
            },
        );
        Keyring { terms }
    }

    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let stored = Stored {
            terms: self
                .terms
                .iter()
                .map(|(term, k)| StoredTerm {
                    term: *term,
                    key: STANDARD.encode(k.key.as_slice()),
                    installed: k.installed,
                })
                .collect(),
        };
        // Serialising plain strings and numbers cannot fail.
        Zeroizing::new(serde_json::to_vec(&stored).unwrap_or_default())
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let malformed = |reason| CryptoError::Malformed {
            key: KEYRING_KEY.into(),
            reason,
        };
        let stored: Stored =
            serde_json::from_slice(bytes).map_err(|_| malformed("keyring is not valid JSON"))?;
        let mut terms = BTreeMap::new();
        for t in &stored.terms {
            let raw = Zeroizing::new(
                STANDARD
                    .decode(&t.key)
                    .map_err(|_| malformed("keyring key is not base64"))?,
            );
            let key: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| malformed("keyring key is not 32 bytes"))?;
            terms.insert(
                t.term,
                DataKey {
                    key: Zeroizing::new(key),
                    installed: t.installed,
                },
            );
        }
        if terms.is_empty() {
            return Err(malformed("keyring has no keys"));
        }
        Ok(Keyring { terms })
    }
}
