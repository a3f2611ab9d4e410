//! `svctl token|policy|audit …` and the connection settings, against `bao server -dev`.

mod support;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secretvault_testsupport::{BAO_ROOT_TOKEN, BaoDev, free_loopback_port, require_bao};
use support::{Cli, Harness, assert_same, key_paths, mask_rows, strip_json};

/// Replaces a token's value and accessor with placeholders so two creations compare, and
/// puts the `token_meta_*` rows in one order: `bao` prints them in Go's map order, which
/// changes from run to run.
fn mask_token_rows(text: &str) -> String {
    let masked = mask_rows(text, &["token", "token_accessor"]);
    let mut lines: Vec<&str> = masked.lines().collect();
    let meta: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("token_meta_"))
        .collect();
    let mut rows: Vec<&str> = meta.iter().map(|&i| lines[i]).collect();
    rows.sort_unstable();
    for (&i, row) in meta.iter().zip(rows) {
        lines[i] = row;
    }
    lines.join("\n")
}

#[test]
fn token_commands_match_bao() {
    let Some(h) = Harness::start("token_commands_match_bao") else {
        return;
    };
    h.run_as(
        Cli::Bao,
        Some(BAO_ROOT_TOKEN),
        &["policy", "write", "app", "-"],
        Some("path \"secret/*\" { capabilities = [\"read\"] }"),
    )
    .ok();

    // create: same table once the token and accessor are masked.
    let create = [
        "token",
        "create",
        "-policy=app",
        "-policy=default",
        "-ttl=1h",
        "-explicit-max-ttl=2h",
        "-display-name=ci",
        "-metadata=team=x",
        "-metadata",
        "owner=me",
        "-use-limit=5",
    ];
    let ours = h.svctl(&create);
    let theirs = h.bao(&create);
    ours.ok();
    assert_eq!(
        mask_token_rows(&ours.stdout),
        mask_token_rows(&theirs.stdout)
    );
    assert!(
        ours.stdout.contains("token_duration       1h\n"),
        "{}",
        ours.stdout
    );
    assert!(
        ours.stdout
            .contains("token_policies       [\"app\" \"default\"]\n"),
        "{}",
        ours.stdout
    );

    let json_args = [
        "token",
        "create",
        "-format=json",
        "-policy=app",
        "-orphan",
        "-renewable=false",
        "-period=10m",
    ];
    let mut ours = h.svctl(&json_args).json();
    let mut theirs = h.bao(&json_args).json();
    assert_eq!(ours["auth"]["orphan"], true);
    assert_eq!(ours["auth"]["renewable"], false);
    assert_eq!(ours["auth"]["lease_duration"], 600);
    strip_json(&mut ours, &["request_id", "client_token", "accessor"]);
    strip_json(&mut theirs, &["request_id", "client_token", "accessor"]);
    assert_eq!(ours, theirs);

    // lookup by token, by accessor, of self; -field.
    let token = h.svctl(&["token", "create", "-policy=app", "-field=token"]);
    token.ok();
    let token = token.stdout.as_str();
    assert!(!token.ends_with('\n'), "-field output is bare when piped");
    let accessor = h.svctl(&["token", "lookup", "-field=accessor", token]);
    accessor.ok();
    let accessor = accessor.stdout.as_str();
    for args in [
        vec!["token", "lookup", token],
        vec!["token", "lookup", "-accessor", accessor],
        vec!["token", "lookup"],
        vec!["token", "lookup", "-field=policies", token],
        vec!["token", "lookup", "-accessor"],
        vec!["token", "lookup", "a", "b"],
        vec!["token", "lookup", "not-a-token"],
    ] {
        h.same_as_bao_masked(Some(BAO_ROOT_TOKEN), &args, &["ttl"]);
    }
    let ours = h.svctl(&["token", "lookup", "-format=json", token]).json();
    assert_eq!(
        ours["data"]["policies"],
        serde_json::json!(["app", "default"])
    );
    assert!(ours["data"]["ttl"].is_u64());

    // renew: with an increment, by accessor, and the root token's own (not renewable) lease.
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["token", "renew", "-increment=30m", token],
    )
    .ok();
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["token", "renew", "-i=10m", "-accessor", accessor],
    )
    .ok();
    h.same_as_bao(Some(token), &["token", "renew", "-i=20m"])
        .ok();
    let renewed = h
        .svctl(&["token", "renew", "-format=json", "-i=15m", token])
        .json();
    assert_eq!(renewed["auth"]["lease_duration"], 900);
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["token", "renew"])
        .fails_with(2);

    // revoke: usage errors, by token, by accessor, -self.
    for args in [
        vec!["token", "revoke"],
        vec!["token", "revoke", "-self", "x"],
        vec!["token", "revoke", "-self", "-accessor"],
    ] {
        h.same_as_bao(Some(BAO_ROOT_TOKEN), &args).fails_with(1);
    }
    let bad_mode = h.svctl(&["token", "revoke", "-mode=bogus", "x"]);
    bad_mode.fails_with(1);
    assert!(
        bad_mode.stderr.starts_with("Invalid mode: bogus"),
        "{}",
        bad_mode.stderr
    );
    h.svctl(&["token", "revoke", token]).ok();
    let gone = h.svctl(&["token", "lookup", token]);
    gone.fails_with(2);
    assert!(
        gone.stderr.contains("Code: 403") && gone.stderr.contains("bad token"),
        "{}",
        gone.stderr
    );

    let by_accessor = h.svctl(&["token", "create", "-field=token"]).stdout;
    let acc = h
        .svctl(&["token", "lookup", "-field=accessor", &by_accessor])
        .stdout;
    h.svctl(&["token", "revoke", "-accessor", &acc]).ok();
    h.run_as(Cli::Svctl, Some(&by_accessor), &["token", "lookup"], None)
        .fails_with(2);

    let own = h.svctl(&["token", "create", "-field=token"]).stdout;
    let run = h.run_as(Cli::Svctl, Some(&own), &["token", "revoke", "-self"], None);
    run.ok();
    assert_eq!(run.stdout, "Success! Revoked token (if it existed)\n");
    h.run_as(Cli::Svctl, Some(&own), &["token", "lookup"], None)
        .fails_with(2);

    // A token without the right to create tokens with other policies.
    let limited = h
        .svctl(&["token", "create", "-policy=app", "-field=token"])
        .stdout;
    let ours = h.run_as(
        Cli::Svctl,
        Some(&limited),
        &["token", "create", "-policy=root"],
        None,
    );
    let theirs = h.run_as(
        Cli::Bao,
        Some(&limited),
        &["token", "create", "-policy=root"],
        None,
    );
    assert_same(&ours, &theirs, &["token", "create", "-policy=root"]);
    ours.fails_with(2);
    assert!(
        ours.stderr
            .starts_with("Error creating token: Error making API request."),
        "{}",
        ours.stderr
    );
}

