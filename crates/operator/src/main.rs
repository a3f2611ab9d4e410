//! `secretvault-operator`: the controllers and the API server. `dev` runs the server
//! alone on embedded storage — the whole vault on one machine.

use clap::Parser;

mod args;

// Every request allocates dozens of small buffers (JSON, audit lines, headers); mimalloc's
// thread-local free lists make that markedly cheaper than glibc malloc under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use args::{Args, Command};

fn main() -> anyhow::Result<()> {
    // One crypto provider for every TLS user in the process (server, and later kube).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    init_tracing(&args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match args.command {
            Command::Dev(dev) => {
                secretvault_server::dev::run(dev_options(dev), shutdown_signal()).await
            }
        }
    })
}

fn dev_options(dev: args::DevArgs) -> secretvault_server::dev::DevOptions {
    let mut options = secretvault_server::dev::DevOptions::new(dev.listen, dev.data_dir);
    options.root_token = dev.root_token;
    options.audit_log = dev.audit_log;
    options.policy_dir = dev.policy_dir;
    options.server.limits.max_request_bytes = dev.max_request_size;
    options.vault.keyring_rotation_period = dev.keyring_rotation_period;
    options.vault.sealing_key_rotation_period = dev.sealing_key_rotation_period;
    if let (Some(cert_file), Some(key_file)) = (dev.tls_cert, dev.tls_key) {
        options.server.tls = Some(secretvault_server::tls::TlsSettings {
            cert_file,
            key_file,
            reload_interval: std::time::Duration::from_secs(5),
        });
    }
    options
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
