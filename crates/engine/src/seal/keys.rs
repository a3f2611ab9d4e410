//! The server's sealing key pairs, stored in the barrier as one key ring.
//!
//! The newest pair is the current one: its public key is served and sealed to. Older pairs
//! are never dropped, so every value sealed since the cluster began still opens. Replicas
//! share the ring through storage and change it only by compare-and-set, so two replicas
//! renewing at once add one key, not two.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::cipher::{self, Kem, PublicKeyDocument, SealingPublicKey};
use super::format::SealedValue;
use super::{ALGORITHM, Binding, SealError};
use crate::crypto::{Barrier, BarrierError};
use crate::logical::format_time;
use crate::storage::{Precondition, Revision, StorageError};

/// Storage key of the ring (encrypted by the barrier like everything else).
pub(crate) const RING_KEY: &str = "sys/sealing-keys";

/// Compare-and-set attempts before giving up; each failure means another replica changed
/// the ring in between, which settles within a few rounds.
const MAX_CAS_ATTEMPTS: usize = 32;

struct KeyPair {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: SealingPublicKey,
    created: DateTime<Utc>,
}

/// In the order the keys were added (the last is current); never empty once loaded.
struct Ring {
    keys: Vec<KeyPair>,
}

#[derive(Serialize, Deserialize)]
struct StoredRing {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    /// For people reading a decrypted dump; recomputed from the private key on load.
    key_id: String,
    private_key: String,
    created: DateTime<Utc>,
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

impl Ring {
    fn current(&self) -> Option<&KeyPair> {
        self.keys.last()
    }

    fn find(&self, key_id: &str) -> Option<&KeyPair> {
        self.keys.iter().find(|k| k.public.id() == key_id)
    }

    fn with_new_key(&self, now: DateTime<Utc>) -> Ring {
        let mut keys: Vec<KeyPair> = self
            .keys
            .iter()
            .map(|k| KeyPair {
                private: k.private.clone(),
                public: k.public.clone(),
                created: k.created,
            })
            .collect();
        keys.push(new_pair(now));
        Ring { keys }
    }

    fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let stored = StoredRing {
            keys: self
                .keys
                .iter()
                .map(|k| StoredKey {
                    key_id: k.public.id().to_string(),
                    private_key: STANDARD.encode(cipher::private_bytes(&k.private).as_slice()),
                    created: k.created,
                })
                .collect(),
        };
        // Plain strings and timestamps always serialise.
        Zeroizing::new(serde_json::to_vec(&stored).unwrap_or_default())
    }

    fn from_bytes(bytes: &[u8]) -> Result<Ring, SealError> {
        let corrupt = |reason| SealError::CorruptKeyRing { reason };
        let stored: StoredRing =
            serde_json::from_slice(bytes).map_err(|_| corrupt("the key ring is not valid JSON"))?;
        let mut keys = Vec::with_capacity(stored.keys.len());
        for k in &stored.keys {
            let raw = Zeroizing::new(
                STANDARD
                    .decode(&k.private_key)
                    .map_err(|_| corrupt("a private key is not base64"))?,
            );
            if raw.len() != 32 {
                return Err(corrupt("a private key is not 32 bytes"));
            }
            let (private, public) = cipher::private_from_bytes(&raw)
                .ok_or_else(|| corrupt("a private key is not an X25519 key"))?;
            keys.push(KeyPair {
                private,
                public,
                created: k.created,
            });
        }
        if keys.is_empty() {
            return Err(corrupt("the key ring holds no keys"));
        }
        // Stored in the order keys were added: the last is current even if replicas' clocks disagree.
        Ok(Ring { keys })
    }
}

fn new_pair(now: DateTime<Utc>) -> KeyPair {
    let (private, public) = cipher::generate();
    KeyPair {
        private,
        public,
        created: now,
    }
}

fn is_conflict(e: &BarrierError) -> bool {
    matches!(e, BarrierError::Storage(StorageError::Conflict { .. }))
}

/// A public sealing key and when its pair was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingKeyInfo {
    pub public_key: SealingPublicKey,
    pub created: DateTime<Utc>,
}

impl SealingKeyInfo {
    pub fn key_id(&self) -> &str {
        self.public_key.id()
    }

    /// What `GET /v1/sys/sealing-key` serves.
    pub fn document(&self) -> PublicKeyDocument {
        PublicKeyDocument {
            key_id: self.public_key.id().to_string(),
            public_key: self.public_key.to_base64(),
            algorithm: ALGORITHM.to_string(),
            creation_time: Some(format_time(&self.created)),
        }
    }
}

impl From<&KeyPair> for SealingKeyInfo {
    fn from(k: &KeyPair) -> Self {
        SealingKeyInfo {
            public_key: k.public.clone(),
            created: k.created,
        }
    }
}

/// The server's sealing key pairs.
pub struct SealingKeys {
    barrier: Arc<Barrier>,
    ring: RwLock<Arc<Ring>>,
}

