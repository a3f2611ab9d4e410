//! The CLI suite: OpenBao's own `bao` CLI pointed at secretvault must succeed and print
//! what it prints against OpenBao, for every kv, policy, token and transit command.
//! Output is compared after masking what differs between any two servers (times, tokens,
//! accessors, ids, remaining TTLs, ciphertexts and data keys).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::DevServer;
use common::differential::enable_transit_on_openbao;
use regex::Regex;
use secretvault_testsupport::{BAO_ROOT_TOKEN, BaoDev};

struct Target<'a> {
    name: &'static str,
    bao: &'a Path,
    addr: String,
    token: String,
    home: tempfile::TempDir,
}

impl Target<'_> {
    fn command(&self, args: &[&str], token: Option<&str>) -> Command {
        let mut command = Command::new(self.bao);
        command
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", token.unwrap_or(&self.token))
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env_remove("VAULT_FORMAT");
        command
    }

    fn run(&self, args: &[&str], token: Option<&str>) -> (i32, String, String) {
        let out = self
            .command(args, token)
            .stdin(Stdio::null())
            .output()
            .expect("running bao");
        result(&out)
    }

    /// Runs bao with `input` on its standard input (`bao write <path> -`).
    fn run_with_stdin(&self, args: &[&str], input: &str) -> (i32, String, String) {
        let mut child = self
            .command(args, None)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running bao");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("writing bao's stdin");
        result(&child.wait_with_output().expect("waiting for bao"))
    }
}

