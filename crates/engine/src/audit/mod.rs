//! The audit broker: every request and response as one JSON line, in Vault's format.
//!
//! - Secrets never appear in the clear: every string inside request and response data,
//!   every token and (by default) every accessor is written as `hmac-sha256:<hex>`, an
//!   HMAC-SHA256 under the device's own salt (kept in encrypted storage, so the same
//!   value hashes the same way across restarts; `sys/audit-hash` computes it).
//! - Lines are chained: each carries `prev_hash`, the SHA-256 of the previous line's
//!   bytes, so altering, removing or inserting a line is detected by [`verify_chain`]
//!   (`svctl audit verify`) from the file alone.
//! - Fail closed: [`AuditBroker::log_request`] fails when devices are enabled and none of
//!   them could record the entry; the router then refuses the request.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::logical::{Operation, format_time};

mod encode;
mod sink;
mod verify;

pub use sink::Sink;
pub use verify::{ChainBreak, ChainReport, GENESIS_HASH, VerifyError, verify_chain, verify_file};

/// The token a request carried and what it allowed, as audit entries show it.
#[derive(Debug, Clone, Default)]
pub struct AuditAuth {
    pub client_token: Option<String>,
    pub accessor: Option<String>,
    pub display_name: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub identity_policies: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub entity_id: String,
    pub token_type: String,
    pub token_ttl: i64,
    pub token_issue_time: Option<String>,
    pub remaining_uses: Option<i64>,
}

/// A request, with raw values; the broker does all the hashing.
#[derive(Debug, Clone)]
pub struct AuditRequest<'a> {
    pub id: String,
    pub operation: Operation,
    pub path: String,
    pub mount_point: String,
    pub mount_type: String,
    pub mount_accessor: String,
    pub client_token: Option<String>,
    pub client_token_accessor: Option<String>,
    /// The request body (or query parameters), borrowed: it is serialised, hashed, once per device.
    pub data: Option<&'a serde_json::Map<String, Value>>,
    pub remote_address: Option<String>,
    pub remote_port: Option<u16>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditResponse<'a> {
    pub status: u16,
    /// Set when the response issues a token (login, token create).
    pub auth: Option<AuditAuth>,
    pub data: Option<&'a Value>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub enum DeviceKind {
    /// Append to a file, created with `mode` if absent.
    File {
        path: PathBuf,
        mode: u32,
    },
    Stdout,
}

pub struct DeviceConfig {
    /// The device's mount path, e.g. `file/`.
    pub path: String,
    pub kind: DeviceKind,
    pub salt: Zeroizing<[u8; 32]>,
    /// Hash accessors too (Vault's `hmac_accessor`, default true).
    pub hmac_accessor: bool,
    /// Write values in the clear (Vault's `log_raw`); for debugging only.
    pub log_raw: bool,
}

/// What `sys/audit` reports about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub path: String,
    pub file_path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no audit device could record the entry")]
    NoDeviceRecorded,
    #[error("audit device {path} is already enabled")]
    AlreadyEnabled { path: String },
    #[error("cannot open audit log {file}: {source}")]
    Open {
        file: String,
        source: std::io::Error,
    },
}

struct ChainState {
    sink: Box<dyn Sink>,
    prev_hash: [u8; 32],
}

struct Device {
    path: String,
    file_path: String,
    /// HMAC-SHA256 keyed with the device's salt once; cloned for each value so the key
    /// schedule is not recomputed on the hot path.
    mac: Hmac<Sha256>,
    hmac_accessor: bool,
    log_raw: bool,
    state: Mutex<ChainState>,
}

impl Device {
    fn hash(&self, value: &str) -> String {
        self.hash_str(value).as_str().to_string()
    }

