use std::io::{Cursor, Write};
use std::sync::Arc;

use serde_json::json;

use super::*;

fn file_device(path: &std::path::Path, salt: u8) -> DeviceConfig {
    DeviceConfig {
        path: "file/".into(),
        kind: DeviceKind::File {
            path: path.to_path_buf(),
            mode: 0o600,
        },
        salt: Zeroizing::new([salt; 32]),
        hmac_accessor: true,
        log_raw: false,
    }
}

fn auth() -> AuditAuth {
    AuditAuth {
        client_token: Some("svs.the-token".into()),
        accessor: Some("the-accessor".into()),
        display_name: "token".into(),
        policies: vec!["default".into()],
        token_policies: vec!["default".into()],
        token_type: "service".into(),
        token_ttl: 3600,
        metadata: [("team".to_string(), "payments".to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

fn body(secret: &str) -> serde_json::Map<String, serde_json::Value> {
    json!({"data": {"password": secret, "nested": [secret, 5]}})
        .as_object()
        .cloned()
        .unwrap()
}

fn request(body: &serde_json::Map<String, serde_json::Value>) -> AuditRequest<'_> {
    AuditRequest {
        id: "req-1",
        operation: Operation::Update,
        path: "secret/data/app",
        mount_point: "secret/",
        mount_type: "kv",
        mount_accessor: "kv_1",
        client_token: Some("svs.the-token"),
        client_token_accessor: Some("the-accessor".into()),
        data: Some(body),
        remote_address: Some([127, 0, 0, 1].into()),
        remote_port: Some(5000),
    }
}

async fn log_pair_async(broker: &AuditBroker, secret: &str) -> Result<(), AuditError> {
    let body = body(secret);
    let req = request(&body);
    let auth = auth();
    let record = broker.record(Some(&auth), &req);
    broker.log_request(&record, &req).await?;
    let data = json!({"data": {"password": secret}});
    let response = AuditResponse {
        status: 200,
        data: Some(&data),
        ..Default::default()
    };
    broker.log_response(&record, &req, &response).await
}

/// Outside a tokio runtime the lines are written before the call returns.
fn log_pair(broker: &AuditBroker, secret: &str) {
    block_on(log_pair_async(broker, secret)).unwrap();
}

fn log_request(
    broker: &AuditBroker,
    auth: Option<&AuditAuth>,
    req: &AuditRequest<'_>,
) -> Result<(), AuditError> {
    block_on(broker.log_request(&broker.record(auth, req), req))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn nothing_secret_in_the_clear_and_hashes_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let broker = AuditBroker::new();
    broker.enable(file_device(&path, 1)).unwrap();
    log_pair(&broker, "hunter2-secret");
    let text = std::fs::read_to_string(&path).unwrap();
    for plain in [
        "hunter2-secret",
        "svs.the-token",
        "the-accessor",
        "payments",
    ] {
        assert!(!text.contains(plain), "{plain} leaked");
    }
    let hashed = broker.hash("file/", "hunter2-secret").unwrap();
    assert!(text.contains(&hashed));
    assert!(text.contains(&broker.hash("file/", "svs.the-token").unwrap()));
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "request");
    assert_eq!(
        first["request"]["path"], "secret/data/app",
        "paths stay readable"
    );
    assert_eq!(
        first["request"]["data"]["data"]["nested"][1], 5,
        "numbers are not hashed"
    );
    assert_eq!(first["prev_hash"], GENESIS_HASH);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn salts_differ_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let broker = AuditBroker::new();
    broker
        .enable(file_device(&dir.path().join("a.log"), 1))
        .unwrap();
    let mut other = file_device(&dir.path().join("b.log"), 2);
    other.path = "other/".into();
    broker.enable(other).unwrap();
    assert_ne!(broker.hash("file/", "x"), broker.hash("other/", "x"));
    assert!(broker.hash("missing/", "x").is_none());
    assert!(matches!(
        broker.enable(file_device(&dir.path().join("c.log"), 3)),
        Err(AuditError::AlreadyEnabled { .. })
    ));
}

#[test]
fn log_raw_writes_values_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.log");
    let broker = AuditBroker::new();
    let mut cfg = file_device(&path, 1);
    cfg.log_raw = true;
    broker.enable(cfg).unwrap();
    log_pair(&broker, "visible-value");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("visible-value")
    );
}

fn lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn verify_lines(lines: &[String]) -> Result<ChainReport, ChainBreak> {
    let mut text = lines.join("\n");
    text.push('\n');
    verify_chain(Cursor::new(text))
}

