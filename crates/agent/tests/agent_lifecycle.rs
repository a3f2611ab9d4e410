//! The agent binary's life: init-mode exit codes, signals, files (mode, atomic replace,
//! rewrite only on change, commands), a server outage, the probe, TLS.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{
    Agent, Client, DevServer, SEED_TEMPLATE, agent_binary, token_file_config, wait_content,
    wait_until,
};
use serde_json::{Value, json};

fn root_token_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, common::ROOT).unwrap();
    p
}

fn run_to_exit(mut agent: Agent, within: Duration) -> (std::process::ExitStatus, String) {
    let status = agent
        .wait(within)
        .unwrap_or_else(|| panic!("the agent did not exit within {within:?}:\n{}", agent.log()));
    // Let the stderr reader catch up.
    std::thread::sleep(Duration::from_millis(100));
    (status, agent.log())
}

#[test]
fn bad_config_exits_64_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = json!({
        "server": {"address": "ftp://nowhere"},
        "auth": {"type": "kubernetes"},
        "secrets": [
            {"name": "a", "path": "secret/data/a", "perms": "0999"},
            {"name": "a", "path": "secret/data/b", "tempalte": "{{ .x }}"},
            {"name": "c", "template": "{{ if }}"},
        ],
        "refresh_interval": "often",
        "surprise": true,
    });
    let expected_fields = [
        "server.address",
        "auth.role",
        "secrets[0].perms",
        "secrets[1].name",
        "secrets[1].file",
        "secrets[1].tempalte",
        "secrets[2].template",
        "refresh_interval",
        "surprise",
    ];
    // From a file, and from the environment variable the injector sets.
    let path = dir.path().join("bad.json");
    std::fs::write(&path, bad.to_string()).unwrap();
    let from_file = Command::new(agent_binary())
        .args(["init", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let from_env = Command::new(agent_binary())
        .arg("init")
        .env(
            "SECRETVAULT_AGENT_CONFIG",
            base64::engine::general_purpose::STANDARD.encode(bad.to_string()),
        )
        .output()
        .unwrap();
    for out in [from_file, from_env] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert!(stderr.contains("invalid agent configuration"), "{stderr}");
        assert!(
            stderr.contains(&format!("{} problems", expected_fields.len())),
            "{stderr}"
        );
        for f in expected_fields {
            assert!(
                stderr.contains(&format!("- {f}: ")),
                "{f} missing:\n{stderr}"
            );
        }
    }
    // No configuration at all, and a bad command line, are usage errors too.
    let none = Command::new(agent_binary())
        .arg("sidecar")
        .env_remove("SECRETVAULT_AGENT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&none.stderr).contains("SECRETVAULT_AGENT_CONFIG"));
    let typo = Command::new(agent_binary()).arg("sidecr").output().unwrap();
    assert_eq!(typo.status.code(), Some(64));
}

#[test]
fn init_renders_once_and_exits_zero_or_fails_at_its_deadline() {
    let server = DevServer::start();
    let c = server.client();
    c.write_kv(
        "lobstack/api-keys",
        json!({"anthropic_api_key": "a", "openai_api_key": "o", "stripe_secret_key": "s"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let token = root_token_file(dir.path());
    let out = dir.path().join("out");

    let ok = Agent::start(
        dir.path(),
        &token_file_config(
            &server.url,
            &token,
            json!([{"name": "seed", "template": SEED_TEMPLATE, "file": out.join("seed")}]),
        ),
        &["init"],
    );
    let (status, log) = run_to_exit(ok, Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert_eq!(
        std::fs::read_to_string(out.join("seed")).unwrap(),
        "export ANTHROPIC_API_KEY=\"a\"\nexport OPENAI_API_KEY=\"o\"\nexport STRIPE_SECRET_KEY=\"s\""
    );

    // A secret that does not exist: non-zero once the deadline passes, saying why.
    let mut cfg = token_file_config(
        &server.url,
        &token,
        json!([
            {"name": "seed", "template": SEED_TEMPLATE, "file": out.join("seed2")},
            {"name": "missing", "path": "secret/data/not/there", "file": out.join("missing")},
            {"name": "lenient", "template": "{{ with secret \"secret/data/lobstack/api-keys\" }}[{{ .Data.data.nope }}]{{ end }}", "file": out.join("lenient")},
            {"name": "strict", "template": "{{ with secret \"secret/data/lobstack/api-keys\" }}[{{ .Data.data.nope }}]{{ end }}", "file": out.join("strict"), "error_on_missing_key": true},
        ]),
    );
    cfg["init_deadline"] = json!("2s");
    cfg["mode"] = json!("init");
    let started = Instant::now();
    let (status, log) = run_to_exit(Agent::start(dir.path(), &cfg, &[]), Duration::from_secs(20));
    assert!(!status.success(), "{log}");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(log.contains("init_deadline"), "{log}");
    assert!(
        log.contains("secret \\\"missing\\\": no secret exists at \\\"secret/data/not/there\\\""),
        "{log}"
    );
    // A missing key renders "<no value>", unless error_on_missing_key.
    assert_eq!(
        std::fs::read_to_string(out.join("lenient")).unwrap(),
        "[<no value>]"
    );
    assert!(!out.join("strict").exists());
    assert!(
        log.contains("secret \\\"strict\\\": template: strict:1:"),
        "{log}"
    );
    assert!(log.contains("map has no entry for key"), "{log}");

    // Mode from the configuration (no subcommand); the server unreachable.
    cfg["server"]["address"] = json!(format!("http://127.0.0.1:{}", common::free_port()));
    let (status, log) = run_to_exit(Agent::start(dir.path(), &cfg, &[]), Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("cannot reach the server"), "{log}");
}

#[test]
fn sigterm_and_sigint_stop_promptly_and_can_revoke_the_token() {
    let server = DevServer::start();
    let c = server.client();
    c.write_kv("app", json!({"k": "v"}));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let token = c.token(json!({"policies": ["root"], "ttl": "1h"}));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let mut cfg = token_file_config(
        &server.url,
        &token_file,
        json!([{"name": "app", "path": "secret/app", "file": out.join("app")}]),
    );
    cfg["revoke_on_shutdown"] = json!(true);
    cfg["ready_file"] = json!(out.join(".ready"));

    let mut agent = Agent::start(dir.path(), &cfg, &["sidecar"]);
    assert!(
        wait_until(Duration::from_secs(10), || out.join(".ready").exists()),
        "{}",
        agent.log()
    );
    let t = Instant::now();
    let status = agent.terminate();
    assert!(
        status.success(),
        "sidecar exit on SIGTERM: {status}\n{}",
        agent.log()
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    let (s, _) = Client::new(&server.url, &token).get("auth/token/lookup-self");
    assert_eq!(s, 403, "the token should be revoked");
    assert_eq!(
        std::fs::read_to_string(out.join("app")).unwrap(),
        "k=\"v\"\n"
    );

    // SIGINT, without revocation: the token stays usable.
    let token = c.token(json!({"policies": ["root"], "ttl": "1h"}));
    std::fs::write(&token_file, &token).unwrap();
    cfg["revoke_on_shutdown"] = json!(false);
    std::fs::remove_file(out.join(".ready")).unwrap();
    let mut agent = Agent::start(dir.path(), &cfg, &["sidecar"]);
    assert!(wait_until(Duration::from_secs(10), || out
        .join(".ready")
        .exists()));
    let t = Instant::now();
    Command::new("kill")
        .args(["-INT", &agent.child.id().to_string()])
        .status()
        .unwrap();
    let status = agent.wait(Duration::from_secs(3)).expect("exit on SIGINT");
    assert!(status.success());
    assert!(t.elapsed() < Duration::from_secs(3));
    let (s, _) = Client::new(&server.url, &token).get("auth/token/lookup-self");
    assert_eq!(s, 200);

    // An init interrupted before it finished does not claim success.
    cfg["server"]["address"] = json!(format!("http://127.0.0.1:{}", common::free_port()));
    let mut agent = Agent::start(dir.path(), &cfg, &["init"]);
    std::thread::sleep(Duration::from_millis(500));
    let status = agent.terminate();
    assert_eq!(status.code(), Some(143), "{}", agent.log());
}

#[test]
fn files_get_their_mode_change_atomically_only_when_content_changes_and_run_commands() {
    let server = DevServer::start();
    let c = server.client();
    c.write_kv("big", json!({"v": "A".repeat(200_000)}));
    c.write_kv("small", json!({"v": "one"}));
    let dir = tempfile::tempdir().unwrap();
    let token = root_token_file(dir.path());
    let out = dir.path().join("out");
    let cmd_log = dir.path().join("commands.log");
    let mut cfg = token_file_config(
        &server.url,
        &token,
        json!([
            {"name": "big", "path": "secret/big", "template": "{{ with secret \"secret/big\" }}{{ .Data.data.v }}{{ end }}",
             "file": out.join("big"), "perms": "0600"},
            {"name": "small", "path": "secret/small", "file": out.join("small"), "perms": "0444",
             "command": format!("echo small-changed >> {}", cmd_log.display())},
            {"name": "failing-command", "path": "secret/small", "file": out.join("f"),
             "command": "echo failing >&2; exit 3"},
            {"name": "slow-command", "path": "secret/small", "file": out.join("s"),
             "command": "sleep 30"},
        ]),
    );
    cfg["refresh_interval"] = json!("1s");
    cfg["command_timeout"] = json!("1s");
    let agent = Agent::start(dir.path(), &cfg, &[]);
    assert!(wait_content(
        &out.join("small"),
        "v=\"one\"\n",
        Duration::from_secs(10)
    ));
    assert!(wait_until(Duration::from_secs(10), || out
        .join("big")
        .exists()));
    let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("big"), 0o600);
    assert_eq!(mode("small"), 0o444);
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&cmd_log).is_ok_and(|l| l == "small-changed\n")
    }));
    assert!(
        agent.wait_log("the secret's command failed", Duration::from_secs(5)),
        "{}",
        agent.log()
    );
    assert!(
        agent.wait_log(
            "did not finish in time and was killed",
            Duration::from_secs(5)
        ),
        "{}",
        agent.log()
    );

    // Several refreshes with the same content: nothing is rewritten, no command runs.
    let before = std::fs::metadata(out.join("small")).unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    let after = std::fs::metadata(out.join("small")).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec(), before.mtime()),
        (after.ino(), after.mtime_nsec(), after.mtime())
    );
    assert_eq!(
        std::fs::read_to_string(&cmd_log).unwrap(),
        "small-changed\n"
    );

    // Rewrites are whole-file replacements: a reader never sees a mix or a torn file.
    let reader_path = out.join("big");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_r = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut seen = std::collections::BTreeSet::new();
        while !stop_r.load(std::sync::atomic::Ordering::Relaxed) {
            let content = std::fs::read(&reader_path).unwrap();
            assert_eq!(content.len(), 200_000, "torn read");
            let first = content[0];
            assert!(content.iter().all(|b| *b == first), "mixed content");
            seen.insert(first);
        }
        seen
    });
    for round in 0..6 {
        let letter = if round % 2 == 0 { "B" } else { "A" };
        c.write_kv("big", json!({"v": letter.repeat(200_000)}));
        let want = letter.repeat(200_000);
        assert!(
            wait_content(&out.join("big"), &want, Duration::from_secs(10)),
            "round {round}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.join().unwrap();
    assert!(seen.len() == 2, "the reader saw both versions: {seen:?}");
    assert_eq!(mode("big"), 0o600);

    // A change runs the command again.
    c.write_kv("small", json!({"v": "two"}));
    assert!(wait_content(
        &out.join("small"),
        "v=\"two\"\n",
        Duration::from_secs(10)
    ));
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&cmd_log).is_ok_and(|l| l == "small-changed\nsmall-changed\n")
    }));
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = Value::Null;
}

