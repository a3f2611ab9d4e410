//! Every storage backend passes the same conformance suite.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use secretvault_engine::storage::{Backend, MemoryBackend, RedbBackend, conformance};

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
