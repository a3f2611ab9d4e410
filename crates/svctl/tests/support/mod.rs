//! Running the built `svctl` and the reference `bao` CLI side by side against one
//! `bao server -dev`.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use secretvault_testsupport::{BAO_ROOT_TOKEN, BaoDev};
use serde_json::Value;

/// What a command did.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails_with(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Which client to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cli {
    Svctl,
    Bao,
}

/// One dev server, and a HOME without a `.vault-token` for the clients.
pub struct Harness {
    pub dev: BaoDev,
    pub home: tempfile::TempDir,
}

impl Harness {
    pub fn start(test: &str) -> Option<Harness> {
        let dev = BaoDev::start(test)?;
        Some(Harness {
            dev,
            home: tempfile::tempdir().unwrap(),
        })
    }

    pub fn with_dev(dev: BaoDev) -> Harness {
        Harness {
            dev,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, cli: Cli, token: Option<&str>, home: &Path) -> Command {
        let mut cmd = match cli {
            Cli::Svctl => Command::new(env!("CARGO_BIN_EXE_svctl")),
            Cli::Bao => Command::new(self.dev.binary()),
        };
        for var in [
            "VAULT_TOKEN",
            "VAULT_FORMAT",
            "VAULT_CACERT",
            "VAULT_CAPATH",
            "VAULT_SKIP_VERIFY",
            "VAULT_NAMESPACE",
            "BAO_ADDR",
            "BAO_TOKEN",
            "BAO_FORMAT",
            "BAO_CACERT",
            "BAO_SKIP_VERIFY",
            "BAO_NAMESPACE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("VAULT_ADDR", self.dev.url())
            .env("HOME", home)
            .env("NO_COLOR", "1");
        if let Some(token) = token {
            cmd.env("VAULT_TOKEN", token);
        }
        cmd
    }

    /// Runs `cli args…` with the given token (`None`: no VAULT_TOKEN and no token file).
    pub fn run_as(&self, cli: Cli, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Run {
        let cmd = self.command(cli, token, self.home.path());
        run(cmd, args, stdin)
    }

    pub fn run(&self, cli: Cli, args: &[&str]) -> Run {
        self.run_as(cli, Some(BAO_ROOT_TOKEN), args, None)
    }

    pub fn svctl(&self, args: &[&str]) -> Run {
        self.run(Cli::Svctl, args)
    }

    pub fn bao(&self, args: &[&str]) -> Run {
        self.run(Cli::Bao, args)
    }

    /// Runs svctl with a HOME of one's own (for `~/.vault-token`).
    pub fn svctl_with_home(&self, home: &Path, token: Option<&str>, args: &[&str]) -> Run {
        run(self.command(Cli::Svctl, token, home), args, None)
    }

    /// Runs the same command with both clients and asserts the same exit code, stdout and
    /// stderr (after `normalize`).
    #[track_caller]
    pub fn same_as_bao(&self, token: Option<&str>, args: &[&str]) -> Run {
        let ours = self.run_as(Cli::Svctl, token, args, None);
        let theirs = self.run_as(Cli::Bao, token, args, None);
        assert_same(&ours, &theirs, args);
        ours
    }

    /// Like [`Harness::same_as_bao`], with the values of the given table rows masked
    /// (remaining TTLs tick between the two runs).
    #[track_caller]
    pub fn same_as_bao_masked(&self, token: Option<&str>, args: &[&str], rows: &[&str]) -> Run {
        let mask = |r: Run| Run {
            stdout: mask_rows(&r.stdout, rows),
            ..r
        };
        let ours = mask(self.run_as(Cli::Svctl, token, args, None));
        let theirs = mask(self.run_as(Cli::Bao, token, args, None));
        assert_same(&ours, &theirs, args);
        ours
    }

    /// A token limited to the given policy text.
    pub fn token_with_policy(&self, name: &str, policy: &str) -> String {
        self.run_as(
            Cli::Bao,
            Some(BAO_ROOT_TOKEN),
            &["policy", "write", name, "-"],
            Some(policy),
        )
        .ok();
        let run = self.bao(&[
            "token",
            "create",
            &format!("-policy={name}"),
            "-field=token",
        ]);
        run.ok();
        run.stdout.trim().to_owned()
    }
}

fn run(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Run {
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawning the client");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// svctl says "from the server" where bao says "from OpenBao".
pub fn normalize(text: &str) -> String {
    text.replace("returned from OpenBao:", "returned from the server:")
}

#[track_caller]
pub fn assert_same(ours: &Run, theirs: &Run, args: &[&str]) {
    assert_eq!(
        (ours.code, normalize(&ours.stdout), normalize(&ours.stderr)),
        (
            theirs.code,
            normalize(&theirs.stdout),
            normalize(&theirs.stderr)
        ),
        "svctl and bao differ for {args:?}\n--- svctl stdout:\n{}\n--- bao stdout:\n{}\n--- svctl stderr:\n{}\n--- bao stderr:\n{}",
        ours.stdout,
        theirs.stdout,
        ours.stderr,
        theirs.stderr
    );
}

/// Replaces the value of `Key  Value` rows whose key is listed, keeping the layout: the
/// value column is last, so its width never moves other cells.
pub fn mask_rows(text: &str, keys: &[&str]) -> String {
    text.lines()
        .map(|line| {
            let key = line.split_whitespace().next().unwrap_or_default();
            if keys.contains(&key) && line.len() > key.len() {
                let rest = &line[key.len()..];
                let gap = rest.len() - rest.trim_start().len();
                format!("{key}{}<masked>", " ".repeat(gap))
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Removes volatile fields (ids, times, tokens) anywhere in a JSON document.
pub fn strip_json(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Object(map) => {
            for key in keys {
                if map.contains_key(*key) {
                    map.insert((*key).to_owned(), Value::String("<masked>".to_owned()));
                }
            }
            for v in map.values_mut() {
                strip_json(v, keys);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_json(v, keys)),
        _ => {}
    }
}

/// The object keys of a JSON document, recursively, as `a.b.c` paths.
pub fn key_paths(value: &Value) -> Vec<String> {
    fn walk(value: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = value {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                walk(v, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out.sort();
    out
}
