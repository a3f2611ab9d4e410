//! The storage contract as executable checks, shared by every backend's tests.
//!
//! Each case takes a fresh, empty backend and panics, naming the backend and what
//! went wrong, when the backend breaks the contract of [`Backend`]. [`run_all`] runs
//! every case; call it from a multi-threaded tokio runtime so the concurrency cases
//! really race (`#[tokio::test(flavor = "multi_thread")]`).
//!
//! Only what the trait promises is checked: revisions are compared for equality,
//! never ordered, since a backend may use opaque versions (a Kubernetes
//! `resourceVersion`).

use std::collections::HashSet;
use std::sync::Arc;

use super::{Backend, Entry, MAX_KEY_LEN, Precondition, Revision, StorageError};

/// Runs every case, each against a new backend from `make`.
pub async fn run_all(make: &dyn Fn() -> Arc<dyn Backend>) {
    macro_rules! cases {
        ($($case:ident),* $(,)?) => {$(
            let backend = make();
            eprintln!("storage conformance [{}]: {}", backend.name(), stringify!($case));
            $case(backend).await;
        )*};
    }
    cases!(
        get_missing,
        put_get_round_trip,
        revision_changes_on_every_put,
        absent_is_create_only,
        revision_precondition,
        revision_not_reused_after_delete,
        delete_semantics,
        list_immediate_children,
        list_prefix_boundaries,
        list_sorted_bytewise_with_unicode,
        list_after_delete,
        list_many_keys,
        invalid_keys_rejected,
        concurrent_cas_increments,
        concurrent_creates_one_wins,
    );
}

async fn put(b: &dyn Backend, key: &str, value: &[u8], pre: Precondition) -> Revision {
    match b.put(key, value.to_vec(), pre).await {
        Ok(revision) => revision,
        Err(e) => panic!("[{}] put {key:?} with {pre:?} failed: {e}", b.name()),
    }
}

async fn get(b: &dyn Backend, key: &str) -> Option<Entry> {
    match b.get(key).await {
        Ok(entry) => entry,
        Err(e) => panic!("[{}] get {key:?} failed: {e}", b.name()),
    }
}

async fn delete(b: &dyn Backend, key: &str, pre: Precondition) -> bool {
    match b.delete(key, pre).await {
        Ok(existed) => existed,
        Err(e) => panic!("[{}] delete {key:?} with {pre:?} failed: {e}", b.name()),
    }
}

async fn list(b: &dyn Backend, prefix: &str) -> Vec<String> {
    match b.list(prefix).await {
        Ok(children) => children,
        Err(e) => panic!("[{}] list {prefix:?} failed: {e}", b.name()),
    }
}

fn assert_conflict<T: std::fmt::Debug>(
    b: &dyn Backend,
    what: &str,
    result: Result<T, StorageError>,
) {
    match result {
        Err(StorageError::Conflict { .. }) => {}
        other => panic!(
            "[{}] {what}: expected a compare-and-set Conflict, got {other:?}",
            b.name()
        ),
    }
}

async fn assert_entry(b: &dyn Backend, key: &str, value: &[u8], revision: Revision) {
    let entry = get(b, key).await;
    let Some(entry) = entry else {
        panic!(
            "[{}] {key:?} is missing; expected it at {revision:?}",
            b.name()
        );
    };
    assert!(
        entry.value == value,
        "[{}] {key:?} holds {} bytes that differ from the {} bytes written",
        b.name(),
        entry.value.len(),
        value.len()
    );
    assert_eq!(
        entry.revision,
        revision,
        "[{}] {key:?} is at the wrong revision",
        b.name()
    );
}

async fn assert_list(b: &dyn Backend, prefix: &str, expected: &[&str]) {
    let children = list(b, prefix).await;
    assert_eq!(
        children,
        expected,
        "[{}] list {prefix:?} returned the wrong children",
        b.name()
    );
}

