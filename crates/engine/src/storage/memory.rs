//! An in-memory backend: for tests, and to check that the conformance suite itself is right.
//! Not durable; never used by a server.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Backend, Entry, Precondition, Result, Revision, StorageError, immediate_children, validate_key,
};

#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_revision: u64,
    entries: BTreeMap<String, Entry>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-updated (each
        // operation is a single insert/remove), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check(key: &str, current: Option<&Entry>, precondition: Precondition) -> Result<()> {
    let holds = match precondition {
        Precondition::None => true,
        Precondition::Absent => current.is_none(),
        Precondition::Revision(r) => current.is_some_and(|e| e.revision == r),
    };
    if holds {
        Ok(())
    } else {
        Err(StorageError::Conflict {
            key: key.to_string(),
        })
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        validate_key(key)?;
        Ok(self.lock().entries.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Revision> {
        validate_key(key)?;
        let mut state = self.lock();
        check(key, state.entries.get(key), precondition)?;
        state.next_revision += 1;
        let revision = Revision(state.next_revision);
        state
            .entries
            .insert(key.to_string(), Entry { value, revision });
        Ok(revision)
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<bool> {
        validate_key(key)?;
        let mut state = self.lock();
        check(key, state.entries.get(key), precondition)?;
        Ok(state.entries.remove(key).is_some())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let state = self.lock();
        let keys = state
            .entries
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(immediate_children(prefix, keys))
    }
}
