//! The Vault-compatible API over real HTTP on 127.0.0.1, against the real binary.

mod common;

use std::time::Duration;

use common::{Client, DevServer, ROOT};
use serde_json::{Value, json};

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

#[test]
fn kv_v2_lifecycle() {
    let server = DevServer::start();
    let c = server.client();

    let (s, b) = c.post(
        "secret/data/app/db",
        json!({"data": {"user": "app", "password": "one"}}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["version"], 1);
    assert!(b["request_id"].is_string() && b["wrap_info"].is_null());
    let (s, b) = c.put(
        "secret/data/app/db",
        json!({"data": {"user": "app", "password": "two"}, "options": {"cas": 1}}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["version"], 2);

    // Wrong CAS: Vault answers 400 with this text.
    let (s, b) = c.post(
        "secret/data/app/db",
        json!({"data": {"x": "y"}, "options": {"cas": 1}}),
    );
    assert_eq!(s, 400);
    assert_eq!(
        errors(&b),
        vec!["check-and-set parameter did not match the current version"]
    );

    let (s, b) = c.get("secret/data/app/db");
    assert_eq!(s, 200);
    assert_eq!(b["data"]["data"], json!({"user": "app", "password": "two"}));
    assert_eq!(b["data"]["metadata"]["version"], 2);
    let (s, b) = c.get("secret/data/app/db?version=1");
    assert_eq!(s, 200);
    assert_eq!(b["data"]["data"]["password"], "one");

    let (s, b) = c.patch("secret/data/app/db", json!({"data": {"password": "three"}}));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["version"], 3);
    let (s, b) = c.send(
        "PATCH",
        "secret/data/app/db",
        Some(&json!({"data": {"a": "b"}})),
    );
    assert_eq!(s, 415, "PATCH needs the merge-patch content type: {b}");

    // LIST by method and by ?list=true.
    c.post("secret/data/app/cache", json!({"data": {"k": "v"}}));
    let (s, b) = c.list("secret/metadata/app");
    assert_eq!(s, 200);
    assert_eq!(b["data"]["keys"], json!(["cache", "db"]));
    let (s, b) = c.get("secret/metadata/?list=true");
    assert_eq!(s, 200);
    assert_eq!(b["data"]["keys"], json!(["app/"]));
    assert_eq!(c.list("secret/metadata/none").0, 404);

    // Soft delete, undelete, destroy.
    assert_eq!(c.delete("secret/data/app/db").0, 204);
    let (s, b) = c.get("secret/data/app/db");
    assert_eq!(s, 404);
    assert!(b["data"]["data"].is_null());
    assert_ne!(b["data"]["metadata"]["deletion_time"], "");
    assert_eq!(
        c.post("secret/undelete/app/db", json!({"versions": [3]})).0,
        204
    );
    assert_eq!(c.get("secret/data/app/db").0, 200);
    assert_eq!(
        c.post("secret/delete/app/db", json!({"versions": [1]})).0,
        204
    );
    assert_eq!(c.get("secret/data/app/db?version=1").0, 404);
    assert_eq!(
        c.put("secret/destroy/app/db", json!({"versions": [2]})).0,
        204
    );
    let (_, b) = c.get("secret/data/app/db?version=2");
    assert_eq!(b["data"]["metadata"]["destroyed"], true);

    // Metadata.
    let (s, _) = c.post(
        "secret/metadata/app/db",
        json!({"max_versions": 2, "custom_metadata": {"owner": "payments"}}),
    );
    assert_eq!(s, 204);
    let (s, b) = c.get("secret/metadata/app/db");
    assert_eq!(s, 200);
    assert_eq!(b["data"]["max_versions"], 2);
    assert_eq!(b["data"]["custom_metadata"]["owner"], "payments");
    assert_eq!(b["data"]["current_version"], 3);
    c.post("secret/data/app/db", json!({"data": {"password": "four"}}));
    let (_, b) = c.get("secret/metadata/app/db");
    assert_eq!(
        b["data"]["versions"].as_object().unwrap().len(),
        2,
        "max_versions trims the oldest"
    );
    assert_eq!(c.delete("secret/metadata/app/db").0, 204);
    assert_eq!(c.get("secret/metadata/app/db").0, 404);
    assert_eq!(c.get("secret/data/app/db").0, 404);

    // Mount config.
    assert_eq!(c.post("secret/config", json!({"max_versions": 5})).0, 204);
    let (_, b) = c.get("secret/config");
    assert_eq!(b["data"]["max_versions"], 5);

    // Subkeys show structure, not values.
    c.post(
        "secret/data/nested",
        json!({"data": {"a": {"b": "secret"}}}),
    );
    let (_, b) = c.get("secret/subkeys/nested");
    assert_eq!(b["data"]["subkeys"], json!({"a": {"b": null}}));
}

#[test]
fn tokens_over_http() {
    let server = DevServer::start();
    let c = server.client();
    let (s, b) = c.post(
        "auth/token/create",
        json!({"policies": ["default"], "ttl": "1h", "meta": {"team": "a"}}),
    );
    assert_eq!(s, 200);
    let token = b["auth"]["client_token"].as_str().unwrap().to_string();
    let accessor = b["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(b["auth"]["lease_duration"], 3600);
    assert_eq!(b["auth"]["token_type"], "service");

    let t = server.client_with(&token);
    let (s, b) = t.get("auth/token/lookup-self");
    assert_eq!(s, 200);
    assert_eq!(b["data"]["accessor"], accessor.as_str());
    assert_eq!(b["data"]["meta"]["team"], "a");

    // Authorization: Bearer works as well as X-Vault-Token.
    let bearer = reqwest::blocking::Client::new()
        .get(format!("{}/v1/auth/token/lookup-self", server.url))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 200);

    let (s, b) = t.post("auth/token/renew-self", json!({"increment": "30m"}));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["auth"]["lease_duration"], 1800);

    let (s, b) = c.post("auth/token/lookup", json!({"token": token}));
    assert_eq!(s, 200);
    assert_eq!(b["data"]["id"], token.as_str());
    let (s, b) = c.post("auth/token/lookup-accessor", json!({"accessor": accessor}));
    assert_eq!(s, 200);
    assert_eq!(b["data"]["id"], "");

    let (s, _) = c.post("auth/token/revoke-accessor", json!({"accessor": accessor}));
    assert_eq!(s, 204);
    let (s, b) = t.get("auth/token/lookup-self");
    assert_eq!(s, 403, "revoked token");
    assert_eq!(errors(&b), vec!["permission denied"]);

    let other = c.token(json!({"policies": ["default"]}));
    assert_eq!(
        server
            .client_with(&other)
            .post("auth/token/revoke-self", json!({}))
            .0,
        204
    );
    assert_eq!(
        server.client_with(&other).get("auth/token/lookup-self").0,
        403
    );
}

