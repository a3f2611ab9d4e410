//! Every storage backend passes the same conformance suite.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secretvault_engine::storage::{
    Backend, Entry, MemoryBackend, Precondition, RedbBackend, Revision, StorageError, conformance,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_conforms() {
    conformance::run_all(&|| Arc::new(MemoryBackend::new()) as Arc<dyn Backend>).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let make = || {
        // A fresh file per case; the directory outlives every backend made here.
        let n = next.fetch_add(1, Ordering::Relaxed);
        let path = dir.path().join(format!("case-{n}")).join("vault.redb");
        Arc::new(RedbBackend::open(&path).unwrap()) as Arc<dyn Backend>
    };
    conformance::run_all(&make).await;
}

/// A backend with one deliberate defect, to show the suite catches it.
struct Flawed {
    inner: MemoryBackend,
    flaw: Flaw,
}

#[derive(Clone, Copy)]
enum Flaw {
    /// Writes unconditionally.
    IgnoresPreconditions,
    /// Checks the precondition, then writes a moment later: not atomic.
    CheckThenWrite,
    /// Lists every key below the prefix instead of its immediate children.
    FlatList,
}

#[async_trait::async_trait]
impl Backend for Flawed {
    fn name(&self) -> &'static str {
        "flawed"
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        self.inner.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> Result<Revision, StorageError> {
        match self.flaw {
            Flaw::IgnoresPreconditions => self.inner.put(key, value, Precondition::None).await,
            Flaw::CheckThenWrite => {
                let current = self.inner.get(key).await?.map(|e| e.revision);
                let holds = match precondition {
                    Precondition::None => true,
                    Precondition::Absent => current.is_none(),
                    Precondition::Revision(r) => current == Some(r),
                };
                if !holds {
                    return Err(StorageError::Conflict { key: key.into() });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.inner.put(key, value, Precondition::None).await
            }
            Flaw::FlatList => self.inner.put(key, value, precondition).await,
        }
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<bool, StorageError> {
        self.inner.delete(key, precondition).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        match self.flaw {
            Flaw::FlatList => {
                let mut out = Vec::new();
                let mut folders = vec![prefix.to_string()];
                while let Some(folder) = folders.pop() {
                    for child in self.inner.list(&folder).await? {
                        let path = format!("{folder}{child}");
                        if child.ends_with('/') {
                            folders.push(path);
                        } else {
                            out.push(path[prefix.len()..].to_string());
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
            _ => self.inner.list(prefix).await,
        }
    }
}

async fn assert_case_fails<F>(flaw: Flaw, case: fn(Arc<dyn Backend>) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let backend: Arc<dyn Backend> = Arc::new(Flawed {
        inner: MemoryBackend::new(),
        flaw,
    });
    let outcome = tokio::spawn(case(backend)).await;
    assert!(
        outcome.is_err_and(|e| e.is_panic()),
        "the conformance suite accepted a flawed backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_broken_backends() {
    use conformance::*;
    assert_case_fails(Flaw::IgnoresPreconditions, absent_is_create_only).await;
    assert_case_fails(Flaw::IgnoresPreconditions, revision_precondition).await;
    assert_case_fails(Flaw::IgnoresPreconditions, concurrent_creates_one_wins).await;
    assert_case_fails(Flaw::CheckThenWrite, concurrent_creates_one_wins).await;
    assert_case_fails(Flaw::CheckThenWrite, concurrent_cas_increments).await;
    assert_case_fails(Flaw::FlatList, list_immediate_children).await;
    assert_case_fails(Flaw::FlatList, list_many_keys).await;
}
