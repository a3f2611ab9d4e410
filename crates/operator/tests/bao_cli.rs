//! The CLI suite: OpenBao's own `bao` CLI pointed at secretvault must succeed and print
//! what it prints against OpenBao, for every kv, policy and token command. Output is
//! compared after masking what differs between any two servers (times, tokens,
//! accessors, ids, remaining TTLs).

mod common;

use std::path::Path;
use std::process::Command;

use common::DevServer;
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
    fn run(&self, args: &[&str], token: Option<&str>) -> (i32, String, String) {
        let out = Command::new(self.bao)
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", token.unwrap_or(&self.token))
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env_remove("VAULT_FORMAT")
            .output()
            .expect("running bao");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn masks() -> Vec<(Regex, &'static str)> {
    let r = |p: &str| Regex::new(p).expect("mask regex");
    vec![
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

/// Rows only OpenBao prints: its metadata check-and-set extension, listed in
/// tests/data/differential-allowlist.json and docs/compatibility.md.
const OPENBAO_ONLY_ROWS: [&str; 2] = ["current_metadata_version", "metadata_cas_required"];

fn mask(text: &str, masks: &[(Regex, &'static str)]) -> String {
    let text: String = text
        .lines()
        .filter(|l| !OPENBAO_ONLY_ROWS.iter().any(|row| l.starts_with(row)))
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
