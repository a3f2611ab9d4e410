//! Runs the real `secretvault-operator dev` server and the real `secretvault-agent` binary
//! on 127.0.0.1, and mints ServiceAccount tokens with a key the server is told to trust.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const ROOT: &str = "test-root-token";
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The dev server binary: `$SECRETVAULT_OPERATOR_BIN`, else `secretvault-operator` in
/// this test's own target directory, built first if it is missing. (An agent test cannot
/// name another package's binary with `CARGO_BIN_EXE_*`; a workspace-wide `cargo test`
/// builds it anyway. After changing the server, `cargo build -p secretvault-operator`.)
pub fn operator_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SECRETVAULT_OPERATOR_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> → target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile directory")
            .to_path_buf();
        let bin = profile_dir.join("secretvault-operator");
        if !bin.is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let target_dir = profile_dir.parent().expect("target directory");
            let mut cmd = Command::new(cargo);
            // The variables cargo sets for this test would make the nested build see a
            // different environment from a plain one, and rebuild needlessly.
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy().into_owned();
                if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k == "OUT_DIR" {
                    cmd.env_remove(k);
                }
            }
            let status = cmd
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "secretvault-operator",
                    "--bin",
                    "secretvault-operator",
                ])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(&workspace)
                .status()
                .expect("running cargo build for the dev server");
            assert!(status.success(), "building secretvault-operator failed");
        }
        assert!(bin.is_file(), "no dev server binary at {}", bin.display());
        bin
    })
    .clone()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct DevServer {
    pub child: Option<Child>,
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    _temp: tempfile::TempDir,
}

impl DevServer {
    pub fn start() -> DevServer {
        Self::start_with(&[])
    }

    /// A server on a fresh data dir and a fixed port (so it can be restarted in place).
    pub fn start_with(extra: &[&str]) -> DevServer {
        let temp = tempfile::tempdir().expect("temp data dir");
        let mut server = DevServer {
            child: None,
            url: String::new(),
            port: free_port(),
            data_dir: temp.path().join("data"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _temp: temp,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut child = Command::new(operator_binary())
            .args(["dev", "--root-token", ROOT])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
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
        self.url = url;
        self.child = Some(child);
    }

    /// SIGTERM and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let status = terminate(&mut c, Duration::from_secs(15));
            assert!(status.success(), "the dev server exited with {status}");
        }
    }

    /// Starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, ROOT)
    }

    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("audit.log")).unwrap_or_default()
    }

    /// How many Kubernetes logins the audit log recorded (one request line each).
    pub fn kubernetes_logins(&self) -> usize {
        self.audit_log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "request" && v["request"]["path"] == "auth/kubernetes/login")
            .count()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGTERM, then wait (SIGKILL and panic after `within`).
pub fn terminate(child: &mut Child, within: Duration) -> ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    wait_exit(child, within).unwrap_or_else(|| {
        let _ = child.kill();
        panic!(
            "process {} did not exit within {within:?} of SIGTERM",
            child.id()
        )
    })
}

pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A small Vault API client: every call returns (status, JSON body or Null).
pub struct Client {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
        }
    }

    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}/v1/{}", self.base, path))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(&body))
    }

    pub fn write_kv(&self, path: &str, data: Value) {
        let (s, b) = self.post(&format!("secret/data/{path}"), json!({ "data": data }));
        assert_eq!(s, 200, "writing secret/data/{path}: {b}");
    }

    pub fn write_policy(&self, name: &str, hcl: &str) {
        let (s, b) = self.send(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(&json!({ "policy": hcl })),
        );
        assert_eq!(s, 204, "policy write: {b}");
    }

    /// Creates a token with `body`'s parameters and returns it.
    pub fn token(&self, body: Value) -> String {
        let (status, resp) = self.post("auth/token/create", body);
        assert_eq!(status, 200, "token create: {resp}");
        resp["auth"]["client_token"].as_str().unwrap().to_string()
    }
}

/// A cluster's ServiceAccount token signer, played by the test.
pub struct Signer {
    encoding: EncodingKey,
    pub public_pem: String,
}

pub fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        Signer {
            encoding: EncodingKey::from_rsa_pem(
                key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
            )
            .unwrap(),
            public_pem: key
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        }
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A projected ServiceAccount token for pod `<name>-7d9f` of service account
/// `namespace/name`, audience `secretvault`, as the kubelet would mount it.
pub fn sa_token(namespace: &str, name: &str) -> String {
    let claims = json!({
        "aud": ["secretvault"],
        "exp": now() + 600,
        "iat": now(),
        "nbf": now(),
        "iss": ISSUER,
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": format!("{name}-7d9f"), "uid": "0b8c3c6e-pod"},
            "serviceaccount": {"name": name, "uid": format!("{namespace}-{name}-uid")},
        },
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    });
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &signer().encoding).unwrap()
}

/// Trusts [`signer`]'s key and creates role `role` for `namespace/name` with `policies`.
pub fn kubernetes_role(c: &Client, role: &str, namespace: &str, name: &str, extra: Value) {
    let (s, b) = c.post(
        "auth/kubernetes/config",
        json!({
            "kubernetes_host": "https://kubernetes.default.svc",
            "pem_keys": [signer().public_pem],
            "issuer": ISSUER,
        }),
    );
    assert_eq!(s, 204, "{b}");
    let mut body = json!({
        "bound_service_account_names": [name],
        "bound_service_account_namespaces": [namespace],
        "audience": "secretvault",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let (s, b) = c.post(&format!("auth/kubernetes/role/{role}"), body);
    assert_eq!(s, 204, "{b}");
}

/// A running `secretvault-agent`, its stderr collected.
pub struct Agent {
    pub child: Child,
    log: Arc<Mutex<String>>,
    pub started: Instant,
}

pub fn agent_binary() -> &'static str {
    env!("CARGO_BIN_EXE_secretvault-agent")
}

impl Agent {
    /// Starts the agent with `args`, the configuration in `config` (written to a file).
    pub fn start(dir: &Path, config: &Value, args: &[&str]) -> Agent {
        let path = dir.join("agent.json");
        std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let mut cmd = Command::new(agent_binary());
        cmd.args(args).arg("--config").arg(&path);
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Agent {
        let started = Instant::now();
        let mut child = cmd
            .env_remove("SECRETVAULT_AGENT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning secretvault-agent");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[agent] {line}");
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Agent {
            child,
            log,
            started,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        wait_until(within, || self.log().contains(needle))
    }

    pub fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.child, Duration::from_secs(10))
    }

    pub fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        wait_exit(&mut self.child, within)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 10 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `path` holds exactly `content`.
pub fn wait_content(path: &Path, content: &str, within: Duration) -> bool {
    wait_until(within, || {
        std::fs::read_to_string(path).is_ok_and(|c| c == content)
    })
}

/// A configuration for the dev server with token-file auth.
pub fn token_file_config(server: &str, token_file: &Path, secrets: Value) -> Value {
    json!({
        "server": {"address": server},
        "auth": {"type": "token-file", "path": token_file},
        "secrets": secrets,
    })
}

pub const SEED_TEMPLATE: &str = r#"{{- with secret "secret/data/lobstack/api-keys" -}}
export ANTHROPIC_API_KEY="{{ .Data.data.anthropic_api_key }}"
export OPENAI_API_KEY="{{ .Data.data.openai_api_key }}"
export STRIPE_SECRET_KEY="{{ .Data.data.stripe_secret_key }}"
{{- end -}}
"#;
