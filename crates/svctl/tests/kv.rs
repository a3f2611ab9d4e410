//! `svctl kv …` against `bao server -dev`, compared with the bao CLI's own output.

mod support;

use secretvault_testsupport::BAO_ROOT_TOKEN;
use support::{Cli, Harness, assert_same, key_paths, mask_rows, strip_json};

const TIMES: &[&str] = &["created_time", "updated_time", "deletion_time"];

/// Writes the same data with both clients to paths of equal length, and compares the
/// outputs with the paths and times masked.
#[track_caller]
fn same_write(h: &Harness, args: impl Fn(&str) -> Vec<String>) {
    same_write_as(h, BAO_ROOT_TOKEN, "secret/", args)
}

#[track_caller]
fn same_write_as(h: &Harness, token: &str, dir: &str, args: impl Fn(&str) -> Vec<String>) {
    let ours_args = args(&format!("{dir}s-app"));
    let theirs_args = args(&format!("{dir}b-app"));
    let ours = h.run_as(
        Cli::Svctl,
        Some(token),
        &ours_args.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    let theirs = h.run_as(
        Cli::Bao,
        Some(token),
        &theirs_args.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    let clean = |r: &support::Run, name: &str| support::Run {
        code: r.code,
        stdout: mask_rows(&r.stdout.replace(name, "X-app"), TIMES),
        stderr: r.stderr.replace(name, "X-app"),
    };
    assert_same(
        &clean(&ours, "s-app"),
        &clean(&theirs, "b-app"),
        &ours_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

fn strs(v: &[&str], path: &str) -> Vec<String> {
    v.iter()
        .map(|s| {
            if *s == "PATH" {
                path.to_owned()
            } else {
                (*s).to_owned()
            }
        })
        .collect()
}

#[test]
fn kv_lifecycle_matches_bao() {
    let Some(h) = Harness::start("kv_lifecycle_matches_bao") else {
        return;
    };

    same_write(&h, |p| {
        strs(
            &["kv", "put", "PATH", "user=admin", "url=postgres://h/db?a=b"],
            p,
        )
    });
    same_write(&h, |p| {
        strs(
            &["kv", "put", "-cas=1", "PATH", "user=admin", "pw=second"],
            p,
        )
    });
    same_write(&h, |p| strs(&["kv", "patch", "PATH", "extra=1"], p));
    same_write(&h, |p| {
        strs(&["kv", "patch", "-remove-data=extra", "PATH"], p)
    });
    same_write(&h, |p| {
        strs(&["kv", "patch", "-method=rw", "PATH", "rw=yes"], p)
    });
    same_write(&h, |p| {
        strs(
            &["kv", "put", "-mount=secret", "PATH", "a=b"],
            p.trim_start_matches("secret/"),
        )
    });

    // Reads of the same secret print the same bytes.
    for args in [
        vec!["kv", "get", "secret/s-app"],
        vec!["kv", "get", "-version=1", "secret/s-app"],
        vec!["kv", "get", "-mount=secret", "s-app"],
        vec!["kv", "get", "-field=user", "secret/s-app"],
        vec!["kv", "get", "-field=data", "secret/s-app"],
        vec!["kv", "get", "-format=json", "-field=url", "secret/s-app"],
        vec!["kv", "list", "secret"],
        vec!["kv", "list", "-mount=secret"],
        vec!["kv", "list", "-format=json", "secret/"],
        vec!["kv", "metadata", "get", "secret/s-app"],
    ] {
        h.same_as_bao(Some(BAO_ROOT_TOKEN), &args);
    }
    let latest = h.svctl(&["kv", "get", "secret/s-app"]);
    latest.ok();
    assert!(
        latest
            .stdout
            .starts_with("== Secret Path ==\nsecret/data/s-app\n\n======= Metadata =======\n"),
        "{}",
        latest.stdout
    );
    assert!(
        latest
            .stdout
            .contains("\n== Data ==\nKey    Value\n---    -----\na      b"),
        "{}",
        latest.stdout
    );

    // Soft delete, undelete, destroy.
    same_write(&h, |p| strs(&["kv", "delete", "PATH"], p));
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["kv", "get", "secret/s-app"]);
    same_write(&h, |p| strs(&["kv", "undelete", "-versions=6", "PATH"], p));
    same_write(&h, |p| strs(&["kv", "delete", "-versions=1,2", "PATH"], p));
    same_write(&h, |p| {
        strs(&["kv", "destroy", "-versions=2", "-versions=3", "PATH"], p)
    });
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["kv", "metadata", "get", "secret/s-app"],
    );
    let meta = h
        .svctl(&["kv", "metadata", "get", "-format=json", "secret/s-app"])
        .json();
    assert_eq!(meta["data"]["versions"]["2"]["destroyed"], true);
    assert_eq!(meta["data"]["versions"]["3"]["destroyed"], true);
    assert_ne!(meta["data"]["versions"]["1"]["deletion_time"], "");
    assert_eq!(meta["data"]["versions"]["6"]["deletion_time"], "");

    // Metadata settings.
    same_write(&h, |p| {
        strs(
            &[
                "kv",
                "metadata",
                "put",
                "-max-versions=3",
                "-cas-required",
                "-delete-version-after=1h",
                "-custom-metadata=owner=team-a",
                "-custom-metadata=note=a=b",
                "PATH",
            ],
            p,
        )
    });
    let meta = h
        .svctl(&["kv", "metadata", "get", "-format=json", "secret/s-app"])
        .json();
    assert_eq!(meta["data"]["max_versions"], 3);
    assert_eq!(meta["data"]["cas_required"], true);
    assert_eq!(meta["data"]["delete_version_after"], "1h0m0s");
    assert_eq!(
        meta["data"]["custom_metadata"],
        serde_json::json!({"owner": "team-a", "note": "a=b"})
    );
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["kv", "metadata", "get", "secret/s-app"],
    );

    // Writes without -cas are now refused by the secret's cas_required.
    same_write(&h, |p| strs(&["kv", "put", "PATH", "a=1"], p));

    same_write(&h, |p| strs(&["kv", "metadata", "delete", "PATH"], p));
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["kv", "get", "secret/s-app"])
        .fails_with(2);
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["kv", "metadata", "get", "secret/s-app"],
    )
    .fails_with(2);
}

