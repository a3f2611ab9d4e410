//! `sys/secretvault/watch` (the agent's change notification) over real HTTP on 127.0.0.1,
//! against the real binary.

mod common;

use std::time::{Duration, Instant};

use common::{DevServer, ROOT};
use serde_json::{Value, json};

const WATCH: &str = "sys/secretvault/watch";

/// One watch call with its own client (long polls outlive the common client's timeout):
/// status, `Retry-After` header, body.
fn watch_with(url: &str, token: &str, method: &str, body: &Value) -> (u16, Option<String>, Value) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let resp = http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{url}/v1/{WATCH}"),
        )
        .header("X-Vault-Token", token)
        .json(body)
        .send()
        .expect("watch request");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (status, retry_after, resp.json().unwrap_or(Value::Null))
}

fn watch(url: &str, token: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = watch_with(url, token, "POST", &body);
    (status, body)
}

/// The current index, taken the way a client does before its first reads.
fn index(url: &str, token: &str, path: &str) -> String {
    let (status, body) = watch(url, token, json!({ "paths": [path] }));
    assert_eq!(status, 200, "{body}");
    body["data"]["index"].as_str().unwrap().to_string()
}

fn errors(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn reader_token(server: &DevServer) -> String {
    let c = server.client();
    c.write_policy(
        "app-read",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    );
    c.token(json!({"policies": ["app-read"]}))
}

#[test]
fn answers_at_once_without_an_index_and_times_out_empty() {
    let server = DevServer::start();
    let url = &server.url;
    for method in ["POST", "PUT"] {
        let started = Instant::now();
        let (status, _, body) = watch_with(
            url,
            ROOT,
            method,
            &json!({"paths": ["secret/data/app/db"], "wait": "60s"}),
        );
        assert_eq!(status, 200, "{method}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no index: answered at once"
        );
        assert_eq!(body["data"]["changed"], json!([]));
        assert_eq!(body["data"]["reset"], false);
        assert!(
            body["data"]["index"]
                .as_str()
                .is_some_and(|i| !i.is_empty())
        );
        // Vault's envelope.
        assert!(body["request_id"].is_string());
        assert_eq!(body["lease_id"], "");
        assert_eq!(body["renewable"], false);
        assert_eq!(body["lease_duration"], 0);
        assert!(
            body["wrap_info"].is_null() && body["warnings"].is_null() && body["auth"].is_null()
        );
    }

    let index = index(url, ROOT, "secret/data/app/db");
    let started = Instant::now();
    let (status, body) = watch(
        url,
        ROOT,
        json!({"paths": ["secret/data/app/db"], "index": index, "wait": "1s"}),
    );
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["changed"], json!([]));
    assert_eq!(body["data"]["index"], json!(index));
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "answered after the 1 s wait, not before: {elapsed:?}"
    );

    // An index this process did not issue: re-read everything.
    let (status, body) = watch(
        url,
        ROOT,
        json!({"paths": ["secret/data/a", "secret/data/b", "secret/data/a"], "index": "0123456789abcdef-4"}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"]["reset"], true);
    assert_eq!(
        body["data"]["changed"],
        json!(["secret/data/a", "secret/data/b"])
    );
}

#[test]
fn a_write_by_another_client_wakes_a_waiting_watch_within_a_second() {
    let server = DevServer::start();
    let reader = reader_token(&server);
    let url = server.url.clone();
    let index = index(&url, &reader, "secret/data/app/db");
    let waiter = {
        let (url, reader, index) = (url.clone(), reader.clone(), index.clone());
        std::thread::spawn(move || {
            let (status, body) = watch(
                &url,
                &reader,
                json!({"paths": ["secret/data/app/cache", "secret/data/app/db"], "index": index, "wait": "30s"}),
            );
            (status, body, Instant::now())
        })
    };
    // Let the watch reach the server and start waiting.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiter.is_finished(), "the watch should be waiting");
    let written_at = Instant::now();
    let (status, body) = server.client().post(
        "secret/data/app/db",
        json!({"data": {"password": "rotated"}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body, answered_at) = waiter.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["changed"], json!(["secret/data/app/db"]));
    assert_eq!(body["data"]["reset"], false);
    assert_ne!(body["data"]["index"], json!(index));
    let latency = answered_at.duration_since(written_at);
    assert!(
        answered_at > written_at && latency < Duration::from_secs(1),
        "the watch answered {latency:?} after the write"
    );
    // The new index covers that write: watching from it sees nothing more.
    let next = body["data"]["index"].as_str().unwrap();
    let (_, body) = watch(
        &url,
        &reader,
        json!({"paths": ["secret/data/app/db"], "index": next, "wait": 0}),
    );
    assert_eq!(body["data"]["changed"], json!([]));
}

#[test]
fn bad_and_denied_watches_name_the_path() {
    let server = DevServer::start();
    let reader = reader_token(&server);
    let url = &server.url;

    let (status, body) = watch(
        url,
        &reader,
        json!({"paths": ["secret/data/app/db", "secret/data/other"]}),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        errors(&body),
        vec![
            "permission denied",
            "paths[1] \"secret/data/other\": no read capability"
        ]
    );

    let (status, body) = watch(
        url,
        &reader,
        json!({"paths": ["secret/data/app/a", "secret/data/app/b", "transit/keys/x"]}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        errors(&body),
        vec![
            "paths[2]: \"transit/keys/x\" is not a KV v2 data path (secret/data/...); only those can be watched"
        ]
    );

    let too_many: Vec<String> = (0..257).map(|i| format!("secret/data/app/{i}")).collect();
    let (status, body) = watch(url, &reader, json!({ "paths": too_many }));
    assert_eq!(status, 400, "{body}");
    assert!(
        errors(&body)[0].starts_with("paths: 257 paths given, but at most 256"),
        "{body}"
    );
    let (status, _) = watch(url, &reader, json!({ "paths": too_many[..256] }));
    assert_eq!(status, 200, "256 paths are allowed");

    let (status, body) = watch(
        url,
        &reader,
        json!({"paths": ["secret/data/app/a"], "wait": "soon"}),
    );
    assert_eq!(status, 400);
    assert!(errors(&body)[0].starts_with("wait: "), "{body}");

    // Without a valid token there is nothing to watch.
    let (status, body) = watch(url, "not-a-token", json!({"paths": ["secret/data/app/a"]}));
    assert_eq!(status, 403);
    assert_eq!(errors(&body), vec!["permission denied"]);
}

#[test]
fn a_ninth_concurrent_watch_for_one_token_is_refused() {
    let server = DevServer::start();
    let c = server.client();
    c.write_policy(
        "app-read",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    );
    let busy = c.token(json!({"policies": ["app-read"]}));
    let other = c.token(json!({"policies": ["app-read"]}));
    let url = server.url.clone();
    let index = index(&url, &busy, "secret/data/app/db");
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let (url, busy, index) = (url.clone(), busy.clone(), index.clone());
            std::thread::spawn(move || {
                loop {
                    let answer = watch(
                        &url,
                        &busy,
                        json!({"paths": ["secret/data/app/db"], "index": index, "wait": "30s"}),
                    );
                    // The probe below holds a slot for a moment; a waiter that met it
                    // tries again.
                    if answer.0 != 429 {
                        return answer;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    // Once all eight wait, a ninth (even one that would not wait) is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let (status, retry_after, body) = watch_with(
            &url,
            &busy,
            "POST",
            &json!({"paths": ["secret/data/app/db"], "index": index, "wait": 0}),
        );
        if status == 429 {
            assert_eq!(retry_after, None);
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "eight watches were never all waiting"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        errors(&refused),
        vec!["too many concurrent watches for this token (limit 8)"]
    );
    assert!(waiters.iter().all(|w| !w.is_finished()));
    // Another token is not affected.
    let (status, body) = watch(
        &url,
        &other,
        json!({"paths": ["secret/data/app/db"], "index": index, "wait": 0}),
    );
    assert_eq!(status, 200, "{body}");

    // A write answers all eight, which frees their slots.
    c.post("secret/data/app/db", json!({"data": {"k": "v"}}));
    for w in waiters {
        let (status, body) = w.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["changed"], json!(["secret/data/app/db"]));
    }
    let (status, body) = watch(
        &url,
        &busy,
        json!({"paths": ["secret/data/app/db"], "index": index, "wait": 0}),
    );
    assert_eq!(status, 200, "slots are released: {body}");
}

#[test]
fn sigterm_answers_a_waiting_watch_and_the_server_exits_promptly() {
    let server = DevServer::start();
    let url = server.url.clone();
    let index = index(&url, ROOT, "secret/data/app/db");
    let started = Instant::now();
    let waiter = {
        let url = url.clone();
        std::thread::spawn(move || {
            let answer = watch(
                &url,
                ROOT,
                json!({"paths": ["secret/data/app/db"], "index": index, "wait": "60s"}),
            );
            (answer, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiter.is_finished(), "the watch should be waiting");
    let stopping = Instant::now();
    let exit = server.stop();
    let stopped_in = stopping.elapsed();
    assert!(exit.success(), "clean exit: {exit:?}");
    assert!(
        stopped_in < Duration::from_secs(5),
        "the server took {stopped_in:?} to exit with a 60 s watch pending"
    );
    let ((status, body), answered_at) = waiter.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["changed"], json!([]));
    assert!(answered_at.duration_since(started) < Duration::from_secs(10));
}

#[test]
fn watches_are_audited_without_the_token() {
    let server = DevServer::start();
    let reader = reader_token(&server);
    let url = &server.url;
    let index = index(url, &reader, "secret/data/app/db");
    let (status, _) = watch(
        url,
        &reader,
        json!({"paths": ["secret/data/app/db"], "index": index, "wait": 0}),
    );
    assert_eq!(status, 200);
    // A refused watch is on record too.
    let (status, _) = watch(url, &reader, json!({"paths": ["secret/data/nope"]}));
    assert_eq!(status, 403);

    let log = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["request"]["path"] == WATCH)
        .collect();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "request", "response", "request", "response", "request", "response"
        ]
    );
    assert!(
        entries.iter().all(|e| e["request"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")),
        "the client token is HMAC-ed"
    );
    assert_eq!(entries[3]["response"]["data"]["reset"], false);
    assert!(
        entries[5]["error"]
            .as_str()
            .unwrap()
            .contains("permission denied")
    );
    assert!(!log.contains(&reader), "the audit log holds the token");
    assert!(!log.contains(ROOT), "the audit log holds the root token");
}

#[test]
fn a_client_that_hangs_up_frees_its_slot() {
    use std::io::Write;
    let server = DevServer::start();
    let url = server.url.clone();
    let index = index(&url, ROOT, "secret/data/app/db");
    let addr = url.trim_start_matches("http://").to_string();
    let body = json!({"paths": ["secret/data/app/db"], "index": index, "wait": "60s"}).to_string();
    let request = format!(
        "POST /v1/{WATCH} HTTP/1.1\r\nHost: {addr}\r\nX-Vault-Token: {ROOT}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Eight long polls on raw connections, so they can be cut off.
    let open = || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    };
    let mut connections: Vec<_> = (0..8).map(|_| open()).collect();
    let probe = json!({"paths": ["secret/data/app/db"], "index": index, "wait": 0});
    let deadline = Instant::now() + Duration::from_secs(10);
    while watch(&url, ROOT, probe.clone()).0 != 429 {
        assert!(
            Instant::now() < deadline,
            "eight watches were never all waiting"
        );
        // A long poll that met the probe's momentary slot was answered (429): replace it.
        for conn in &mut connections {
            let answered = !matches!(
                conn.peek(&mut [0u8; 1]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            );
            if answered {
                *conn = open();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(connections);
    // The server notices the hang-ups and frees the slots well before the 60 s wait.
    let hung_up = Instant::now();
    while watch(&url, ROOT, probe.clone()).0 == 429 {
        assert!(
            hung_up.elapsed() < Duration::from_secs(5),
            "slots of hung-up clients are still held"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each abandoned watch's audit record says how it ended.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
        let abandoned = log
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| {
                e["type"] == "response"
                    && e["request"]["path"] == WATCH
                    && e["response"]["status_code"] == 499
            })
            .count();
        if abandoned == 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{abandoned} of 8 abandoned watches have a response entry"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
