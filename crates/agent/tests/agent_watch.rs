//! Change notification: with the server's watch endpoint, a rotated value reaches the
//! agent's file within a second although the refresh interval is five minutes.

mod common;

use std::time::{Duration, Instant};

use common::{Agent, DevServer, wait_content, wait_until};
use serde_json::{Value, json};

/// Whether the server has the watch endpoint (an older server answers 404).
fn has_watch(server: &DevServer) -> bool {
    let (s, body) = server.client().post(
        "sys/secretvault/watch",
        json!({"paths": ["secret/data/probe"], "wait": "0s"}),
    );
    match s {
        200 => true,
        404 | 405 => {
            eprintln!(
                "skipped: the dev server has no sys/secretvault/watch endpoint ({s}: {body}); \
                 rebuild it (cargo build -p secretvault-operator) from a tree that has it"
            );
            false
        }
        other => panic!("unexpected answer {other} from the watch endpoint: {body}"),
    }
}

/// Reads of `path` the audit log recorded.
fn reads_of(server: &DevServer, path: &str) -> usize {
    server
        .audit_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["type"] == "request"
                && v["request"]["path"] == path
                && v["request"]["operation"] == "read"
        })
        .count()
}

#[test]
fn a_rotated_value_reaches_the_file_within_one_second() {
    let server = DevServer::start();
    if !has_watch(&server) {
        return;
    }
    let c = server.client();
    c.write_policy(
        "rotate",
        r#"path "secret/data/rotate/*" { capabilities = ["read"] }"#,
    );
    c.write_kv("rotate/a", json!({"password": "v0"}));
    c.write_kv("rotate/b", json!({"user": "bob"}));
    c.write_kv("other", json!({"x": "denied to the agent"}));
    let token = c.token(json!({"policies": ["rotate"], "ttl": "1h"}));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), token).unwrap();
    let out = dir.path().join("out");
    let mut cfg = common::token_file_config(
        &server.url,
        &dir.path().join("token"),
        json!([
            {"name": "a", "template": "{{ with secret \"secret/rotate/a\" }}pw={{ .Data.data.password }}{{ end }}", "file": out.join("a")},
            {"name": "b", "path": "secret/data/rotate/b", "file": out.join("b")},
            // Denied: dropped from the watch, while the others are still watched.
            {"name": "other", "path": "secret/data/other", "file": out.join("other")},
        ]),
    );
    cfg["refresh_interval"] = json!("5m");
    cfg["log_level"] = json!("debug");
    let agent = Agent::start(dir.path(), &cfg, &["sidecar"]);
    assert!(
        wait_content(&out.join("a"), "pw=v0", Duration::from_secs(10)),
        "{}",
        agent.log()
    );
    assert!(wait_content(
        &out.join("b"),
        "user=\"bob\"\n",
        Duration::from_secs(10)
    ));
    // Let the first long poll reach the server.
    assert!(wait_until(Duration::from_secs(5), || {
        server.audit_log().contains("sys/secretvault/watch")
    }));
    std::thread::sleep(Duration::from_millis(300));
    let b_reads = reads_of(&server, "secret/data/rotate/b");

    let mut worst = Duration::ZERO;
    for i in 1..=5 {
        let value = format!("v{i}");
        let t = Instant::now();
        c.write_kv("rotate/a", json!({"password": value}));
        assert!(
            wait_content(
                &out.join("a"),
                &format!("pw={value}"),
                Duration::from_secs(10)
            ),
            "rotation {i} never arrived:\n{}",
            agent.log()
        );
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        worst < Duration::from_secs(1),
        "a rotated value took {worst:?} to reach the file:\n{}",
        agent.log()
    );
    // Only the affected secret was re-read.
    assert_eq!(
        reads_of(&server, "secret/data/rotate/b"),
        b_reads,
        "b was re-read"
    );
    let log = agent.log();
    assert!(!log.contains("no change-notification endpoint"), "{log}");
    assert!(
        log.contains("permission denied reading \\\"secret/data/other\\\""),
        "{log}"
    );

    // A new secret version for b, and a deletion of a (the file keeps its last content).
    let t = Instant::now();
    c.write_kv("rotate/b", json!({"user": "carol"}));
    assert!(wait_content(
        &out.join("b"),
        "user=\"carol\"\n",
        Duration::from_secs(5)
    ));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let (s, _) = c.send("DELETE", "secret/data/rotate/a", None);
    assert_eq!(s, 204);
    assert!(
        agent.wait_log(
            "no secret exists at \\\"secret/data/rotate/a\\\"",
            Duration::from_secs(5)
        ),
        "{}",
        agent.log()
    );
    assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "pw=v5");
}

#[test]
fn against_a_server_without_the_endpoint_the_agent_refreshes_periodically() {
    // OpenBao has no watch endpoint: the agent says so once and keeps refreshing.
    let Some(bao) = secretvault_testsupport::BaoDev::start(
        "against_a_server_without_the_endpoint_the_agent_refreshes_periodically",
    ) else {
        return;
    };
    let write = |v: &str| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/v1/secret/data/app", bao.url()))
            .header("X-Vault-Token", secretvault_testsupport::BAO_ROOT_TOKEN)
            .json(&json!({"data": {"k": v}}))
            .send()
            .unwrap();
        assert!(r.status().is_success());
    };
    write("one");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("token"),
        secretvault_testsupport::BAO_ROOT_TOKEN,
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut cfg = common::token_file_config(
        &bao.url(),
        &dir.path().join("token"),
        json!([{"name": "app", "path": "secret/app", "file": out.join("app")}]),
    );
    cfg["refresh_interval"] = json!("1s");
    let agent = Agent::start(dir.path(), &cfg, &[]);
    assert!(
        wait_content(&out.join("app"), "k=\"one\"\n", Duration::from_secs(10)),
        "{}",
        agent.log()
    );
    write("two");
    assert!(
        wait_content(&out.join("app"), "k=\"two\"\n", Duration::from_secs(5)),
        "{}",
        agent.log()
    );
    let log = agent.log();
    assert_eq!(
        log.matches("no change-notification endpoint").count(),
        1,
        "{log}"
    );
}