    /// Appends entries in one write: each serialised (outside the lock), then chained
    /// under the lock — `prev_hash` added, newline — and written together. The chain only
    /// advances when the write succeeded.
    fn append(&self, entries: &[encode::EntryOut<'_>]) -> std::io::Result<()> {
        let mut bodies = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut body = Vec::with_capacity(2048);
            serde_json::to_writer(&mut body, entry).map_err(std::io::Error::other)?;
            // Reopen the object to add the chain link last.
            if body.pop() != Some(b'}') {
                return Err(std::io::Error::other(
                    "audit entry did not serialise to a JSON object",
                ));
            }
            bodies.push(body);
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut prev = state.prev_hash;
        let mut out = Vec::with_capacity(bodies.iter().map(|b| b.len() + 96).sum());
        for body in &bodies {
            let start = out.len();
            out.extend_from_slice(body);
            out.extend_from_slice(b",\"prev_hash\":\"sha256:");
            out.extend_from_slice(crate::util::hex(&prev).as_bytes());
            out.extend_from_slice(b"\"}");
            prev = Sha256::digest(&out[start..]).into();
            out.push(b'\n');
        }
        state.sink.write_line(&out)?;
        state.prev_hash = prev;
        Ok(())
    }
}

fn keyed_mac(salt: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(salt)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// `hmac-sha256:<hex>` of `value` under `salt`, as Vault writes it.
pub fn hash_with_salt(salt: &[u8; 32], value: &str) -> String {
    format!(
        "hmac-sha256:{}",
        crate::util::hex(&crate::crypto::hmac_sha256(salt, value.as_bytes()))
    )
}

#[derive(Default)]
pub struct AuditBroker {
    devices: RwLock<Vec<Arc<Device>>>,
}

impl AuditBroker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Enables a device. A file device opens (creating it with the requested mode) and
    /// resumes the chain from the file's last complete line.
    pub fn enable(&self, cfg: DeviceConfig) -> Result<(), AuditError> {
        if self
            .devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|d| d.path == cfg.path)
        {
            return Err(AuditError::AlreadyEnabled { path: cfg.path });
        }
        let device = Self::open_device(cfg)?;
        self.devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(device));
        Ok(())
    }

    /// Enables a device, or re-points an enabled one. The new sink is opened first, so a
    /// failure leaves the old device recording.
    pub fn replace(&self, cfg: DeviceConfig) -> Result<(), AuditError> {
        let device = Arc::new(Self::open_device(cfg)?);
        let mut devices = self.devices.write().unwrap_or_else(|e| e.into_inner());
        match devices.iter_mut().find(|d| d.path == device.path) {
            Some(slot) => *slot = device,
            None => devices.push(device),
        }
        Ok(())
    }

    fn open_device(cfg: DeviceConfig) -> Result<Device, AuditError> {
        let (sink, prev_hash, file_path): (Box<dyn Sink>, [u8; 32], String) = match &cfg.kind {
            DeviceKind::Stdout => (Box::new(sink::StdoutSink), [0; 32], "stdout".into()),
            DeviceKind::File { path, mode } => {
                let (file, prev) =
                    sink::FileSink::open(path, *mode).map_err(|source| AuditError::Open {
                        file: path.display().to_string(),
                        source,
                    })?;
                (Box::new(file), prev, path.display().to_string())
            }
        };
        let device = Device {
            path: cfg.path,
            file_path,
            mac: keyed_mac(&cfg.salt),
            hmac_accessor: cfg.hmac_accessor,
            log_raw: cfg.log_raw,
            state: Mutex::new(ChainState { sink, prev_hash }),
        };
        Ok(device)
    }

    /// Test hook: a device writing to any [`Sink`].
    pub fn enable_sink(&self, path: &str, sink: Box<dyn Sink>, salt: [u8; 32]) {
        let device = Device {
            path: path.to_string(),
            file_path: "custom".into(),
            mac: keyed_mac(&salt),
            hmac_accessor: true,
            log_raw: false,
            state: Mutex::new(ChainState {
                sink,
                prev_hash: [0; 32],
            }),
        };
        self.devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(device));
    }

    pub fn disable(&self, path: &str) -> bool {
        let mut devices = self.devices.write().unwrap_or_else(|e| e.into_inner());
        let before = devices.len();
        devices.retain(|d| d.path != path);
        devices.len() != before
    }

    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|d| DeviceInfo {
                path: d.path.clone(),
                file_path: d.file_path.clone(),
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub fn hash(&self, device_path: &str, input: &str) -> Option<String> {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|d| d.path == device_path)
            .map(|d| d.hash(input))
    }

    /// Writes the request line, the response line, or both in one write, to every
    /// device. Ok when at least one device recorded everything (or none is enabled).
    fn record(
        &self,
        auth: Option<&AuditAuth>,
        req: &AuditRequest<'_>,
        request_line: bool,
        resp: Option<&AuditResponse<'_>>,
    ) -> Result<(), AuditError> {
        let devices: Vec<Arc<Device>> = self
            .devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if devices.is_empty() {
            return Ok(());
        }
        let time = format_time(&chrono::Utc::now());
        let mut recorded = false;
        for device in &devices {
            // The caller's token appears in several places of each line: hash it once.
            let token_hash = req
                .client_token
                .as_deref()
                .filter(|_| !device.log_raw)
                .map(|t| device.hash_str(t));
            let entry = |kind, response| encode::EntryOut {
                time: &time,
                kind,
                auth,
                request: req,
                response,
                device,
                token_hash: token_hash.as_ref(),
            };
            let result = match (request_line, resp) {
                (true, Some(r)) => {
                    device.append(&[entry("request", None), entry("response", Some(r))])
                }
                (true, None) => device.append(&[entry("request", None)]),
                (false, Some(r)) => device.append(&[entry("response", Some(r))]),
                (false, None) => Ok(()),
            };
            match result {
                Ok(()) => recorded = true,
                Err(e) => {
                    tracing::error!(device = %device.path, error = %e, "audit device failed to record an entry")
                }
            }
        }
        if recorded {
            Ok(())
        } else {
            Err(AuditError::NoDeviceRecorded)
        }
    }

    /// Records a request before it is served.
    pub fn log_request(
        &self,
        auth: Option<&AuditAuth>,
        req: &AuditRequest<'_>,
    ) -> Result<(), AuditError> {
        self.record(auth, req, true, None)
    }

    /// Records the response to a request already recorded with [`Self::log_request`].
    pub fn log_response(
        &self,
        auth: Option<&AuditAuth>,
        req: &AuditRequest<'_>,
        resp: &AuditResponse<'_>,
    ) -> Result<(), AuditError> {
        self.record(auth, req, false, Some(resp))
    }

    /// Records a request and its response together, in one write per device. For
    /// requests without side effects (reads, lists): the response is only released if
    /// this succeeds, so nothing is revealed unaudited, at half the writes.
    pub fn log_exchange(
        &self,
        auth: Option<&AuditAuth>,
        req: &AuditRequest<'_>,
        resp: &AuditResponse<'_>,
    ) -> Result<(), AuditError> {
        self.record(auth, req, true, Some(resp))
    }
}

#[cfg(test)]
mod tests;
