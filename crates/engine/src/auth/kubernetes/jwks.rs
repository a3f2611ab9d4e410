//! The cluster's JWKS (`jwks_url`): fetched on demand, cached for a while, refreshed
//! early when a token names a key id we have not seen (the cluster rotated its key).
//!
//! The fetch itself is behind [`JwksFetcher`] so tests can serve documents without a
//! cluster; [`HttpJwksFetcher`] is the real one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::config::KubernetesConfig;
use super::verify::{KeySet, LoginError};

/// How long fetched keys are used before they are fetched again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// The least time between two fetches of one URL (unknown key ids and failures do not
/// turn every login into a request to the cluster).
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(10);

/// How long after the last successful fetch keys are still used while fetching fails.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(60 * 60);

/// The largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where a pod finds its own ServiceAccount token and the cluster CA.
pub const POD_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What to fetch, and with which credentials.
#[derive(Clone, Default)]
pub struct JwksRequest {
    pub url: String,
    /// PEM CA bundle to trust instead of the system roots.
    pub ca_pem: Option<String>,
    /// Bearer token to present.
    pub bearer: Option<Zeroizing<String>>,
    /// Whether the pod's own CA and token may be used when the two above are absent.
    pub use_pod_credentials: bool,
}

impl std::fmt::Debug for JwksRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksRequest")
            .field("url", &self.url)
            .field("ca_pem", &self.ca_pem.is_some())
            .field("bearer", &self.bearer.is_some())
            .field("use_pod_credentials", &self.use_pod_credentials)
            .finish()
    }
}

fn origin(url: &str) -> Option<(String, String, u16)> {
    let url = reqwest::Url::parse(url).ok()?;
    Some((
        url.scheme().to_string(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

impl JwksRequest {
    /// The request for a configuration's `jwks_url`. The cluster CA and credentials are
    /// used only when the URL is on `kubernetes_host`: the operator's token must never
    /// be sent to another server.
    pub fn for_config(config: &KubernetesConfig) -> Self {
        let same_origin =
            origin(&config.jwks_url).is_some_and(|o| Some(o) == origin(&config.kubernetes_host));
        JwksRequest {
            url: config.jwks_url.clone(),
            ca_pem: Some(config.kubernetes_ca_cert.clone())
                .filter(|ca| same_origin && !ca.trim().is_empty()),
            bearer: config
                .token_reviewer_jwt
                .as_ref()
                .filter(|t| same_origin && !t.expose().is_empty())
                .map(|t| Zeroizing::new(t.expose().to_string())),
            use_pod_credentials: same_origin && !config.disable_local_ca_jwt,
        }
    }
}

/// Checks a `jwks_url`: https, or plain http to a loopback address (tests, port-forwards).
pub fn validate_jwks_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let loopback = parsed.host_str().is_some_and(|host| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{url:?} must be an https URL (plain http only to a loopback address), e.g. https://kubernetes.default.svc/openid/v1/jwks"
        )),
    }
}

/// Why a fetch failed (said to the client, so no secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Fetches a JWKS document.
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    /// The document's body.
    async fn fetch(&self, request: &JwksRequest) -> Result<String, FetchError>;
}

/// Fetches over HTTPS with `reqwest` (no redirects: a bearer token must not follow one).
pub struct HttpJwksFetcher {
    timeout: Duration,
    pod_dir: PathBuf,
}

impl Default for HttpJwksFetcher {
    fn default() -> Self {
        HttpJwksFetcher {
            timeout: Duration::from_secs(10),
            pod_dir: PathBuf::from(POD_SERVICE_ACCOUNT_DIR),
        }
    }
}

impl HttpJwksFetcher {
    /// A fetcher that looks for the pod's CA and token in `pod_dir` instead.
    pub fn with_pod_dir(pod_dir: PathBuf, timeout: Duration) -> Self {
        HttpJwksFetcher { timeout, pod_dir }
    }