impl SealingKeys {
    /// Loads the ring, or creates it with one key pair on first start (if two replicas
    /// start at once, the first write wins and the other uses it).
    pub async fn open(barrier: Arc<Barrier>) -> Result<SealingKeys, SealError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            if let Some((ring, _)) = read(&barrier).await? {
                return Ok(SealingKeys {
                    barrier,
                    ring: RwLock::new(Arc::new(ring)),
                });
            }
            let ring = Ring {
                keys: vec![new_pair(Utc::now())],
            };
            match barrier
                .put(RING_KEY, &ring.to_bytes(), Precondition::Absent)
                .await
            {
                Ok(_) => {
                    if let Some(k) = ring.current() {
                        tracing::info!(key_id = k.public.id(), "sealing key created");
                    }
                    return Ok(SealingKeys {
                        barrier,
                        ring: RwLock::new(Arc::new(ring)),
                    });
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(too_much_contention())
    }

    fn ring(&self) -> Arc<Ring> {
        // Writers only swap the Arc, so a poisoned lock still holds a whole ring.
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn install(&self, ring: Ring) -> Arc<Ring> {
        let ring = Arc::new(ring);
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring.clone();
        ring
    }

    /// The key to seal to now.
    pub fn current(&self) -> SealingKeyInfo {
        let ring = self.ring();
        match ring.current() {
            Some(k) => k.into(),
            None => unreachable!("a loaded ring always holds a key (checked on load)"),
        }
    }

    /// Every key pair's public half, oldest first.
    pub fn all(&self) -> Vec<SealingKeyInfo> {
        self.ring().keys.iter().map(SealingKeyInfo::from).collect()
    }

    /// Re-reads the ring from storage (another replica may have renewed it).
    pub async fn reload(&self) -> Result<(), SealError> {
        if let Some((ring, _)) = read(&self.barrier).await? {
            self.install(ring);
        }
        Ok(())
    }

    /// Adds a new key pair, which becomes current; old pairs keep opening what they sealed.
    pub async fn renew(&self) -> Result<SealingKeyInfo, SealError> {
        self.renew_when(|_| true)
            .await?
            .ok_or_else(too_much_contention)
    }

    /// Renews when the current key is at least `period` old (zero never renews). Reads the
    /// ring first, so a renewal made by another replica counts (and is served from now
    /// on). Returns whether it renewed.
    pub async fn renew_if_due(&self, period: Duration) -> Result<bool, SealError> {
        if period.is_zero() {
            self.reload().await?;
            return Ok(false);
        }
        let due = |current: &KeyPair| {
            Utc::now()
                .signed_duration_since(current.created)
                .to_std()
                .is_ok_and(|age| age >= period)
        };
        Ok(self.renew_when(due).await?.is_some())
    }

    /// Compare-and-set loop: re-reads the ring each round and asks `due` again, so a
    /// replica that lost the race sees the winner's new key instead of adding another.
    async fn renew_when(
        &self,
        due: impl Fn(&KeyPair) -> bool,
    ) -> Result<Option<SealingKeyInfo>, SealError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some((ring, revision)) = read(&self.barrier).await? else {
                return Err(SealError::CorruptKeyRing {
                    reason: "the key ring disappeared from storage",
                });
            };
            let ring = self.install(ring);
            let Some(current) = ring.current() else {
                unreachable!("a loaded ring always holds a key (checked on load)")
            };
            if !due(current) {
                return Ok(None);
            }
            let next = ring.with_new_key(Utc::now());
            match self
                .barrier
                .put(RING_KEY, &next.to_bytes(), Precondition::Revision(revision))
                .await
            {
                Ok(_) => {
                    let ring = self.install(next);
                    let Some(current) = ring.current() else {
                        unreachable!("a renewed ring holds the new key")
                    };
                    tracing::info!(
                        key_id = current.public.id(),
                        keys = ring.keys.len(),
                        "sealing key renewed"
                    );
                    return Ok(Some(current.into()));
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(too_much_contention())
    }

    /// Opens `sealed` for `binding` with whichever key pair sealed it. Errors say which of
    /// these went wrong: not a sealed value, a key this cluster never had, another
    /// resource's value, or altered bytes.
    pub async fn unseal(
        &self,
        binding: &Binding,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        binding.validate()?;
        let value = SealedValue::parse(sealed)?;
        let mut ring = self.ring();
        if ring.find(&value.key_id).is_none() {
            // Sealed to a key another replica created since this one loaded the ring.
            self.reload().await?;
            ring = self.ring();
        }
        let key = ring
            .find(&value.key_id)
            .ok_or_else(|| SealError::UnknownKey {
                key_id: value.key_id.clone(),
            })?;
        cipher::open(&key.private, binding, &value)
    }
}

async fn read(barrier: &Barrier) -> Result<Option<(Ring, Revision)>, SealError> {
    match barrier.get(RING_KEY).await? {
        Some((bytes, revision)) => Ok(Some((Ring::from_bytes(&bytes)?, revision))),
        None => Ok(None),
    }
}

fn too_much_contention() -> SealError {
    SealError::Storage(BarrierError::Storage(StorageError::Conflict {
        key: RING_KEY.into(),
    }))
}
