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

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// A request, with raw values; the broker does all the hashing. Borrowed from the
/// request being served: nothing is copied to record it (and the token is not copied
/// into memory that would not be zeroized).
#[derive(Debug, Clone)]
pub struct AuditRequest<'a> {
    pub id: &'a str,
    pub operation: Operation,
    pub path: &'a str,
    pub mount_point: &'a str,
    pub mount_type: &'a str,
    pub mount_accessor: &'a str,
    pub client_token: Option<&'a str>,
    pub client_token_accessor: Option<String>,
    /// The request body (or query parameters), borrowed: it is serialised, hashed, once per device.
    pub data: Option<&'a serde_json::Map<String, Value>>,
    pub remote_address: Option<std::net::IpAddr>,
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
    /// SHA-256 of the last line the sink accepted.
    prev_hash: [u8; 32],
}

/// Lines waiting to be chained and written, and the batch they will be written in.
struct Queue {
    bodies: Vec<Vec<u8>>,
    batch: Arc<Batch>,
    /// A flush is scheduled or running; it will take whatever is queued.
    flushing: bool,
}

impl Queue {
    /// Takes the queued lines and their batch; later lines start a new batch.
    fn take_batch(&mut self) -> (Vec<Vec<u8>>, Arc<Batch>) {
        (
            std::mem::take(&mut self.bodies),
            std::mem::replace(&mut self.batch, Batch::new()),
        )
    }
}

/// One write of queued lines; everyone whose lines are in it waits for its outcome.
struct Batch {
    outcome: OnceLock<Result<(), String>>,
    done: tokio::sync::Notify,
}

impl Batch {
    fn new() -> Arc<Batch> {
        Arc::new(Batch {
            outcome: OnceLock::new(),
            done: tokio::sync::Notify::new(),
        })
    }

    fn complete(&self, outcome: Result<(), String>) {
        let _ = self.outcome.set(outcome);
        self.done.notify_waiters();
    }

    async fn wait(&self) -> Result<(), String> {
        loop {
            let notified = self.done.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a completion in between is not missed.
            notified.as_mut().enable();
            if let Some(outcome) = self.outcome.get() {
                return outcome.clone();
            }
            notified.await;
        }
    }
}

struct Device {
    path: String,
    file_path: String,
    /// HMAC-SHA256 keyed with the device's salt once; cloned for each value so the key
    /// schedule is not recomputed on the hot path.
    mac: Hmac<Sha256>,
    hmac_accessor: bool,
    log_raw: bool,
    queue: Mutex<Queue>,
    chain: Mutex<ChainState>,
    /// Encoded `auth` parts by token accessor: a token's part only changes when its
    /// identity's policies (or remaining uses) do, and it costs two HMACs to build.
    auth_parts: Mutex<HashMap<String, Arc<encode::AuthPart>>>,
}

/// Lines after which a batch is written at once instead of waiting for the flush task.
const FULL_BATCH_LINES: usize = 32;

/// The most `auth` parts a device keeps; past this it starts over (cheap to rebuild).
const AUTH_PART_CACHE_LIMIT: usize = 4096;

impl Device {
    /// `cfg` gives the mount path, salt and flags; `file_path` is what `sys/audit` shows.
    fn new(cfg: &DeviceConfig, file_path: String, chain: ChainState) -> Self {
        Device {
            path: cfg.path.clone(),
            file_path,
            mac: keyed_mac(&cfg.salt),
            hmac_accessor: cfg.hmac_accessor,
            log_raw: cfg.log_raw,
            queue: Mutex::new(Queue {
                bodies: Vec::new(),
                batch: Batch::new(),
                flushing: false,
            }),
            chain: Mutex::new(chain),
            auth_parts: Mutex::new(HashMap::new()),
        }
    }

