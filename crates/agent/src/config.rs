//! The agent's configuration: JSON, from `SECRETVAULT_AGENT_CONFIG` (base64, what the
//! injector writes) or a file (`--config`, for local use). The reference is in
//! `docs/agent.md`.
//!
//! Validation collects every problem before failing, so a user fixes a config in one go:
//! each names the field (`secrets[1].perms`), what is wrong with it, and what to do.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::duration;
use crate::template::Template;

/// The environment variable holding the base64-encoded JSON configuration.
pub const CONFIG_ENV: &str = "SECRETVAULT_AGENT_CONFIG";
/// Where a secret's file goes unless it says otherwise: `<dir>/<name>`.
pub const DEFAULT_SECRETS_DIR: &str = "/vault/secrets";
/// The projected ServiceAccount token the kubelet keeps fresh.
pub const DEFAULT_SA_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Written after the first complete render; `secretvault-agent probe` checks it.
pub const DEFAULT_READY_FILE: &str = "/vault/secrets/.secretvault-agent-ready";

pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
pub const DEFAULT_INIT_DEADLINE: Duration = Duration::from_secs(120);
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_PERMS: u32 = 0o640;
/// Shorter refresh intervals would hammer the server; the watch endpoint is for speed.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub auth: Auth,
    pub secrets: Vec<SecretSpec>,
    pub refresh_interval: Duration,
    pub mode: Mode,
    pub init_deadline: Duration,
    pub command_timeout: Duration,
    pub ready_file: PathBuf,
    pub revoke_on_shutdown: bool,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct Server {
    /// `scheme://host[:port]`, without a trailing slash.
    pub address: String,
    pub https: bool,
    /// PEM CA certificates to trust instead of the system's.
    pub ca_pem: Option<String>,
}

#[derive(Clone)]
pub enum Auth {
    Kubernetes {
        role: String,
        token_path: PathBuf,
        mount: String,
    },
    TokenFile {
        path: PathBuf,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Kubernetes {
                role,
                token_path,
                mount,
            } => f
                .debug_struct("Kubernetes")
                .field("role", role)
                .field("token_path", token_path)
                .field("mount", mount)
                .finish(),
            Auth::TokenFile { path } => f.debug_struct("TokenFile").field("path", path).finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SecretSpec {
    pub name: String,
    /// The secret's path, normalised like a template's `secret "…"` argument.
    pub path: Option<String>,
    pub template: Option<Arc<Template>>,
    pub file: PathBuf,
    pub perms: u32,
    pub command: Option<String>,
    pub error_on_missing_key: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Init,
    Sidecar,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Init => "init",
            Mode::Sidecar => "sidecar",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `secrets[1].perms`, or `config` for the document as a whole.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Everything wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where the configuration came from (`SECRETVAULT_AGENT_CONFIG`, a file path).
    pub source_name: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid agent configuration (from {}): {n} problem{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}", p.field, p.message)?;
        }
        Ok(())
    }
}

/// Where the configuration text comes from.
pub enum ConfigSource<'a> {
    /// The value of [`CONFIG_ENV`]: base64 of the JSON.
    Env(&'a str),
    /// A JSON file.
    File(&'a Path),
}

/// Reads and validates a configuration.
pub fn load(source: ConfigSource<'_>) -> Result<Config, ConfigError> {
    let (source_name, json) = match source {
        ConfigSource::Env(value) => {
            let name = CONFIG_ENV.to_string();
            let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&compact)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&compact))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&compact));
            match decoded {
                Ok(bytes) => (name, bytes),
                Err(e) => {
                    return Err(single(
                        name,
                        CONFIG_ENV,
                        format!(
                            "not valid base64 ({e}); set it to the base64 of the JSON configuration (`base64 -w0 config.json`)"
                        ),
                    ));
                }
            }
        }
        ConfigSource::File(path) => {
            let name = path.display().to_string();
            match std::fs::read(path) {
                Ok(bytes) => (name, bytes),
                Err(e) => {
                    return Err(single(
                        name,
                        "--config",
                        format!(
                            "cannot read {}: {e}; pass the path of a JSON configuration file",
                            path.display()
                        ),
                    ));
                }
            }
        }
    };
    parse(&source_name, &json)
}