#[test]
fn policy_commands_match_bao() {
    let Some(h) = Harness::start("policy_commands_match_bao") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.hcl");
    let rules = "path \"secret/data/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";
    std::fs::write(&file, rules).unwrap();
    let file = file.to_str().unwrap();

    // Mixed case is lower-cased with a warning, by both.
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["policy", "write", "App", file])
        .ok();
    let stdin_write = h.run_as(
        Cli::Svctl,
        Some(BAO_ROOT_TOKEN),
        &["policy", "write", "from-stdin", "-"],
        Some(rules),
    );
    stdin_write.ok();
    assert_eq!(stdin_write.stdout, "Success! Uploaded policy: from-stdin\n");
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["policy", "write", "app", "/nonexistent/policy.hcl"],
    )
    .fails_with(2);

    for args in [
        vec!["policy", "read", "app"],
        vec!["policy", "read", "APP"],
        vec!["policy", "read", "-format=json", "from-stdin"],
        vec!["policy", "read", "nope"],
        vec!["policy", "list"],
        vec!["policy", "list", "-format=json"],
    ] {
        h.same_as_bao(Some(BAO_ROOT_TOKEN), &args);
    }
    // A missing argument is a usage error for both (clap words it differently).
    assert_eq!(
        (
            h.svctl(&["policy", "read"]).code,
            h.bao(&["policy", "read"]).code
        ),
        (1, 1)
    );
    let read = h.svctl(&["policy", "read", "-format=json", "app"]).json();
    assert_eq!(read, serde_json::json!({"policy": rules}));
    let list = h.svctl(&["policy", "list", "-format=json"]).json();
    assert_eq!(
        list,
        serde_json::json!(["app", "default", "from-stdin", "root"])
    );

    let limited = h
        .svctl(&["token", "create", "-policy=app", "-field=token"])
        .stdout;
    h.same_as_bao(Some(&limited), &["policy", "list"])
        .fails_with(2);
    h.same_as_bao(Some(&limited), &["policy", "write", "x", file])
        .fails_with(2);

    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["policy", "delete", "from-stdin"])
        .ok();
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["policy", "delete", "never-existed"])
        .ok();
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["policy", "read", "from-stdin"])
        .fails_with(2);
}

