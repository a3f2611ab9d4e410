//! The accept loop: plain or TLS connections served by hyper with warp's filter,
//! header-read timeouts, and a graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use secretvault_engine::vault::Vault;
use tokio::net::TcpListener;
use tower_service::Service;

use crate::http::{ClientAddr, HttpLimits, routes};
use crate::tls::TlsSettings;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: HttpLimits,
    /// A client must send its request headers within this time.
    pub header_read_timeout: Duration,
    /// A TLS client must finish its handshake within this time.
    pub tls_handshake_timeout: Duration,
    /// How long in-flight requests may run after shutdown begins.
    pub shutdown_grace: Duration,
    pub tls: Option<TlsSettings>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: HttpLimits::default(),
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to the grace period) and returns. Long polls (`sys/secretvault/watch`)
/// are told to answer at once when the drain begins, so they do not hold it up.
pub async fn serve(
    listener: TcpListener,
    vault: Arc<Vault>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tls = match &config.tls {
        Some(settings) => Some(crate::tls::acceptor(settings).await?),
        None => None,
    };
    let service = warp::service(routes(vault.clone(), config.limits.clone()));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let per_connection = service.clone();
        let hyper_service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ClientAddr(peer));
            let mut service = per_connection.clone();
            async move { service.call(req).await }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .into_owned();
                tokio::spawn(log_connection_end(peer, watcher.watch(conn)));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = config.tls_handshake_timeout;
                tokio::spawn(async move {
                    let tls_stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(tls_stream), hyper_service)
                        .into_owned();
                    log_connection_end(peer, watcher.watch(conn)).await;
                });
            }
        }
    }

    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    vault.begin_shutdown();
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace, "some connections did not finish within the grace period");
    }
    Ok(())
}

async fn log_connection_end<E: std::fmt::Display>(
    peer: SocketAddr,
    conn: impl Future<Output = Result<(), E>>,
) {
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
