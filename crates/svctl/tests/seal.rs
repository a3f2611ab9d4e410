//! `svctl seal` against a secretvault server run in-process on 127.0.0.1, with every sealed
//! value opened again through the engine's `Vault::unseal`, as the operator will.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use secretvault_engine::seal::{Binding, SealError};
use secretvault_engine::vault::Vault;
use secretvault_server::dev::{DevOptions, open};
use secretvault_server::listener::{ServerConfig, serve};
use serde_json::Value;

struct Server {
    runtime: tokio::runtime::Runtime,
    vault: Arc<Vault>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    home: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let options = DevOptions::new(listen, data.path().to_path_buf());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (vault, url) = runtime.block_on(async {
            let dev = open(&options).await.unwrap();
            let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let vault = dev.vault.clone();
            tokio::spawn(serve(listener, dev.vault, ServerConfig::default(), async {
                let _ = stopped.await;
            }));
            (vault, url)
        });
        Server {
            runtime,
            vault,
            url,
            stop: Some(stop),
            home: tempfile::tempdir().unwrap(),
            _data: data,
        }
    }

    fn unseal(&self, binding: &Binding, sealed: &str) -> Result<Vec<u8>, SealError> {
        self.runtime
            .block_on(self.vault.unseal(binding, sealed))
            .map(|v| v.to_vec())
    }

    /// Runs svctl with VAULT_ADDR pointing here (or at `addr`) and no token anywhere.
    fn svctl_at(&self, addr: &str, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_svctl"));
        for var in [
            "VAULT_TOKEN",
            "VAULT_CACERT",
            "VAULT_FORMAT",
            "VAULT_SKIP_VERIFY",
        ] {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .env("VAULT_ADDR", addr)
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // svctl may refuse its arguments before it reads stdin.
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn svctl(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.svctl_at(&self.url, args, stdin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.stdout.trim_end_matches('\n')
    }

    #[track_caller]
    fn fails_with(&self, code: i32, needle: &str) {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(self.stdout.is_empty(), "nothing on stdout: {}", self.stdout);
        assert!(
            self.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            self.stderr
        );
    }
}

const UNREACHABLE: &str = "http://127.0.0.1:1";

fn db() -> Binding {
    Binding::new("prod", "db", "password")
}

const SEAL_DB: [&str; 7] = [
    "seal",
    "--namespace",
    "prod",
    "--name",
    "db",
    "--key",
    "password",
];

#[test]
fn sealed_via_the_server_unseals_in_the_engine() {
    let server = Server::start();
    let run = server.svctl(&SEAL_DB, b"hunter2");
    let sealed = run.ok();
    assert!(sealed.starts_with("sv:v1:"), "{sealed}");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(server.unseal(&db(), sealed).unwrap(), b"hunter2");
    // The binding holds: the same value in another resource or key does not open.
    let err = server
        .unseal(&Binding::new("prod", "db", "username"), sealed)
        .unwrap_err();
    assert!(matches!(err, SealError::WrongBinding { .. }), "{err}");

    // Vault-style single-dash flags and exact bytes: a trailing newline is kept, with a warning.
    let run = server.svctl(
        &["seal", "-namespace=prod", "-name=db", "-key=password"],
        b"with newline\n",
    );
    assert_eq!(server.unseal(&db(), run.ok()).unwrap(), b"with newline\n");
    assert!(run.stderr.contains("ends with a newline"), "{}", run.stderr);
}

#[test]
fn sealed_offline_with_a_public_key_file_unseals_in_the_engine() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();

    // The file svctl saves, the raw API response, and the bare key all work offline.
    let fetched = server.svctl(&["seal", "--fetch-public-key"], b"");
    let document: Value = serde_json::from_str(fetched.ok()).unwrap();
    assert_eq!(
        document["key_id"].as_str().unwrap(),
        server.vault.sealing_keys().current().key_id()
    );
    let response = reqwest::blocking::get(format!("{}/v1/sys/sealing-key", server.url))
        .unwrap()
        .text()
        .unwrap();
    let files = [
        ("fetched.json", fetched.stdout.clone()),
        ("response.json", response),
        (
            "key.b64",
            format!("{}\n", document["public_key"].as_str().unwrap()),
        ),
    ];
    for (file, contents) in files {
        let path = dir.path().join(file);
        std::fs::write(&path, contents).unwrap();
        let mut args = SEAL_DB.to_vec();
        args.extend(["--public-key", path.to_str().unwrap()]);
        let run = server.svctl_at(UNREACHABLE, &args, b"offline secret");
        assert_eq!(
            server.unseal(&db(), run.ok()).unwrap(),
            b"offline secret",
            "{file}"
        );
    }
}

#[test]
fn old_public_key_files_keep_working_after_renewal() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.json");
    std::fs::write(
        &path,
        server.svctl(&["seal", "--fetch-public-key"], b"").ok(),
    )
    .unwrap();
    let renewed = server
        .runtime
        .block_on(server.vault.sealing_keys().renew())
        .unwrap();
    let mut args = SEAL_DB.to_vec();
    args.extend(["--public-key", path.to_str().unwrap()]);
    let old = server
        .svctl_at(UNREACHABLE, &args, b"old key")
        .ok()
        .to_string();
    let new = server.svctl(&SEAL_DB, b"new key").ok().to_string();
    assert!(
        new.contains(renewed.key_id()),
        "the server now serves the new key"
    );
    assert!(!old.contains(renewed.key_id()));
    assert_eq!(server.unseal(&db(), &old).unwrap(), b"old key");
    assert_eq!(server.unseal(&db(), &new).unwrap(), b"new key");
}