/// Reading a key that was never written gives `None`, not an error.
pub async fn get_missing(b: Arc<dyn Backend>) {
    let b = &*b;
    assert_eq!(get(b, "missing").await, None, "[{}] get missing", b.name());
    assert_eq!(
        get(b, "no/such/key").await,
        None,
        "[{}] get missing",
        b.name()
    );
    assert_list(b, "", &[]).await;
    assert_list(b, "no/", &[]).await;
}

/// Values come back byte for byte, at the revision `put` returned: empty values
/// (which exist, unlike missing keys), arbitrary binary and 1 MiB.
pub async fn put_get_round_trip(b: Arc<dyn Backend>) {
    let b = &*b;
    let all_bytes: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    let large: Vec<u8> = (0..(1usize << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, &[u8]); 4] = [
        ("rt/text", b"hello, world"),
        ("rt/empty", b""),
        ("rt/binary", &all_bytes),
        ("rt/large", &large),
    ];
    for (key, value) in cases {
        let revision = put(b, key, value, Precondition::None).await;
        assert_entry(b, key, value, revision).await;
    }
    // Overwrites replace the whole value, including with a shorter or empty one.
    let revision = put(b, "rt/large", b"short", Precondition::None).await;
    assert_entry(b, "rt/large", b"short", revision).await;
    let revision = put(b, "rt/text", b"", Precondition::None).await;
    assert_entry(b, "rt/text", b"", revision).await;
    // Keys are independent.
    let binary = get(b, "rt/binary").await.map(|e| e.value);
    assert_eq!(
        binary.as_deref(),
        Some(&all_bytes[..]),
        "[{}] rt/binary changed",
        b.name()
    );
}

/// Every write gets a new revision, even when the value does not change.
pub async fn revision_changes_on_every_put(b: Arc<dyn Backend>) {
    let b = &*b;
    let mut seen = HashSet::new();
    let mut last = None;
    for _ in 0..5 {
        let revision = put(b, "rev/key", b"same", Precondition::None).await;
        assert!(
            seen.insert(revision),
            "[{}] put returned {revision:?} twice for one key",
            b.name()
        );
        last = Some(revision);
    }
    let other = put(b, "rev/other", b"same", Precondition::None).await;
    if let Some(last) = last {
        assert_entry(b, "rev/key", b"same", last).await;
    }
    assert_entry(b, "rev/other", b"same", other).await;
}

/// `Absent` creates once; a second create conflicts and changes nothing.
pub async fn absent_is_create_only(b: Arc<dyn Backend>) {
    let b = &*b;
    let first = put(b, "create/key", b"first", Precondition::Absent).await;
    assert_conflict(
        b,
        "second put with Precondition::Absent",
        b.put("create/key", b"second".to_vec(), Precondition::Absent)
            .await,
    );
    assert_entry(b, "create/key", b"first", first).await;
}

/// `Revision(r)` writes only over exactly `r`; a stale or invented revision conflicts
/// and changes nothing, and never creates a missing key.
pub async fn revision_precondition(b: Arc<dyn Backend>) {
    let b = &*b;
    let r1 = put(b, "cas/key", b"v1", Precondition::None).await;
    let r2 = put(b, "cas/key", b"v2", Precondition::Revision(r1)).await;
    assert_ne!(r1, r2, "[{}] CAS write kept the revision", b.name());
    assert_entry(b, "cas/key", b"v2", r2).await;

    assert_conflict(
        b,
        "put with a stale revision",
        b.put("cas/key", b"v3".to_vec(), Precondition::Revision(r1))
            .await,
    );
    assert_entry(b, "cas/key", b"v2", r2).await;

    assert_conflict(
        b,
        "put with Precondition::Revision on a missing key",
        b.put("cas/missing", b"x".to_vec(), Precondition::Revision(r2))
            .await,
    );
    assert_eq!(
        get(b, "cas/missing").await,
        None,
        "[{}] a failed CAS created cas/missing",
        b.name()
    );

    let r3 = put(b, "cas/key", b"v3", Precondition::Revision(r2)).await;
    assert_entry(b, "cas/key", b"v3", r3).await;
}

