//! A blocking client for Vault's HTTP API: where the server is (`VAULT_ADDR`), which CA
//! to trust (`VAULT_CACERT`), which token to send (`VAULT_TOKEN`, else `~/.vault-token`),
//! and the Go client's rules for turning responses into secrets or errors.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::{Client as HttpClient, Response};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::secret::{ParseError, Secret, parse_secret};

/// The Vault CLI's default request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Larger responses are refused rather than buffered without bound.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// A Vault token. Never printed by `Debug`.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    pub fn new(token: String) -> Token {
        Token(Zeroizing::new(token))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Problems with the client's configuration, found before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "VAULT_ADDR {address:?} is not a usable server address: {reason}; set it like http://127.0.0.1:8200"
    )]
    Address { address: String, reason: String },
    #[error("reading the CA bundle VAULT_CACERT={path:?}: {source}")]
    CaRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the CA bundle VAULT_CACERT={path:?} {reason}; it must hold PEM \"CERTIFICATE\" blocks"
    )]
    CaParse { path: PathBuf, reason: String },
    #[error(
        "reading the token file {path:?}: {source}; fix its permissions, or set VAULT_TOKEN instead"
    )]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// Where to connect and with what.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub address: String,
    pub ca_cert: Option<PathBuf>,
    pub token: Option<Token>,
}

/// The token the Vault CLI would use: `VAULT_TOKEN` when set and not empty, else the
/// contents of `~/.vault-token` (trimmed), else none.
pub fn resolve_token(
    env_token: Option<OsString>,
    home: Option<&Path>,
) -> Result<Option<Token>, ConfigError> {
    if let Some(token) = env_token.and_then(|t| t.into_string().ok()) {
        let token = token.trim();
        if !token.is_empty() {
            return Ok(Some(Token::new(token.to_owned())));
        }
    }
    let Some(home) = home else {
        return Ok(None);
    };
    let path = home.join(".vault-token");
    match std::fs::read_to_string(&path) {
        Ok(contents) => {
            let token = Zeroizing::new(contents);
            let token = token.trim();
            Ok((!token.is_empty()).then(|| Token::new(token.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::TokenFile { path, source }),
    }
}

/// `strconv.ParseBool`'s true values, which is how the Vault CLI reads its boolean variables.
pub fn env_flag_is_true(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// An error status from the server, printed as the Vault CLI prints it.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ApiError {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub errors: Vec<String>,
    /// The body was not JSON; `errors` holds it as text.
    pub raw: bool,
    /// No token was sent, which is the usual cause of a 403 from a CLI.
    pub no_token: bool,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.raw { "Raw Message" } else { "Errors" };
        write!(
            f,
            "Error making API request.\n\nURL: {} {}\nCode: {}. {kind}:\n\n",
            self.method, self.url, self.status
        )?;
        if self.raw && self.errors.len() == 1 {
            f.write_str(&self.errors[0])?;
        } else {
            let lines: Vec<String> = self.errors.iter().map(|e| format!("* {e}")).collect();
            f.write_str(&lines.join("\n"))?;
        }
        if self.no_token && (self.status == 401 || self.status == 403) {
            f.write_str(
                "\n\nNo token was sent: set VAULT_TOKEN, or write a token to ~/.vault-token.",
            )?;
        }
        Ok(())
    }
}

/// The request never got an HTTP answer (connection refused, TLS failure, timeout).
#[derive(Debug, thiserror::Error)]
#[error("{op} \"{url}\": {detail}")]
pub struct TransportError {
    op: String,
    url: String,
    detail: String,
}

/// Anything that went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Unexpected(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.status),
            _ => None,
        }
    }
}

/// The raw outcome of one request.
#[derive(Debug)]
pub struct RawResponse {
    pub status: StatusCode,
    pub body: Vec<u8>,
    method: Method,
    url: Url,
}

impl RawResponse {
    /// `Ok` for 2xx and 3xx, as the Go client counts success.
    fn check(self, no_token: bool) -> Result<RawResponse, ApiError> {
        let code = self.status.as_u16();
        if (200..400).contains(&code) {
            return Ok(self);
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            #[serde(default)]
            errors: Option<Vec<String>>,
        }
        let (errors, raw) = match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => (body.errors.unwrap_or_default(), false),
            Err(_) => (vec![String::from_utf8_lossy(&self.body).into_owned()], true),
        };
        Err(ApiError {
            method: self.method.to_string(),
            url: self.url.to_string(),
            status: code,
            errors,
            raw,
            no_token,
        })
    }
}