#[test]
fn chain_verifies_and_pinpoints_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let broker = AuditBroker::new();
    broker.enable(file_device(&path, 1)).unwrap();
    for i in 0..5 {
        log_pair(&broker, &format!("v{i}"));
    }
    let lines = lines_of(&path);
    assert_eq!(lines.len(), 10);
    let report = verify_file(&path).unwrap();
    assert_eq!(report.lines, 10);
    assert_eq!(report.anchor, GENESIS_HASH);

    let mut altered = lines.clone();
    altered[3] = altered[3].replace("\"update\"", "\"read\"");
    assert_eq!(
        verify_lines(&altered).unwrap_err().line,
        4,
        "an altered line is named"
    );

    let mut removed = lines.clone();
    removed.remove(5);
    let err = verify_lines(&removed).unwrap_err();
    assert_eq!(err.line, 5);
    assert!(err.reason.contains("removed or inserted"));

    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    assert_eq!(verify_lines(&swapped).unwrap_err().line, 2);

    let mut garbage = lines.clone();
    garbage.insert(4, "hello".into());
    assert_eq!(verify_lines(&garbage).unwrap_err().line, 5);

    let mut no_hash = lines;
    no_hash[0] = "{\"type\":\"request\"}".into();
    assert_eq!(verify_lines(&no_hash).unwrap_err().line, 1);

    assert!(
        verify_chain(Cursor::new("{\"prev_hash\":\"x\"}"))
            .unwrap_err()
            .reason
            .contains("incomplete")
    );
}

#[test]
fn reopening_continues_the_chain_and_drops_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    {
        let broker = AuditBroker::new();
        broker.enable(file_device(&path, 1)).unwrap();
        log_pair(&broker, "before");
    }
    // A crash mid-write leaves half a line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"time\":\"2026")
        .unwrap();
    let broker = AuditBroker::new();
    broker.enable(file_device(&path, 1)).unwrap();
    log_pair(&broker, "after");
    let report = verify_file(&path).unwrap();
    assert_eq!(report.lines, 4);
}

#[test]
fn concurrent_writers_keep_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let broker = Arc::new(AuditBroker::new());
    broker.enable(file_device(&path, 1)).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let broker = broker.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log_pair(&broker, &format!("t{t}-{i}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(verify_file(&path).unwrap().lines, 800);
}

/// Many requests in flight on a multi-thread runtime: their lines share writes (group
/// commit), and the file is still one valid chain with every line in it.
#[test]
fn concurrent_requests_share_writes_and_keep_one_chain() {
    let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let broker = Arc::new(AuditBroker::new());
    broker.enable_sink(
        "memory/",
        Box::new(CountingSink(buffer.clone(), writes.clone())),
        [2; 32],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let broker = broker.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        log_pair_async(&broker, &format!("t{t}-{i}")).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let recorded = buffer.lock().unwrap().clone();
    assert_eq!(verify_chain(Cursor::new(recorded)).unwrap().lines, 1280);
    let writes = writes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        writes < 1280 / 4,
        "{writes} writes for 1280 lines: lines of concurrent requests should share writes"
    );
}

/// Without a tokio runtime (a plain thread, a blocking executor) lines are written
/// before the call returns.
#[test]
fn writes_inline_outside_a_runtime() {
    let (broker, buffer) = memory_broker();
    let body = body("x");
    let req = request(&body);
    let record = broker.record(None, &req);
    futures::executor::block_on(broker.log_request(&record, &req)).unwrap();
    assert_eq!(line_count(&buffer), 1);
}

/// A batch that fails is reported to everyone in it, and leaves no gap: later lines chain
/// on from the last line that was written.
#[test]
fn a_failed_write_fails_its_batch_and_leaves_the_chain_intact() {
    let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fail_next = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let broker = AuditBroker::new();
    broker.enable_sink(
        "flaky/",
        Box::new(FlakySink(buffer.clone(), fail_next.clone())),
        [2; 32],
    );
    log_pair(&broker, "first");
    fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        block_on(log_pair_async(&broker, "lost")),
        Err(AuditError::NoDeviceRecorded)
    ));
    log_pair(&broker, "after");
    let recorded = buffer.lock().unwrap().clone();
    assert_eq!(verify_chain(Cursor::new(recorded)).unwrap().lines, 4);
}

struct CountingSink(
    Arc<std::sync::Mutex<Vec<u8>>>,
    Arc<std::sync::atomic::AtomicUsize>,
);

impl Sink for CountingSink {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.lock().unwrap().extend_from_slice(line);
        Ok(())
    }
}

/// Fails one write when told to.
struct FlakySink(
    Arc<std::sync::Mutex<Vec<u8>>>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl Sink for FlakySink {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.1.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("disk full"));
        }
        self.0.lock().unwrap().extend_from_slice(line);
        Ok(())
    }
}

struct FailingSink;

impl Sink for FailingSink {
    fn write_line(&mut self, _line: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("disk full"))
    }
}

struct MemorySink(Arc<std::sync::Mutex<Vec<u8>>>);

/// A broker with one device writing into the returned buffer.
fn memory_broker() -> (AuditBroker, Arc<std::sync::Mutex<Vec<u8>>>) {
    let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
    let broker = AuditBroker::new();
    broker.enable_sink("memory/", Box::new(MemorySink(buffer.clone())), [2; 32]);
    (broker, buffer)
}