#[test]
fn missing_expired_and_bogus_tokens() {
    let server = DevServer::start();
    let c = server.client();
    c.post("secret/data/x", json!({"data": {"a": "1"}}));
    let (s, b) = Client::anonymous(&server.url).get("secret/data/x");
    assert_eq!(s, 403);
    assert_eq!(errors(&b), vec!["permission denied"]);
    assert_eq!(
        server.client_with("not-a-token").get("secret/data/x").0,
        403
    );
    let short = c.token(json!({"policies": ["default"], "ttl": "1s"}));
    assert_eq!(
        server.client_with(&short).get("auth/token/lookup-self").0,
        200
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        server.client_with(&short).get("auth/token/lookup-self").0,
        403,
        "expired token"
    );
}

#[test]
fn denied_paths_and_templated_policies() {
    let server = DevServer::start();
    let c = server.client();
    c.write_policy("agent", r#"path "secret/data/agents/{{identity.entity.metadata.agent_id}}" { capabilities = ["read"] }"#);
    assert_eq!(
        c.post(
            "auth/token/roles/agents",
            json!({"allowed_policies": "agent", "allowed_entity_aliases": ["agent-*"]})
        )
        .0,
        204
    );
    let mut tokens = Vec::new();
    for (alias, id) in [("agent-a", "a1"), ("agent-b", "b2")] {
        let (s, b) = c.post("auth/token/create/agents", json!({"entity_alias": alias}));
        assert_eq!(s, 200, "{b}");
        let entity = b["auth"]["entity_id"].as_str().unwrap().to_string();
        assert_eq!(
            c.post(
                &format!("identity/entity/id/{entity}"),
                json!({"metadata": {"agent_id": id}})
            )
            .0,
            204
        );
        c.post(
            &format!("secret/data/agents/{id}"),
            json!({"data": {"key": id}}),
        );
        tokens.push(b["auth"]["client_token"].as_str().unwrap().to_string());
    }
    let a = server.client_with(&tokens[0]);
    let b = server.client_with(&tokens[1]);
    assert_eq!(a.get("secret/data/agents/a1").0, 200);
    let (s, body) = a.get("secret/data/agents/b2");
    assert_eq!(s, 403, "A may not read B's path");
    assert_eq!(
        errors(&body),
        vec!["1 error occurred:\n\t* permission denied\n\n"]
    );
    assert_eq!(b.get("secret/data/agents/b2").0, 200);
    assert_eq!(b.get("secret/data/agents/a1").0, 403);
    assert_eq!(
        a.post("secret/data/agents/a1", json!({"data": {"x": "y"}}))
            .0,
        403,
        "read-only"
    );
}

#[test]
fn bad_requests_get_clear_4xx() {
    let server = DevServer::start_in(
        &tempfile::tempdir().unwrap().keep(),
        &["--max-request-size", "4096"],
    );
    let c = server.client();
    let http = reqwest::blocking::Client::new();
    let raw = |body: Vec<u8>| {
        let r = http
            .post(format!("{}/v1/secret/data/x", server.url))
            .header("X-Vault-Token", ROOT)
            .body(body)
            .send()
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (s, b) = raw(b"{not json".to_vec());
    assert_eq!(s, 400);
    assert!(
        errors(&b)[0].starts_with("failed to decode JSON input"),
        "{b}"
    );
    let (s, b) = raw(b"[1,2]".to_vec());
    assert_eq!(s, 400, "{b}");
    let (s, b) = raw(format!("{{\"data\":{{\"a\":\"{}\"}}}}", "x".repeat(8192)).into_bytes());
    assert_eq!(s, 413, "{b}");
    assert!(errors(&b)[0].contains("too large"));
    let (s, b) = c.post("secret/data/x", json!({"data": "not a map"}));
    assert_eq!(s, 400);
    assert!(errors(&b)[0].contains("\"data\""));
    let (s, b) = c.post("auth/token/create", json!({"ttl": "forever"}));
    assert_eq!(s, 400);
    assert!(errors(&b)[0].contains("\"ttl\""));
    let (s, b) = c.get("nope/x");
    assert_eq!(s, 404);
    assert_eq!(
        errors(&b),
        vec!["no handler for route \"nope/x\". route entry not found."]
    );
    let (s, _) = c.send("OPTIONS", "secret/data/x", None);
    assert_eq!(s, 405);
    // The server is still healthy after all of that.
    assert_eq!(Client::anonymous(&server.url).get("sys/health").0, 200);
}

#[test]
fn policies_and_sys_endpoints() {
    let server = DevServer::start();
    let c = server.client();
    c.write_policy(
        "reader",
        "path \"secret/data/*\" {\n  capabilities = [\"read\"]\n}\n",
    );
    let (s, b) = c.get("sys/policies/acl/reader");
    assert_eq!(s, 200);
    assert!(
        b["data"]["policy"]
            .as_str()
            .unwrap()
            .contains("secret/data/*")
    );
    let (_, b) = c.list("sys/policies/acl");
    assert_eq!(b["data"]["keys"], json!(["default", "reader", "root"]));
    let (s, b) = c.put(
        "sys/policies/acl/bad",
        json!({"policy": "path \"x\" { capabilities = [\"raed\"] }"}),
    );
    assert_eq!(s, 400);
    assert!(errors(&b)[0].contains("invalid capability"));
    assert_eq!(c.delete("sys/policies/acl/reader").0, 204);
    assert_eq!(c.get("sys/policies/acl/reader").0, 404);

    let (s, b) = Client::anonymous(&server.url).get("sys/health");
    assert_eq!(s, 200);
    assert_eq!(b["initialized"], true);
    assert_eq!(b["sealed"], false);
    let (_, b) = c.get("sys/mounts");
    assert_eq!(b["data"]["secret/"]["options"]["version"], "2");
    let (_, b) = c.get("sys/internal/ui/mounts/secret/app/db");
    assert_eq!(b["data"]["type"], "kv");
    assert_eq!(b["data"]["path"], "secret/");
    let (_, b) = c.get("sys/auth");
    assert_eq!(b["data"]["token/"]["type"], "token");
    let (s, b) = c.post("sys/capabilities-self", json!({"paths": ["secret/data/x"]}));
    assert_eq!(s, 200);
    assert_eq!(b["data"]["secret/data/x"], json!(["root"]));
    let (_, b) = c.get("sys/audit");
    assert_eq!(b["data"]["file/"]["type"], "file");
    let (s, b) = c.post("sys/audit-hash/file", json!({"input": "hello"}));
    assert_eq!(s, 200);
    assert!(
        b["data"]["hash"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    assert_eq!(c.post("sys/rotate", json!({})).0, 204);
    let (_, b) = c.get("sys/key-status");
    assert_eq!(b["data"]["term"], 2);
    let probe = reqwest::blocking::get(format!("{}/healthz", server.url)).unwrap();
    assert_eq!(probe.status().as_u16(), 200);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let server = DevServer::start();
    server
        .client()
        .post("secret/data/x", json!({"data": {"a": "1"}}));
    let started = std::time::Instant::now();
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn policies_load_from_a_directory_at_start() {
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("app-read.hcl"),
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    std::fs::write(
        policies.path().join("ops.json"),
        r#"{"path": {"sys/mounts": {"capabilities": ["read"]}}}"#,
    )
    .unwrap();
    std::fs::write(policies.path().join("README.txt"), "not a policy").unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = DevServer::start_in(
        data.path(),
        &["--policy-dir", policies.path().to_str().unwrap()],
    );
    let c = server.client();
    let (_, b) = c.list("sys/policies/acl");
    assert_eq!(
        b["data"]["keys"],
        json!(["app-read", "default", "ops", "root"])
    );
    c.post("secret/data/app/db", json!({"data": {"a": "1"}}));
    let t = c.token(json!({"policies": ["app-read"]}));
    assert_eq!(server.client_with(&t).get("secret/data/app/db").0, 200);
    drop(server);

    // A bad policy file stops the server with a message naming the file.
    std::fs::write(
        policies.path().join("broken.hcl"),
        "path \"x\" { capabilities = [\"raed\"] }",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretvault-operator"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--policy-dir")
        .arg(policies.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.hcl") && stderr.contains("invalid capability"),
        "{stderr}"
    );
}

#[test]
fn audit_log_can_go_to_stdout() {
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_secretvault-operator"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--audit-log",
            "stdout",
            "--root-token",
            ROOT,
            "--data-dir",
        ])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        if let Some(u) = line.trim().strip_prefix("API address:") {
            break u.trim().to_string();
        }
    };
    Client::new(&url, ROOT).post(
        "secret/data/stdout-test",
        json!({"data": {"password": "shown-nowhere"}}),
    );
    let mut audit_lines = Vec::new();
    while audit_lines.len() < 2 {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if line.starts_with('{') {
            audit_lines.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let entry: Value = serde_json::from_str(&audit_lines[0]).unwrap();
    assert_eq!(entry["type"], "request");
    assert_eq!(entry["request"]["path"], "secret/data/stdout-test");
    assert!(audit_lines.iter().all(|l| !l.contains("shown-nowhere")));
}