/// A request body and how it is labelled.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// An RFC 7396 JSON merge patch (`kv patch`).
    MergePatch(&'a Value),
}

/// A connection to one Vault-API server.
#[derive(Debug)]
pub struct Client {
    http: HttpClient,
    base: Url,
    token: Option<Token>,
}

impl Client {
    pub fn new(config: &ClientConfig) -> Result<Client, ConfigError> {
        let address_error = |reason: String| ConfigError::Address {
            address: config.address.clone(),
            reason,
        };
        let base = Url::parse(config.address.trim()).map_err(|e| address_error(e.to_string()))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(address_error(format!(
                "the scheme is {:?}, not http or https",
                base.scheme()
            )));
        }
        if base.host_str().is_none() {
            return Err(address_error("it has no host".to_owned()));
        }
        let mut builder = HttpClient::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("svctl/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).map_err(|source| ConfigError::CaRead {
                path: path.clone(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::CaParse {
                    path: path.clone(),
                    reason: format!("could not be parsed ({e})"),
                })?;
            if certs.is_empty() {
                return Err(ConfigError::CaParse {
                    path: path.clone(),
                    reason: "holds no certificate".to_owned(),
                });
            }
            // Like the Vault client, a given CA bundle replaces the built-in roots.
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(ConfigError::Http)?;
        Ok(Client {
            http,
            base,
            token: config.token.clone(),
        })
    }

