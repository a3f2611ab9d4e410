//! The agent's HTTP client for the Vault API: hyper's HTTP/1.1 client with a small
//! connection pool, rustls (ring) for TLS. JSON in, JSON out; one timeout per request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use crate::config::Server;

/// Answers larger than this are refused (KV values are small; this bounds memory).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Where system CA bundles live when no `server.ca_file`/`ca_pem` is configured.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

/// A Vault API answer: status, JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
}

impl ApiResponse {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body's `errors` strings.
    pub fn errors(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `403: permission denied; …`, for messages. Vault's error strings name paths and
    /// problems, never secret values.
    pub fn describe(&self) -> String {
        let errors = self.errors();
        if errors.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {}", self.status, errors.join("; "))
        }
    }
}

/// The server could not be asked, or did not answer usably.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach the server at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("no answer from the server at {address} within {}", crate::duration::display(*timeout))]
    Timeout { address: String, timeout: Duration },
    #[error("the server's answer to {path} is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge { path: String },
}

#[derive(Clone)]
pub struct VaultClient {
    base: Arc<str>,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl VaultClient {
    pub fn new(server: &Server) -> Result<VaultClient, String> {
        let tls = tls_config(server)?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(VaultClient {
            base: server.address.as_str().into(),
            http,
        })
    }

    pub fn address(&self) -> &str {
        &self.base
    }

    /// `method /v1/<path>`; `path` may carry a query. The token goes in `X-Vault-Token`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<ApiResponse, TransportError> {
        let uri = format!("{}/v1/{}", self.base, encode_path(path));
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            let mut v =
                header::HeaderValue::from_str(t).map_err(|_| TransportError::Unreachable {
                    address: self.base.to_string(),
                    reason: "the vault token holds characters not allowed in an HTTP header".into(),
                })?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        let payload = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|e| TransportError::Unreachable {
                address: self.base.to_string(),
                reason: format!("cannot build a request for {path}: {e}"),
            })?;
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| TransportError::Unreachable {
                    address: self.base.to_string(),
                    reason: error_chain(&e),
                })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        TransportError::TooLarge {
                            path: path.split('?').next().unwrap_or(path).to_string(),
                        }
                    } else {
                        TransportError::Unreachable {
                            address: self.base.to_string(),
                            reason: format!("reading the answer: {}", error_chain(e.as_ref())),
                        }
                    }
                })?
                .to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            Ok(ApiResponse {
                status,
                body,
                retry_after,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout {
                address: self.base.to_string(),
                timeout,
            }),
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Percent-encodes what a URL path (and its query) cannot hold as is.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    match path.split_once('?') {
        Some((p, q)) => {
            push_encoded(&mut out, p, b"/");
            out.push('?');
            push_encoded(&mut out, q, b"=&");
        }
        None => push_encoded(&mut out, path, b"/"),
    }
    out
}

fn push_encoded(out: &mut String, s: &str, keep: &[u8]) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn tls_config(server: &Server) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if server.https {
        let (pem, from) = match &server.ca_pem {
            Some(p) => (p.clone(), "server.ca_file/ca_pem".to_string()),
            None => system_roots()?,
        };
        let mut reader = pem.as_bytes();
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| format!("reading CA certificates from {from}: {e}"))?;
            // Bundles carry the odd certificate rustls cannot use; skip it as curl does.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(format!(
                "no usable CA certificate in {from}; set server.ca_file to the CA that signed the server's certificate"
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn system_roots() -> Result<(String, String), String> {
    let candidates: Vec<String> = std::env::var("SSL_CERT_FILE")
        .into_iter()
        .chain(SYSTEM_CA_FILES.iter().map(|s| s.to_string()))
        .collect();
    for path in &candidates {
        if let Ok(pem) = std::fs::read_to_string(path) {
            return Ok((pem, path.clone()));
        }
    }
    Err(format!(
        "the server address is https:// but neither server.ca_file nor server.ca_pem is set, and no system CA bundle was found ({}); set server.ca_file",
        candidates.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_paths() {
        assert_eq!(encode_path("secret/data/a b"), "secret/data/a%20b");
        assert_eq!(
            encode_path("secret/data/x?version=2"),
            "secret/data/x?version=2"
        );
        assert_eq!(
            encode_path("secret/data/é#?a b"),
            "secret/data/%C3%A9%23?a%20b"
        );
    }
}