    /// The encoded `auth` part for `auth` (which has an accessor), from the cache when an
    /// equal one was encoded before.
    fn cached_auth_part(&self, auth: &AuditAuth) -> Arc<encode::AuthPart> {
        let accessor = auth.accessor.as_deref().unwrap_or_default();
        let lock = || self.auth_parts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(part) = lock().get(accessor)
            && part.source.as_ref() == Some(auth)
        {
            return part.clone();
        }
        let part = Arc::new(encode::AuthPart::encode(Some(auth), self));
        let mut cache = lock();
        if cache.len() >= AUTH_PART_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(accessor.to_string(), part.clone());
        part
    }

    fn hash(&self, value: &str) -> String {
        self.hash_str(value).as_str().to_string()
    }

    /// Queues lines for the next write (group commit) and returns the batch to wait on.
    ///
    /// Inside a tokio runtime the write is done by a flush task that first lets every
    /// other ready task run, so the requests in flight share one `write(2)` — the trade
    /// the redb backend makes for its commits. Outside a runtime the lines are written
    /// before this returns.
    fn enqueue(self: &Arc<Self>, bodies: impl IntoIterator<Item = Vec<u8>>) -> Arc<Batch> {
        let (batch, start_flush, full) = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.bodies.extend(bodies);
            let batch = queue.batch.clone();
            if queue.bodies.len() >= FULL_BATCH_LINES {
                // A full batch is written now, by the request that filled it, so writing
                // overlaps with serving the next requests instead of everyone waiting for
                // one large write.
                let (bodies, _) = queue.take_batch();
                (batch, false, Some(bodies))
            } else {
                let start = !queue.flushing;
                queue.flushing = true;
                (batch, start, None)
            }
        };
        if let Some(bodies) = full {
            self.write_batch(&bodies, &batch);
            return batch;
        }
        if start_flush {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let device = self.clone();
                    let guard = FlushOnDrop(Some(self.clone()));
                    runtime.spawn(async move {
                        loop {
                            tokio::task::yield_now().await;
                            if !device.flush_once() {
                                break;
                            }
                        }
                        guard.disarm();
                    });
                }
                Err(_) => while self.flush_once() {},
            }
        }
        batch
    }

    /// Chains and writes everything queued, in one write. Returns false (and ends the
    /// flush) when the queue was empty.
    fn flush_once(&self) -> bool {
        let (bodies, batch) = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.bodies.is_empty() {
                queue.flushing = false;
                return false;
            }
            queue.take_batch()
        };
        self.write_batch(&bodies, &batch);
        true
    }

    fn write_batch(&self, bodies: &[Vec<u8>], batch: &Batch) {
        let outcome = self.write_chained(bodies);
        if let Err(e) = &outcome {
            tracing::error!(device = %self.path, error = %e, lines = bodies.len(), "audit device failed to record entries");
        }
        batch.complete(outcome.map_err(|e| e.to_string()));
    }

    /// Chains lines — `prev_hash` added, newline — and writes them together. The chain
    /// only advances when the write succeeded, so a failed batch leaves no gap.
    fn write_chained(&self, bodies: &[Vec<u8>]) -> std::io::Result<()> {
        let mut state = self.chain.lock().unwrap_or_else(|e| e.into_inner());
        let mut prev = state.prev_hash;
        let mut out = Vec::with_capacity(bodies.iter().map(|b| b.len() + 96).sum());
        for body in bodies {
            let start = out.len();
            out.extend_from_slice(body);
            out.extend_from_slice(b",\"prev_hash\":\"sha256:");
            out.extend_from_slice(&crate::util::hex32(&prev));
            out.extend_from_slice(b"\"}");
            prev = Sha256::digest(&out[start..]).into();
            out.push(b'\n');
        }
        state.sink.write_line(&out)?;
        state.prev_hash = prev;
        Ok(())
    }
}

/// Owned by a flush task: if the task is dropped before it finished (the runtime shuts
/// down), what is queued is written synchronously instead of being lost.
struct FlushOnDrop(Option<Arc<Device>>);