/// A key deleted and created again gets a revision it never had, so a
/// compare-and-set prepared against the old incarnation cannot succeed (no ABA).
pub async fn revision_not_reused_after_delete(b: Arc<dyn Backend>) {
    let b = &*b;
    let old = put(b, "aba/key", b"old", Precondition::None).await;
    assert!(delete(b, "aba/key", Precondition::None).await);
    let new = put(b, "aba/key", b"new", Precondition::Absent).await;
    assert_ne!(
        old,
        new,
        "[{}] a re-created key reused its old revision",
        b.name()
    );
    assert_conflict(
        b,
        "put over a re-created key with the old incarnation's revision",
        b.put("aba/key", b"stale".to_vec(), Precondition::Revision(old))
            .await,
    );
    assert_entry(b, "aba/key", b"new", new).await;
}

/// Deletes report whether the key existed, and honour preconditions atomically.
pub async fn delete_semantics(b: Arc<dyn Backend>) {
    let b = &*b;
    assert!(
        !delete(b, "del/missing", Precondition::None).await,
        "[{}] deleting a missing key reported that it existed",
        b.name()
    );

    put(b, "del/key", b"v", Precondition::None).await;
    assert!(delete(b, "del/key", Precondition::None).await);
    assert_eq!(
        get(b, "del/key").await,
        None,
        "[{}] deleted key still readable",
        b.name()
    );
    assert!(!delete(b, "del/key", Precondition::None).await);

    let r1 = put(b, "del/cas", b"v1", Precondition::None).await;
    let r2 = put(b, "del/cas", b"v2", Precondition::None).await;
    assert_conflict(
        b,
        "delete with a stale revision",
        b.delete("del/cas", Precondition::Revision(r1)).await,
    );
    assert_entry(b, "del/cas", b"v2", r2).await;
    assert_conflict(
        b,
        "delete of an existing key with Precondition::Absent",
        b.delete("del/cas", Precondition::Absent).await,
    );
    assert_entry(b, "del/cas", b"v2", r2).await;
    assert!(delete(b, "del/cas", Precondition::Revision(r2)).await);
    assert_eq!(
        get(b, "del/cas").await,
        None,
        "[{}] CAS delete left the key",
        b.name()
    );

    assert_conflict(
        b,
        "delete of a missing key with Precondition::Revision",
        b.delete("del/cas", Precondition::Revision(r2)).await,
    );
    assert!(
        !delete(b, "del/cas", Precondition::Absent).await,
        "[{}] delete of a missing key with Precondition::Absent reported that it existed",
        b.name()
    );
}

/// Only immediate children: leaves as is, folders once with a trailing '/', and a
/// name that is both a leaf and a folder appears as both.
pub async fn list_immediate_children(b: Arc<dyn Backend>) {
    let b = &*b;
    for key in ["a/b", "a/c/d", "a/c/e/f", "a/c", "a/g", "b"] {
        put(b, key, key.as_bytes(), Precondition::None).await;
    }
    assert_list(b, "", &["a/", "b"]).await;
    assert_list(b, "a/", &["b", "c", "c/", "g"]).await;
    assert_list(b, "a/c/", &["d", "e/"]).await;
    assert_list(b, "a/c/e/", &["f"]).await;
    assert_list(b, "a/b/", &[]).await;
    assert_list(b, "zz/", &[]).await;
}

/// A prefix matches whole folder names only: "a/" does not see "ab/" or "a-z".
pub async fn list_prefix_boundaries(b: Arc<dyn Backend>) {
    let b = &*b;
    for key in ["a/x", "ab/y", "a-z", "a0", "a", "a/sub/z"] {
        put(b, key, b"v", Precondition::None).await;
    }
    assert_list(b, "a/", &["sub/", "x"]).await;
    assert_list(b, "ab/", &["y"]).await;
    // Bytewise: '-' (0x2d) < '/' (0x2f) < '0' (0x30) < 'b'.
    assert_list(b, "", &["a", "a-z", "a/", "a0", "ab/"]).await;
}

