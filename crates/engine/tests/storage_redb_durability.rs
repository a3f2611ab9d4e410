//! The redb backend keeps what it acknowledged: across reopen, across `kill -9`, and
//! against a second open of the same file.
//!
//! The crash and two-process tests re-run this test binary as a child process in a
//! "child mode" (an ignored test selected with `--exact --ignored`, told what to do
//! through environment variables).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;

use secretvault_engine::storage::{Backend, Precondition, RedbBackend, Revision, StorageError};

const CHILD_DB_ENV: &str = "SECRETVAULT_TEST_CHILD_DB";
const CHILD_RUN_ENV: &str = "SECRETVAULT_TEST_CHILD_RUN";

fn open(path: &Path) -> Arc<RedbBackend> {
    match RedbBackend::open(path) {
        Ok(b) => Arc::new(b),
        Err(e) => panic!("opening {}: {e}", path.display()),
    }
}

/// A value that differs per key and in length, so a torn or misplaced write shows.
fn value_for(key: &str) -> Vec<u8> {
    let mut value = Vec::new();
    let repeats = 1 + key.len() % 7 * 40;
    for _ in 0..repeats {
        value.extend_from_slice(key.as_bytes());
        value.push(0xff);
    }
    value
}

fn spawn_child(test: &str, db: &Path, run: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, db)
        .env(CHILD_RUN_ENV, run.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn child_env() -> Option<(PathBuf, usize)> {
    let db = std::env::var_os(CHILD_DB_ENV)?;
    let run = std::env::var(CHILD_RUN_ENV).ok()?.parse().ok()?;
    Some((PathBuf::from(db), run))
}

/// One acknowledgement line from the crash writer: `ACK <revision> <key>`.
fn parse_ack(line: &str) -> Option<(String, Revision)> {
    let rest = line.strip_prefix("ACK ")?;
    let (revision, key) = rest.split_once(' ')?;
    Some((key.to_string(), Revision(revision.parse().ok()?)))
}

#[test]
#[ignore = "child process of acknowledged_writes_survive_sigkill"]
fn child_crash_writer() {
    let Some((db, run)) = child_env() else {
        eprintln!("child_crash_writer only runs as a child of acknowledged_writes_survive_sigkill");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let backend = open(&db);
        // Ends the line libtest started with "test child_crash_writer ... ".
        println!();
        // Several concurrent writers, so kills also land inside group commits.
        let mut writers = Vec::new();
        for w in 0..4 {
            let backend = Arc::clone(&backend);
            writers.push(tokio::spawn(async move {
                // Bounded, so an orphaned child cannot write forever.
                for i in 0..5_000 {
                    let key = format!("crash/{run}/{w}/{i:05}");
                    let revision = backend
                        .put(&key, value_for(&key), Precondition::Absent)
                        .await
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "ACK {} {key}", revision.0)
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        std::process::exit(3); // the parent is gone
                    }
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

/// Reads acknowledgements until `count` have arrived (`None`: until end of output).
fn read_acks(
    lines: &mut std::io::Lines<BufReader<ChildStdout>>,
    acked: &mut BTreeMap<String, Revision>,
    count: Option<usize>,
) {
    let mut seen = 0;
    while count.is_none_or(|count| seen < count) {
        let Some(line) = lines.next() else {
            assert!(
                count.is_none(),
                "the writer exited after {seen} acknowledgements"
            );
            return;
        };
        if let Some((key, revision)) = parse_ack(&line.unwrap()) {
            assert!(
                acked.insert(key, revision).is_none(),
                "a key was acknowledged twice"
            );
            seen += 1;
        }
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.redb");
    let mut acked: BTreeMap<String, Revision> = BTreeMap::new();
    // Different kill points: right after the first commit, and hundreds in.
    for (run, kill_after) in [200, 1, 350, 120].into_iter().enumerate() {
        let mut child = spawn_child("child_crash_writer", &db, run);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        read_acks(&mut lines, &mut acked, Some(kill_after));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Whatever the child printed before dying was acknowledged too.
        read_acks(&mut lines, &mut acked, None);

        let backend = open(&db);
        for (key, revision) in &acked {
            let entry = backend.get(key).await.unwrap();
            let Some(entry) = entry else {
                panic!("run {run}: acknowledged key {key} is missing after kill -9");
            };
            assert!(
                entry.value == value_for(key),
                "run {run}: acknowledged key {key} has the wrong value after kill -9"
            );
            assert_eq!(entry.revision, *revision, "run {run}: {key}");
        }
        let newest = acked.values().map(|r| r.0).max().unwrap();
        let after = backend
            .put(&format!("after/{run}"), b"x".to_vec(), Precondition::Absent)
            .await
            .unwrap();
        assert!(
            after.0 > newest,
            "run {run}: revision {after:?} after restart is not above acknowledged {newest}"
        );
    }
    assert!(acked.len() >= 671, "only {} acknowledgements", acked.len());
}

#[tokio::test]
async fn reopen_keeps_every_key_and_revisions_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.redb");
    let mut expected: BTreeMap<String, (Vec<u8>, Revision)> = BTreeMap::new();
    {
        let backend = open(&db);
        let mut tasks = Vec::new();
        for i in 0..60 {
            let backend = Arc::clone(&backend);
            tasks.push(tokio::spawn(async move {
                let key = format!("kv/{}/item{i:02}", i % 5);
                let revision = backend
                    .put(&key, value_for(&key), Precondition::None)
                    .await
                    .unwrap();
                (key, revision)
            }));
        }
        for task in tasks {
            let (key, revision) = task.await.unwrap();
            expected.insert(key.clone(), (value_for(&key), revision));
        }
        let (key, (_, revision)) = expected
            .iter()
            .next()
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap();
        let revision = backend
            .put(
                &key,
                b"overwritten".to_vec(),
                Precondition::Revision(revision),
            )
            .await
            .unwrap();
        expected.insert(key, (b"overwritten".to_vec(), revision));
        let gone = "kv/4/item04";
        assert!(backend.delete(gone, Precondition::None).await.unwrap());
        expected.remove(gone);
        // The newest revision belongs to a key that is then deleted: the counter must
        // not be derived from the keys that remain.
        let newest = backend
            .put("tmp/newest", b"x".to_vec(), Precondition::None)
            .await
            .unwrap();
        assert!(
            backend
                .delete("tmp/newest", Precondition::None)
                .await
                .unwrap()
        );
        expected.insert("tmp/newest-revision".into(), (Vec::new(), newest));
    }
    let (_, newest) = expected.remove("tmp/newest-revision").unwrap();

    let backend = open(&db);
    for (key, (value, revision)) in &expected {
        let entry = backend.get(key).await.unwrap().unwrap();
        assert_eq!(&entry.value, value, "{key}");
        assert_eq!(entry.revision, *revision, "{key}");
    }
    assert_eq!(backend.get("kv/4/item04").await.unwrap(), None);
    assert_eq!(backend.get("tmp/newest").await.unwrap(), None);
    assert_eq!(
        backend.list("kv/").await.unwrap(),
        vec!["0/", "1/", "2/", "3/", "4/"]
    );
    assert_eq!(backend.list("kv/4/").await.unwrap().len(), 11);
    let next = backend
        .put("tmp/newest", b"y".to_vec(), Precondition::Absent)
        .await
        .unwrap();
    assert!(
        next.0 > newest.0,
        "{next:?} after reopen is not above {newest:?}"
    );
}

fn assert_locked_error(result: Result<RedbBackend, StorageError>) {
    match result {
        Err(StorageError::Backend {
            backend: "redb",
            message,
        }) => assert!(
            message.contains("locked by another process")
                && message.contains("is another secretvault server using this data dir?"),
            "unclear message: {message}"
        ),
        Err(other) => panic!("expected a redb Backend error, got {other:?}"),
        Ok(_) => panic!("the same database file was opened twice"),
    }
}

#[tokio::test]
async fn second_open_in_one_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.redb");
    let first = open(&db);
    let revision = first
        .put("k", b"v".to_vec(), Precondition::None)
        .await
        .unwrap();
    assert_locked_error(RedbBackend::open(&db));
    // The refused open left the first handle working and the data intact.
    let entry = first.get("k").await.unwrap().unwrap();
    assert_eq!(
        (entry.value.as_slice(), entry.revision),
        (&b"v"[..], revision)
    );
    first
        .put("k", b"w".to_vec(), Precondition::Revision(revision))
        .await
        .unwrap();
    drop(first);
    // Dropping closes the file at once, so it can be reopened straight away.
    let again = open(&db);
    assert_eq!(again.get("k").await.unwrap().unwrap().value, b"w");
}

#[test]
#[ignore = "child process of second_open_from_another_process_is_refused"]
fn child_hold_open() {
    let Some((db, _)) = child_env() else {
        eprintln!(
            "child_hold_open only runs as a child of second_open_from_another_process_is_refused"
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let backend = open(&db);
    runtime
        .block_on(backend.put("held", b"by child".to_vec(), Precondition::None))
        .unwrap();
    // Starts a new line: libtest has printed "test child_hold_open ... " without one.
    println!("\nOPEN");
    std::io::stdout().flush().unwrap();
    // Hold the database until the parent closes our stdin.
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
}

#[tokio::test]
async fn second_open_from_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.redb");
    let mut child = spawn_child("child_hold_open", &db, 0);
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let opened = lines.any(|line| line == "OPEN");
    assert!(opened, "the child did not open the database");

    assert_locked_error(RedbBackend::open(&db));

    drop(child.stdin.take());
    // Keep reading, so the child can report its result and exit cleanly.
    lines.for_each(drop);
    assert!(child.wait().unwrap().success(), "the child failed");
    let backend = open(&db);
    assert_eq!(
        backend.get("held").await.unwrap().unwrap().value,
        b"by child"
    );
}

#[cfg(unix)]
#[test]
fn creates_private_file_and_parent_directories() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/nested/vault.redb");
    drop(open(&db));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600, "database file mode");
    assert_eq!(
        mode(&dir.path().join("data/nested")),
        0o700,
        "data dir mode"
    );
    assert_eq!(mode(&dir.path().join("data")), 0o700, "data dir mode");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.redb");
    std::fs::write(&db, "this is a text file, not a database\n".repeat(200)).unwrap();
    match RedbBackend::open(&db) {
        Err(StorageError::Backend {
            backend: "redb",
            message,
        }) => assert!(
            message.contains("is not a secretvault database") && message.contains("vault.redb"),
            "unclear message: {message}"
        ),
        Err(other) => panic!("expected a redb Backend error, got {other:?}"),
        Ok(_) => panic!("a text file opened as a database"),
    }
    // And it was left alone.
    assert!(
        std::fs::read_to_string(&db)
            .unwrap()
            .starts_with("this is a text file")
    );
}