fn single(source_name: String, field: &str, message: String) -> ConfigError {
    ConfigError {
        source_name,
        problems: vec![Problem {
            field: field.to_string(),
            message,
        }],
    }
}

/// Validates the JSON text of a configuration; `source_name` appears in the error.
pub fn parse(source_name: &str, json: &[u8]) -> Result<Config, ConfigError> {
    let value: Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            return Err(single(
                source_name.to_string(),
                "config",
                format!(
                    "not valid JSON: {e}; the configuration is one JSON object (see docs/agent.md)"
                ),
            ));
        }
    };
    let mut v = Validator::default();
    let config = v.config(&value);
    match config {
        Some(c) if v.problems.is_empty() => Ok(c),
        _ => Err(ConfigError {
            source_name: source_name.to_string(),
            problems: v.problems,
        }),
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

const TOP_FIELDS: &[&str] = &[
    "server",
    "auth",
    "secrets",
    "refresh_interval",
    "mode",
    "init_deadline",
    "command_timeout",
    "ready_file",
    "revoke_on_shutdown",
    "log_level",
    "log_format",
];
const SERVER_FIELDS: &[&str] = &["address", "ca_file", "ca_pem"];
const K8S_FIELDS: &[&str] = &["type", "role", "token_path", "mount"];
const TOKEN_FILE_FIELDS: &[&str] = &["type", "path"];
const SECRET_FIELDS: &[&str] = &[
    "name",
    "path",
    "template",
    "file",
    "perms",
    "command",
    "error_on_missing_key",
];

impl Validator {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    /// The object at `field`, with unknown keys reported.
    fn object<'v>(
        &mut self,
        field: &str,
        v: &'v Value,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = v else {
            self.problem(field, format!("expected a JSON object, found {}", kind(v)));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let path = join(field, key);
                let advice = match closest(key, known) {
                    Some(k) => format!("did you mean {k:?}?"),
                    None => "remove it.".to_string(),
                };
                self.problem(
                    path,
                    format!(
                        "unknown field; {advice} Known fields here: {}",
                        known.join(", ")
                    ),
                );
            }
        }
        Some(map)
    }

    fn string(&mut self, field: &str, v: Option<&Value>, required: Option<&str>) -> Option<String> {
        match v {
            None | Some(Value::Null) => {
                if let Some(what) = required {
                    self.problem(field, format!("missing; set it to {what}"));
                }
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.problem(
                    field,
                    match required {
                        Some(what) => format!("empty; set it to {what}"),
                        None => "empty; remove it or give it a value".to_string(),
                    },
                );
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(field, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    fn duration(&mut self, field: &str, v: Option<&Value>, default: Duration) -> Duration {
        let parsed = match v {
            None | Some(Value::Null) => return default,
            Some(Value::String(s)) => {
                duration::parse(s).map_err(|e| format!("{s:?} is not a duration: {e}"))
            }
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Duration::from_secs)
                .ok_or_else(|| format!("{n} is not a whole, non-negative number of seconds")),
            Some(other) => Err(format!("expected a duration, found {}", kind(other))),
        };
        match parsed {
            Ok(d) if d.is_zero() => {
                self.problem(
                    field,
                    "must be longer than zero; write it like \"5m\" or \"30s\"",
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(field, format!("{e}; write it like \"5m\" or \"30s\""));
                default
            }
        }
    }

    fn bool(&mut self, field: &str, v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.problem(
                    field,
                    format!("expected true or false, found {}", kind(other)),
                );
                false
            }
        }
    }

    fn choice<'a>(
        &mut self,
        field: &str,
        v: Option<&Value>,
        choices: &[&'a str],
        default: &'a str,
    ) -> &'a str {
        let Some(s) = self.string(field, v, None) else {
            return default;
        };
        match choices.iter().find(|c| **c == s) {
            Some(c) => c,
            None => {
                self.problem(
                    field,
                    format!(
                        "{s:?} is not one of {}; use one of those",
                        quoted_list(choices)
                    ),
                );
                default
            }
        }
    }

    fn config(&mut self, v: &Value) -> Option<Config> {
        let map = self.object("config", v, TOP_FIELDS)?;
        let server = self.server(map.get("server"));
        let auth = self.auth(map.get("auth"));
        let refresh_interval = self.duration(
            "refresh_interval",
            map.get("refresh_interval"),
            DEFAULT_REFRESH,
        );
        if refresh_interval < MIN_REFRESH {
            self.problem(
                "refresh_interval",
                format!(
                    "{} is too short; use at least {} (changes arrive through the server's watch endpoint anyway)",
                    duration::display(refresh_interval),
                    duration::display(MIN_REFRESH)
                ),
            );
        }
        let mode = match self.choice("mode", map.get("mode"), &["init", "sidecar"], "sidecar") {
            "init" => Mode::Init,
            _ => Mode::Sidecar,
        };
        let init_deadline = self.duration(
            "init_deadline",
            map.get("init_deadline"),
            DEFAULT_INIT_DEADLINE,
        );
        let command_timeout = self.duration(
            "command_timeout",
            map.get("command_timeout"),
            DEFAULT_COMMAND_TIMEOUT,
        );
        let ready_file = match self.string("ready_file", map.get("ready_file"), None) {
            Some(s) => PathBuf::from(s),
            None => PathBuf::from(DEFAULT_READY_FILE),
        };
        let revoke_on_shutdown = self.bool("revoke_on_shutdown", map.get("revoke_on_shutdown"));
        let log_level = match self.choice(
            "log_level",
            map.get("log_level"),
            &["error", "warn", "info", "debug", "trace"],
            "info",
        ) {
            "error" => tracing::Level::ERROR,
            "warn" => tracing::Level::WARN,
            "debug" => tracing::Level::DEBUG,
            "trace" => tracing::Level::TRACE,
            _ => tracing::Level::INFO,
        };
        let log_format = match self.choice(
            "log_format",
            map.get("log_format"),
            &["text", "json"],
            "text",
        ) {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let secrets = self.secrets(map.get("secrets"), &ready_file);
        Some(Config {
            server: server?,
            auth: auth?,
            secrets,
            refresh_interval,
            mode,
            init_deadline,
            command_timeout,
            ready_file,
            revoke_on_shutdown,
            log_level,
            log_format,
        })
    }

    fn server(&mut self, v: Option<&Value>) -> Option<Server> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            self.problem(
                "server",
                "missing; set it to an object like {\"address\": \"https://secretvault.secretvault.svc:8200\"}",
            );
            return None;
        };
        let map = self.object("server", v, SERVER_FIELDS)?;
        let address = self.string(
            "server.address",
            map.get("address"),
            Some("the server's URL, like \"https://secretvault.secretvault.svc:8200\""),
        );
        let address = address.and_then(|a| match check_address(&a) {
            Ok(ok) => Some(ok),
            Err(e) => {
                self.problem("server.address", e);
                None
            }
        });
        let ca_file = self.string("server.ca_file", map.get("ca_file"), None);
        let ca_inline = self.string("server.ca_pem", map.get("ca_pem"), None);
        let ca_pem = match (ca_file, ca_inline) {
            (Some(_), Some(_)) => {
                self.problem(
                    "server.ca_file",
                    "set together with server.ca_pem; give the CA bundle one way only",
                );
                None
            }
            (Some(path), None) => match std::fs::read_to_string(&path) {
                Ok(pem) => self.check_pem("server.ca_file", &pem, &format!("the file {path}")),
                Err(e) => {
                    self.problem(
                        "server.ca_file",
                        format!("cannot read {path:?}: {e}; point it at the PEM CA bundle that signed the server's certificate"),
                    );
                    None
                }
            },
            (None, Some(pem)) => self.check_pem("server.ca_pem", &pem, "the value"),
            (None, None) => None,
        };
        let (address, https) = address?;
        Some(Server {
            address,
            https,
            ca_pem,
        })
    }

    fn check_pem(&mut self, field: &str, pem: &str, what: &str) -> Option<String> {
        let mut reader = pem.as_bytes();
        let mut count = 0;
        for item in rustls_pemfile::certs(&mut reader) {
            match item {
                Ok(_) => count += 1,
                Err(e) => {
                    self.problem(
                        field,
                        format!("{what} is not a valid PEM bundle ({e}); give PEM certificates (-----BEGIN CERTIFICATE-----)"),
                    );
                    return None;
                }
            }
        }
        if count == 0 {
            self.problem(
                field,
                format!("{what} holds no PEM certificate; give the CA certificate(s) as -----BEGIN CERTIFICATE----- blocks"),
            );
            return None;
        }
        Some(pem.to_string())
    }

    fn auth(&mut self, v: Option<&Value>) -> Option<Auth> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            self.problem(
                "auth",
                "missing; set it to {\"type\": \"kubernetes\", \"role\": \"<role>\"} or {\"type\": \"token-file\", \"path\": \"<file>\"}",
            );
            return None;
        };
        let Value::Object(map) = v else {
            self.problem("auth", format!("expected a JSON object, found {}", kind(v)));
            return None;
        };
        let ty = self.string(
            "auth.type",
            map.get("type"),
            Some("\"kubernetes\" or \"token-file\""),
        )?;
        match ty.as_str() {
            "kubernetes" => {
                let map = self.object("auth", v, K8S_FIELDS)?;
                let role = self.string(
                    "auth.role",
                    map.get("role"),
                    Some("the Kubernetes auth role to log in as (auth/kubernetes/role/<name>)"),
                );
                let token_path = self
                    .string("auth.token_path", map.get("token_path"), None)
                    .unwrap_or_else(|| DEFAULT_SA_TOKEN_PATH.to_string());
                let mount = self
                    .string("auth.mount", map.get("mount"), None)
                    .unwrap_or_else(|| "kubernetes".to_string());
                let mount = mount.trim_matches('/').to_string();
                if mount.is_empty()
                    || !mount
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                    || mount
                        .split('/')
                        .any(|s| s.is_empty() || s == "." || s == "..")
                {
                    self.problem(
                        "auth.mount",
                        format!("{mount:?} is not a mount path; use the path the method is enabled at, like \"kubernetes\""),
                    );
                }
                Some(Auth::Kubernetes {
                    role: role?,
                    token_path: PathBuf::from(token_path),
                    mount,
                })
            }
            "token-file" => {
                let map = self.object("auth", v, TOKEN_FILE_FIELDS)?;
                let path = self.string(
                    "auth.path",
                    map.get("path"),
                    Some("the file holding the vault token"),
                )?;
                Some(Auth::TokenFile {
                    path: PathBuf::from(path),
                })
            }
            other => {
                self.problem(
                    "auth.type",
                    format!("{other:?} is not an auth method the agent knows; use \"kubernetes\" (in a pod) or \"token-file\" (local use)"),
                );
                None
            }
        }
    }

    fn secrets(&mut self, v: Option<&Value>, ready_file: &Path) -> Vec<SecretSpec> {
        let list = match v {
            Some(Value::Array(list)) if !list.is_empty() => list,
            Some(Value::Array(_)) | None | Some(Value::Null) => {
                self.problem(
                    "secrets",
                    "no secrets to render; add at least one {\"name\": \"…\", \"path\": \"secret/data/…\"}",
                );
                return Vec::new();
            }
            Some(other) => {
                self.problem(
                    "secrets",
                    format!("expected a list of secrets, found {}", kind(other)),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut names = BTreeSet::new();
        let mut files = BTreeSet::new();
        for (i, item) in list.iter().enumerate() {
            let field = format!("secrets[{i}]");
            if let Some(spec) = self.secret(&field, item) {
                if !names.insert(spec.name.clone()) {
                    self.problem(
                        format!("{field}.name"),
                        format!(
                            "{:?} is used by an earlier secret; give each secret its own name",
                            spec.name
                        ),
                    );
                }
                let normalized = normalize_file(&spec.file);
                if normalized == normalize_file(ready_file) {
                    self.problem(
                        format!("{field}.file"),
                        format!("{} is the agent's ready_file; choose another file (or move ready_file)", spec.file.display()),
                    );
                } else if !files.insert(normalized) {
                    self.problem(
                        format!("{field}.file"),
                        format!(
                            "{} is written by an earlier secret too; give each secret its own file",
                            spec.file.display()
                        ),
                    );
                }
                out.push(spec);
            }
        }
        out
    }

    fn secret(&mut self, field: &str, v: &Value) -> Option<SecretSpec> {
        let map = self.object(field, v, SECRET_FIELDS)?;
        let name = self.string(
            &join(field, "name"),
            map.get("name"),
            Some("a name for the secret (its default file is /vault/secrets/<name>)"),
        );
        if let Some(n) = &name
            && (n == "."
                || n == ".."
                || n.len() > 253
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            self.problem(
                join(field, "name"),
                format!("{n:?} is not a usable name; use letters, digits, '-', '_' and '.' (it names the file)"),
            );
        }
        let path = self
            .string(&join(field, "path"), map.get("path"), None)
            .map(|p| p.trim().trim_matches('/').to_string());
        if matches!(&path, Some(p) if p.is_empty()) {
            self.problem(
                join(field, "path"),
                "holds only slashes; give the secret's path, like \"secret/data/app\"",
            );
        }
        let template_text = self.string(&join(field, "template"), map.get("template"), None);
        let template = template_text.and_then(|text| {
            match Template::parse(name.as_deref().unwrap_or(""), &text) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    self.problem(
                        join(field, "template"),
                        format!("does not parse: {e}; fix the template (Go text/template syntax, as consul-template)"),
                    );
                    None
                }
            }
        });
        if path.is_none() && template.is_none() && !map.contains_key("template") {
            self.problem(
                field,
                "has neither path nor template; give the path to read (its keys become an env file) or a template",
            );
        }
        let file = self
            .string(&join(field, "file"), map.get("file"), None)
            .map(PathBuf::from);
        if let Some(f) = &file
            && (f.file_name().is_none() || f.to_string_lossy().ends_with('/'))
        {
            self.problem(
                join(field, "file"),
                format!(
                    "{} names a directory, not a file; give the file's full path",
                    f.display()
                ),
            );
        }
        let perms = match map.get("perms") {
            None | Some(Value::Null) => DEFAULT_PERMS,
            Some(Value::String(s)) => match parse_perms(s) {
                Some(m) => m,
                None => {
                    self.problem(
                        join(field, "perms"),
                        format!("{s:?} is not an octal file mode; write it like \"0640\" (permission bits only, at most 0777)"),
                    );
                    DEFAULT_PERMS
                }
            },
            Some(other) => {
                self.problem(
                    join(field, "perms"),
                    format!("expected an octal string like \"0640\", found {}; quote it so it is not read as decimal", kind(other)),
                );
                DEFAULT_PERMS
            }
        };
        let command = self.string(&join(field, "command"), map.get("command"), None);
        let error_on_missing_key = self.bool(
            &join(field, "error_on_missing_key"),
            map.get("error_on_missing_key"),
        );
        let name = name?;
        let file = file.unwrap_or_else(|| Path::new(DEFAULT_SECRETS_DIR).join(&name));
        Some(SecretSpec {
            name,
            path,
            template,
            file,
            perms,
            command,
            error_on_missing_key,
        })
    }
}

