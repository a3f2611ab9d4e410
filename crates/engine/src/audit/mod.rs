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

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::logical::{Operation, format_time};

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
pub struct AuditRequest {
    pub id: String,
    pub operation: Operation,
    pub path: String,
    pub mount_point: String,
    pub mount_type: String,
    pub mount_accessor: String,
    pub client_token: Option<String>,
    pub client_token_accessor: Option<String>,
    pub data: Option<Value>,
    pub remote_address: Option<String>,
    pub remote_port: Option<u16>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditResponse {
    pub status: u16,
    /// Set when the response issues a token (login, token create).
    pub auth: Option<AuditAuth>,
    pub data: Option<Value>,
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
    salt: Zeroizing<[u8; 32]>,
    hmac_accessor: bool,
    log_raw: bool,
    state: Mutex<ChainState>,
}

impl Device {
    fn hash(&self, value: &str) -> String {
        hash_with_salt(&self.salt, value)
    }

    fn hash_opt(&self, value: Option<&str>) -> Option<String> {
        value.map(|v| {
            if self.log_raw {
                v.to_string()
            } else {
                self.hash(v)
            }
        })
    }

    fn accessor(&self, value: Option<&str>) -> Option<String> {
        value.map(|v| {
            if self.log_raw || !self.hmac_accessor {
                v.to_string()
            } else {
                self.hash(v)
            }
        })
    }

    /// Replaces every string inside `value` by its HMAC (map keys stay readable).
    fn hash_value(&self, value: &Value) -> Value {
        if self.log_raw {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.hash(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.hash_value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.hash_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn auth_json(&self, auth: Option<&AuditAuth>) -> Value {
        let Some(a) = auth else {
            return json!({ "token_type": "default" });
        };
        let mut out = Map::new();
        if let Some(t) = self.hash_opt(a.client_token.as_deref()) {
            out.insert("client_token".into(), Value::String(t));
        }
        if let Some(t) = self.accessor(a.accessor.as_deref()) {
            out.insert("accessor".into(), Value::String(t));
        }
        if !a.display_name.is_empty() {
            out.insert("display_name".into(), Value::String(a.display_name.clone()));
        }
        out.insert("policies".into(), json!(a.policies));
        out.insert("token_policies".into(), json!(a.token_policies));
        if !a.identity_policies.is_empty() {
            out.insert("identity_policies".into(), json!(a.identity_policies));
        }
        if !a.metadata.is_empty() {
            let metadata: Map<String, Value> = a
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            out.insert("metadata".into(), self.hash_value(&Value::Object(metadata)));
        }
        if !a.entity_id.is_empty() {
            out.insert("entity_id".into(), Value::String(a.entity_id.clone()));
        }
        out.insert("token_type".into(), Value::String(a.token_type.clone()));
        if a.token_ttl > 0 {
            out.insert("token_ttl".into(), json!(a.token_ttl));
        }
        if let Some(t) = &a.token_issue_time {
            out.insert("token_issue_time".into(), Value::String(t.clone()));
        }
        if let Some(n) = a.remaining_uses {
            out.insert("remaining_uses".into(), json!(n));
        }
        Value::Object(out)
    }

    fn request_json(&self, req: &AuditRequest) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), Value::String(req.id.clone()));
        out.insert(
            "operation".into(),
            Value::String(req.operation.as_str().into()),
        );
        if !req.mount_point.is_empty() {
            out.insert("mount_point".into(), Value::String(req.mount_point.clone()));
            out.insert("mount_type".into(), Value::String(req.mount_type.clone()));
            out.insert(
                "mount_accessor".into(),
                Value::String(req.mount_accessor.clone()),
            );
        }
        if let Some(t) = self.hash_opt(req.client_token.as_deref()) {
            out.insert("client_token".into(), Value::String(t));
        }
        if let Some(t) = self.accessor(req.client_token_accessor.as_deref()) {
            out.insert("client_token_accessor".into(), Value::String(t));
        }
        out.insert("namespace".into(), json!({ "id": "root" }));
        out.insert("path".into(), Value::String(req.path.clone()));
        if let Some(data) = &req.data {
            out.insert("data".into(), self.hash_value(data));
        }
        if let Some(addr) = &req.remote_address {
            out.insert("remote_address".into(), Value::String(addr.clone()));
        }
        if let Some(port) = req.remote_port {
            out.insert("remote_port".into(), json!(port));
        }
        Value::Object(out)
    }

