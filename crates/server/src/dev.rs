//! Dev mode: a complete vault on one machine, no cluster needed.
//!
//! Storage is the embedded redb database in the data directory, encrypted under a root
//! key kept beside it (`root.key`, mode 0600). Everything survives a restart on the same
//! directory. Every request is audited to `<data-dir>/audit.log` unless told otherwise.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use secretvault_engine::crypto::RootKey;
use secretvault_engine::storage::Backend;
use secretvault_engine::storage::redb::RedbBackend;
use secretvault_engine::vault::{Vault, VaultConfig};
use tokio::net::TcpListener;

use crate::listener::{ServerConfig, serve};

#[derive(Debug, Clone)]
pub struct DevOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Use this root token (else keep the stored one, else generate one).
    pub root_token: Option<String>,
    /// Audit log file, or `stdout`; default `<data-dir>/audit.log`.
    pub audit_log: Option<String>,
    /// Load every `*.hcl`/`*.json` policy in this directory at start.
    pub policy_dir: Option<PathBuf>,
    pub server: ServerConfig,
    pub vault: VaultConfig,
    /// How often to run housekeeping (keyring rotation when due).
    pub maintenance_interval: Duration,
}

impl DevOptions {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        DevOptions {
            listen,
            data_dir,
            root_token: None,
            audit_log: None,
            policy_dir: None,
            server: ServerConfig::default(),
            vault: VaultConfig::default(),
            maintenance_interval: Duration::from_secs(60),
        }
    }
}

/// A vault opened on a dev data directory, ready to serve.
pub struct DevVault {
    pub vault: Arc<Vault>,
    pub root_token: zeroize::Zeroizing<String>,
    pub audit_log: String,
}

/// Opens (or initialises) the data directory: root key, storage, root token, audit, policies.
pub async fn open(options: &DevOptions) -> anyhow::Result<DevVault> {
    let started = Instant::now();
    secretvault_engine::crypto::create_private_dir(&options.data_dir)
        .with_context(|| format!("creating data directory {}", options.data_dir.display()))?;
    let root_key = RootKey::load_or_create(&options.data_dir.join("root.key"))
        .context("loading the root key")?;
    let db_path = options.data_dir.join("vault.redb");
    let backend: Arc<dyn Backend> = Arc::new(
        RedbBackend::open(&db_path)
            .with_context(|| format!("opening storage {}", db_path.display()))?,
    );
    let vault = Arc::new(
        Vault::open(backend, root_key, options.vault.clone())
            .await
            .context("opening the vault")?,
    );
    let root_token = vault
        .ensure_root_token(options.root_token.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("--root-token: {}", e.errors.join("; ")))?;
    let audit_log = options.audit_log.clone().unwrap_or_else(|| {
        options
            .data_dir
            .join("audit.log")
            .to_string_lossy()
            .into_owned()
    });
    vault
        .enable_file_audit("file", &audit_log)
        .await
        .map_err(|e| anyhow::anyhow!("--audit-log {audit_log}: {}", e.errors.join("; ")))?;
    if let Some(dir) = &options.policy_dir {
        let loaded = vault
            .policies()
            .load_dir(dir)
            .await
            .map_err(|problems| anyhow::anyhow!("--policy-dir:\n{problems}"))?;
        tracing::info!(count = loaded.len(), dir = %dir.display(), "policies loaded");
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, data_dir = %options.data_dir.display(), "vault opened");
    Ok(DevVault {
        vault,
        root_token,
        audit_log,
    })
}

/// Runs the dev server until `shutdown` resolves. Prints the address, root token and
/// the environment lines to paste on stdout.
pub async fn run(options: DevOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let dev = open(&options).await?;
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let scheme = if options.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    print_banner(&mut std::io::stdout().lock(), scheme, addr, &options, &dev)?;

    let maintenance = {
        let vault = dev.vault.clone();
        let interval = options.maintenance_interval;
        tokio::spawn(async move {
            loop {
                vault.maintain().await;
                tokio::time::sleep(interval).await;
            }
        })
    };
    let result = serve(
        listener,
        dev.vault.clone(),
        options.server.clone(),
        shutdown,
    )
    .await;
    maintenance.abort();
    tracing::info!("stopped");
    result
}

fn print_banner(
    out: &mut impl Write,
    scheme: &str,
    addr: SocketAddr,
    options: &DevOptions,
    dev: &DevVault,
) -> anyhow::Result<()> {
    let url = format!("{scheme}://{addr}");
    writeln!(out, "secretvault dev server is running.")?;
    writeln!(out)?;
    writeln!(out, "    API address:  {url}")?;
    writeln!(
        out,
        "    Data dir:     {} (kept across restarts)",
        options.data_dir.display()
    )?;
    writeln!(out, "    Audit log:    {}", dev.audit_log)?;
    writeln!(out, "    Root token:   {}", dev.root_token.as_str())?;
    writeln!(out)?;
    writeln!(
        out,
        "Paste these lines to point svctl (or the vault/bao CLI) at it:"
    )?;
    writeln!(out)?;
    writeln!(out, "    export VAULT_ADDR='{url}'")?;
    writeln!(out, "    export VAULT_TOKEN='{}'", dev.root_token.as_str())?;
    writeln!(out)?;
    writeln!(
        out,
        "Dev mode keeps its root key in the data dir: fine for one machine, not for production."
    )?;
    out.flush()?;
    Ok(())
}