/// `scheme://host[:port]` → (address without trailing slash, https?).
fn check_address(a: &str) -> Result<(String, bool), String> {
    let a = a.trim().trim_end_matches('/');
    let (https, rest) = if let Some(rest) = a.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = a.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!(
            "{a:?} is not an http:// or https:// URL; write it like \"https://secretvault.secretvault.svc:8200\""
        ));
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "{a:?} must be scheme://host[:port] with no path, query or credentials; write it like \"https://secretvault.secretvault.svc:8200\""
        ));
    }
    match http::Uri::try_from(a) {
        Ok(u) if u.host().is_some_and(|h| !h.is_empty()) => Ok((a.to_string(), https)),
        _ => Err(format!(
            "{a:?} is not a valid URL; write it like \"https://secretvault.secretvault.svc:8200\""
        )),
    }
}

/// Octal permission bits: `"0640"`, `"640"`, `"0o640"`.
pub fn parse_perms(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
}

fn normalize_file(p: &Path) -> PathBuf {
    p.components().collect()
}

fn join(field: &str, key: &str) -> String {
    if field == "config" {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The known name nearest to a misspelt one, if it is near enough to be a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let v = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(v);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> Config {
        parse("test", v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(v: Value) -> Vec<(String, String)> {
        match parse("test", v.to_string().as_bytes()) {
            Ok(_) => panic!("accepted {v}"),
            Err(e) => e
                .problems
                .into_iter()
                .map(|p| (p.field, p.message))
                .collect(),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = ok(json!({
            "server": {"address": "http://127.0.0.1:8200/"},
            "auth": {"type": "kubernetes", "role": "app"},
            "secrets": [{"name": "db", "path": "/secret/data/db/"}],
        }));
        assert_eq!(c.server.address, "http://127.0.0.1:8200");
        assert!(!c.server.https);
        match &c.auth {
            Auth::Kubernetes {
                role,
                token_path,
                mount,
            } => {
                assert_eq!(role, "app");
                assert_eq!(token_path, Path::new(DEFAULT_SA_TOKEN_PATH));
                assert_eq!(mount, "kubernetes");
            }
            other => panic!("{other:?}"),
        }
        let s = &c.secrets[0];
        assert_eq!(s.path.as_deref(), Some("secret/data/db"));
        assert_eq!(s.file, Path::new("/vault/secrets/db"));
        assert_eq!(s.perms, 0o640);
        assert_eq!(c.refresh_interval, DEFAULT_REFRESH);
        assert_eq!(c.mode, Mode::Sidecar);
        assert_eq!(c.init_deadline, DEFAULT_INIT_DEADLINE);
        assert!(!c.revoke_on_shutdown);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(json!({
            "server": {"address": "ftp://x", "ca_file": "/nonexistent/ca.pem"},
            "auth": {"type": "kubernetes"},
            "secrets": [
                {"name": "a", "path": "secret/data/a", "perms": "999"},
                {"name": "a", "tempalte": "x"},
                {"name": "b/c", "template": "{{ if }}", "perms": 640},
            ],
            "refresh_interval": "5x",
            "mode": "daemon",
            "extra": 1,
        }));
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        for expected in [
            "extra",
            "server.address",
            "server.ca_file",
            "auth.role",
            "refresh_interval",
            "mode",
            "secrets[0].perms",
            "secrets[1].tempalte",
            "secrets[1]",
            "secrets[1].name",
            "secrets[2].name",
            "secrets[2].template",
            "secrets[2].perms",
        ] {
            assert!(fields.contains(&expected), "{expected} missing from {p:#?}");
        }
        let typo = p.iter().find(|(f, _)| f == "secrets[1].tempalte").unwrap();
        assert!(typo.1.contains("did you mean \"template\""), "{}", typo.1);
    }

    #[test]
    fn env_source_is_base64_json() {
        let json = json!({
            "server": {"address": "http://127.0.0.1:1"},
            "auth": {"type": "token-file", "path": "/t"},
            "secrets": [{"name": "x", "path": "secret/x"}],
        })
        .to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        let wrapped = format!("{}\n{}", &b64[..10], &b64[10..]);
        assert!(load(ConfigSource::Env(&wrapped)).is_ok());
        let e = load(ConfigSource::Env("!!!")).unwrap_err();
        assert_eq!(e.problems[0].field, CONFIG_ENV);
        let e = load(ConfigSource::Env(
            &base64::engine::general_purpose::STANDARD.encode("{"),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }

    #[test]
    fn perms_are_octal_strings() {
        assert_eq!(parse_perms("0640"), Some(0o640));
        assert_eq!(parse_perms("400"), Some(0o400));
        assert_eq!(parse_perms("0o600"), Some(0o600));
        assert_eq!(parse_perms("0999"), None);
        assert_eq!(parse_perms("4755"), None);
        assert_eq!(parse_perms(""), None);
    }

    #[test]
    fn files_must_be_distinct() {
        let p = problems(json!({
            "server": {"address": "http://127.0.0.1:8200"},
            "auth": {"type": "token-file", "path": "/t"},
            "secrets": [
                {"name": "a", "path": "secret/a", "file": "/tmp/x/f"},
                {"name": "b", "path": "secret/b", "file": "/tmp/x//f"},
                {"name": "c", "path": "secret/c", "file": "/tmp/ready"},
            ],
            "ready_file": "/tmp/ready",
        }));
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
