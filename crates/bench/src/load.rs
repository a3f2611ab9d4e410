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
    /// CPU time (user + system) the server process spent during the measured window.
    /// Unlike requests/s it barely depends on what else the machine is doing, so it
    /// compares servers fairly on a busy machine too.
    pub server_cpu: Option<Duration>,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at `quantile`, in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Server CPU time per successful request, in microseconds.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.requests > 0).then(|| cpu.as_secs_f64() * 1e6 / self.requests as f64)
    }
}

/// CPU time (utime + stime) a process has used so far, from `/proc/<pid>/stat`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after `)`.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux architecture.
    Some(Duration::from_millis(ticks * 10))
}

/// Drives `spec` at `addr` with `concurrency` connections: `warmup`, then `duration` measured.
/// With `server_pid`, also the server's CPU time over the measured window.
pub async fn drive(
    addr: SocketAddr,
    spec: &RequestSpec,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    server_pid: Option<u32>,
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
        server_cpu: None,
    };
    if let Some(pid) = server_pid {
        tokio::time::sleep_until(start.into()).await;
        let before = process_cpu(pid);
        tokio::time::sleep_until(end.into()).await;
        total.server_cpu = process_cpu(pid)
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
    }
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
        server_cpu: None,
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
