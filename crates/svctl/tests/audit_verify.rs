//! `svctl audit verify` on real audit logs written by the engine's audit broker.

use std::process::Command;

use secretvault_engine::audit::{AuditBroker, AuditRequest, DeviceConfig, DeviceKind};
use secretvault_engine::logical::Operation;

fn write_log(path: &std::path::Path, entries: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let broker = AuditBroker::new();
    broker
        .enable(DeviceConfig {
            path: "file/".into(),
            kind: DeviceKind::File {
                path: path.to_path_buf(),
                mode: 0o600,
            },
            salt: zeroize::Zeroizing::new([7; 32]),
            hmac_accessor: true,
            log_raw: false,
        })
        .unwrap();
    for i in 0..entries {
        let (id, path) = (format!("req-{i}"), format!("secret/data/app/{i}"));
        let req = AuditRequest {
            id: &id,
            operation: Operation::Read,
            path: &path,
            mount_point: "secret/",
            mount_type: "kv",
            mount_accessor: "kv_1",
            client_token: Some("svs.token"),
            client_token_accessor: None,
            data: None,
            remote_address: None,
            remote_port: None,
        };
        let record = broker.record(None, &req);
        runtime.block_on(broker.log_request(&record, &req)).unwrap();
    }
}

fn svctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_svctl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(&log, 5);
    let (code, out, err) = svctl(&["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is intact (5 lines)"), "{out}");
    let (code, out, _) = svctl(&["audit", "verify", "-format=json", log.to_str().unwrap()]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["intact"], true);
    assert_eq!(report["lines"], 5);
}

#[test]
fn tampering_names_the_first_broken_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(&log, 6);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let altered = lines[3].replace("secret/data/app/3", "secret/data/app/X");
    lines[3] = &altered;
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = svctl(&["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("broken at line 4"), "{err}");

    let mut removed: Vec<&str> = text.lines().collect();
    removed.remove(2);
    std::fs::write(&log, removed.join("\n") + "\n").unwrap();
    let (code, out, _) = svctl(&["audit", "verify", "-format=json", log.to_str().unwrap()]);
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["broken_line"], 2);
}

#[test]
fn missing_file_is_a_usage_error() {
    let (code, _, err) = svctl(&["audit", "verify", "/nonexistent/audit.log"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/audit.log"), "{err}");
}
