//! Runs the real `secretvault-operator dev` binary on 127.0.0.1 for integration tests.

#![allow(dead_code)]

pub mod differential;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ROOT: &str = "test-root-token";

pub struct DevServer {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    // Keeps an owned temporary data dir alive for the server's lifetime.
    _temp: Option<tempfile::TempDir>,
}

impl DevServer {
    /// A server on a fresh temporary data dir.
    pub fn start() -> DevServer {
        let temp = tempfile::tempdir().expect("temp data dir");
        let mut server = Self::start_in(temp.path(), &[]);
        server._temp = Some(temp);
        server
    }

    /// A server on `data_dir` (kept after the server stops), with extra arguments.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> DevServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_secretvault-operator"))
            .args(["dev", "--listen", "127.0.0.1:0", "--root-token", ROOT])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning secretvault-operator dev");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("API address:") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("the dev server did not print its address within 60 s")
            });
        DevServer {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, ROOT)
    }

    pub fn client_with(&self, token: &str) -> Client {
        Client::new(&self.url, token)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the server") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small Vault API client: every call returns (status, JSON body or Null).
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: Some(token.to_string()),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
        }
    }

    pub fn anonymous(base: &str) -> Client {
        let mut c = Client::new(base, "");
        c.token = None;
        c
    }

    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(
            method,
            format!("{}/v1/{}", self.base, path.trim_start_matches('/')),
        );
        if let Some(t) = &self.token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(b).expect("JSON"));
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Like `post`, but a failed connection is `None` instead of a panic (for crash tests).
    pub fn try_post(&self, path: &str, body: &Value) -> Option<u16> {
        let mut req = self
            .http
            .post(format!("{}/v1/{path}", self.base))
            .json(body);
        if let Some(t) = &self.token {
            req = req.header("X-Vault-Token", t);
        }
        req.send().ok().map(|r| r.status().as_u16())
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }

    pub fn list(&self, path: &str) -> (u16, Value) {
        self.send("LIST", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(&body))
    }

    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PUT", path, Some(&body))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, None)
    }

    pub fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let mut req = self
            .http
            .patch(format!("{}/v1/{path}", self.base))
            .header("Content-Type", "application/merge-patch+json");
        if let Some(t) = &self.token {
            req = req.header("X-Vault-Token", t);
        }
        let resp = req
            .body(serde_json::to_vec(&body).expect("JSON"))
            .send()
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// Creates a token with `body`'s parameters and returns it.
    pub fn token(&self, body: Value) -> String {
        let (status, resp) = self.post("auth/token/create", body);
        assert_eq!(status, 200, "token create: {resp}");
        resp["auth"]["client_token"]
            .as_str()
            .expect("client_token")
            .to_string()
    }

    pub fn write_policy(&self, name: &str, hcl: &str) {
        let (status, resp) = self.put(
            &format!("sys/policies/acl/{name}"),
            serde_json::json!({ "policy": hcl }),
        );
        assert_eq!(status, 204, "policy write: {resp}");
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
