use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

fn seq_of(index: &str) -> u64 {
    Index::parse(index).expect("an index this log rendered").seq
}

#[test]
fn no_index_answers_with_the_current_one() {
    let log = ChangeLog::new();
    let first = log.poll(None, &["a"]);
    assert_eq!(first.changed, Vec::<usize>::new());
    assert!(!first.reset);
    assert_eq!(seq_of(&first.index), 0);
    log.publish("a");
    let second = log.poll(Some(""), &["a"]);
    assert_eq!(seq_of(&second.index), 1, "an empty index counts as none");
    assert!(second.changed.is_empty());
    assert_eq!(log.current_index(), second.index);
}

#[test]
fn changes_after_the_index_are_reported_once_in_request_order() {
    let log = ChangeLog::new();
    let start = log.current_index();
    log.publish("a");
    let after_a = log.poll(Some(&start), &["a", "b"]);
    assert_eq!(after_a.changed, vec![0]);
    assert!(!after_a.reset);
    assert_eq!(seq_of(&after_a.index), 1);
    // Nothing new after the index just returned.
    assert!(
        log.poll(Some(&after_a.index), &["a", "b"])
            .changed
            .is_empty()
    );

    // Changes in the order b, c, a, b; the request names a, b, a, d: a and b once each, in
    // the request's order; c is not watched, d did not change.
    log.publish("b");
    log.publish("c");
    log.publish("a");
    log.publish("b");
    let out = log.poll(Some(&after_a.index), &["a", "b", "a", "d"]);
    assert_eq!(out.changed, vec![0, 1]);
    assert_eq!(seq_of(&out.index), 5);
    // A change before the index is not reported again.
    assert!(
        log.poll(Some(&out.index), &["a", "b", "c"])
            .changed
            .is_empty()
    );
}

#[test]
fn foreign_or_unreadable_indexes_reset() {
    let log = ChangeLog::new();
    let other = ChangeLog::new();
    other.publish("x");
    for index in [other.current_index(), "garbage".into(), "00-1".into()] {
        let out = log.poll(Some(&index), &["a", "b", "a"]);
        assert!(out.reset, "{index}");
        assert_eq!(out.changed, vec![0, 1], "every path, each once");
        assert_eq!(out.index, log.current_index());
    }
    // An index from this epoch but ahead of the log cannot have been issued by it.
    let ahead = Index {
        epoch: log.epoch,
        seq: 7,
    }
    .render();
    assert!(log.poll(Some(&ahead), &["a"]).reset);
}

#[test]
fn indexes_older_than_the_retained_changes_reset() {
    let log = ChangeLog::with_capacity(2);
    let start = log.current_index();
    log.publish("x");
    let after_x = log.current_index();
    log.publish("y");
    // Both changes are still retained.
    assert!(!log.poll(Some(&start), &["q"]).reset);
    log.publish("z");
    // x (index 1) is forgotten: a client at index 0 may have missed it.
    let old = log.poll(Some(&start), &["q"]);
    assert!(old.reset);
    assert_eq!(old.changed, vec![0]);
    // A client at index 1 missed nothing that was forgotten.
    let recent = log.poll(Some(&after_x), &["x", "y", "z"]);
    assert!(!recent.reset);
    assert_eq!(recent.changed, vec![1, 2]);
}

#[test]
fn long_names_are_forgotten_sooner() {
    let log = ChangeLog::with_limits(100, 10);
    let start = log.current_index();
    log.publish("abcd");
    let after_first = log.current_index();
    log.publish("efgh");
    assert!(!log.poll(Some(&start), &["abcd"]).reset, "8 bytes fit");
    log.publish("ijkl");
    assert!(log.poll(Some(&start), &["abcd"]).reset, "12 bytes do not");
    assert_eq!(
        log.poll(Some(&after_first), &["efgh", "ijkl"]).changed,
        vec![0, 1]
    );
    // One name longer than the limit is still remembered, alone.
    log.publish("a-name-longer-than-ten-bytes");
    let before_long = Index::parse(&log.current_index()).unwrap().seq - 1;
    let index = Index {
        epoch: log.epoch,
        seq: before_long,
    }
    .render();
    let out = log.poll(Some(&index), &["a-name-longer-than-ten-bytes"]);
    assert!(!out.reset);
    assert_eq!(out.changed, vec![0]);
    assert_eq!(log.lock().name_bytes, "a-name-longer-than-ten-bytes".len());
}

