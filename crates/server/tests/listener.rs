//! The accept loop in-process on 127.0.0.1: TLS with certificate reload, header-read
//! timeouts, and graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use secretvault_engine::crypto::RootKey;
use secretvault_engine::storage::MemoryBackend;
use secretvault_engine::vault::{Vault, VaultConfig};
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
    let vault = Arc::new(
        Vault::open(
            Arc::new(MemoryBackend::new()),
            RootKey::generate(),
            VaultConfig::default(),
        )
        .await
        .unwrap(),
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let config = ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let mut server = start(config).await;
    let addr = server.addr;
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        // The server gives up on the unfinished request and closes (maybe after a 408).
        let _ = stream.read_to_end(&mut buf);
        (
            started.elapsed(),
            String::from_utf8_lossy(&buf).into_owned(),
        )
    })
    .await
    .unwrap();
    assert!(
        closed_after.0 < Duration::from_secs(5),
        "connection held for {:?}",
        closed_after.0
    );
    assert!(
        closed_after.1.is_empty() || closed_after.1.starts_with("HTTP/1.1 408"),
        "{}",
        closed_after.1
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
    let addr = server.addr;
    let idle = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).unwrap();
        let answered = Instant::now();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        (first, answered.elapsed())
    });
    let slow = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let body = b"{\"data\":{\"a\":\"b\"}}";
        let head = format!(
            "POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        // Three header-read deadlines pass while the body is on its way.
        std::thread::sleep(Duration::from_millis(1000));
        stream.write_all(body).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    });
    let (first, closed_after) = idle.await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_after >= Duration::from_millis(250) && closed_after < Duration::from_secs(5),
        "idle connection closed after {closed_after:?}"
    );
    // No token was sent: 403, an answer rather than a dropped connection.
    let response = slow.await.unwrap();
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
    let addr = server.addr;
    let post = move |body: &'static [u8], declared: usize| {
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let head = format!(
                "POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body).unwrap();
            let started = Instant::now();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            (started.elapsed(), response)
        })
    };
    let whole = b"{\"data\":{\"a\":\"b\"}}";
    let (_, response) = post(whole, whole.len()).await.unwrap();
    // No token was sent: 403, decided after the body was read.
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    let (waited, response) = post(b"{\"data\"", 100).await.unwrap();
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
    let upload = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let body = b"{\"data\":{\"a\":\"b\"}}";
        let head = format!(
            "POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(body).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    let response = upload.await.unwrap();
    // No token was sent, so the answer is 403 — but it is an answer, not a dropped connection.
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    server.done.await.unwrap().unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is closed after shutdown"
    );
}