#[test]
fn files_survive_a_server_outage_and_update_after_it_returns() {
    let mut server = DevServer::start();
    let c = server.client();
    c.write_kv("app", json!({"password": "before"}));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        c.token(json!({"policies": ["root"], "ttl": "1h"})),
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut cfg = token_file_config(
        &server.url,
        &token_file,
        json!([
            {"name": "app", "path": "secret/app", "file": out.join("app")},
            {"name": "seedish", "template": "{{ with secret \"secret/app\" }}pw={{ .Data.data.password }}{{ end }}", "file": out.join("t")},
        ]),
    );
    cfg["refresh_interval"] = json!("1s");
    let agent = Agent::start(dir.path(), &cfg, &[]);
    assert!(wait_content(
        &out.join("app"),
        "password=\"before\"\n",
        Duration::from_secs(10)
    ));
    assert!(wait_content(
        &out.join("t"),
        "pw=before",
        Duration::from_secs(10)
    ));
    let before: Vec<_> = ["app", "t"]
        .iter()
        .map(|f| std::fs::metadata(out.join(f)).unwrap())
        .collect();

    server.stop();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        agent.log().contains("the server is unavailable"),
        "{}",
        agent.log()
    );
    for (f, b) in ["app", "t"].iter().zip(&before) {
        let m = std::fs::metadata(out.join(f)).unwrap();
        assert_eq!(
            (m.ino(), m.mtime(), m.mtime_nsec()),
            (b.ino(), b.mtime(), b.mtime_nsec()),
            "{f} touched"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("app")).unwrap(),
        "password=\"before\"\n"
    );

    server.restart();
    server
        .client()
        .write_kv("app", json!({"password": "after"}));
    assert!(
        wait_content(
            &out.join("app"),
            "password=\"after\"\n",
            Duration::from_secs(20)
        ),
        "{}",
        agent.log()
    );
    assert!(wait_content(
        &out.join("t"),
        "pw=after",
        Duration::from_secs(20)
    ));
}