impl FlushOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Some(device) = self.0.take() {
            while device.flush_once() {}
        }
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
        Ok(Device::new(&cfg, file_path, ChainState { sink, prev_hash }))
    }

    /// Test hook: a device writing to any [`Sink`].
    pub fn enable_sink(&self, path: &str, sink: Box<dyn Sink>, salt: [u8; 32]) {
        let cfg = DeviceConfig {
            path: path.to_string(),
            // Not opened: `sink` takes its place.
            kind: DeviceKind::Stdout,
            salt: Zeroizing::new(salt),
            hmac_accessor: true,
            log_raw: false,
        };
        let device = Device::new(
            &cfg,
            "custom".into(),
            ChainState {
                sink,
                prev_hash: [0; 32],
            },
        );
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

    /// Encodes what a request's audit lines share — its `auth` and `request` parts —
    /// once for every enabled device. The record then writes the request line, the
    /// response line or both.
    pub fn record(&self, auth: Option<&AuditAuth>, req: &AuditRequest<'_>) -> AuditRecord {
        let enabled = self.devices.read().unwrap_or_else(|e| e.into_inner());
        let none_enabled = enabled.is_empty();
        let devices = enabled
            .iter()
            .map(|device| (device.clone(), encode::shared_part(auth, req, device)))
            .collect();
        AuditRecord {
            devices,
            none_enabled,
        }
    }

    /// Records a request before it is served.
    pub async fn log_request(
        &self,
        record: &AuditRecord,
        req: &AuditRequest<'_>,
    ) -> Result<(), AuditError> {
        record.write(req, true, None).await
    }

    /// Records the response to a request already recorded with [`Self::log_request`].
    pub async fn log_response(
        &self,
        record: &AuditRecord,
        req: &AuditRequest<'_>,
        resp: &AuditResponse<'_>,
    ) -> Result<(), AuditError> {
        record.write(req, false, Some(resp)).await
    }

    /// Records a request and its response together, in one write per device. For
    /// requests without side effects (reads, lists): the response is only released if
    /// this succeeds, so nothing is revealed unaudited, at half the writes.
    pub async fn log_exchange(
        &self,
        record: &AuditRecord,
        req: &AuditRequest<'_>,
        resp: &AuditResponse<'_>,
    ) -> Result<(), AuditError> {
        record.write(req, true, Some(resp)).await
    }

    /// Queues the response entry without waiting for it to be written: for a request
    /// whose client went away (nobody is left to wait; the entry is still written).
    pub fn log_response_detached(
        &self,
        record: &AuditRecord,
        req: &AuditRequest<'_>,
        resp: &AuditResponse<'_>,
    ) {
        let _ = record.queue(req, false, Some(resp));
    }
}

/// A request's audit entries, encoded for each device that was enabled when it arrived.
pub struct AuditRecord {
    devices: Vec<(Arc<Device>, Vec<u8>)>,
    /// No device is enabled: nothing to write, nothing to fail.
    none_enabled: bool,
}

impl AuditRecord {
    /// Queues the lines on every device; returns the batches to wait for.
    fn queue(
        &self,
        req: &AuditRequest<'_>,
        request_line: bool,
        resp: Option<&AuditResponse<'_>>,
    ) -> Vec<Arc<Batch>> {
        let time = format_time(&chrono::Utc::now());
        let mut batches = Vec::with_capacity(self.devices.len());
        for (device, shared) in &self.devices {
            let request = request_line.then(|| encode::line_body(&time, shared, None, device));
            let response = resp.map(|r| encode::line_body(&time, shared, Some((req, r)), device));
            if request.is_some() || response.is_some() {
                batches.push(device.enqueue(request.into_iter().chain(response)));
            }
        }
        batches
    }

    /// Writes the lines to every device. Ok when at least one device recorded them
    /// (or none is enabled).
    async fn write(
        &self,
        req: &AuditRequest<'_>,
        request_line: bool,
        resp: Option<&AuditResponse<'_>>,
    ) -> Result<(), AuditError> {
        if self.none_enabled {
            return Ok(());
        }
        let mut recorded = false;
        for batch in self.queue(req, request_line, resp) {
            recorded |= batch.wait().await.is_ok();
        }
        if recorded {
            Ok(())
        } else {
            Err(AuditError::NoDeviceRecorded)
        }
    }
}

#[cfg(test)]
mod tests;
