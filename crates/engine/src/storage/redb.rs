//! The embedded backend: one [redb] file, for dev mode and single-replica installs.
//!
//! Layout: table `entries` maps each key to `(revision, value)`; table `meta` holds the
//! last revision handed out (persisted, so revisions never repeat, even for a key that
//! was deleted and created again, which keeps compare-and-set free of ABA) and the
//! file's format version.
//!
//! Writes go to one writer thread that drains every request waiting for it and applies
//! them, in arrival order, in one write transaction committed with
//! [`Durability::Immediate`] (group commit: one fsync for many concurrent writers).
//! Each request's precondition is checked inside that transaction against the state
//! left by the requests before it, so per-key compare-and-set is exactly as if each
//! request had its own transaction; no caller hears back before the commit is durable.
//! Async callers only await a reply channel, so fsyncs never stall the runtime.
//!
//! Reads run inline on the caller's task: a read transaction is an in-memory snapshot
//! and a lookup touches the page cache (measured: about 5 µs per `get` in a debug
//! build), far cheaper than a hop to a blocking thread. Measured group commit on ext4,
//! debug build: one writer at a time gets ~370 puts/s (an fsync each); 64 concurrent
//! writers get ~11 000 puts/s.

use std::fs::{DirBuilder, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use ::redb::backends::FileBackend;
use ::redb::{
    Builder, Database, Durability, Error as RedbError, ReadableDatabase, ReadableTable,
    TableDefinition, WriteTransaction,
};
use async_trait::async_trait;
use tokio::sync::oneshot;

use super::{Backend, Entry, Precondition, Result, Revision, StorageError, validate_key};

const BACKEND: &str = "redb";

const ENTRIES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("entries");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_LAST_REVISION: &str = "last_revision";
const META_FORMAT_VERSION: &str = "format_version";
/// Bumped when the layout above changes incompatibly, so an old binary refuses a new file.
const FORMAT_VERSION: u64 = 1;

/// Bounds one group commit, so one huge burst does not delay its first writer for long.
const MAX_BATCH_OPS: usize = 512;
const MAX_BATCH_BYTES: usize = 32 << 20;
/// redb defaults to a 1 GiB page cache; a vault pod usually runs with far less memory,
/// and the kernel's page cache still serves misses quickly.
const CACHE_BYTES: usize = 64 << 20;

/// The embedded, durable storage backend.
pub struct RedbBackend {
    db: Arc<Database>,
    path: PathBuf,
    writer: Option<Writer>,
}

struct Writer {
    queue: mpsc::Sender<WriteRequest>,
    thread: JoinHandle<()>,
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<Outcome>>,
}

enum WriteOp {
    Put {
        key: String,
        value: Vec<u8>,
        precondition: Precondition,
    },
    Delete {
        key: String,
        precondition: Precondition,
    },
}

impl WriteOp {
    fn key(&self) -> &str {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key,
        }
    }

    fn precondition(&self) -> Precondition {
        match self {
            WriteOp::Put { precondition, .. } | WriteOp::Delete { precondition, .. } => {
                *precondition
            }
        }
    }

    fn size(&self) -> usize {
        match self {
            WriteOp::Put { key, value, .. } => key.len() + value.len(),
            WriteOp::Delete { key, .. } => key.len(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Put(Revision),
    Deleted(bool),
    Conflict,
}

impl RedbBackend {
    /// Opens the database at `path`, creating it (mode 0600, and missing parent
    /// directories with mode 0700) if it does not exist.
    ///
    /// Blocks: after a crash, redb repairs the file before this returns. Fails with a
    /// clear error if another process, or another handle in this process, has it open.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let mut dirs = DirBuilder::new();
            dirs.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
            dirs.create(parent).map_err(|e| {
                backend_error(format!(
                    "cannot create the data directory {}: {e}",
                    parent.display()
                ))
            })?;
        }

        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|e| {
            backend_error(format!(
                "cannot open the database file {}: {e}",
                path.display()
            ))
        })?;
        warn_if_readable_by_others(path, &file);

        let backend = FileBackend::new(file).map_err(|e| open_error(path, e.into()))?;
        let db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(backend)
            .map_err(|e| open_error(path, e.into()))?;
        initialise(&db, path)?;

        let db = Arc::new(db);
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("redb-writer".to_string())
            .spawn({
                let db = Arc::clone(&db);
                let path = path.to_path_buf();
                move || run_writer(&db, &path, &requests)
            })
            .map_err(|e| backend_error(format!("cannot start the redb writer thread: {e}")))?;
        Ok(RedbBackend {
            db,
            path: path.to_path_buf(),
            writer: Some(Writer { queue, thread }),
        })
    }

    /// The database file this backend uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, op: WriteOp) -> Result<Outcome> {
        let stopped = || {
            backend_error(format!(
                "the writer for {} stopped unexpectedly; the write may or may not have happened \
                 (see earlier errors), restart the server",
                self.path.display()
            ))
        };
        let writer = self.writer.as_ref().ok_or_else(stopped)?;
        let (reply, outcome) = oneshot::channel();
        writer
            .queue
            .send(WriteRequest { op, reply })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    fn read_error(&self, err: impl Into<RedbError>) -> StorageError {
        redb_error(&self.path, "reading", err.into())
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued (callers may have given
        // up waiting, but their writes were accepted) and exit, releasing the file lock;
        // joining makes "dropped" mean "closed", so the file can be reopened at once.
        if let Some(Writer { queue, thread }) = self.writer.take() {
            drop(queue);
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "redb writer thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Backend for RedbBackend {
    fn exclusive(&self) -> bool {
        // redb locks its file: no other process can write it while we hold it open.
        true
    }

    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        validate_key(key)?;
        let txn = self.db.begin_read().map_err(|e| self.read_error(e))?;
        let table = txn.open_table(ENTRIES).map_err(|e| self.read_error(e))?;
        let found = table.get(key).map_err(|e| self.read_error(e))?;
        Ok(found.map(|guard| {
            let (revision, value) = guard.value();
            Entry {
                value: value.to_vec(),
                revision: Revision(revision),
            }
        }))
    }

    async fn put(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Revision> {
        validate_key(key)?;
        let op = WriteOp::Put {
            key: key.to_string(),
            value,
            precondition,
        };
        match self.write(op).await? {
            Outcome::Put(revision) => Ok(revision),
            Outcome::Conflict => Err(conflict(key)),
            Outcome::Deleted(_) => Err(backend_error(
                "internal error: a put was answered as a delete",
            )),
        }
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<bool> {
        validate_key(key)?;
        let op = WriteOp::Delete {
            key: key.to_string(),
            precondition,
        };
        match self.write(op).await? {
            Outcome::Deleted(existed) => Ok(existed),
            Outcome::Conflict => Err(conflict(key)),
            Outcome::Put(_) => Err(backend_error(
                "internal error: a delete was answered as a put",
            )),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let txn = self.db.begin_read().map_err(|e| self.read_error(e))?;
        let table = txn.open_table(ENTRIES).map_err(|e| self.read_error(e))?;
        let mut children: Vec<String> = Vec::new();
        let mut start = prefix.to_string();
        // A folder may hold many keys (every version of every secret below it); after
        // the first key of a folder, seek past the whole folder instead of walking it.
        'seek: loop {
            let range = table
                .range::<&str>(start.as_str()..)
                .map_err(|e| self.read_error(e))?;
            for item in range {
                let (key, _) = item.map_err(|e| self.read_error(e))?;
                let key = key.value();
                let Some(rest) = key.strip_prefix(prefix) else {
                    break 'seek;
                };
                match rest.find('/') {
                    Some(slash) => {
                        let folder = &rest[..=slash];
                        children.push(folder.to_string());
                        // '0' is the byte after '/': the first key past "<folder>/…".
                        start = format!("{prefix}{}0", &rest[..slash]);
                        continue 'seek;
                    }
                    // Only a prefix that does not end in '/' can equal a whole key.
                    None if rest.is_empty() => {}
                    None => children.push(rest.to_string()),
                }
            }
            break;
        }
        // Already sorted (cutting sorted keys after their first '/' keeps them sorted),
        // but cheap to guarantee.
        children.sort();
        children.dedup();
        Ok(children)
    }
}

/// Creates the tables and checks the format version, so later reads can assume both.
fn initialise(db: &Database, path: &Path) -> Result<()> {
    let err = |e: RedbError| redb_error(path, "initialising", e);
    let txn = begin_durable_write(db).map_err(err)?;
    {
        txn.open_table(ENTRIES).map_err(|e| err(e.into()))?;
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let format = meta
            .get(META_FORMAT_VERSION)
            .map_err(|e| err(e.into()))?
            .map(|g| g.value());
        match format {
            Some(FORMAT_VERSION) => {}
            None => {
                meta.insert(META_FORMAT_VERSION, FORMAT_VERSION)
                    .map_err(|e| err(e.into()))?;
            }
            Some(other) => {
                return Err(backend_error(format!(
                    "database file {} has secretvault storage format {other}, but this build \
                     only reads format {FORMAT_VERSION}: run a newer secretvault",
                    path.display()
                )));
            }
        }
    }
    txn.commit().map_err(|e| err(e.into()))
}

fn begin_durable_write(db: &Database) -> Result<WriteTransaction, RedbError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    Ok(txn)
}

fn run_writer(db: &Database, path: &Path, requests: &mpsc::Receiver<WriteRequest>) {
    while let Ok(first) = requests.recv() {
        let mut bytes = first.op.size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
            match requests.try_recv() {
                Ok(next) => {
                    bytes += next.op.size();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<WriteOp>, Vec<_>) =
            batch.into_iter().map(|r| (r.op, r.reply)).unzip();
        for (reply, outcome) in replies.into_iter().zip(commit_batch(db, path, &ops)) {
            // The caller may have stopped waiting; its write happened all the same.
            let _ = reply.send(outcome);
        }
    }
}

/// Applies `ops` in order and commits once; returns one outcome per op.
fn commit_batch(db: &Database, path: &Path, ops: &[WriteOp]) -> Vec<Result<Outcome>> {
    let txn = match begin_durable_write(db) {
        Ok(txn) => txn,
        Err(e) => {
            let message = redb_error_message(path, "starting a write on", e);
            return ops.iter().map(|_| Err(backend_error(&message))).collect();
        }
    };
    let (outcomes, wrote) = match apply(&txn, ops) {
        Ok(applied) => applied,
        Err(e) => {
            // Nothing is committed yet, so every op is still undone. Retry them one per
            // transaction so that one bad op (say, a value redb refuses) fails alone.
            let _ = txn.abort();
            if ops.len() > 1 {
                return ops
                    .iter()
                    .flat_map(|op| commit_batch(db, path, std::slice::from_ref(op)))
                    .collect();
            }
            let message = redb_error_message(path, "writing to", e);
            return vec![Err(backend_error(format!(
                "{message} (nothing was written)"
            )))];
        }
    };
    if !wrote {
        // Only conflicts and deletes of missing keys: each was decided on committed
        // state, so there is nothing to make durable.
        let _ = txn.abort();
        return outcomes.into_iter().map(Ok).collect();
    }
    match txn.commit() {
        Ok(()) => outcomes.into_iter().map(Ok).collect(),
        Err(e) => {
            let message = format!(
                "{}; the write may or may not have happened, and the database refuses \
                 further writes until the server restarts",
                redb_error_message(path, "committing to", e.into())
            );
            tracing::error!("{message}");
            ops.iter().map(|_| Err(backend_error(&message))).collect()
        }
    }
}

fn apply(txn: &WriteTransaction, ops: &[WriteOp]) -> Result<(Vec<Outcome>, bool), RedbError> {
    let mut entries = txn.open_table(ENTRIES)?;
    let mut meta = txn.open_table(META)?;
    let first_revision = meta.get(META_LAST_REVISION)?.map_or(0, |g| g.value());
    let mut last_revision = first_revision;
    let mut wrote = false;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let key = op.key();
        let current = entries.get(key)?.map(|g| g.value().0);
        let holds = match op.precondition() {
            Precondition::None => true,
            Precondition::Absent => current.is_none(),
            Precondition::Revision(Revision(r)) => current == Some(r),
        };
        if !holds {
            outcomes.push(Outcome::Conflict);
            continue;
        }
        match op {
            WriteOp::Put { value, .. } => {
                // 2^64 writes will not happen; wrapping would break compare-and-set.
                last_revision = last_revision.checked_add(1).ok_or_else(|| {
                    RedbError::Corrupted("the revision counter is exhausted".into())
                })?;
                entries.insert(key, (last_revision, value.as_slice()))?;
                wrote = true;
                outcomes.push(Outcome::Put(Revision(last_revision)));
            }
            WriteOp::Delete { .. } => {
                let existed = current.is_some();
                if existed {
                    entries.remove(key)?;
                    wrote = true;
                }
                outcomes.push(Outcome::Deleted(existed));
            }
        }
    }
    if last_revision != first_revision {
        meta.insert(META_LAST_REVISION, last_revision)?;
    }
    Ok((outcomes, wrote))
}

fn conflict(key: &str) -> StorageError {
    StorageError::Conflict {
        key: key.to_string(),
    }
}

fn backend_error(message: impl std::fmt::Display) -> StorageError {
    StorageError::backend(BACKEND, message)
}

fn open_error(path: &Path, err: RedbError) -> StorageError {
    redb_error(path, "opening", err)
}

fn redb_error(path: &Path, doing: &str, err: RedbError) -> StorageError {
    backend_error(redb_error_message(path, doing, err))
}

fn redb_error_message(path: &Path, doing: &str, err: RedbError) -> String {
    let path = path.display();
    match err {
        RedbError::DatabaseAlreadyOpen | RedbError::LockProtocolMismatch => format!(
            "database file {path} is locked by another process (or already open in this \
             one): is another secretvault server using this data dir?"
        ),
        RedbError::UpgradeRequired(version) => format!(
            "database file {path} uses redb file format {version}, which this build cannot \
             read: run the secretvault version that wrote it"
        ),
        RedbError::Corrupted(detail) => {
            format!("database file {path} is corrupted ({detail}): restore it from a backup")
        }
        RedbError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => format!(
            "{path} is not a secretvault database ({e}): point the data dir elsewhere or \
             remove the file"
        ),
        RedbError::Io(e) => format!("I/O error {doing} database file {path}: {e}"),
        other => format!("error {doing} database file {path}: {other}"),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, file: &std::fs::File) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = file.metadata() {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            // Values are encrypted, but key names and sizes are not; keep it private.
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "database file is accessible to other users; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _file: &std::fs::File) {}