#[test]
fn probe_turns_ready_after_the_first_complete_render() {
    let server = DevServer::start();
    let c = server.client();
    let dir = tempfile::tempdir().unwrap();
    let token = root_token_file(dir.path());
    let out = dir.path().join("out");
    let ready = out.join(".ready");
    let mut cfg = token_file_config(
        &server.url,
        &token,
        json!([
            {"name": "a", "path": "secret/a", "file": out.join("a")},
            {"name": "b", "path": "secret/b", "file": out.join("b")},
        ]),
    );
    cfg["ready_file"] = json!(ready);
    cfg["refresh_interval"] = json!("1s");
    let cfg_path = dir.path().join("agent.json");
    let probe = || {
        Command::new(agent_binary())
            .args(["probe", "--config"])
            .arg(&cfg_path)
            .output()
            .unwrap()
    };
    c.write_kv("a", json!({"k": "1"}));
    let agent = Agent::start(dir.path(), &cfg, &["sidecar"]);
    assert!(wait_until(Duration::from_secs(10), || out
        .join("a")
        .exists()));
    std::thread::sleep(Duration::from_millis(300));
    let p = probe();
    assert_eq!(
        p.status.code(),
        Some(1),
        "b is not rendered yet: {}",
        String::from_utf8_lossy(&p.stdout)
    );
    c.write_kv("b", json!({"k": "2"}));
    assert!(
        wait_until(Duration::from_secs(15), || probe().status.success()),
        "{}",
        agent.log()
    );
    let by_path = Command::new(agent_binary())
        .args(["probe", "--ready-file"])
        .arg(&ready)
        .output()
        .unwrap();
    assert!(by_path.status.success());
    drop(agent);

    // A restarted sidecar is not ready until it has rendered again.
    std::fs::write(&token, "not-a-valid-token").unwrap();
    let agent = Agent::start(dir.path(), &cfg, &["sidecar"]);
    assert!(
        agent.wait_log("login failed", Duration::from_secs(10)),
        "{}",
        agent.log()
    );
    assert_eq!(probe().status.code(), Some(1));
}

