//! The real agent against the real dev server, logging in with ServiceAccount tokens
//! minted here (the server trusts the test's signing key, as it would a cluster's).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    Agent, DevServer, SEED_TEMPLATE, kubernetes_role, sa_token, wait_content, wait_until,
};
use serde_json::{Value, json};

/// Values that break naive quoting.
fn nasty() -> Vec<(&'static str, &'static str)> {
    vec![
        ("DQ", "say \"hi\" \"\""),
        ("SQ", "it's"),
        ("DOLLAR", "$HOME ${HOME} $(id) `id` $$ $"),
        ("BACKSLASH", "a\\b\\\\c \\n \\$ \\\" end\\"),
        ("NEWLINES", "line1\nline2\n\nline4\n"),
        ("UNICODE", "héllo wörld 😀 Σ ß \u{2028}"),
        ("EMPTY", ""),
        ("SPACES", "  both ends  "),
        ("lower_key", "keys keep their case"),
    ]
}

fn setup(server: &DevServer, extra_role: Value) {
    let c = server.client();
    c.write_policy(
        "lobstack-api",
        r#"path "secret/data/lobstack/api-keys" { capabilities = ["read"] }
path "secret/data/app/*" { capabilities = ["read"] }"#,
    );
    let mut role = json!({"token_policies": ["lobstack-api"]});
    if let (Some(r), Some(e)) = (role.as_object_mut(), extra_role.as_object()) {
        for (k, v) in e {
            r.insert(k.clone(), v.clone());
        }
    }
    kubernetes_role(
        &c,
        "lobstack-api",
        "lobstack-control-plane",
        "lobstack-api",
        role,
    );
    c.write_kv(
        "lobstack/api-keys",
        json!({
            "anthropic_api_key": "sk-ant-\"quoted\" $dollar `tick` \\slash\nnewline",
            "openai_api_key": "sk-proj-ünïcødé 😀",
            "stripe_secret_key": "  sk_live_spaces  ",
        }),
    );
    c.write_kv(
        "app/env",
        Value::Object(
            nasty()
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
        ),
    );
    c.write_kv("forbidden", json!({"x": "never shown"}));
}

fn seed_expected(anthropic: &str) -> String {
    format!(
        "export ANTHROPIC_API_KEY=\"{anthropic}\"\nexport OPENAI_API_KEY=\"sk-proj-ünïcødé 😀\"\nexport STRIPE_SECRET_KEY=\"  sk_live_spaces  \""
    )
}

fn k8s_config(server: &DevServer, dir: &std::path::Path, refresh: &str, secrets: Value) -> Value {
    json!({
        "server": {"address": server.url},
        "auth": {"type": "kubernetes", "role": "lobstack-api", "token_path": dir.join("sa-token")},
        "secrets": secrets,
        "refresh_interval": refresh,
        "ready_file": dir.join("out/.ready"),
    })
}