fn result(out: &std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn masks() -> Vec<(Regex, &'static str)> {
    let r = |p: &str| Regex::new(p).expect("mask regex");
    vec![
        // First: ciphertexts and data keys would otherwise match the masks below in part.
        // Transit ciphertexts are random; the key version they name is compared.
        (r(r"vault:v(\d+):[A-Za-z0-9+/=]+"), "vault:v$1:<ciphertext>"),
        // Data keys are random; the decrypted "hello" (8 characters) is compared.
        (
            r(r#"(?m)^(\s*"?plaintext"?:?\s+"?)[A-Za-z0-9+/]{20,}={0,2}"#),
            "$1<datakey>",
        ),
        (r(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
        (r(r"\b(svs|svr|hvs|s)\.[A-Za-z0-9_\-\.]+"), "<token>"),
        (
            r(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
            "<uuid>",
        ),
        (r(r"\b[A-Za-z0-9]{24}\b"), "<accessor>"),
        (r(r"\b\d+h\d+m\d+s\b"), "<duration>"),
        (
            r(r"\b(ttl|token_duration)(\s+)\d+[hms0-9]*"),
            "$1$2<duration>",
        ),
        (r(r"\b\d{10}\b"), "<unix>"),
        // The root token's id is whatever each server was started with.
        (r(r"(?m)^id(\s+)\S+$"), "id$1<id>"),
    ]
}

/// Rows only OpenBao prints: its metadata check-and-set extension and transit soft
/// deletion, listed in tests/data/differential-*allowlist.json and docs/compatibility.md.
const OPENBAO_ONLY_ROWS: [&str; 3] = [
    "current_metadata_version",
    "metadata_cas_required",
    "soft_deleted",
];

fn mask(text: &str, masks: &[(Regex, &'static str)]) -> String {
    let text: String = text
        .lines()
        .filter(|l| {
            // Table rows start with the name, JSON members with the quoted name.
            let name = l.trim_start().trim_start_matches('"');
            !OPENBAO_ONLY_ROWS.iter().any(|row| name.starts_with(row))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    // Section banners are as wide as the widest row, which the rows above change.
    let text = Regex::new("=+").expect("regex").replace_all(&text, "==");
    let mut out = text.to_string();
    for (re, with) in masks {
        out = re.replace_all(&out, *with).into_owned();
    }
    // Column widths follow the longest value, which masking changes: compare by words.
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bao_cli_works_against_secretvault() {
    let Some(reference) = BaoDev::start("CLI suite") else {
        return;
    };
    let ours = DevServer::start();
    let bao = reference.binary().clone();
    let targets = [
        Target {
            name: "openbao",
            bao: &bao,
            addr: reference.url(),
            token: BAO_ROOT_TOKEN.into(),
            home: tempfile::tempdir().unwrap(),
        },
        Target {
            name: "secretvault",
            bao: &bao,
            addr: ours.url.clone(),
            token: common::ROOT.into(),
            home: tempfile::tempdir().unwrap(),
        },
    ];
    let policy_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policy_file.path(),
        "path \"secret/data/cli/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n",
    )
    .unwrap();
    let policy_path = policy_file.path().to_str().unwrap().to_string();

    let commands: Vec<Vec<&str>> = vec![
        vec!["kv", "put", "secret/cli/app", "user=app", "password=one"],
        vec![
            "kv",
            "put",
            "-cas=1",
            "secret/cli/app",
            "user=app",
            "password=two",
        ],
        vec!["kv", "put", "-cas=1", "secret/cli/app", "password=stale"],
        vec!["kv", "get", "secret/cli/app"],
        vec!["kv", "get", "-version=1", "secret/cli/app"],
        vec!["kv", "get", "-field=password", "secret/cli/app"],
        vec!["kv", "get", "-format=json", "secret/cli/app"],
        vec!["kv", "get", "secret/cli/missing"],
        vec!["kv", "patch", "secret/cli/app", "password=three"],
        vec!["kv", "list", "secret/cli"],
        vec!["kv", "list", "-format=json", "secret/"],
        vec!["kv", "delete", "secret/cli/app"],
        vec!["kv", "get", "secret/cli/app"],
        vec!["kv", "undelete", "-versions=3", "secret/cli/app"],
        vec!["kv", "delete", "-versions=1", "secret/cli/app"],
        vec!["kv", "destroy", "-versions=2", "secret/cli/app"],
        vec![
            "kv",
            "metadata",
            "put",
            "-max-versions=5",
            "-custom-metadata=owner=payments",
            "secret/cli/app",
        ],
        vec!["kv", "metadata", "get", "secret/cli/app"],
        vec!["kv", "metadata", "delete", "secret/cli/app"],
        vec!["kv", "get", "secret/cli/app"],
        vec!["policy", "write", "cli-reader", policy_path.as_str()],
        vec!["policy", "read", "cli-reader"],
        vec!["policy", "list"],
        vec!["policy", "delete", "cli-reader"],
        vec!["token", "lookup"],
    ];

    let masks = masks();
    let mut failures = Vec::new();
    let outputs: Vec<Vec<Output>> = targets
        .iter()
        .map(|t| {
            commands
                .iter()
                .map(|c| (format!("bao {}", c.join(" ")), t.run(c, None)))
                .collect()
        })
        .collect();
    compare(&outputs[0], &outputs[1], &targets, &masks, &mut failures);
    let token_outputs: Vec<Vec<Output>> = targets.iter().map(token_flow).collect();
    compare(
        &token_outputs[0],
        &token_outputs[1],
        &targets,
        &masks,
        &mut failures,
    );
    // secretvault's transit mount is built in; OpenBao's dev server needs one.
    enable_transit_on_openbao(&targets[0].addr, BAO_ROOT_TOKEN);
    let transit_outputs: Vec<Vec<Output>> = targets.iter().map(transit_flow).collect();
    compare(
        &transit_outputs[0],
        &transit_outputs[1],
        &targets,
        &masks,
        &mut failures,
    );
    assert!(
        failures.is_empty(),
        "{} CLI differences:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A command line and what it printed: (exit code, stdout, stderr).
type Output = (String, (i32, String, String));

/// Token commands on one server: create, lookup (by token and accessor), renew, revoke,
/// and a lookup of the revoked token.
fn token_flow(target: &Target<'_>) -> Vec<Output> {
    let mut out = Vec::new();
    let mut run = |args: Vec<&str>| {
        let result = target.run(&args, None);
        out.push((format!("bao {}", args.join(" ")), result.clone()));
        result
    };
    run(vec![
        "token",
        "create",
        "-policy=default",
        "-ttl=1h",
        "-display-name=cli",
        "-metadata=team=a",
    ]);
    let (code, token, err) = run(vec![
        "token",
        "create",
        "-field=token",
        "-policy=default",
        "-ttl=1h",
    ]);
    assert_eq!(code, 0, "{}: token create: {err}", target.name);
    let token = token.trim().to_string();
    let (_, json, _) = target.run(&["token", "lookup", "-format=json", &token], None);
    let accessor = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v["data"]["accessor"].as_str().map(String::from))
        .unwrap_or_default();
    run(vec!["token", "lookup", &token]);
    run(vec!["token", "lookup", "-accessor", &accessor]);
    run(vec!["token", "renew", "-increment=30m", &token]);
    run(vec!["token", "revoke", &token]);
    run(vec!["token", "lookup", &token]);
    out
}

/// "hello", base64 as transit takes plaintext.
const HELLO: &str = "aGVsbG8=";

/// Transit commands on one server: keys, encrypt, decrypt, rewrap, rotate, config,
/// datakey, batches, trim and delete, each ciphertext decrypted by the server that made it.
fn transit_flow(target: &Target<'_>) -> Vec<Output> {
    let mut out = Vec::new();
    let mut run = |args: &[&str]| {
        let result = target.run(args, None);
        out.push((format!("bao {}", args.join(" ")), result.clone()));
        result
    };
    let hello = format!("plaintext={HELLO}");
    run(&["write", "-f", "transit/keys/k"]);
    run(&[
        "write",
        "transit/keys/derived",
        "type=chacha20-poly1305",
        "derived=true",
        "convergent_encryption=true",
    ]);
    run(&[
        "write",
        "transit/keys/small",
        "type=aes128-gcm96",
        "exportable=true",
        "auto_rotate_period=2h",
    ]);
    run(&[
        "write",
        "transit/keys/bad",
        "type=aes256-gcm96",
        "auto_rotate_period=10m",
    ]);
    run(&["read", "transit/keys/k"]);
    run(&["read", "transit/keys/derived"]);
    run(&["read", "transit/keys/missing"]);
    run(&["list", "transit/keys"]);
    run(&["list", "-format=json", "transit/keys"]);

    run(&["write", "transit/encrypt/k", &hello]);
    let (code, ct, err) = run(&["write", "-field=ciphertext", "transit/encrypt/k", &hello]);
    assert_eq!(code, 0, "{}: encrypt: {err}", target.name);
    let ct = format!("ciphertext={}", ct.trim());
    run(&["write", "transit/decrypt/k", &ct]);
    let (_, plaintext, _) = run(&["write", "-field=plaintext", "transit/decrypt/k", &ct]);
    assert_eq!(plaintext.trim(), HELLO, "{}: decrypt", target.name);
    run(&["write", "-format=json", "transit/encrypt/k", &hello]);
    run(&["write", "transit/encrypt/k", "plaintext=not-base64!"]);
    run(&["write", "transit/decrypt/k", "ciphertext=vault:v1:garbage!"]);
    run(&["write", "transit/decrypt/k", "ciphertext=garbage"]);
    // Encrypting with a key that does not exist creates it.
    run(&["write", "transit/encrypt/upserted", &hello]);
    run(&["read", "transit/keys/upserted"]);

    let (_, derived_ct, _) = run(&[
        "write",
        "-field=ciphertext",
        "transit/encrypt/derived",
        &hello,
        "context=Y3R4",
    ]);
    let derived_ct = format!("ciphertext={}", derived_ct.trim());
    run(&["write", "transit/encrypt/derived", &hello]);
    run(&[
        "write",
        "transit/decrypt/derived",
        &derived_ct,
        "context=Y3R4",
    ]);
    run(&[
        "write",
        "transit/decrypt/derived",
        &derived_ct,
        "context=b3RoZXI=",
    ]);

    run(&["write", "-f", "transit/keys/k/rotate"]);
    run(&["write", "-f", "transit/keys/small/rotate"]);
    run(&["write", "transit/rewrap/k", &ct]);
    let (_, rewrapped, _) = run(&["write", "-field=ciphertext", "transit/rewrap/k", &ct]);
    let rewrapped = format!("ciphertext={}", rewrapped.trim());
    assert!(rewrapped.starts_with("ciphertext=vault:v2:"), "{rewrapped}");
    let (_, plaintext, _) = run(&["write", "-field=plaintext", "transit/decrypt/k", &rewrapped]);
    assert_eq!(
        plaintext.trim(),
        HELLO,
        "{}: decrypt rewrapped",
        target.name
    );
    run(&["write", "transit/encrypt/k", &hello, "key_version=1"]);
    run(&["write", "transit/encrypt/k", &hello, "key_version=3"]);

    let batch = format!(
        r#"{{"batch_input":[{{"plaintext":"{HELLO}"}},{{"plaintext":"aGk=","reference":"r2"}}]}}"#
    );
    let result = target.run_with_stdin(&["write", "transit/encrypt/k", "-"], &batch);
    out.push(("bao write transit/encrypt/k - (batch)".into(), result));
    let partial = format!(
        r#"{{"batch_input":[{{"plaintext":"{HELLO}"}},{{"plaintext":"!!"}}],"partial_failure_response_code":207}}"#
    );
    let result = target.run_with_stdin(&["write", "transit/encrypt/k", "-"], &partial);
    out.push((
        "bao write transit/encrypt/k - (batch, one bad item)".into(),
        result,
    ));

    let mut run = |args: &[&str]| {
        let result = target.run(args, None);
        out.push((format!("bao {}", args.join(" ")), result.clone()));
        result
    };
    run(&["write", "-f", "transit/datakey/plaintext/k"]);
    run(&["write", "transit/datakey/plaintext/k", "bits=128"]);
    run(&["write", "transit/datakey/wrapped/k", "bits=512"]);
    run(&[
        "write",
        "-format=json",
        "transit/datakey/plaintext/k",
        "bits=256",
    ]);
    run(&["write", "transit/datakey/wrapped/k", "bits=100"]);

    run(&[
        "write",
        "transit/keys/k/config",
        "min_decryption_version=2",
        "auto_rotate_period=24h",
    ]);
    run(&["write", "transit/decrypt/k", &ct]);
    run(&["write", "transit/keys/k/config", "auto_rotate_period=30m"]);
    run(&["write", "transit/keys/k/trim", "min_available_version=2"]);
    run(&["write", "transit/keys/k/config", "min_encryption_version=2"]);
    run(&["write", "transit/keys/k/trim", "min_available_version=2"]);
    run(&["read", "-format=json", "transit/keys/k"]);

    run(&["delete", "transit/keys/k"]);
    run(&["write", "transit/keys/k/config", "deletion_allowed=true"]);
    run(&["delete", "transit/keys/k"]);
    run(&["read", "transit/keys/k"]);
    run(&["list", "transit/keys"]);
    out
}

fn compare(
    reference: &[Output],
    ours: &[Output],
    targets: &[Target<'_>],
    masks: &[(Regex, &'static str)],
    failures: &mut Vec<String>,
) {
    for ((line, (code_ref, out_ref, err_ref)), (_, (code, out, err))) in reference.iter().zip(ours)
    {
        if code != code_ref {
            failures.push(format!("`{line}`: exit {code} (OpenBao {code_ref})\n  ours: {out}{err}\n  ref:  {out_ref}{err_ref}"));
            continue;
        }
        let (a, b) = (mask(out_ref, masks), mask(out, masks));
        if a != b {
            failures.push(format!(
                "`{line}` stdout differs:\n--- OpenBao\n{a}\n--- secretvault\n{b}"
            ));
        }
        let (a, b) = (
            mask(&err_ref.replace(&targets[0].addr, "<addr>"), masks),
            mask(&err.replace(&targets[1].addr, "<addr>"), masks),
        );
        if a != b {
            failures.push(format!(
                "`{line}` stderr differs:\n--- OpenBao\n{a}\n--- secretvault\n{b}"
            ));
        }
    }
}