/// Sorted by UTF-8 bytes (upper case before lower, ASCII before accents before CJK);
/// spaces and non-ASCII names survive round trips.
pub async fn list_sorted_bytewise_with_unicode(b: Arc<dyn Backend>) {
    let b = &*b;
    let keys = [
        "u/ümlaut",
        "u/日本/x",
        "u/with space",
        "u/with space/inner",
        "u/apple",
        "u/é",
        "u/Zebra",
        "u/emoji 🔑",
    ];
    let mut revisions = Vec::new();
    for key in keys {
        revisions.push(put(b, key, key.as_bytes(), Precondition::None).await);
    }
    for (key, revision) in keys.iter().zip(revisions) {
        assert_entry(b, key, key.as_bytes(), revision).await;
    }
    assert_list(
        b,
        "u/",
        &[
            "Zebra",
            "apple",
            "emoji 🔑",
            "with space",
            "with space/",
            "é",
            "ümlaut",
            "日本/",
        ],
    )
    .await;
    assert_list(b, "u/with space/", &["inner"]).await;
    assert_list(b, "u/日本/", &["x"]).await;
}

/// A folder exists while it holds a key, and disappears with its last one.
pub async fn list_after_delete(b: Arc<dyn Backend>) {
    let b = &*b;
    for key in ["f/x/1", "f/x/2", "f/y"] {
        put(b, key, b"v", Precondition::None).await;
    }
    assert_list(b, "f/", &["x/", "y"]).await;
    delete(b, "f/x/1", Precondition::None).await;
    assert_list(b, "f/", &["x/", "y"]).await;
    delete(b, "f/x/2", Precondition::None).await;
    assert_list(b, "f/", &["y"]).await;
    delete(b, "f/y", Precondition::None).await;
    assert_list(b, "f/", &[]).await;
    assert_list(b, "", &[]).await;
}

/// Listing a folder with many keys, most of them deep in sub-folders, written
/// concurrently (which also exercises backends that batch concurrent writes).
pub async fn list_many_keys(b: Arc<dyn Backend>) {
    let mut tasks = Vec::new();
    for i in 0..200 {
        let b = Arc::clone(&b);
        tasks.push(tokio::spawn(async move {
            let key = if i % 4 == 0 {
                format!("many/leaf{i:03}")
            } else {
                format!("many/dir{}/sub{}/k{i:03}", i % 7, i % 3)
            };
            let revision = put(&*b, &key, key.as_bytes(), Precondition::Absent).await;
            (key, revision)
        }));
    }
    let mut written = Vec::new();
    for task in tasks {
        match task.await {
            Ok(done) => written.push(done),
            Err(e) => panic!("[{}] a concurrent put panicked: {e}", b.name()),
        }
    }
    let b = &*b;
    for (key, revision) in &written {
        assert_entry(b, key, key.as_bytes(), *revision).await;
    }
    let mut expected: Vec<String> = (0..7).map(|d| format!("dir{d}/")).collect();
    expected.extend((0..200).step_by(4).map(|i| format!("leaf{i:03}")));
    expected.sort();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_list(b, "many/", &expected).await;
    assert_list(b, "many/dir1/", &["sub0/", "sub1/", "sub2/"]).await;
    let deep = list(b, "many/dir1/sub2/").await;
    let expected_deep: Vec<String> = (0..200)
        .filter(|i| i % 4 != 0 && i % 7 == 1 && i % 3 == 2)
        .map(|i| format!("k{i:03}"))
        .collect();
    assert_eq!(deep, expected_deep, "[{}] list many/dir1/sub2/", b.name());
}