#[tokio::test]
async fn a_wait_without_changes_times_out_empty() {
    let log = ChangeLog::new();
    let index = log.current_index();
    let started = Instant::now();
    let out = log
        .wait(Some(&index), &["a"], Duration::from_millis(150))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(out.changed.is_empty() && !out.reset);
    assert_eq!(out.index, index);
}

#[tokio::test]
async fn a_change_wakes_a_waiter_and_unrelated_ones_do_not() {
    let log = std::sync::Arc::new(ChangeLog::new());
    let index = log.current_index();
    let publisher = {
        let log = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            log.publish("other");
            tokio::time::sleep(Duration::from_millis(50)).await;
            log.publish("a");
        })
    };
    let started = Instant::now();
    let out = log
        .wait(Some(&index), &["a", "b"], Duration::from_secs(30))
        .await;
    let elapsed = started.elapsed();
    publisher.await.unwrap();
    assert_eq!(out.changed, vec![0]);
    assert_eq!(seq_of(&out.index), 2);
    assert!(
        elapsed >= Duration::from_millis(100),
        "the unrelated change did not answer the watch: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(1), "woken late: {elapsed:?}");
}

#[tokio::test]
async fn an_earlier_change_answers_at_once() {
    let log = ChangeLog::new();
    let index = log.current_index();
    log.publish("a");
    let started = Instant::now();
    let out = log
        .wait(Some(&index), &["a"], Duration::from_secs(30))
        .await;
    assert_eq!(out.changed, vec![0]);
    assert!(started.elapsed() < Duration::from_secs(1));
    // Without an index the answer is immediate too.
    let fresh = log.wait(None, &["a"], Duration::from_secs(30)).await;
    assert!(fresh.changed.is_empty());
    assert_eq!(fresh.index, out.index);
}

