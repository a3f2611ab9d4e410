//! The accept loop: plain or TLS connections served by hyper,
//! header-read timeouts, and a graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use secretvault_engine::vault::Vault;
use tokio::net::TcpListener;

use crate::http::{Api, HttpLimits, serve_request};
use crate::tls::TlsSettings;
use crate::watchdog::{Activity, close_when_stalled};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: HttpLimits,
    /// A client must send a whole request head within this time of connecting (after
    /// the TLS handshake) or of its last response, else the connection is closed.
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
    let api = Arc::new(Api {
        vault: vault.clone(),
        limits: config.limits.clone(),
    });
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The header-read deadline is enforced by `watchdog`, one timer per connection
        // instead of one per request.
        .header_read_timeout(None)
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
        let api = api.clone();
        let activity = Activity::new();
        let requests = activity.clone();
        let hyper_service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let api = api.clone();
            let serving = requests.serving();
            async move {
                let response = serve_request(&api, req, Some(peer)).await;
                drop(serving);
                Ok::<_, Infallible>(response)
            }
        });
        let header_read_timeout = config.header_read_timeout;
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .into_owned();
                tokio::spawn(log_connection_end(
                    peer,
                    close_when_stalled(watcher.watch(conn), activity, header_read_timeout),
                ));
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
                    activity.restart();
                    let conn = builder
                        .serve_connection(TokioIo::new(tls_stream), hyper_service)
                        .into_owned();
                    log_connection_end(
                        peer,
                        close_when_stalled(watcher.watch(conn), activity, header_read_timeout),
                    )
                    .await;
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
    conn: impl Future<Output = Option<Result<(), E>>>,
) {
    match conn.await {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
        None => {
            tracing::debug!(%peer, "connection closed: no request within the header-read timeout")
        }
    }
}