#[test]
fn audit_hash_matches_bao_write() {
    let Some(binary) = require_bao("audit_hash_matches_bao_write") else {
        return;
    };
    // OpenBao enables audit devices from its configuration only.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("audit.hcl");
    let log = dir.path().join("audit.log");
    std::fs::write(
        &config,
        format!(
            "audit \"file\" \"file\" {{\n  options {{\n    file_path = {:?}\n  }}\n}}\n",
            log
        ),
    )
    .unwrap();
    let h = Harness::with_dev(BaoDev::start_with(
        binary,
        &[&format!("-config={}", config.display())],
    ));

    let ours = h.svctl(&["audit", "hash", "file", "hello"]);
    let theirs = h.bao(&["write", "sys/audit-hash/file", "input=hello"]);
    assert_same(&ours, &theirs, &["audit", "hash", "file", "hello"]);
    assert!(
        ours.stdout
            .starts_with("Key     Value\n---     -----\nhash    hmac-sha256:"),
        "{}",
        ours.stdout
    );

    let field = h.svctl(&["audit", "hash", "-field=hash", "file", "hello"]);
    let bao_field = h.bao(&["write", "-field=hash", "sys/audit-hash/file", "input=hello"]);
    assert_eq!(field.stdout, bao_field.stdout);

    // The input can come from stdin, keeping secrets out of argv.
    let piped = h.run_as(
        Cli::Svctl,
        Some(BAO_ROOT_TOKEN),
        &["audit", "hash", "-field=hash", "file", "-"],
        Some("hello"),
    );
    assert_eq!(piped.stdout, field.stdout);

    let json = h.svctl(&["audit", "hash", "-format=json", "file", "hello"]);
    let theirs = h.bao(&[
        "write",
        "-format=json",
        "sys/audit-hash/file",
        "input=hello",
    ]);
    let (mut a, mut b) = (json.json(), theirs.json());
    strip_json(&mut a, &["request_id"]);
    strip_json(&mut b, &["request_id"]);
    assert_eq!(a, b);

    let missing = h.svctl(&["audit", "hash", "nope", "x"]);
    let theirs = h.bao(&["write", "sys/audit-hash/nope", "input=x"]);
    assert_same(&missing, &theirs, &["audit", "hash", "nope", "x"]);
    missing.fails_with(2);
}

