//! The accept loop in-process on 127.0.0.1: TLS with certificate reload, header-read
//! timeouts, and graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use secretvault_engine::vault::Vault;
use secretvault_server::ServerConfig;
use secretvault_server::tls::TlsSettings;
use tokio::net::TcpListener;

struct Running {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(config: ServerConfig) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let vault = Arc::new(Vault::open_in_memory("root").await.unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(secretvault_server::serve(listener, vault, config, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        done,
    }
}

fn write_cert(dir: &Path, name: &str) -> Vec<u8> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), name.into()]).unwrap();
    std::fs::write(dir.join("tls.crt.tmp"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key.tmp"), cert.signing_key.serialize_pem()).unwrap();
    // Replace both files the way cert-manager and the kubelet do: rename into place.
    std::fs::rename(dir.join("tls.key.tmp"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("tls.crt.tmp"), dir.join("tls.crt")).unwrap();
    cert.cert.der().to_vec()
}

/// Handshakes with `addr` (trusting `roots`) and returns the certificate it presented.
async fn presented_cert(addr: std::net::SocketAddr, roots: &[Vec<u8>]) -> Vec<u8> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(CertificateDer::from(r.clone())).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_and_reloads_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path(), "first.example");
    let config = ServerConfig {
        tls: Some(TlsSettings {
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
            reload_interval: Duration::from_millis(100),
        }),
        ..ServerConfig::default()
    };
    let mut server = start(config).await;
    assert_eq!(
        presented_cert(server.addr, std::slice::from_ref(&first)).await,
        first
    );

    // A Vault client over HTTPS, trusting only this certificate.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(&first).unwrap())
        .build()
        .unwrap();
    let health = client
        .get(format!(
            "https://localhost:{}/v1/sys/health",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // Rotate the files: new connections get the new certificate without a restart.
    let second = write_cert(dir.path(), "second.example");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if presented_cert(server.addr, &[first.clone(), second.clone()]).await == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken replacement keeps the current certificate serving.
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        presented_cert(server.addr, &[first, second.clone()]).await,
        second
    );

    server.stop.take().unwrap().send(()).unwrap();
    server.done.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tls_files_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        tls: Some(TlsSettings {
            cert_file: dir.path().join("nope.crt"),
            key_file: dir.path().join("nope.key"),
            reload_interval: Duration::from_secs(1),
        }),
        ..ServerConfig::default()
    };
    let server = start(config).await;
    let err = server.done.await.unwrap().unwrap_err();
    assert!(format!("{err:#}").contains("nope.crt"), "{err:#}");
}

/// On a fresh connection: sends `head`, waits `pause`, sends `body`, then reads until the
/// server closes the connection. Returns how long that took after the last write, and
/// everything the server sent.
async fn exchange(
    addr: std::net::SocketAddr,
    head: String,
    pause: Duration,
    body: &'static [u8],
) -> (Duration, String) {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(pause);
        stream.write_all(body).unwrap();
        let started = Instant::now();
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received);
        (
            started.elapsed(),
            String::from_utf8_lossy(&received).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// The head of a KV write declaring a `declared`-byte body, on a connection to be closed.
fn post_head(declared: usize) -> String {
    format!(
        "POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
    )
}

const BODY: &[u8] = b"{\"data\":{\"a\":\"b\"}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let config = ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let mut server = start(config).await;
    let unfinished = "GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n".to_string();
    let (held, response) = exchange(server.addr, unfinished, Duration::ZERO, b"").await;
    assert!(
        held < Duration::from_secs(5),
        "connection held for {held:?}"
    );
    // The server gives up on the unfinished request and closes (maybe after a 408).
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 408"),
        "{response}"
    );
    server.stop.take().unwrap().send(()).unwrap();
    server.done.await.unwrap().unwrap();
}

/// The header-read deadline applies to idle connections (closed once it passes after the
/// last response), not to requests being served: a body that arrives slowly, within its
/// own limit, is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_but_busy_ones_do_not() {
    let config = ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        limits: secretvault_server::http::HttpLimits {
            body_read_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let mut server = start(config).await;
    let keep_alive = "GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n".to_string();
    let idle = tokio::spawn(exchange(server.addr, keep_alive, Duration::ZERO, b""));
    // Three header-read deadlines pass while the body is on its way.
    let slow = tokio::spawn(exchange(
        server.addr,
        post_head(BODY.len()),
        Duration::from_millis(1000),
        BODY,
    ));
    let (closed_after, response) = idle.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        closed_after >= Duration::from_millis(250) && closed_after < Duration::from_secs(5),
        "idle connection closed after {closed_after:?}"
    );
    // No token was sent: 403, an answer rather than a dropped connection.
    let (_, response) = slow.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    server.stop.take().unwrap().send(()).unwrap();
    server.done.await.unwrap().unwrap();
}

/// A body that stops arriving is answered with 408 once the body-read limit passes; a
/// body sent whole with its headers is read at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_off() {
    let config = ServerConfig {
        limits: secretvault_server::http::HttpLimits {
            body_read_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let mut server = start(config).await;
    let (_, response) = exchange(server.addr, post_head(BODY.len()), Duration::ZERO, BODY).await;
    // No token was sent: 403, decided after the body was read.
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    let (waited, response) =
        exchange(server.addr, post_head(100), Duration::ZERO, b"{\"data\"").await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("timed out reading the request body"),
        "{response}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    server.stop.take().unwrap().send(()).unwrap();
    server.done.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut server = start(ServerConfig::default()).await;
    let addr = server.addr;
    // A slow upload is in flight when shutdown begins.
    let upload = tokio::spawn(exchange(
        addr,
        post_head(BODY.len()),
        Duration::from_millis(300),
        BODY,
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    let (_, response) = upload.await.unwrap();
    // No token was sent, so the answer is 403 — but it is an answer, not a dropped connection.
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    server.done.await.unwrap().unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is closed after shutdown"
    );
}
