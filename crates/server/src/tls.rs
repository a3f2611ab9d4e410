//! TLS with certificates that rotate without a restart: the key pair is re-read when its
//! files change (cert-manager and kubelet-projected Secrets replace them in place).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// How often to check the files for changes.
    pub reload_interval: Duration,
}

/// Loads a PEM certificate chain and private key into a rustls key pair.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert_file)
        .with_context(|| format!("reading TLS certificate {}", cert_file.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert_file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "TLS certificate {} holds no PEM certificate",
        cert_file.display()
    );
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read(key_file)
            .with_context(|| format!("reading TLS key {}", key_file.display()))?,
    );
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("parsing TLS key {}", key_file.display()))?
        .with_context(|| format!("TLS key {} holds no PEM private key", key_file.display()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        anyhow::anyhow!(
            "TLS key {} is not a supported key type: {e}",
            key_file.display()
        )
    })?;
    Ok(CertifiedKey::new(certs, signing_key))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Serves the current key pair; a background task swaps in new files when they change.
#[derive(Debug)]
pub struct ReloadingResolver {
    settings: TlsSettings,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ReloadingResolver {
    pub fn new(settings: TlsSettings) -> anyhow::Result<Arc<Self>> {
        let key = load_certified_key(&settings.cert_file, &settings.key_file)?;
        let stamps = (modified(&settings.cert_file), modified(&settings.key_file));
        Ok(Arc::new(ReloadingResolver {
            settings,
            current: RwLock::new(Arc::new(key)),
            stamps: RwLock::new(stamps),
        }))
    }

    /// Reloads if either file changed. Returns whether a new key pair is in use; a
    /// broken new pair keeps the old one serving (and is logged).
    pub fn reload_if_changed(&self) -> bool {
        let now = (
            modified(&self.settings.cert_file),
            modified(&self.settings.key_file),
        );
        if *self.stamps.read().unwrap_or_else(|e| e.into_inner()) == now {
            return false;
        }
        match load_certified_key(&self.settings.cert_file, &self.settings.key_file) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                *self.stamps.write().unwrap_or_else(|e| e.into_inner()) = now;
                tracing::info!(cert = %self.settings.cert_file.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                // Files are often replaced one at a time; try again next tick.
                tracing::warn!(error = %e, "TLS files changed but could not be loaded; still serving the previous certificate");
                false
            }
        }
    }

    fn spawn_watcher(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let interval = self.settings.reload_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(resolver) = weak.upgrade() else {
                    return;
                };
                resolver.reload_if_changed();
            }
        });
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// A TLS acceptor whose certificate follows the files.
pub async fn acceptor(settings: &TlsSettings) -> anyhow::Result<TlsAcceptor> {
    let resolver = ReloadingResolver::new(settings.clone())?;
    resolver.spawn_watcher();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("configuring TLS protocol versions")?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
