//! Physical storage: one trait, several backends, one conformance suite.
//!
//! Backends store opaque bytes: everything that reaches them has already been
//! encrypted by the [`crate::crypto::Barrier`]. They only promise what Vault's physical
//! layer promises, plus per-key compare-and-set:
//! - `put`/`delete` return only once the change is durable (it survives `kill -9`);
//! - every key has a [`Revision`] that changes on every write, and writes can be made
//!   conditional on it ([`Precondition`]), atomically;
//! - `list` returns the immediate children of a prefix, folders with a trailing `/`,
//!   sorted, as Vault's `physical.Backend.List` does.

use async_trait::async_trait;

pub mod conformance;
pub mod memory;
pub mod redb;

pub use self::redb::RedbBackend;
pub use memory::MemoryBackend;

/// A key's version as the backend sees it; changes on every write of that key.
/// Opaque to callers: only compare it for equality and hand it back in a [`Precondition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Revision(pub u64);

/// The condition a conditional write checks, atomically with the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Write unconditionally.
    None,
    /// Write only if the key does not exist.
    Absent,
    /// Write only if the key exists at exactly this revision.
    Revision(Revision),
}

/// A stored value and the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub revision: Revision,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A [`Precondition`] did not hold; nothing was written.
    #[error("storage key {key:?} changed concurrently (compare-and-set failed)")]
    Conflict { key: String },
    /// The key is not acceptable to this backend (empty, too long, bad characters).
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// The backend failed; the operation may or may not have happened unless stated.
    #[error("{backend} storage: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

impl StorageError {
    pub fn backend(backend: &'static str, err: impl std::fmt::Display) -> Self {
        StorageError::Backend {
            backend,
            message: err.to_string(),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The physical storage contract every backend implements.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and errors (`redb`, `memory`, `kubernetes`).
    fn name(&self) -> &'static str;

    async fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Writes `value` at `key` if `precondition` holds, durably, and returns the new revision.
    /// Fails with [`StorageError::Conflict`] (writing nothing) when the precondition does not hold.
    async fn put(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Revision>;

    /// Deletes `key` if `precondition` holds; returns whether it existed.
    /// `Precondition::Absent` is meaningless here and always conflicts if the key exists.
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<bool>;

    /// The immediate children of `prefix` (which is empty or ends with `/`):
    /// leaf names as is, sub-folders once each with a trailing `/`, sorted bytewise.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Whether this process is the only writer of the store (an embedded database file
    /// it holds locked). Only then may the layers above cache what they read: a store
    /// shared with other replicas can change underneath them. Defaults to `false`.
    fn exclusive(&self) -> bool {
        false
    }
}

/// Checks a key before it reaches a backend; shared so every backend refuses the same keys.
pub fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.len() > MAX_KEY_LEN {
        "it is longer than 4096 bytes"
    } else if key.ends_with('/') {
        "it ends with '/' (that names a folder, not a value)"
    } else if key.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(StorageError::InvalidKey {
        key: key.chars().take(128).collect(),
        reason,
    })
}

/// The longest key a backend must accept.
pub const MAX_KEY_LEN: usize = 4096;

/// Folds a sorted sequence of full keys under `prefix` into Vault-style immediate
/// children (`leaf`, `folder/`), for backends that can only scan.
pub fn immediate_children<'a>(
    prefix: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if child.is_empty() {
            continue;
        }
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_fold_folders() {
        let keys = ["a/b", "a/c/d", "a/c/e", "a/f", "b/x"];
        assert_eq!(immediate_children("a/", keys), vec!["b", "c/", "f"]);
        assert_eq!(immediate_children("", keys), vec!["a/", "b/"]);
        assert!(immediate_children("zz/", keys).is_empty());
    }

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("kv/meta/x").is_ok());
        for bad in ["", "a/", "a\0b"] {
            assert!(
                matches!(validate_key(bad), Err(StorageError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_key(&"x".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