#[test]
fn token_file_and_address_settings() {
    let Some(h) = Harness::start("token_file_and_address_settings") else {
        return;
    };
    h.bao(&["kv", "put", "secret/t", "a=1"]).ok();

    // ~/.vault-token is used when VAULT_TOKEN is unset or empty, like the Vault CLI.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".vault-token"),
        format!("{BAO_ROOT_TOKEN}\n"),
    )
    .unwrap();
    let run = h.svctl_with_home(home.path(), None, &["kv", "get", "-field=a", "secret/t"]);
    run.ok();
    assert_eq!(run.stdout, "1");
    h.svctl_with_home(
        home.path(),
        Some(""),
        &["kv", "get", "-field=a", "secret/t"],
    )
    .ok();
    // VAULT_TOKEN wins over the file.
    h.svctl_with_home(home.path(), Some("bogus-token"), &["kv", "get", "secret/t"])
        .fails_with(2);

    // No server there: exit 2 with the address in the message.
    let port = free_loopback_port();
    let run = h.svctl(&[
        "--address",
        &format!("http://127.0.0.1:{port}"),
        "kv",
        "get",
        "secret/t",
    ]);
    run.fails_with(2);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
    // An unusable address is named.
    let run = h.svctl(&["-address=127.0.0.1:8200", "token", "lookup"]);
    run.fails_with(2);
    assert!(
        run.stderr.contains("VAULT_ADDR \"127.0.0.1:8200\""),
        "{}",
        run.stderr
    );
}

/// `bao server -dev -dev-tls`, killed on drop.
struct TlsDev {
    child: Child,
    port: u16,
    certs: tempfile::TempDir,
    _home: tempfile::TempDir,
}

impl Drop for TlsDev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_with_a_ca_bundle() {
    let Some(binary) = require_bao("https_with_a_ca_bundle") else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let port = free_loopback_port();
    let child = Command::new(&binary)
        .args([
            "server",
            "-dev",
            "-dev-tls",
            &format!("-dev-root-token-id={BAO_ROOT_TOKEN}"),
        ])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .arg(format!("-dev-tls-cert-dir={}", certs.path().display()))
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dev = TlsDev {
        child,
        port,
        certs,
        _home: home,
    };
    let ca = dev.certs.path().join("vault-ca.pem");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(ca.is_file() && TcpStream::connect(("127.0.0.1", dev.port)).is_ok()) {
        assert!(Instant::now() < deadline, "bao -dev-tls did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let svctl = |ca_cert: Option<&std::path::Path>, extra: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_svctl"));
        cmd.args(["token", "lookup", "-field=id"])
            .env("VAULT_ADDR", format!("https://127.0.0.1:{}", dev.port))
            .env("VAULT_TOKEN", BAO_ROOT_TOKEN)
            .env_remove("VAULT_CACERT")
            .env_remove("VAULT_SKIP_VERIFY");
        if let Some(ca) = ca_cert {
            cmd.env("VAULT_CACERT", ca);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // The server may still be unsealing: retry briefly.
    let mut ok = svctl(Some(&ca), &[]);
    while !ok.status.success() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        ok = svctl(Some(&ca), &[]);
    }
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), BAO_ROOT_TOKEN);

    // Without the CA the certificate is refused, and VAULT_SKIP_VERIFY does not help.
    let refused = svctl(None, &[("VAULT_SKIP_VERIFY", "true")]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("VAULT_SKIP_VERIFY is not supported"),
        "{stderr}"
    );
    assert!(stderr.contains("certificate"), "{stderr}");
}

#[test]
fn json_shapes_match_bao_for_tokens() {
    let Some(h) = Harness::start("json_shapes_match_bao_for_tokens") else {
        return;
    };
    for args in [
        vec!["token", "lookup", "-format=json"],
        vec!["token", "create", "-format=json"],
    ] {
        let ours = h.svctl(&args).json();
        let theirs = h.bao(&args).json();
        assert_eq!(key_paths(&ours), key_paths(&theirs), "{args:?}");
    }
}