fn line_count(buffer: &std::sync::Mutex<Vec<u8>>) -> usize {
    buffer
        .lock()
        .unwrap()
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

impl Sink for MemorySink {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(line);
        Ok(())
    }
}

#[test]
fn fails_closed_only_when_no_device_records() {
    let broker = AuditBroker::new();
    assert!(
        log_request(&broker, None, &request(&body("x"))).is_ok(),
        "no devices: nothing to fail"
    );
    broker.enable_sink("broken/", Box::new(FailingSink), [1; 32]);
    assert!(matches!(
        log_request(&broker, Some(&auth()), &request(&body("x"))),
        Err(AuditError::NoDeviceRecorded)
    ));
    let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
    broker.enable_sink("memory/", Box::new(MemorySink(buffer.clone())), [2; 32]);
    assert!(
        log_request(&broker, Some(&auth()), &request(&body("x"))).is_ok(),
        "one working device is enough"
    );
    let recorded = buffer.lock().unwrap().clone();
    assert_eq!(verify_chain(Cursor::new(recorded)).unwrap().lines, 1);
    assert!(broker.disable("broken/"));
    assert!(!broker.disable("broken/"));
}

#[test]
fn denied_requests_are_recorded_without_auth() {
    let (broker, buffer) = memory_broker();
    let response = AuditResponse {
        status: 403,
        error: Some("permission denied".into()),
        ..Default::default()
    };
    let body = body("x");
    let req = request(&body);
    block_on(broker.log_response(&broker.record(None, &req), &req, &response)).unwrap();
    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let entry: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(entry["auth"], json!({"token_type": "default"}));
    assert_eq!(entry["error"], "permission denied");
    assert_eq!(entry["response"]["status_code"], 403);
}

proptest::proptest! {
    #[test]
    fn verify_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = verify_chain(Cursor::new(bytes));
    }
}

/// A token's `auth` part is encoded once and reused, but never when what it shows changed
/// (an identity's policies, a use-limited token's remaining uses).
#[test]
fn cached_auth_parts_follow_changes() {
    let (broker, buffer) = memory_broker();
    let body = body("x");
    let req = request(&body);
    let mut changed = auth();
    changed.identity_policies = vec!["team".into()];
    changed.remaining_uses = Some(3);
    for a in [auth(), auth(), changed.clone(), auth()] {
        block_on(broker.log_request(&broker.record(Some(&a), &req), &req)).unwrap();
    }
    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["auth"], lines[1]["auth"]);
    assert_eq!(lines[2]["auth"]["identity_policies"], json!(["team"]));
    assert_eq!(lines[2]["auth"]["remaining_uses"], 3);
    assert_eq!(lines[3]["auth"], lines[0]["auth"]);
    let token_hash = broker.hash("memory/", "svs.the-token").unwrap();
    let accessor_hash = broker.hash("memory/", "the-accessor").unwrap();
    for line in &lines {
        assert_eq!(line["auth"]["client_token"], token_hash);
        assert_eq!(line["request"]["client_token"], token_hash);
        assert_eq!(line["auth"]["accessor"], accessor_hash);
        assert_eq!(line["request"]["client_token_accessor"], accessor_hash);
    }
}

/// Lines queued when the runtime shuts down (the flush task never got to run) are still
/// written: the task's drop writes them.
#[test]
fn queued_lines_survive_runtime_shutdown() {
    let (broker, buffer) = memory_broker();
    let body = body("x");
    let req = request(&body);
    let response = AuditResponse {
        status: 499,
        error: Some("the client closed the connection".into()),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let record = broker.record(Some(&auth()), &req);
        broker.log_response_detached(&record, &req, &response);
    });
    assert!(
        buffer.lock().unwrap().is_empty(),
        "not written yet: the flush task has not run"
    );
    drop(runtime);
    let recorded = buffer.lock().unwrap().clone();
    assert_eq!(verify_chain(Cursor::new(recorded)).unwrap().lines, 1);
}

/// A batch that reaches its size bound is written by the request that filled it, at once,
/// rather than after every ready request has run.
#[test]
fn a_full_batch_is_written_at_once() {
    let (broker, buffer) = memory_broker();
    let body = body("x");
    let req = request(&body);
    let response = AuditResponse {
        status: 200,
        ..Default::default()
    };
    let lines = || line_count(&buffer);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let record = broker.record(Some(&auth()), &req);
        for _ in 0..super::FULL_BATCH_LINES - 1 {
            broker.log_response_detached(&record, &req, &response);
        }
        assert_eq!(lines(), 0, "below the bound, lines wait for the flush task");
        broker.log_response_detached(&record, &req, &response);
        assert_eq!(
            lines(),
            super::FULL_BATCH_LINES,
            "the full batch is written"
        );
    });
    drop(runtime);
    let recorded = buffer.lock().unwrap().clone();
    assert_eq!(
        verify_chain(Cursor::new(recorded)).unwrap().lines,
        super::FULL_BATCH_LINES
    );
}
