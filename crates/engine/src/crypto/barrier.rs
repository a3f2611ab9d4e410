//! The barrier: everything the engine stores passes through here and is encrypted.
//!
//! Blob layout: `0x01 ‖ term (u32, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`,
//! AES-256-GCM with the storage key as associated data.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cache::{InvalidateOnDrop, ReadCache};
use super::keyring::{KEYRING_KEY, Keyring};
use super::{CryptoError, NONCE_LEN, Plaintext, RootKey, TAG_LEN, open, seal};
use crate::storage::{Backend, Precondition, Revision, StorageError};

const BLOB_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4;

/// Bytes of decrypted values kept in the read cache (when the backend allows one).
const READ_CACHE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

pub type Result<T, E = BarrierError> = std::result::Result<T, E>;

/// What `sys/key-status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: DateTime<Utc>,
}

pub struct Barrier {
    backend: Arc<dyn Backend>,
    root: RootKey,
    keyring: RwLock<Arc<Keyring>>,
    /// Decrypted values, only when this process is the store's sole writer.
    cache: Option<ReadCache>,
}

impl Barrier {
    /// Opens the barrier over `backend`: loads the keyring, or creates one on first start.
    /// Fails if the stored keyring was written under a different root key.
    pub async fn open(backend: Arc<dyn Backend>, root: RootKey) -> Result<Self> {
        let keyring = match backend.get(KEYRING_KEY).await? {
            Some(entry) => decrypt_keyring(&root, &entry.value)?,
            None => {
                let keyring = Keyring::new(Utc::now());
                let sealed = seal(root.bytes(), KEYRING_KEY.as_bytes(), &keyring.to_bytes());
                match backend.put(KEYRING_KEY, sealed, Precondition::Absent).await {
                    Ok(_) => keyring,
                    // Another replica created it first: use theirs.
                    Err(StorageError::Conflict { .. }) => {
                        let entry = backend.get(KEYRING_KEY).await?.ok_or_else(|| {
                            StorageError::Conflict {
                                key: KEYRING_KEY.into(),
                            }
                        })?;
                        decrypt_keyring(&root, &entry.value)?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let cache = backend
            .exclusive()
            .then(|| ReadCache::new(READ_CACHE_BYTES));
        Ok(Barrier {
            backend,
            root,
            keyring: RwLock::new(Arc::new(keyring)),
            cache,
        })
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    fn keyring(&self) -> Arc<Keyring> {
        // Writers only swap the Arc, so a poisoned lock still holds a valid keyring.
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn refuse_reserved(key: &str) -> Result<()> {
        if key == KEYRING_KEY {
            return Err(StorageError::InvalidKey {
                key: key.into(),
                reason: "it is reserved for the keyring",
            }
            .into());
        }
        Ok(())
    }

    /// Reads and decrypts `key`.
    pub async fn get(&self, key: &str) -> Result<Option<(Plaintext, Revision)>> {
        Self::refuse_reserved(key)?;
        let generation = match &self.cache {
            Some(cache) => match cache.get(key) {
                Ok(hit) => return Ok(Some(hit)),
                Err(generation) => Some(generation),
            },
            None => None,
        };
        let Some(entry) = self.backend.get(key).await? else {
            return Ok(None);
        };
        let plaintext = match self.decrypt(key, &entry.value) {
            Err(BarrierError::Crypto(CryptoError::UnknownTerm { .. })) => {
                // Another replica rotated the keyring since we loaded it.
                self.reload_keyring().await?;
                self.decrypt(key, &entry.value)?
            }
            other => other?,
        };
        if let (Some(cache), Some(generation)) = (&self.cache, generation) {
            cache.insert(generation, key, &plaintext, entry.revision);
        }
        Ok(Some((plaintext, entry.revision)))
    }

    /// Reads `key` and decodes it with `parse`. Where reads are cached, the decoded value
    /// is cached with the plaintext, so a hot record (KV metadata) is decrypted and decoded
    /// once per write rather than once per read. For records without secrets only: the
    /// decoded copy is not zeroized. A decoding failure is returned inside, uncached.
    pub async fn get_parsed<T, E>(
        &self,
        key: &str,
        parse: impl FnOnce(&[u8]) -> std::result::Result<T, E>,
    ) -> Result<Option<(std::result::Result<Arc<T>, E>, Revision)>>
    where
        T: std::any::Any + Send + Sync,
    {
        if let Some(cache) = &self.cache
            && let Some((parsed, revision)) = cache.parsed::<T>(key)
        {
            return Ok(Some((Ok(parsed), revision)));
        }
        let Some((plaintext, revision)) = self.get(key).await? else {
            return Ok(None);
        };
        let parsed = parse(&plaintext).map(Arc::new);
        if let (Some(cache), Ok(value)) = (&self.cache, &parsed) {
            cache.attach_parsed(key, revision, value.clone());
        }
        Ok(Some((parsed, revision)))
    }

    /// Encrypts and writes `plaintext` at `key` if `precondition` holds.
    pub async fn put(
        &self,
        key: &str,
        plaintext: &[u8],
        precondition: Precondition,
    ) -> Result<Revision> {
        Self::refuse_reserved(key)?;
        let blob = self.encrypt(key, plaintext);
        let _invalidate = self.invalidate_around_write(key);
        Ok(self.backend.put(key, blob, precondition).await?)
    }

    pub async fn delete(&self, key: &str, precondition: Precondition) -> Result<bool> {
        Self::refuse_reserved(key)?;
        let _invalidate = self.invalidate_around_write(key);
        Ok(self.backend.delete(key, precondition).await?)
    }

    /// Invalidates `key` in the read cache now (so readers from here on do not cache what
    /// they read) and again when the returned guard drops, after the write.
    fn invalidate_around_write<'a>(&'a self, key: &'a str) -> InvalidateOnDrop<'a> {
        if let Some(cache) = &self.cache {
            cache.invalidate(key);
        }
        InvalidateOnDrop {
            cache: self.cache.as_ref(),
            key,
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = self.backend.list(prefix).await?;
        if prefix.is_empty() {
            keys.retain(|k| k != "core/");
        }
        Ok(keys)
    }

    fn encrypt(&self, key: &str, plaintext: &[u8]) -> Vec<u8> {
        let keyring = self.keyring();
        let Some((term, data_key)) = keyring.active() else {
            unreachable!("a keyring always holds at least one term (checked when loaded)")
        };
        let sealed = seal(&data_key.key, key.as_bytes(), plaintext);
        let mut blob = Vec::with_capacity(HEADER_LEN + sealed.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&term.to_be_bytes());
        blob.extend_from_slice(&sealed);
        blob
    }

    fn decrypt(&self, key: &str, blob: &[u8]) -> Result<Plaintext> {
        let malformed = |reason| CryptoError::Malformed {
            key: key.into(),
            reason,
        };
        if blob.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
            return Err(malformed("too short").into());
        }
        if blob[0] != BLOB_VERSION {
            return Err(malformed("unknown format version").into());
        }
        let term = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        let keyring = self.keyring();
        let data_key = keyring.get(term).ok_or_else(|| CryptoError::UnknownTerm {
            key: key.into(),
            term,
        })?;
        open(&data_key.key, key.as_bytes(), &blob[HEADER_LEN..])
            .ok_or_else(|| CryptoError::Tampered { key: key.into() }.into())
    }

    async fn reload_keyring(&self) -> Result<()> {
        if let Some(entry) = self.backend.get(KEYRING_KEY).await? {
            let keyring = decrypt_keyring(&self.root, &entry.value)?;
            *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keyring);
        }
        Ok(())
    }

    /// The active term and when it was installed.
    pub fn key_status(&self) -> KeyStatus {
        let keyring = self.keyring();
        let (term, installed) = keyring
            .active()
            .map(|(t, k)| (t, k.installed))
            .unwrap_or((0, Utc::now()));
        KeyStatus {
            term,
            install_time: installed,
        }
    }

    /// Adds a fresh data key; new writes use it, old terms still decrypt.
    /// Safe against concurrent rotation by another replica (compare-and-set on the keyring).
    pub async fn rotate(&self) -> Result<KeyStatus> {
        loop {
            let entry = self.backend.get(KEYRING_KEY).await?;
            let (current, precondition) = match &entry {
                Some(e) => (
                    decrypt_keyring(&self.root, &e.value)?,
                    Precondition::Revision(e.revision),
                ),
                None => {
                    return Err(StorageError::backend(
                        self.backend.name(),
                        "the keyring disappeared from storage",
                    )
                    .into());
                }
            };
            let next = current.rotated(Utc::now());
            let sealed = seal(self.root.bytes(), KEYRING_KEY.as_bytes(), &next.to_bytes());
            match self.backend.put(KEYRING_KEY, sealed, precondition).await {
                Ok(_) => {
                    *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
                    tracing::info!(term = self.key_status().term, "keyring rotated");
                    return Ok(self.key_status());
                }
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Rotates when the active key is older than `period` (zero disables). Returns whether it rotated.
    pub async fn rotate_if_due(&self, period: Duration) -> Result<bool> {
        if period.is_zero() {
            return Ok(false);
        }
        self.reload_keyring().await?;
        let installed = self.key_status().install_time;
        let age = Utc::now()
            .signed_duration_since(installed)
            .to_std()
            .unwrap_or_default();
        if age < period {
            return Ok(false);
        }
        self.rotate().await?;
        Ok(true)
    }
}

fn decrypt_keyring(root: &RootKey, blob: &[u8]) -> Result<Keyring, CryptoError> {
    let plaintext = open(root.bytes(), KEYRING_KEY.as_bytes(), blob).ok_or_else(|| {
        CryptoError::RootKey(
            "the root key does not open the stored keyring: this data was written with a different root key".into(),
        )
    })?;
    Keyring::from_bytes(&plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    #[tokio::test]
    async fn decoded_values_are_cached_until_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(crate::storage::RedbBackend::open(&dir.path().join("db")).unwrap());
        let barrier = Barrier::open(
            backend,
            RootKey::from_bytes(zeroize::Zeroizing::new([7; 32])),
        )
        .await
        .unwrap();
        let parses = std::sync::atomic::AtomicUsize::new(0);
        let decode = |bytes: &[u8]| {
            parses.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            String::from_utf8(bytes.to_vec())
        };
        barrier.put("m", b"one", Precondition::None).await.unwrap();
        for _ in 0..3 {
            let (value, _) = barrier.get_parsed("m", decode).await.unwrap().unwrap();
            assert_eq!(*value.unwrap(), "one");
        }
        assert_eq!(
            parses.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "decoded once"
        );
        let revision = barrier.put("m", b"two", Precondition::None).await.unwrap();
        let (value, seen) = barrier.get_parsed("m", decode).await.unwrap().unwrap();
        assert_eq!(*value.unwrap(), "two", "a write replaces the decoded value");
        assert_eq!(seen, revision);
        // A decoding failure is reported, and not cached.
        barrier
            .put("bad", &[0xff], Precondition::None)
            .await
            .unwrap();
        for _ in 0..2 {
            let (value, _) = barrier.get_parsed("bad", decode).await.unwrap().unwrap();
            assert!(value.is_err());
        }
        assert_eq!(parses.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert!(
            barrier
                .get_parsed("absent", decode)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn reads_are_cached_only_on_exclusive_backends_and_writes_invalidate() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(crate::storage::RedbBackend::open(&dir.path().join("db")).unwrap());
        let cached = Barrier::open(
            backend.clone(),
            RootKey::from_bytes(zeroize::Zeroizing::new([7; 32])),
        )
        .await
        .unwrap();
        let cache = cached.cache.as_ref().expect("redb is exclusive: cached");
        cached.put("a", b"one", Precondition::None).await.unwrap();
        assert_eq!(cached.get("a").await.unwrap().unwrap().0.as_slice(), b"one");
        assert_eq!(cache.len(), 1, "the read was cached");
        let revision = cached.put("a", b"two", Precondition::None).await.unwrap();
        let (value, seen) = cached.get("a").await.unwrap().unwrap();
        assert_eq!(
            value.as_slice(),
            b"two",
            "a write replaces the cached value"
        );
        assert_eq!(seen, revision);
        cached.delete("a", Precondition::None).await.unwrap();
        assert!(
            cached.get("a").await.unwrap().is_none(),
            "a delete drops it"
        );

        let (_, shared) = barrier().await;
        assert!(
            shared.cache.is_none(),
            "a backend shared with others is never cached"
        );
    }

    async fn barrier() -> (Arc<MemoryBackend>, Barrier) {
        let backend = Arc::new(MemoryBackend::new());
        let barrier = Barrier::open(
            backend.clone(),
            RootKey::from_bytes(zeroize::Zeroizing::new([7; 32])),
        )
        .await
        .unwrap();
        (backend, barrier)
    }

    #[tokio::test]
    async fn stores_only_ciphertext() {
        let (backend, barrier) = barrier().await;
        barrier
            .put("kv/x", b"super-secret-value", Precondition::None)
            .await
            .unwrap();
        let raw = backend.get("kv/x").await.unwrap().unwrap().value;
        assert!(!raw.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            barrier.get("kv/x").await.unwrap().unwrap().0.as_slice(),
            b"super-secret-value"
        );
    }

    #[tokio::test]
    async fn moved_or_altered_blobs_fail() {
        let (backend, barrier) = barrier().await;
        barrier
            .put("kv/a", b"alpha", Precondition::None)
            .await
            .unwrap();
        let raw = backend.get("kv/a").await.unwrap().unwrap().value;
        backend
            .put("kv/b", raw.clone(), Precondition::None)
            .await
            .unwrap();
        assert!(matches!(
            barrier.get("kv/b").await,
            Err(BarrierError::Crypto(CryptoError::Tampered { .. }))
        ));
        let mut altered = raw;
        let last = altered.len() - 1;
        altered[last] ^= 0x80;
        backend
            .put("kv/a", altered, Precondition::None)
            .await
            .unwrap();
        assert!(matches!(
            barrier.get("kv/a").await,
            Err(BarrierError::Crypto(CryptoError::Tampered { .. }))
        ));
        backend
            .put("kv/c", vec![1, 2, 3], Precondition::None)
            .await
            .unwrap();
        assert!(matches!(
            barrier.get("kv/c").await,
            Err(BarrierError::Crypto(CryptoError::Malformed { .. }))
        ));
    }

    #[tokio::test]
    async fn rotation_keeps_old_terms_readable() {
        let (backend, barrier) = barrier().await;
        barrier.put("old", b"v1", Precondition::None).await.unwrap();
        assert_eq!(barrier.key_status().term, 1);
        assert_eq!(barrier.rotate().await.unwrap().term, 2);
        barrier.put("new", b"v2", Precondition::None).await.unwrap();
        assert_eq!(
            backend.get("new").await.unwrap().unwrap().value[1..5],
            2u32.to_be_bytes()
        );
        assert_eq!(
            barrier.get("old").await.unwrap().unwrap().0.as_slice(),
            b"v1"
        );
        // A second barrier over the same storage (another replica, or a restart) sees both terms.
        let reopened = Barrier::open(
            backend.clone(),
            RootKey::from_bytes(zeroize::Zeroizing::new([7; 32])),
        )
        .await
        .unwrap();
        assert_eq!(reopened.key_status().term, 2);
        assert_eq!(
            reopened.get("new").await.unwrap().unwrap().0.as_slice(),
            b"v2"
        );
        assert!(
            !barrier
                .rotate_if_due(Duration::from_secs(3600))
                .await
                .unwrap()
        );
        assert!(
            barrier
                .rotate_if_due(Duration::from_nanos(1))
                .await
                .unwrap()
        );
        assert_eq!(barrier.key_status().term, 3);
    }

    #[tokio::test]
    async fn replica_learns_of_rotation_on_read() {
        let (backend, a) = barrier().await;
        let b = Barrier::open(
            backend.clone(),
            RootKey::from_bytes(zeroize::Zeroizing::new([7; 32])),
        )
        .await
        .unwrap();
        a.rotate().await.unwrap();
        a.put("k", b"after-rotation", Precondition::None)
            .await
            .unwrap();
        assert_eq!(
            b.get("k").await.unwrap().unwrap().0.as_slice(),
            b"after-rotation"
        );
    }

    #[tokio::test]
    async fn wrong_root_key_is_refused() {
        let (backend, _barrier) = barrier().await;
        let err = Barrier::open(
            backend,
            RootKey::from_bytes(zeroize::Zeroizing::new([8; 32])),
        )
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("different root key"), "{err}");
    }

    #[tokio::test]
    async fn keyring_key_is_reserved() {
        let (_backend, barrier) = barrier().await;
        assert!(
            barrier
                .put(KEYRING_KEY, b"x", Precondition::None)
                .await
                .is_err()
        );
        assert!(barrier.get(KEYRING_KEY).await.is_err());
    }
}