#[tokio::test]
async fn shutdown_answers_pending_and_later_waits_at_once() {
    let log = std::sync::Arc::new(ChangeLog::new());
    let index = log.current_index();
    let waiter = {
        let log = log.clone();
        let index = index.clone();
        tokio::spawn(async move {
            log.wait(Some(&index), &["a"], Duration::from_secs(60))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    let started = Instant::now();
    log.shut_down();
    let out = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("answered at shutdown")
        .unwrap();
    assert!(out.changed.is_empty() && !out.reset);
    assert!(started.elapsed() < Duration::from_secs(1));
    let later = tokio::time::timeout(
        Duration::from_secs(1),
        log.wait(Some(&index), &["a"], Duration::from_secs(60)),
    )
    .await
    .expect("a watch after shutdown answers at once");
    assert!(later.changed.is_empty());
}

#[test]
fn limits_per_token_and_per_server() {
    let limits = WatchLimits::new(2, 3);
    let a1 = limits.acquire("a").unwrap();
    let _a2 = limits.acquire("a").unwrap();
    assert_eq!(limits.acquire("a").err(), Some(LimitError::PerToken(2)));
    let _b1 = limits.acquire("b").unwrap();
    assert_eq!(limits.in_use("a"), (3, 2));
    assert_eq!(limits.acquire("c").err(), Some(LimitError::Server(3)));
    drop(a1);
    assert_eq!(limits.in_use("a"), (2, 1));
    let _c1 = limits.acquire("c").unwrap();

    let per_token = ApiError::from(LimitError::PerToken(8));
    assert_eq!(per_token.status, 429);
    assert_eq!(
        per_token.errors,
        vec!["too many concurrent watches for this token (limit 8)"]
    );
    let server = ApiError::from(LimitError::Server(4096));
    assert_eq!(server.status, 503);
    assert_eq!(server.retry_after, Some(1));
}

#[test]
fn released_slots_leave_no_entries_behind() {
    let limits = WatchLimits::default();
    let permits: Vec<_> = (0..PER_ACCESSOR_LIMIT)
        .map(|_| limits.acquire("a").unwrap())
        .collect();
    assert!(limits.acquire("a").is_err());
    drop(permits);
    assert_eq!(limits.in_use("a"), (0, 0));
    assert!(limits.lock().by_accessor.is_empty());
}

fn parse(body: Value) -> Result<WatchRequest, WatchRequestError> {
    WatchRequest::parse(body.as_object().unwrap())
}

#[test]
fn requests_parse_with_defaults_and_clamps() {
    let r = parse(json!({"paths": ["secret/data/app", "secret/data/a/b"]})).unwrap();
    assert_eq!(r.paths, vec!["secret/data/app", "secret/data/a/b"]);
    assert_eq!(r.names(), vec!["app", "a/b"]);
    assert_eq!(r.index, None);
    assert_eq!(r.wait, DEFAULT_WAIT);
    let cases = [
        (json!("5s"), Duration::from_secs(5)),
        (json!("1m"), Duration::from_secs(60)),
        (json!(12), Duration::from_secs(12)),
        (json!("12"), Duration::from_secs(12)),
        (json!("10m"), MAX_WAIT),
        (json!(3600), MAX_WAIT),
        (json!(-3), Duration::ZERO),
        (json!("-3s"), Duration::ZERO),
        (json!(0), Duration::ZERO),
    ];
    for (wait, expected) in cases {
        let r = parse(json!({"paths": ["secret/data/x"], "wait": wait, "index": "i"})).unwrap();
        assert_eq!(r.wait, expected, "wait {wait}");
        assert_eq!(r.index.as_deref(), Some("i"));
    }
    // The CLI's `paths=a,b` form.
    let r = parse(json!({"paths": "secret/data/a, secret/data/b"})).unwrap();
    assert_eq!(r.paths, vec!["secret/data/a", "secret/data/b"]);
}

#[test]
fn bad_requests_name_the_field() {
    let msg = |body| parse(body).unwrap_err().to_string();
    assert!(msg(json!({})).starts_with("paths: required"));
    assert!(msg(json!({"paths": []})).starts_with("paths: required"));
    assert_eq!(
        msg(json!({"paths": {"a": 1}})),
        "paths: expected a list of strings, got an object"
    );
    assert_eq!(
        msg(json!({"paths": ["secret/data/a", "secret/data/b", "transit/keys/x"]})),
        "paths[2]: \"transit/keys/x\" is not a KV v2 data path (secret/data/...); only those can be watched"
    );
    for p in [
        "secret/metadata/a",
        "secret/a",
        "/secret/data/a",
        "sys/mounts",
    ] {
        assert!(
            msg(json!({"paths": [p]})).starts_with(&format!("paths[0]: {p:?} is not a KV v2")),
            "{p}"
        );
    }
    for p in ["secret/data/", "secret/data/app/", "secret/data/a/../b"] {
        assert!(
            msg(json!({"paths": [p]})).starts_with(&format!("paths[0]: {p:?} does not name")),
            "{p}"
        );
    }
    assert_eq!(
        msg(json!({"paths": ["secret/data/a", 7]})),
        "paths[1]: expected a string, got a number"
    );
    let many: Vec<String> = (0..=MAX_PATHS)
        .map(|i| format!("secret/data/{i}"))
        .collect();
    assert!(msg(json!({ "paths": many })).starts_with("paths: 257 paths given"));
    let max: Vec<String> = (0..MAX_PATHS).map(|i| format!("secret/data/{i}")).collect();
    assert!(parse(json!({ "paths": max })).is_ok());
    assert!(msg(json!({"paths": ["secret/data/a"], "wait": "soon"})).starts_with("wait: "));
    assert!(msg(json!({"paths": ["secret/data/a"], "wait": [1]})).starts_with("wait: "));
    assert!(msg(json!({"paths": ["secret/data/a"], "index": 3})).starts_with("index: "));
    assert_eq!(ApiError::from(parse(json!({})).unwrap_err()).status, 400);
}