    fn response_json(&self, req: &AuditRequest, resp: &AuditResponse) -> Value {
        let mut out = Map::new();
        if !req.mount_point.is_empty() {
            out.insert("mount_point".into(), Value::String(req.mount_point.clone()));
            out.insert("mount_type".into(), Value::String(req.mount_type.clone()));
            out.insert(
                "mount_accessor".into(),
                Value::String(req.mount_accessor.clone()),
            );
        }
        out.insert("status_code".into(), json!(resp.status));
        if let Some(auth) = &resp.auth {
            out.insert("auth".into(), self.auth_json(Some(auth)));
        }
        if let Some(data) = &resp.data {
            out.insert("data".into(), self.hash_value(data));
        }
        if !resp.warnings.is_empty() {
            out.insert("warnings".into(), json!(resp.warnings));
        }
        Value::Object(out)
    }

    /// Appends one entry: the entry object with `prev_hash` added, then a newline.
    /// The chain only advances when the write succeeded.
    fn append(&self, mut entry: Map<String, Value>) -> std::io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        entry.insert(
            "prev_hash".into(),
            Value::String(format!("sha256:{}", hex::encode(state.prev_hash))),
        );
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        let hash: [u8; 32] = Sha256::digest(&line).into();
        line.push(b'\n');
        state.sink.write_line(&line)?;
        state.prev_hash = hash;
        Ok(())
    }
}

/// `hmac-sha256:<hex>` of `value` under `salt`, as Vault writes it.
pub fn hash_with_salt(salt: &[u8; 32], value: &str) -> String {
    format!(
        "hmac-sha256:{}",
        hex::encode(crate::crypto::hmac_sha256(salt, value.as_bytes()))
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
            salt: cfg.salt,
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
            salt: Zeroizing::new(salt),
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

    fn record(&self, build: impl Fn(&Device) -> Map<String, Value>) -> Result<(), AuditError> {
        let devices: Vec<Arc<Device>> = self
            .devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if devices.is_empty() {
            return Ok(());
        }
        let mut recorded = false;
        for device in &devices {
            match device.append(build(device)) {
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

    pub fn log_request(
        &self,
        auth: Option<&AuditAuth>,
        req: &AuditRequest,
    ) -> Result<(), AuditError> {
        let time = format_time(&chrono::Utc::now());
        self.record(|device| {
            let mut entry = Map::new();
            entry.insert("time".into(), Value::String(time.clone()));
            entry.insert("type".into(), Value::String("request".into()));
            entry.insert("auth".into(), device.auth_json(auth));
            entry.insert("request".into(), device.request_json(req));
            entry
        })
    }

    pub fn log_response(
        &self,
        auth: Option<&AuditAuth>,
        req: &AuditRequest,
        resp: &AuditResponse,
    ) -> Result<(), AuditError> {
        let time = format_time(&chrono::Utc::now());
        self.record(|device| {
            let mut entry = Map::new();
            entry.insert("time".into(), Value::String(time.clone()));
            entry.insert("type".into(), Value::String("response".into()));
            entry.insert("auth".into(), device.auth_json(auth));
            entry.insert("request".into(), device.request_json(req));
            entry.insert("response".into(), device.response_json(req, resp));
            if let Some(error) = &resp.error {
                entry.insert("error".into(), Value::String(error.clone()));
            }
            entry
        })
    }
}

#[cfg(test)]
mod tests;