    /// `<address>/v1/<path>`, keeping any path prefix of the address.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let prefix = self.base.path().trim_end_matches('/');
        let mut url = self.base.clone();
        url.set_path(&format!("{prefix}/v1/{}", path.trim_start_matches('/')));
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one request and returns whatever came back, error statuses included.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<RawResponse, ClientError> {
        let url = self.url(path, query);
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.token {
            request = request.header(secretvault_types::TOKEN_HEADER, token.expose());
        }
        request = match body {
            Body::None => request,
            Body::Json(v) => request
                .header("Content-Type", "application/json")
                .body(v.to_string()),
            Body::MergePatch(v) => request
                .header("Content-Type", "application/merge-patch+json")
                .body(v.to_string()),
        };
        let transport = |e: &dyn std::error::Error| TransportError {
            op: go_url_op(method.as_str()),
            url: url.to_string(),
            detail: error_chain(e),
        };
        let response: Response = request.send().map_err(|e| transport(&e))?;
        let status = response.status();
        let mut body = Vec::new();
        response
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| transport(&e))?;
        if body.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(ClientError::Unexpected(format!(
                "the response to {method} {url} is larger than {MAX_RESPONSE_BYTES} bytes; refusing to read it"
            )));
        }
        Ok(RawResponse {
            status,
            body,
            method,
            url,
        })
    }

    /// Sends a request and fails on any error status.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<RawResponse, ClientError> {
        Ok(self
            .send(method, path, query, body)?
            .check(self.token.is_none())?)
    }

    /// The secret in a response, or the error its status means.
    pub fn secret_from(&self, response: RawResponse) -> Result<Option<Secret>, ClientError> {
        let response = response.check(self.token.is_none())?;
        Ok(parse_secret(&response.body)?)
    }

    /// A request whose answer is a secret, failing on any error status (the Go client's
    /// `auth/token/*` and `sys/*` helpers).
    pub fn request_secret(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Option<Secret>, ClientError> {
        let response = self.request(method, path, &[], body)?;
        Ok(parse_secret(&response.body)?)
    }

    /// `Logical().ReadWithData`: a 404 is "no secret" unless its body carries data or
    /// warnings (KV v2 answers 404 with metadata for a deleted version).
    pub fn read(&self, path: &str, query: &[(&str, &str)]) -> Result<Option<Secret>, ClientError> {
        let response = self.send(Method::GET, path, query, Body::None)?;
        self.read_like(response)
    }

    /// `Logical().List`: `GET ?list=true` with the read rules.
    pub fn list(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        let response = self.send(Method::GET, path, &[("list", "true")], Body::None)?;
        self.read_like(response)
    }

    fn read_like(&self, response: RawResponse) -> Result<Option<Secret>, ClientError> {
        if response.status == StatusCode::NOT_FOUND {
            let secret = parse_secret(&response.body)?;
            return Ok(secret.filter(Secret::has_data_or_warnings));
        }
        let response = response.check(self.token.is_none())?;
        Ok(parse_secret(&response.body)?)
    }

    /// `Logical().Write`/`Delete`/`JSONMergePatch`: an empty 404 is "nothing to say";
    /// any other 404 is an error.
    pub fn write(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Option<Secret>, ClientError> {
        let response = self.send(method, path, &[], body)?;
        if response.status == StatusCode::NOT_FOUND
            && response.body.iter().all(u8::is_ascii_whitespace)
        {
            return Ok(None);
        }
        let response = response.check(self.token.is_none())?;
        Ok(parse_secret(&response.body)?)
    }
}

/// Go's `url.Error` names the operation after the method: `Get`, `Put`, `Post`.
fn go_url_op(method: &str) -> String {
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// An error and its causes on one line, so "connection refused" is not hidden behind
/// "error sending request"; reqwest's and hyper's generic wrappers are left out.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        let generic =
            text.starts_with("error sending request") || text.starts_with("client error (");
        if !generic && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        return error.to_string();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_token_wins_then_the_token_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".vault-token"), "  s.fromfile\n").unwrap();
        let t = resolve_token(Some("s.env".into()), Some(home.path()))
            .unwrap()
            .unwrap();
        assert_eq!(t.expose(), "s.env");
        let t = resolve_token(Some("".into()), Some(home.path()))
            .unwrap()
            .unwrap();
        assert_eq!(t.expose(), "s.fromfile");
        let t = resolve_token(None, Some(home.path())).unwrap().unwrap();
        assert_eq!(t.expose(), "s.fromfile");
    }

    #[test]
    fn no_token_anywhere_is_none() {
        let home = tempfile::tempdir().unwrap();
        assert!(resolve_token(None, Some(home.path())).unwrap().is_none());
        assert!(resolve_token(None, None).unwrap().is_none());
        std::fs::write(home.path().join(".vault-token"), "\n").unwrap();
        assert!(resolve_token(None, Some(home.path())).unwrap().is_none());
    }

    #[test]
    fn token_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Token::new("s.secret".into())),
            "Token(<redacted>)"
        );
    }

    #[test]
    fn api_errors_print_like_the_vault_cli() {
        let e = ApiError {
            method: "PUT".into(),
            url: "http://127.0.0.1:8200/v1/secret/data/foo".into(),
            status: 400,
            errors: vec!["check-and-set parameter did not match the current version".into()],
            raw: false,
            no_token: false,
        };
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: PUT http://127.0.0.1:8200/v1/secret/data/foo\nCode: 400. Errors:\n\n* check-and-set parameter did not match the current version"
        );
        let e = ApiError {
            status: 403,
            errors: vec!["permission denied".into()],
            no_token: true,
            ..e
        };
        assert!(e.to_string().ends_with("* permission denied\n\nNo token was sent: set VAULT_TOKEN, or write a token to ~/.vault-token."));
    }

    #[test]
    fn urls_keep_the_address_prefix_and_query() {
        let config = ClientConfig {
            address: "http://127.0.0.1:8200/prefix/".into(),
            ca_cert: None,
            token: None,
        };
        let client = Client::new(&config).unwrap();
        let url = client.url("secret/data/a b", &[("version", "2")]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8200/prefix/v1/secret/data/a%20b?version=2"
        );
    }

    #[test]
    fn bad_addresses_are_named() {
        for address in ["127.0.0.1:8200", "ftp://x", "not a url"] {
            let config = ClientConfig {
                address: address.into(),
                ca_cert: None,
                token: None,
            };
            let err = Client::new(&config).unwrap_err().to_string();
            assert!(
                err.contains(address) && err.contains("http://127.0.0.1:8200"),
                "{err}"
            );
        }
    }

    #[test]
    fn ca_bundles_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let config = ClientConfig {
            address: "https://127.0.0.1:8200".into(),
            ca_cert: Some(path),
            token: None,
        };
        let err = Client::new(&config).unwrap_err().to_string();
        assert!(
            err.contains("VAULT_CACERT") && err.contains("CERTIFICATE"),
            "{err}"
        );
    }

    #[test]
    fn go_ops() {
        assert_eq!(go_url_op("GET"), "Get");
        assert_eq!(go_url_op("DELETE"), "Delete");
    }
}
