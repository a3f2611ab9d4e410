//! The load generator: N keep-alive HTTP/1.1 connections, each sending one request after
//! another until the deadline, recording every latency in an HDR histogram.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};

/// One request shape; `body` may contain `{worker}` which is replaced per connection.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: hyper::Method,
    pub path: String,
    pub token: Option<String>,
    pub body: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub histogram: Histogram<u64>,
    /// The first unexpected status and body, if any (for diagnosis).
    pub first_error: Option<String>,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at `quantile`, in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Drives `spec` at `addr` with `concurrency` connections: `warmup`, then `duration` measured.
pub async fn drive(
    addr: SocketAddr,
    spec: &RequestSpec,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            connection(addr, spec, worker, start, end).await
        }));
    }
    let mut total = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: duration,
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        first_error: None,
    };
    for task in tasks {
        let part = task.await??;
        total.requests += part.requests;
        total.errors += part.errors;
        total.histogram.add(&part.histogram)?;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    Ok(total)
}

async fn connection(
    addr: SocketAddr,
    spec: RequestSpec,
    worker: usize,
    start: Instant,
    end: Instant,
) -> anyhow::Result<LoadResult> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let body = spec
        .body
        .as_ref()
        .map(|b| Bytes::from(b.replace("{worker}", &worker.to_string())));
    let path = spec.path.replace("{worker}", &worker.to_string());
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: end - start,
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        first_error: None,
    };
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let mut req = hyper::Request::builder()
            .method(spec.method.clone())
            .uri(&path)
            .header("host", addr.to_string());
        if let Some(token) = &spec.token {
            req = req.header("x-vault-token", token);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(body.clone().unwrap_or_default()))?;
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let done = Instant::now();
        if sent < start {
            continue;
        }
        if status.is_success() {
            result.requests += 1;
            result
                .histogram
                .record((done - sent).as_micros().max(1) as u64)?;
        } else {
            result.errors += 1;
            if result.first_error.is_none() {
                result.first_error = Some(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
            }
        }
    }
    Ok(result)
}

/// One request, for setup: status and parsed JSON body (Null when empty).
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(hyper::Method::from_bytes(method.as_bytes())?)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("x-vault-token", t);
    }
    let bytes = body
        .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap_or_default()))
        .unwrap_or_default();
    let resp = sender.send_request(req.body(Full::new(bytes))?).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
    };
    Ok((status, json))
}