#[test]
fn kv_values_from_files_stdin_and_json() {
    let Some(h) = Harness::start("kv_values_from_files_stdin_and_json") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nabc\n").unwrap();
    let json_file = dir.path().join("data.json");
    std::fs::write(&json_file, r#"{"from_json": "yes", "n": 7}"#).unwrap();

    let cert_arg = format!("cert=@{}", cert.display());
    let json_arg = format!("@{}", json_file.display());
    h.run_as(
        Cli::Svctl,
        Some(BAO_ROOT_TOKEN),
        &[
            "kv",
            "put",
            "secret/files",
            &cert_arg,
            "pw=-",
            "eq=a=b=c",
            "at=\\@x",
        ],
        Some("from stdin\n"),
    )
    .ok();
    let data = h
        .svctl(&["kv", "get", "-format=json", "secret/files"])
        .json();
    assert_eq!(
        data["data"]["data"],
        serde_json::json!({"cert": "-----BEGIN CERTIFICATE-----\nabc\n", "pw": "from stdin\n", "eq": "a=b=c", "at": "@x"})
    );

    h.run_as(
        Cli::Svctl,
        Some(BAO_ROOT_TOKEN),
        &["kv", "put", "secret/json", "-", "extra=1"],
        Some(r#"{"a": "1", "b": [1, 2]}"#),
    )
    .ok();
    h.svctl(&["kv", "patch", "secret/json", &json_arg]).ok();
    let data = h
        .svctl(&["kv", "get", "-format=json", "secret/json"])
        .json();
    assert_eq!(
        data["data"]["data"],
        serde_json::json!({"a": "1", "b": [1, 2], "extra": "1", "from_json": "yes", "n": 7})
    );
    // bao reads the stored value the same way.
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["kv", "get", "secret/json"]);

    let err = h.svctl(&["kv", "put", "secret/x", "novalue"]);
    err.fails_with(1);
    assert!(
        err.stderr.starts_with("Failed to parse K=V data: ") && err.stderr.contains("\"novalue\""),
        "{}",
        err.stderr
    );
    let err = h.svctl(&["kv", "put", "secret/x", "k=@/nonexistent/file"]);
    err.fails_with(1);
    assert!(err.stderr.contains("/nonexistent/file"), "{}", err.stderr);
}

#[test]
fn kv_errors_match_bao() {
    let Some(h) = Harness::start("kv_errors_match_bao") else {
        return;
    };
    h.bao(&["kv", "put", "secret/exists", "a=1"]).ok();
    h.bao(&["kv", "put", "secret/app/mine", "a=1"]).ok();
    h.bao(&["kv", "put", "secret/app/s-app", "a=1"]).ok();
    h.bao(&["kv", "put", "secret/app/b-app", "a=1"]).ok();

    // Check-and-set mismatch: the server's 400, printed the same way, exit 2.
    let run = h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["kv", "put", "-cas=0", "secret/exists", "a=2"],
    );
    run.fails_with(2);
    assert!(run.stderr.contains(
        "Code: 400. Errors:\n\n* check-and-set parameter did not match the current version"
    ));
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["kv", "patch", "-cas=7", "secret/exists", "a=2"],
    )
    .fails_with(2);

    // Missing secrets.
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["kv", "get", "secret/nope"])
        .fails_with(2);
    h.same_as_bao(Some(BAO_ROOT_TOKEN), &["kv", "list", "secret/nope"])
        .fails_with(2);
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["kv", "list", "-format=json", "secret/nope"],
    )
    .fails_with(2);
    h.same_as_bao(
        Some(BAO_ROOT_TOKEN),
        &["kv", "get", "-field=nope", "secret/exists"],
    )
    .fails_with(1);

    // A token limited to secret/app/*: allowed there, 403 elsewhere.
    let limited = h.token_with_policy(
        "app",
        r#"path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
           path "secret/metadata/app/*" { capabilities = ["list"] }"#,
    );
    h.same_as_bao(Some(&limited), &["kv", "get", "secret/app/mine"])
        .ok();
    let denied = h.same_as_bao(Some(&limited), &["kv", "get", "secret/exists"]);
    denied.fails_with(2);
    assert!(
        denied
            .stderr
            .starts_with("Error reading secret/data/exists: Error making API request."),
        "{}",
        denied.stderr
    );
    assert!(
        denied.stderr.contains("Code: 403. Errors:") && denied.stderr.contains("permission denied"),
        "{}",
        denied.stderr
    );
    h.same_as_bao(Some(&limited), &["kv", "put", "secret/exists", "a=3"])
        .fails_with(2);
    h.same_as_bao(Some(&limited), &["kv", "metadata", "get", "secret/exists"])
        .fails_with(2);
    // No patch capability: both fall back to read-then-write, with the same warning.
    same_write_as(&h, &limited, "secret/app/", |p| {
        strs(&["kv", "patch", "PATH", "b=2"], p)
    });
    let patched = h
        .svctl(&["kv", "get", "-format=json", "secret/app/s-app"])
        .json();
    assert_eq!(
        patched["data"]["data"],
        serde_json::json!({"a": "1", "b": "2"})
    );

    // No token at all: the server's 403, plus a hint only svctl prints.
    let ours = h.run_as(Cli::Svctl, None, &["kv", "get", "secret/exists"], None);
    let theirs = h.run_as(Cli::Bao, None, &["kv", "get", "secret/exists"], None);
    ours.fails_with(2);
    theirs.fails_with(2);
    assert_eq!(
        ours.stderr,
        format!(
            "{}\n\nNo token was sent: set VAULT_TOKEN, or write a token to ~/.vault-token.\n",
            theirs.stderr.trim_end()
        )
    );

    // Usage errors are local: exit 1 before any request.
    for args in [
        &["kv", "put", "secret/exists"][..],
        &["kv", "put"],
        &["kv", "patch", "secret/exists"],
        &["kv", "undelete", "secret/exists"],
        &["kv", "destroy", "secret/exists"],
        &["kv", "get", "-format=xml", "secret/exists"],
    ] {
        let ours = h.svctl(args);
        let theirs = h.bao(args);
        assert_eq!(
            (ours.code, theirs.code),
            (1, 1),
            "{args:?}: svctl {:?} / bao {:?}",
            ours.stderr,
            theirs.stderr
        );
        if !args.iter().any(|a| a.starts_with("-format")) {
            assert_eq!(ours.stderr, theirs.stderr, "{args:?}");
        }
    }
    let unknown = h.svctl(&["kv", "get", "-bogus", "secret/exists"]);
    unknown.fails_with(1);
    assert!(unknown.stderr.contains("--bogus"), "{}", unknown.stderr);
    let bad_version = h.svctl(&["kv", "delete", "-versions=1,x", "secret/exists"]);
    bad_version.fails_with(1);
    assert!(
        bad_version.stderr.contains("\"x\""),
        "{}",
        bad_version.stderr
    );
}