    async fn pod_file(&self, name: &str) -> Option<String> {
        tokio::fs::read_to_string(self.pod_dir.join(name))
            .await
            .ok()
            .filter(|s| !s.trim().is_empty())
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, request: &JwksRequest) -> Result<String, FetchError> {
        validate_jwks_url(&request.url).map_err(FetchError)?;
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("secretvault/", env!("CARGO_PKG_VERSION")));
        let ca = match &request.ca_pem {
            Some(ca) => Some(ca.clone()),
            None if request.use_pod_credentials => self.pod_file("ca.crt").await,
            None => None,
        };
        if let Some(ca) = ca {
            let certs = reqwest::Certificate::from_pem_bundle(ca.as_bytes())
                .map_err(|e| FetchError(format!("the CA certificate is unusable: {e}")))?;
            if certs.is_empty() {
                return Err(FetchError(
                    "the CA certificate holds no PEM certificate".into(),
                ));
            }
            // The cluster CA alone decides whom to trust for the cluster's own URL.
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| FetchError(format!("cannot build an HTTP client: {e}")))?;
        let bearer = match &request.bearer {
            Some(b) => Some(b.clone()),
            None if request.use_pod_credentials => self
                .pod_file("token")
                .await
                .map(|t| Zeroizing::new(t.trim().to_string())),
            None => None,
        };
        let mut call = client.get(&request.url).header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        );
        if let Some(token) = &bearer {
            call = call.bearer_auth(token.as_str());
        }
        let mut response = call.send().await.map_err(|e| {
            // reqwest's error text includes the URL, never headers.
            FetchError(format!("request failed: {e}"))
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError(format!("the server answered HTTP {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError(format!(
                "the document is larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError(format!("reading the response failed: {e}")))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError(format!(
                    "the document is larger than {MAX_JWKS_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| FetchError("the document is not UTF-8".into()))
    }
}

struct Cached {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    /// When the last attempt was made, and its error if it failed.
    attempted_at: Instant,
    error: Option<String>,
}

/// Fetched JWKS documents by URL.
pub struct JwksCache {
    fetcher: Arc<dyn JwksFetcher>,
    ttl: Duration,
    min_refresh: Duration,
    max_stale: Duration,
    // Held across the fetch so concurrent logins wait for one request instead of each
    // sending their own.
    entries: tokio::sync::Mutex<HashMap<String, Cached>>,
}

/// URLs remembered at most (the configuration names one; old ones are dropped).
const MAX_ENTRIES: usize = 8;

impl JwksCache {
    pub fn new(fetcher: Arc<dyn JwksFetcher>) -> Self {
        Self::with_timing(fetcher, DEFAULT_TTL, DEFAULT_MIN_REFRESH, DEFAULT_MAX_STALE)
    }

    pub fn with_timing(
        fetcher: Arc<dyn JwksFetcher>,
        ttl: Duration,
        min_refresh: Duration,
        max_stale: Duration,
    ) -> Self {
        JwksCache {
            fetcher,
            ttl,
            min_refresh,
            max_stale,
            entries: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The keys at `request.url`: cached ones while fresh, else fetched. `refresh` asks
    /// for a fetch even when fresh (at most once per minimum refresh interval).
    pub async fn keys(
        &self,
        request: &JwksRequest,
        refresh: bool,
    ) -> Result<Arc<KeySet>, LoginError> {
        let mut entries = self.entries.lock().await;
        let jwks_error = |reason: String| LoginError::Jwks {
            url: request.url.clone(),
            reason,
        };
        if let Some(entry) = entries.get(&request.url) {
            let fresh = entry.fetched_at.is_some_and(|t| t.elapsed() < self.ttl);
            let recently_tried = entry.attempted_at.elapsed() < self.min_refresh;
            if let Some(keys) = &entry.keys
                && ((fresh && !refresh) || recently_tried)
            {
                return Ok(keys.clone());
            }
            if recently_tried && let Some(error) = &entry.error {
                return Err(jwks_error(error.clone()));
            }
        }
        let result = match self.fetcher.fetch(request).await {
            Ok(body) => KeySet::from_jwks(&body).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&request.url) {
            entries.clear();
        }
        let now = Instant::now();
        match result {
            Ok(keys) => {
                let keys = Arc::new(keys);
                entries.insert(
                    request.url.clone(),
                    Cached {
                        keys: Some(keys.clone()),
                        fetched_at: Some(now),
                        attempted_at: now,
                        error: None,
                    },
                );
                Ok(keys)
            }
            Err(reason) => {
                tracing::warn!(url = %request.url, error = %reason, "fetching the Kubernetes JWKS failed");
                let entry = entries.entry(request.url.clone()).or_insert(Cached {
                    keys: None,
                    fetched_at: None,
                    attempted_at: now,
                    error: None,
                });
                entry.attempted_at = now;
                entry.error = Some(reason.clone());
                // Keys that were good a little while ago beat refusing every login while
                // the API server is briefly unreachable.
                match (&entry.keys, entry.fetched_at) {
                    (Some(keys), Some(t)) if t.elapsed() < self.max_stale => Ok(keys.clone()),
                    _ => {
                        entry.keys = None;
                        Err(jwks_error(reason))
                    }
                }
            }
        }
    }
}