/// Keys every backend must refuse are refused by every operation, and write nothing;
/// the longest allowed key works.
pub async fn invalid_keys_rejected(b: Arc<dyn Backend>) {
    let b = &*b;
    let too_long = "k".repeat(MAX_KEY_LEN + 1);
    for bad in ["", "folder/", "a\0b", too_long.as_str()] {
        let shown: String = bad.chars().take(16).collect();
        let invalid = |what: &str, e: Option<StorageError>| match e {
            Some(StorageError::InvalidKey { .. }) => {}
            other => panic!(
                "[{}] {what} of invalid key {shown:?}…: expected InvalidKey, got {other:?}",
                b.name()
            ),
        };
        invalid("get", b.get(bad).await.err());
        for pre in [Precondition::None, Precondition::Absent] {
            invalid("put", b.put(bad, b"v".to_vec(), pre).await.err());
            invalid("delete", b.delete(bad, pre).await.err());
        }
    }
    assert_list(b, "", &[]).await;

    let longest = "k".repeat(MAX_KEY_LEN);
    let revision = put(b, &longest, b"v", Precondition::Absent).await;
    assert_entry(b, &longest, b"v", revision).await;
    assert!(delete(b, &longest, Precondition::Revision(revision)).await);
}

/// Many tasks increment one counter by read-modify-write with compare-and-set,
/// retrying on conflict: no increment may be lost or applied twice.
pub async fn concurrent_cas_increments(b: Arc<dyn Backend>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 6;
    const KEY: &str = "counter";
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let b = Arc::clone(&b);
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            let mut conflicts = 0usize;
            while revisions.len() < INCREMENTS {
                let current = get(&*b, KEY).await;
                let (count, pre) = match &current {
                    None => (0u64, Precondition::Absent),
                    Some(entry) => (
                        parse_counter(&*b, &entry.value),
                        Precondition::Revision(entry.revision),
                    ),
                };
                // Widen the window between read and write so the tasks really race.
                tokio::task::yield_now().await;
                let next = (count + 1).to_string().into_bytes();
                match b.put(KEY, next, pre).await {
                    Ok(revision) => revisions.push(revision),
                    Err(StorageError::Conflict { .. }) => conflicts += 1,
                    Err(e) => panic!("[{}] CAS increment failed: {e}", b.name()),
                }
                assert!(
                    conflicts < 10_000,
                    "[{}] CAS increments are not making progress",
                    b.name()
                );
            }
            revisions
        }));
    }
    let mut revisions = HashSet::new();
    for task in tasks {
        let done = match task.await {
            Ok(done) => done,
            Err(e) => panic!("[{}] a CAS task panicked: {e}", b.name()),
        };
        for revision in done {
            assert!(
                revisions.insert(revision),
                "[{}] two successful CAS writes returned {revision:?}",
                b.name()
            );
        }
    }
    let Some(entry) = get(&*b, KEY).await else {
        panic!("[{}] the counter disappeared", b.name());
    };
    let total = parse_counter(&*b, &entry.value);
    assert_eq!(
        total,
        (TASKS * INCREMENTS) as u64,
        "[{}] {} successful CAS increments left the counter at {total}: lost or doubled updates",
        b.name(),
        TASKS * INCREMENTS
    );
    assert!(
        revisions.contains(&entry.revision),
        "[{}] the final revision was not returned by any put",
        b.name()
    );
}

fn parse_counter(b: &dyn Backend, value: &[u8]) -> u64 {
    match std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()) {
        Some(n) => n,
        None => panic!("[{}] the counter holds garbage: {value:?}", b.name()),
    }
}

/// Many tasks create one key with `Absent` at once: exactly one succeeds, the others
/// conflict, and the stored value is the winner's.
pub async fn concurrent_creates_one_wins(b: Arc<dyn Backend>) {
    const TASKS: usize = 16;
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let b = Arc::clone(&b);
        tasks.push(tokio::spawn(async move {
            let value = format!("writer {i}").into_bytes();
            (
                value.clone(),
                b.put("race/key", value, Precondition::Absent).await,
            )
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (value, result) = match task.await {
            Ok(done) => done,
            Err(e) => panic!("[{}] a create task panicked: {e}", b.name()),
        };
        match result {
            Ok(revision) => winners.push((value, revision)),
            Err(StorageError::Conflict { .. }) => {}
            Err(e) => panic!("[{}] a racing create failed: {e}", b.name()),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "[{}] {} of {TASKS} concurrent creates with Precondition::Absent succeeded",
        b.name(),
        winners.len()
    );
    if let Some((value, revision)) = winners.first() {
        assert_entry(&*b, "race/key", value, *revision).await;
    }
}