#[test]
fn manifest_from_yaml_and_json() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("values.yaml");
    std::fs::write(
        &yaml,
        "password: \"0123\"\nusername: admin\ntls.crt: |\n  -----BEGIN-----\n  ünïcode\n",
    )
    .unwrap();
    let json = dir.path().join("values.json");
    std::fs::write(&json, r#"{"api-key": "k:e:y", "empty": ""}"#).unwrap();

    for (file, expected) in [
        (
            &yaml,
            vec![
                ("password", "0123"),
                ("tls.crt", "-----BEGIN-----\nünïcode\n"),
                ("username", "admin"),
            ],
        ),
        (&json, vec![("api-key", "k:e:y"), ("empty", "")]),
    ] {
        let run = server.svctl(
            &[
                "seal",
                "--namespace",
                "team-a",
                "--name",
                "app.config",
                "--manifest",
                "--from-file",
                file.to_str().unwrap(),
            ],
            b"",
        );
        let manifest: Value = serde_saphyr::from_str(run.ok()).unwrap();
        assert_eq!(manifest["apiVersion"], "secretvault.io/v1alpha1");
        assert_eq!(manifest["kind"], "SecretVault");
        assert_eq!(manifest["metadata"]["name"], "app.config");
        assert_eq!(manifest["metadata"]["namespace"], "team-a");
        let data = manifest["spec"]["data"].as_object().unwrap();
        assert_eq!(data.len(), expected.len(), "{manifest}");
        for (key, value) in expected {
            let sealed = data[key].as_str().unwrap();
            let binding = Binding::new("team-a", "app.config", key);
            assert_eq!(
                server.unseal(&binding, sealed).unwrap(),
                value.as_bytes(),
                "{key}"
            );
        }
        // Values cannot be swapped between keys of the manifest.
        let swapped = data.values().next().and_then(Value::as_str).unwrap();
        assert!(
            server
                .unseal(&Binding::new("team-a", "app.config", "other"), swapped)
                .is_err()
        );
    }

    // A manifest from stdin, sealed offline.
    let key = dir.path().join("key.json");
    std::fs::write(
        &key,
        server.svctl(&["seal", "--fetch-public-key"], b"").ok(),
    )
    .unwrap();
    let run = server.svctl_at(
        UNREACHABLE,
        &[
            "seal",
            "--namespace=prod",
            "--name=db",
            "--manifest",
            "--public-key",
            key.to_str().unwrap(),
        ],
        b"password: s3cret\n",
    );
    let manifest: Value = serde_saphyr::from_str(run.ok()).unwrap();
    let sealed = manifest["spec"]["data"]["password"].as_str().unwrap();
    assert_eq!(server.unseal(&db(), sealed).unwrap(), b"s3cret");
}

#[test]
fn mistakes_are_reported_with_what_to_fix() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();

    // Local mistakes: exit 1, before any secret is read or any server is asked.
    server
        .svctl_at(
            UNREACHABLE,
            &["seal", "--namespace", "Prod", "--name", "db", "--key", "k"],
            b"x",
        )
        .fails_with(1, "invalid namespace \"Prod\"");
    server
        .svctl_at(
            UNREACHABLE,
            &[
                "seal",
                "--namespace",
                "prod",
                "--name",
                "db",
                "--key",
                "a/b",
            ],
            b"x",
        )
        .fails_with(1, "invalid key \"a/b\"");
    server
        .svctl(&SEAL_DB, &[0xff, 0xfe])
        .fails_with(1, "not UTF-8");
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "port: 5432\n").unwrap();
    server
        .svctl(
            &[
                "seal",
                "--namespace=prod",
                "--name=db",
                "--manifest",
                "--from-file",
                values.to_str().unwrap(),
            ],
            b"",
        )
        .fails_with(1, "the value of \"port\" is a number");
    std::fs::write(&values, "bad key: x\n").unwrap();
    server
        .svctl(
            &[
                "seal",
                "--namespace=prod",
                "--name=db",
                "--manifest",
                "--from-file",
                values.to_str().unwrap(),
            ],
            b"",
        )
        .fails_with(1, "invalid key \"bad key\"");
    let mut args = SEAL_DB.to_vec();
    args.extend(["--from-file", "/nonexistent/value"]);
    server
        .svctl(&args, b"")
        .fails_with(1, "open /nonexistent/value: no such file or directory");
    let bad_key = dir.path().join("bad.json");
    std::fs::write(&bad_key, r#"{"public_key": "AAAA"}"#).unwrap();
    let mut args = SEAL_DB.to_vec();
    args.extend(["--public-key", bad_key.to_str().unwrap()]);
    server
        .svctl_at(UNREACHABLE, &args, b"x")
        .fails_with(1, "invalid sealing public key: it is 3 bytes long");

    // The server cannot be reached: exit 2.
    server
        .svctl_at(UNREACHABLE, &SEAL_DB, b"x")
        .fails_with(2, "Error reading the sealing key");
}

#[test]
fn a_server_without_sealing_is_named_as_such() {
    let Some(bao) = secretvault_testsupport::BaoDev::start("svctl seal against bao") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_svctl"))
        .env_remove("VAULT_TOKEN")
        .env("VAULT_ADDR", bao.url())
        .env("HOME", home.path())
        .args(SEAL_DB)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("it is not a secretvault server"),
        "{stderr}"
    );
}

#[test]
fn fetching_the_public_key_ignores_tokens() {
    // The key is public: a stale or bogus token in the environment does not get in the way.
    let server = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_svctl"))
        .env("VAULT_ADDR", &server.url)
        .env("VAULT_TOKEN", "not-a-valid-token")
        .env("HOME", server.home.path())
        .args(["seal", "--fetch-public-key"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        document["algorithm"],
        "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"
    );
    assert!(document["creation_time"].is_string());
}