#[test]
fn kubernetes_login_renders_seed_template_env_file_and_reports_denied_path() {
    let server = DevServer::start();
    setup(&server, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::write(
        dir.path().join("sa-token"),
        sa_token("lobstack-control-plane", "lobstack-api"),
    )
    .unwrap();
    let config = k8s_config(
        &server,
        dir.path(),
        "5m",
        json!([
            {"name": "api-keys", "path": "secret/data/lobstack/api-keys", "template": SEED_TEMPLATE, "file": out.join("api-keys")},
            {"name": "app-env", "path": "secret/app/env", "file": out.join("app.env")},
            {"name": "denied", "path": "secret/data/forbidden", "file": out.join("denied")},
        ]),
    );
    let mut agent = Agent::start(dir.path(), &config, &["sidecar"]);

    let expected = seed_expected("sk-ant-\"quoted\" $dollar `tick` \\slash\nnewline");
    assert!(
        wait_content(&out.join("api-keys"), &expected, Duration::from_secs(10)),
        "seed template not rendered as consul-template would: {:?}\n{}",
        std::fs::read_to_string(out.join("api-keys")),
        agent.log()
    );
    assert!(wait_until(Duration::from_secs(10), || out
        .join("app.env")
        .exists()));

    // The default env file, read back by a real bash: every byte comes back.
    let names: Vec<&str> = nasty().iter().map(|(k, _)| *k).collect();
    let script = format!(
        "set -a; . {}; printf '%s\\0' {}",
        out.join("app.env").display(),
        names
            .iter()
            .map(|n| format!("\"${n}\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let bash = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &script])
        .env_clear()
        .output()
        .expect("running bash");
    assert!(
        bash.status.success(),
        "{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    let got: Vec<String> = String::from_utf8(bash.stdout)
        .unwrap()
        .split('\0')
        .map(str::to_string)
        .collect();
    for (i, (k, v)) in nasty().into_iter().enumerate() {
        assert_eq!(got[i], v, "{k} read back by bash");
    }

    // The denied path: a clear error naming the secret and the path; nothing written.
    assert!(
        agent.wait_log(
            "permission denied reading \\\"secret/data/forbidden\\\"",
            Duration::from_secs(10)
        ),
        "{}",
        agent.log()
    );
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("secret/data/forbidden"))
        .unwrap();
    assert!(line.contains("secret=denied"), "{line}");
    assert!(!out.join("denied").exists());
    assert!(!out.join(".ready").exists(), "not every secret is rendered");
    // Perms default to 0640.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("api-keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    // No secret value, token or JWT ever reaches the log.
    let jwt = std::fs::read_to_string(dir.path().join("sa-token")).unwrap();
    for secret in [
        "sk-ant-",
        "sk-proj",
        "sk_live",
        "never shown",
        "keys keep their case",
        &jwt[..40],
    ] {
        assert!(
            !log.contains(secret),
            "{secret:?} leaked into the log:\n{log}"
        );
    }
    assert!(log.contains("logged in"), "{log}");
    assert!(server.kubernetes_logins() >= 1);
    assert!(agent.terminate().success());
}

#[test]
fn short_lived_tokens_are_renewed_and_replaced_by_fresh_logins() {
    let server = DevServer::start();
    // Tokens live 3 s and can be renewed for 5 s in all.
    setup(&server, json!({"token_ttl": "3s", "token_max_ttl": "5s"}));
    let c = server.client();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let jwt_file = dir.path().join("sa-token");
    std::fs::write(
        &jwt_file,
        sa_token("lobstack-control-plane", "lobstack-api"),
    )
    .unwrap();
    let mut config = k8s_config(
        &server,
        dir.path(),
        "1s",
        json!([{"name": "api-keys", "template": SEED_TEMPLATE, "file": out.join("api-keys")}]),
    );
    config["log_level"] = json!("debug");
    let agent = Agent::start(dir.path(), &config, &[]);
    assert!(wait_content(
        &out.join("api-keys"),
        &seed_expected("sk-ant-\"quoted\" $dollar `tick` \\slash\nnewline"),
        Duration::from_secs(10)
    ));

    // Past the first token's max TTL, the agent has logged in again and still reads.
    assert!(
        wait_until(Duration::from_secs(15), || server.kubernetes_logins() >= 3),
        "expected fresh logins as tokens reach their max TTL; logins: {}\n{}",
        server.kubernetes_logins(),
        agent.log()
    );
    let mut data =
        json!({"openai_api_key": "sk-proj-ünïcødé 😀", "stripe_secret_key": "  sk_live_spaces  "});
    data["anthropic_api_key"] = json!("rotated-1");
    c.write_kv("lobstack/api-keys", data.clone());
    assert!(
        wait_content(
            &out.join("api-keys"),
            &seed_expected("rotated-1"),
            Duration::from_secs(10)
        ),
        "{}",
        agent.log()
    );

    // The JWT file is re-read at every login: a token for another service account is
    // refused (the files stay), a good one again works.
    std::fs::write(&jwt_file, sa_token("lobstack-control-plane", "intruder")).unwrap();
    assert!(
        agent.wait_log(
            "service account name not authorized",
            Duration::from_secs(15)
        ),
        "{}",
        agent.log()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("api-keys")).unwrap(),
        seed_expected("rotated-1")
    );
    std::fs::write(
        &jwt_file,
        sa_token("lobstack-control-plane", "lobstack-api"),
    )
    .unwrap();
    data["anthropic_api_key"] = json!("rotated-2");
    c.write_kv("lobstack/api-keys", data);
    assert!(
        wait_content(
            &out.join("api-keys"),
            &seed_expected("rotated-2"),
            Duration::from_secs(20)
        ),
        "{}",
        agent.log()
    );
    let log = agent.log();
    assert!(log.contains("renewed the vault token"), "{log}");
    assert!(log.contains("nears its max TTL"), "{log}");
}