#[test]
fn https_with_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let server = DevServer::start_with(&[
        "--tls-cert",
        crt.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let token = root_token_file(dir.path());
    let out = dir.path().join("out");
    let secrets = json!([{"name": "tls", "path": "secret/data/tls-test", "file": out.join("tls")}]);
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/v1/secret/data/tls-test", server.url))
        .header("X-Vault-Token", common::ROOT)
        .json(&json!({"data": {"over": "tls"}}))
        .send()
        .unwrap();
    assert!(r.status().is_success());

    for ca in [json!({"ca_file": crt}), json!({"ca_pem": cert.cert.pem()})] {
        let _ = std::fs::remove_file(out.join("tls"));
        let mut cfg = token_file_config(&server.url, &token, secrets.clone());
        for (k, v) in ca.as_object().unwrap() {
            cfg["server"][k] = v.clone();
        }
        let (status, log) = run_to_exit(
            Agent::start(dir.path(), &cfg, &["init"]),
            Duration::from_secs(20),
        );
        assert!(status.success(), "{log}");
        assert_eq!(
            std::fs::read_to_string(out.join("tls")).unwrap(),
            "over=\"tls\"\n"
        );
    }

    // Without the CA the server is not trusted (no system CA signed it).
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let mut cfg = token_file_config(&server.url, &token, secrets);
    cfg["server"]["ca_pem"] = json!(other.cert.pem());
    cfg["init_deadline"] = json!("2s");
    let (status, log) = run_to_exit(
        Agent::start(dir.path(), &cfg, &["init"]),
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.to_lowercase().contains("certificate"), "{log}");
}
