//! HTTP → [`Request`] → [`Vault::handle`] → HTTP, in Vault's dialect.
//!
//! Everything interesting happens in the engine; this layer only decodes: the method
//! (GET / `LIST` / `?list=true` / POST / PUT / PATCH / DELETE), the token
//! (`X-Vault-Token` or `Authorization: Bearer`), query parameters and the JSON body —
//! within a size limit and a read deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use secretvault_engine::logical::{ApiError, Operation, Request};
use secretvault_engine::vault::{EncodedReply, Vault};
use serde_json::{Map, Value};
use warp::Filter;
use warp::filters::path::FullPath;
use zeroize::Zeroizing;

/// The client's address, put into each request's extensions by the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// How long a client may take to send its body.
    pub body_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_bytes: 1024 * 1024,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// All routes: `/v1/...` (the Vault API), `/healthz` and `/readyz` (for kubelet probes).
pub fn routes(
    vault: Arc<Vault>,
    limits: HttpLimits,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let limits = Arc::new(limits);
    let probes = warp::path!("healthz")
        .or(warp::path!("readyz"))
        .unify()
        .map(|| {
            let mut response = warp::reply::Response::new("ok\n".into());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            response
        });
    let api = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::body::stream())
        .and(warp::any().map(move || vault.clone()))
        .and(warp::any().map(move || limits.clone()))
        // Boxed: the handler's future is several KB, and unboxed it would be moved (copied)
        // through every layer of warp's and hyper's futures on each request.
        .then(
            |method, path, query, headers, client, body, vault, limits| {
                Box::pin(handle(
                    method, path, query, headers, client, body, vault, limits,
                ))
            },
        );
    warp::get()
        .and(probes)
        .or(api)
        .unify()
        .recover(|_| async {
            Ok::<_, Infallible>(error_response(&ApiError::new(404, "not found")))
        })
        .unify()
}

#[allow(clippy::too_many_arguments)]
// DEBUG level: at the default INFO filter the span (and its formatted fields) is skipped
// entirely on this hot path.
#[tracing::instrument(level = "debug", skip_all, fields(method = %method, path = %path.as_str()))]
async fn handle<S, B>(
    method: Method,
    path: FullPath,
    query: String,
    headers: HeaderMap,
    client: Option<ClientAddr>,
    body: S,
    vault: Arc<Vault>,
    limits: Arc<HttpLimits>,
) -> warp::reply::Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let Some(api_path) = path.as_str().strip_prefix("/v1/") else {
        return error_response(&ApiError::new(
            404,
            "not found: the Vault API is under /v1/",
        ));
    };
    let request =
        match build_request(&method, api_path, &query, &headers, client, body, &limits).await {
            Ok(r) => r,
            Err(e) => return error_response(&e),
        };
    let head = method == Method::HEAD;
    let reply = vault.handle_encoded(request).await;
    tracing::debug!(status = reply.status, "handled");
    reply_response(reply, head)
}

async fn build_request<S, B>(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    body: S,
    limits: &HttpLimits,
) -> Result<Request, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let path = percent_decode(path)?;
    let query = parse_query(query);
    let list_query = query
        .get("list")
        .and_then(Value::as_str)
        .is_some_and(|v| matches!(v, "true" | "1" | "t" | "T" | "TRUE" | "True"));
    let (operation, is_write, reads_body) = match method.as_str() {
        "GET" | "HEAD" if list_query => (Some(Operation::List), false, false),
        "GET" | "HEAD" => (Some(Operation::Read), false, false),
        "LIST" => (Some(Operation::List), false, false),
        "POST" | "PUT" => (None, true, true),
        "PATCH" => (Some(Operation::Patch), false, true),
        "DELETE" => (Some(Operation::Delete), false, false),
        _ => {
            return Err(ApiError::new(
                405,
                format!("unsupported HTTP method {method}"),
            ));
        }
    };
    let data = if reads_body {
        let bytes = read_body(body, limits).await?;
        decode_json_object(&bytes)?
    } else {
        let mut data = query;
        data.remove("list");
        data
    };
    Ok(Request {
        id: request_id(),
        operation,
        path,
        data,
        token: token_from(headers),
        remote_addr: client.map(|c| c.0),
        content_type: headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        is_write,
    })
}

/// A random UUID for Vault's `request_id`, from the thread-local CSPRNG (seeded from the
/// OS) rather than one `getrandom` syscall per request.
fn request_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text)
        .to_string()
}

/// The token from `X-Vault-Token`, else from `Authorization: Bearer`.
fn token_from(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    if let Some(v) = headers
        .get(secretvault_types::TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return Some(Zeroizing::new(v.trim().to_string()));
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Zeroizing::new(token.trim().to_string()))
}

