//! A bounded cache of decrypted values, in front of the barrier's storage reads.
//!
//! Every KV read loads a metadata record and a version blob; without a cache each is a
//! storage lookup plus an AES-GCM open. The cache is only used when the barrier is the
//! store's sole writer ([`crate::storage::Backend::exclusive`]), so every change passes
//! through [`Barrier::put`](super::Barrier::put) / `delete`, which invalidate it.
//!
//! A reader that missed must not put back a value a concurrent writer has just replaced.
//! Writers bump a generation (before and after touching storage); a reader inserts only
//! if the generation it saw before its storage read is still current.
//!
//! Values are [`Plaintext`] (zeroized when dropped), and the cache is bounded in bytes:
//! past the bound it starts over, which is cheap to refill.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Plaintext;
use crate::storage::Revision;

/// Values larger than this are not cached (they are rare and would crowd out the rest).
const MAX_VALUE_BYTES: usize = 64 * 1024;

pub(super) struct ReadCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: HashMap<String, Entry>,
    bytes: usize,
}

struct Entry {
    value: Plaintext,
    revision: Revision,
    /// The value decoded by a caller (see [`ReadCache::attach_parsed`]), so repeated reads
    /// skip decoding too. Only for records that hold no secrets: it is not zeroized.
    parsed: Option<Arc<dyn Any + Send + Sync>>,
}

impl ReadCache {
    pub(super) fn new(max_bytes: usize) -> ReadCache {
        ReadCache {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is always consistent between statements, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached value, or the generation to hand back to [`ReadCache::insert`].
    pub(super) fn get(&self, key: &str) -> Result<(Plaintext, Revision), u64> {
        let inner = self.lock();
        match inner.entries.get(key) {
            Some(entry) => Ok((entry.value.clone(), entry.revision)),
            None => Err(inner.generation),
        }
    }

    /// The decoded value attached to `key`, if it is a `T`.
    pub(super) fn parsed<T: Any + Send + Sync>(&self, key: &str) -> Option<(Arc<T>, Revision)> {
        let inner = self.lock();
        let entry = inner.entries.get(key)?;
        let parsed = entry.parsed.clone()?.downcast::<T>().ok()?;
        Some((parsed, entry.revision))
    }

    /// Attaches a decoded value to `key`'s cached entry, if that entry still holds
    /// `revision` (a write in between removed or replaced it: then nothing is attached).
    pub(super) fn attach_parsed(
        &self,
        key: &str,
        revision: Revision,
        parsed: Arc<dyn Any + Send + Sync>,
    ) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(key)
            && entry.revision == revision
        {
            entry.parsed = Some(parsed);
        }
    }

    /// Caches `value` unless a write happened since `generation` was read.
    pub(super) fn insert(&self, generation: u64, key: &str, value: &Plaintext, revision: Revision) {
        let size = key.len() + value.len();
        if size > MAX_VALUE_BYTES {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.bytes + size > self.max_bytes {
            inner.entries.clear();
            inner.bytes = 0;
        }
        let entry = Entry {
            value: value.clone(),
            revision,
            parsed: None,
        };
        if let Some(old) = inner.entries.insert(key.to_string(), entry) {
            inner.bytes -= key.len() + old.value.len();
        }
        inner.bytes += size;
    }

    /// Forgets `key` and stops in-flight readers from caching what they read.
    pub(super) fn invalidate(&self, key: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        if let Some(old) = inner.entries.remove(key) {
            inner.bytes -= key.len() + old.value.len();
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Invalidates `key` when dropped: after a write completes, and also if the write's
/// future is dropped midway (the storage write may have landed).
pub(super) struct InvalidateOnDrop<'a> {
    pub(super) cache: Option<&'a ReadCache>,
    pub(super) key: &'a str,
}

impl Drop for InvalidateOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache {
            cache.invalidate(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn pt(s: &str) -> Plaintext {
        Zeroizing::new(s.as_bytes().to_vec())
    }

    #[test]
    fn a_write_during_a_miss_keeps_the_stale_value_out() {
        let cache = ReadCache::new(1024);
        let generation = cache.get("k").unwrap_err();
        // A writer replaces the value while the reader is reading storage.
        cache.invalidate("k");
        cache.insert(generation, "k", &pt("old"), Revision(1));
        assert!(cache.get("k").is_err(), "stale read must not be cached");
        let generation = cache.get("k").unwrap_err();
        cache.insert(generation, "k", &pt("new"), Revision(2));
        let (value, revision) = cache.get("k").unwrap();
        assert_eq!(value.as_slice(), b"new");
        assert_eq!(revision, Revision(2));
    }

    #[test]
    fn bounded_in_bytes() {
        let cache = ReadCache::new(100);
        for i in 0..20 {
            let generation = cache.get(&format!("k{i}")).unwrap_err();
            cache.insert(generation, &format!("k{i}"), &pt("0123456789"), Revision(1));
        }
        assert!(cache.lock().bytes <= 100);
        assert!(cache.len() < 20);
        let big = Zeroizing::new(vec![0u8; MAX_VALUE_BYTES + 1]);
        let generation = cache.get("big").unwrap_err();
        let large = ReadCache::new(usize::MAX);
        large.insert(generation, "big", &big, Revision(1));
        assert_eq!(large.len(), 0, "oversized values are not cached");
    }

    #[test]
    fn dropped_write_invalidates() {
        let cache = ReadCache::new(1024);
        let generation = cache.get("k").unwrap_err();
        cache.insert(generation, "k", &pt("v"), Revision(1));
        {
            let _guard = InvalidateOnDrop {
                cache: Some(&cache),
                key: "k",
            };
        }
        assert!(cache.get("k").is_err());
    }
}