#[test]
fn kv_mount_resolution() {
    let Some(h) = Harness::start("kv_mount_resolution") else {
        return;
    };
    h.bao(&["kv", "put", "secret/team/db", "pw=1"]).ok();
    h.bao(&["secrets", "enable", "-path=other", "-version=2", "kv"])
        .ok();
    h.bao(&["kv", "put", "other/team/db", "pw=2"]).ok();
    h.bao(&["secrets", "enable", "-path=kv1", "-version=1", "kv"])
        .ok();
    h.bao(&["kv", "put", "kv1/x", "a=1"]).ok();

    let field = |args: &[&str]| {
        let run = h.svctl(args);
        run.ok();
        run.stdout
    };
    // The mount is taken from the path, or from -mount, like the Vault CLI…
    assert_eq!(field(&["kv", "get", "-field=pw", "secret/team/db"]), "1");
    assert_eq!(field(&["kv", "get", "-field=pw", "other/team/db"]), "2");
    assert_eq!(
        field(&["kv", "get", "-field=pw", "-mount=other", "team/db"]),
        "2"
    );
    // …and a path naming no mount is looked for under secret/.
    assert_eq!(field(&["kv", "get", "-field=pw", "team/db"]), "1");
    assert_eq!(field(&["kv", "list"]), "Keys\n----\nteam/\n");
    let run = h.svctl(&["kv", "get", "team/db"]);
    assert!(
        run.stdout
            .starts_with("=== Secret Path ===\nsecret/data/team/db\n"),
        "{}",
        run.stdout
    );

    // KV version 1 is refused with a clear message.
    for args in [
        &["kv", "get", "kv1/x"][..],
        &["kv", "get", "-mount=kv1", "x"],
        &["kv", "put", "kv1/x", "a=2"],
    ] {
        let run = h.svctl(args);
        run.fails_with(2);
        assert!(
            run.stderr.contains("kv1/ is not a KV version 2 mount"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn kv_json_output_is_the_api_response() {
    let Some(h) = Harness::start("kv_json_output_is_the_api_response") else {
        return;
    };
    h.bao(&["kv", "put", "secret/j", "a=<b>&c"]).ok();
    h.bao(&["kv", "put", "secret/dir/k", "x=1"]).ok();
    let volatile = ["request_id"];
    for args in [
        vec!["kv", "get", "-format=json", "secret/j"],
        vec!["kv", "get", "-format=json", "-version=1", "secret/j"],
        vec!["kv", "metadata", "get", "-format=json", "secret/j"],
        vec!["kv", "list", "-format=json", "secret"],
    ] {
        let ours = h.svctl(&args);
        let theirs = h.bao(&args);
        ours.ok();
        let (mut a, mut b) = (ours.json(), theirs.json());
        strip_json(&mut a, &volatile);
        strip_json(&mut b, &volatile);
        assert_eq!(a, b, "{args:?}");
        assert_eq!(key_paths(&a), key_paths(&b));
        // Same text too, once the request id is aligned: Go's key order and HTML escaping.
        let request_id = |r: &support::Run| r.json().get("request_id").cloned();
        let mut ours_text = ours.stdout.clone();
        if let (Some(x), Some(y)) = (request_id(&ours), request_id(&theirs)) {
            ours_text = ours_text.replace(x.as_str().unwrap(), y.as_str().unwrap());
        }
        assert_eq!(ours_text, theirs.stdout, "{args:?}");
    }
    for args in [
        vec!["kv", "put", "-format=json", "secret/w", "a=1"],
        vec!["kv", "patch", "-format=json", "secret/w", "b=1"],
    ] {
        let ours = h.svctl(&args);
        ours.ok();
        let v = ours.json();
        assert!(v["data"]["version"].is_u64(), "{v}");
        let theirs = h.bao(&args).json();
        assert_eq!(key_paths(&v), key_paths(&theirs));
    }
}