async fn read_body<S, B>(mut body: S, limits: &HttpLimits) -> Result<Zeroizing<Vec<u8>>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let collect = async {
        let mut out = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("failed to read request body: {e}")))?;
            if out.len() + chunk.remaining() > limits.max_request_bytes {
                return Err(ApiError::new(
                    413,
                    format!(
                        "request body too large: the limit is {} bytes (the server's --max-request-size)",
                        limits.max_request_bytes
                    ),
                ));
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                out.extend_from_slice(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        // The buffer itself becomes the Vec (no copy), so the one copy of the body this
        // layer made is the one that is wiped.
        Ok(Zeroizing::new(Vec::from(out)))
    };
    // A small body has usually arrived with the headers: then it is read at once, and no
    // timer is armed for it.
    let mut collect = std::pin::pin!(collect);
    if let Some(body) = futures::FutureExt::now_or_never(collect.as_mut()) {
        return body;
    }
    tokio::time::timeout(limits.body_read_timeout, collect)
        .await
        .map_err(|_| ApiError::new(408, "timed out reading the request body"))?
}

fn decode_json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        // `vault write -f` and `bao write -f` send `null`; Vault reads it as no fields.
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(ApiError::bad_request(format!(
            "failed to decode JSON input: expected a JSON object, got {}",
            secretvault_engine::logical::json_type_name(&other)
        ))),
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to decode JSON input: {e}"
        ))),
    }
}

/// Query parameters as request data (Vault passes them to GET, LIST and DELETE handlers).
fn parse_query(query: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Ok(k), Ok(v)) = (
            percent_decode(&k.replace('+', " ")),
            percent_decode(&v.replace('+', " ")),
        ) else {
            continue;
        };
        out.insert(k, Value::String(v));
    }
    out
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => {
                    return Err(ApiError::bad_request(format!(
                        "invalid percent-encoding in {s:?}"
                    )));
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("request path or query is not valid UTF-8"))
}

fn json_response(status: u16, body: Option<Vec<u8>>) -> warp::reply::Response {
    let has_body = body.is_some();
    let bytes = body.map(|mut out| {
        out.push(b'\n');
        Bytes::from(out)
    });
    let mut response = warp::reply::Response::new(bytes.unwrap_or_default().into());
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if has_body {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    // Responses carry secrets: never cache them.
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

fn reply_response(reply: EncodedReply, head: bool) -> warp::reply::Response {
    let body = if head { None } else { reply.body };
    let mut response = json_response(reply.status, body);
    if let Some(seconds) = reply.retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn error_response(e: &ApiError) -> warp::reply::Response {
    reply_response(EncodedReply::error(e), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(token_from(&h).unwrap().as_str(), "abc");
        h.insert("x-vault-token", HeaderValue::from_static("xyz"));
        assert_eq!(token_from(&h).unwrap().as_str(), "xyz");
        let mut basic = HeaderMap::new();
        basic.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert!(token_from(&basic).is_none());
    }

    #[test]
    fn query_and_paths_decode() {
        let q = parse_query("version=2&list=true&a=b%20c&x");
        assert_eq!(q["version"], "2");
        assert_eq!(q["a"], "b c");
        assert_eq!(q["x"], "");
        assert_eq!(
            percent_decode("secret/data/a%2Fb").unwrap(),
            "secret/data/a/b"
        );
        assert!(percent_decode("bad%zz").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn busy_replies_say_when_to_retry() {
        let busy = EncodedReply {
            status: 503,
            body: Some(br#"{"errors":["busy"]}"#.to_vec()),
            retry_after: Some(1),
        };
        let response = reply_response(busy, false);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
        let ok = EncodedReply {
            status: 200,
            body: None,
            retry_after: None,
        };
        assert!(
            !reply_response(ok, false)
                .headers()
                .contains_key(http::header::RETRY_AFTER)
        );
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(decode_json_object(b"").unwrap().is_empty());
        assert!(decode_json_object(b" null\n").unwrap().is_empty());
        assert_eq!(decode_json_object(b"{\"a\":1}").unwrap()["a"], 1);
        let err = decode_json_object(b"[1]").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.errors[0].starts_with("failed to decode JSON input"));
        assert!(
            decode_json_object(b"{bad").unwrap_err().errors[0]
                .contains("failed to decode JSON input")
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256), q in "\\PC{0,64}") {
            let _ = decode_json_object(&body);
            let _ = parse_query(&q);
            let _ = percent_decode(&q);
        }
    }
}
