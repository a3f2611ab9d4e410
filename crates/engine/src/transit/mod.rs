//! Transit: encryption as a service at `transit/`, with Vault's semantics and JSON shapes.
//!
//! Named keys (`keys/<name>`) hold versioned key material that never leaves the server;
//! callers send base64 plaintext to `encrypt/<name>` and get `vault:v<N>:<base64>` back.
//! Each key is one storage record (`<prefix>keys/<name>`) written through the barrier, so
//! key material is encrypted at rest with the storage keyring.
//!
//! Encrypt and decrypt of existing keys do not touch storage: keys are cached in memory,
//! with their ciphers' key schedules, replaced on every change made here and re-read when
//! older than [`CACHE_REFRESH`] (another replica may have rotated or reconfigured them) or
//! when a ciphertext names a version newer than the cached key knows. Changes take a
//! process-wide lock and compare-and-set the record, so replicas never lose each other's.

mod base64;
mod batch;
pub(crate) mod ciphertext;
mod key;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::crypto::{Barrier, BarrierError};
use crate::logical::{ApiError, ApiResult, Fields, Operation, Request, Response};
use crate::storage::{Precondition, Revision, StorageError};

pub use key::{CryptoError, KeyInfo, KeyOptions, KeyType, KeyTypeError};
use key::{KeyRecord, LoadedKey};

/// How long a cached key is trusted before it is re-read from storage.
pub const CACHE_REFRESH: Duration = Duration::from_secs(5);

/// The shortest automatic rotation period Vault allows.
const MIN_AUTO_ROTATE: Duration = Duration::from_secs(3600);

/// Where "now" comes from; tests move it forward to make rotations due.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Settings `keys/<name>/config` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyConfigChange {
    pub min_decryption_version: Option<i64>,
    pub min_encryption_version: Option<i64>,
    pub deletion_allowed: Option<bool>,
    /// Can only be switched on.
    pub exportable: Option<bool>,
    /// Can only be switched on.
    pub allow_plaintext_backup: Option<bool>,
    pub auto_rotate_period: Option<Duration>,
}

/// One transit mount.
pub struct Transit {
    barrier: Arc<Barrier>,
    prefix: String,
    cache: RwLock<HashMap<String, Arc<LoadedKey>>>,
    /// Bumped by every change; a re-read that raced with a change is not cached.
    generation: AtomicU64,
    writes: tokio::sync::Mutex<()>,
    clock: Clock,
}

enum Target<'a> {
    KeyList,
    Key(&'a str),
    Config(&'a str),
    Rotate(&'a str),
    Trim(&'a str),
    Encrypt(&'a str),
    Decrypt(&'a str),
    Rewrap(&'a str),
    Datakey(&'a str, &'a str),
}

/// Vault's `GenericNameRegex`: word characters, with `-` and `.` allowed inside.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match bytes {
        [] => false,
        [only] => word(only),
        [first, middle @ .., last] => {
            word(first) && word(last) && middle.iter().all(|b| word(b) || *b == b'-' || *b == b'.')
        }
    }
}

/// The request fields an endpoint knows, and those its path captures; anything else
/// draws Vault's "ignored" warning.
struct Schema {
    known: &'static [&'static str],
    from_path: &'static [&'static str],
}

const KEY_FIELDS: Schema = Schema {
    known: &[
        "type",
        "derived",
        "convergent_encryption",
        "key_size",
        "exportable",
        "allow_plaintext_backup",
        "auto_rotate_period",
        "context",
    ],
    from_path: &["name"],
};
const CONFIG_FIELDS: Schema = Schema {
    known: &[
        "min_decryption_version",
        "min_encryption_version",
        "deletion_allowed",
        "exportable",
        "allow_plaintext_backup",
        "auto_rotate_period",
    ],
    from_path: &["name"],
};
const ROTATE_FIELDS: Schema = Schema {
    known: &[],
    from_path: &["name"],
};
const TRIM_FIELDS: Schema = Schema {
    known: &["min_available_version"],
    from_path: &["name"],
};
const ENCRYPT_FIELDS: Schema = Schema {
    known: &[
        "plaintext",
        "context",
        "type",
        "convergent_encryption",
        "key_version",
        "partial_failure_response_code",
        "associated_data",
        "batch_input",
    ],
    from_path: &["name"],
};
const DECRYPT_FIELDS: Schema = Schema {
    known: &[
        "ciphertext",
        "context",
        "partial_failure_response_code",
        "associated_data",
        "batch_input",
    ],
    from_path: &["name"],
};
const REWRAP_FIELDS: Schema = Schema {
    known: &["ciphertext", "context", "key_version", "batch_input"],
    from_path: &["name"],
};
const DATAKEY_FIELDS: Schema = Schema {
    known: &["context", "bits", "key_version", "associated_data"],
    from_path: &["name", "plaintext"],
};

impl Schema {
    /// Appends Vault's warnings about fields the endpoint ignored or overrode.
    fn warn(&self, data: &Map<String, Value>, response: &mut Response) {
        let mut ignored: Vec<&str> = Vec::new();
        let mut replaced: Vec<&str> = Vec::new();
        for k in data.keys() {
            if self.from_path.contains(&k.as_str()) {
                replaced.push(k);
            } else if !self.known.contains(&k.as_str()) {
                ignored.push(k);
            }
        }
        ignored.sort_unstable();
        replaced.sort_unstable();
        if !ignored.is_empty() {
            response.warnings.push(format!(
                "Endpoint ignored these unrecognized parameters: [{}]",
                ignored.join(" ")
            ));
        }
        if !replaced.is_empty() {
            response.warnings.push(format!(
                "Endpoint replaced the value of these parameters with the values captured from the endpoint's path: [{}]",
                replaced.join(" ")
            ));
        }
    }
}

/// A string field without copying it when the client sent a JSON string (plaintexts are
/// secrets and can be large); numbers and booleans are converted as Vault converts them.
fn text<'a>(data: &'a Map<String, Value>, field: &str) -> ApiResult<Option<Cow<'a, str>>> {
    match data.get(field) {
        Some(Value::String(s)) => Ok(Some(Cow::Borrowed(s.as_str()))),
        _ => Ok(Fields(data).string(field)?.map(Cow::Owned)),
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn unsupported_path() -> ApiError {
    ApiError::multi(404, "unsupported path")
}

fn unsupported_operation() -> ApiError {
    ApiError::multi(405, "unsupported operation")
}

fn is_conflict(e: &BarrierError) -> bool {
    matches!(e, BarrierError::Storage(StorageError::Conflict { .. }))
}

fn b64(bytes: &[u8]) -> String {
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes a base64 context (empty stays empty).
fn decode_optional(text: &str) -> Result<Zeroizing<Vec<u8>>, base64::Base64Error> {
    if text.is_empty() {
        Ok(Zeroizing::new(Vec::new()))
    } else {
        base64::decode(text)
    }
}

fn decode_associated_data(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    decode_optional(text)
        .map_err(|e| format!("unable to get associated_data/additional_data from factory[0]: {e}"))
}

/// What a batch's HTTP status is: 200 if every item succeeded, else 400, or the caller's
/// `partial_failure_response_code` when some items succeeded.
fn batch_status(
    partial_code: Option<i64>,
    user_error: bool,
    success: bool,
    response: &mut Response,
) {
    if !user_error {
        return;
    }
    let mut code = 400;
    if let Some(requested) = partial_code.filter(|_| success) {
        // Vault accepts 1..=599; below 100 is not an HTTP status at all.
        match u16::try_from(requested) {
            Ok(c) if (100..=599).contains(&c) => code = c,
            _ => response.warnings.push(
                "invalid HTTP response code override from partial_failure_response_code, reverting to 400".into(),
            ),
        }
    }
    response.status = Some(code);
}

impl Transit {
    /// A transit mount storing its keys under `prefix` (e.g. `transit/transit/`).
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Transit {
        Self::with_clock(barrier, prefix, Arc::new(Utc::now))
    }

    /// As [`Transit::new`], with the time taken from `clock`.
    pub fn with_clock(barrier: Arc<Barrier>, prefix: impl Into<String>, clock: Clock) -> Transit {
        Transit {
            barrier,
            prefix: prefix.into(),
            cache: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            writes: tokio::sync::Mutex::new(()),
            clock,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    fn keys_prefix(&self) -> String {
        format!("{}keys/", self.prefix)
    }

    fn storage_key(&self, name: &str) -> String {
        format!("{}keys/{name}", self.prefix)
    }

    fn route(path: &str) -> Option<Target<'_>> {
        if path == "keys/" {
            return Some(Target::KeyList);
        }
        let (head, rest) = path.split_once('/')?;
        let named = |name: &'_ str| valid_name(name).then_some(());
        Some(match head {
            "keys" => match rest.split_once('/') {
                None => {
                    named(rest)?;
                    Target::Key(rest)
                }
                Some((name, action)) => {
                    named(name)?;
                    match action {
                        "config" => Target::Config(name),
                        "rotate" => Target::Rotate(name),
                        "trim" => Target::Trim(name),
                        _ => return None,
                    }
                }
            },
            "encrypt" => {
                named(rest)?;
                Target::Encrypt(rest)
            }
            "decrypt" => {
                named(rest)?;
                Target::Decrypt(rest)
            }
            "rewrap" => {
                named(rest)?;
                Target::Rewrap(rest)
            }
            "datakey" => {
                let (kind, name) = rest.split_once('/')?;
                named(kind)?;
                named(name)?;
                Target::Datakey(kind, name)
            }
            _ => return None,
        })
    }

    /// Vault's existence check, which makes a write `create` or `update` for ACLs: only
    /// `encrypt/<name>` has one (encrypting with a missing key creates it, so it needs
    /// `create`); every other write is an update.
    pub async fn exists(&self, path: &str) -> ApiResult<bool> {
        match Self::route(path) {
            Some(Target::Encrypt(name)) => Ok(self.load(name).await?.is_some()),
            _ => Ok(true),
        }
    }

    /// Whether `op` on `path` only computes (encrypt, decrypt, rewrap, datakey with an
    /// existing key: `Update`, never the upserting `Create`): it changes nothing, so it
    /// may be audited like a read, request and response together.
    pub fn is_side_effect_free(op: Operation, path: &str) -> bool {
        op == Operation::Update
            && matches!(
                Self::route(path),
                Some(
                    Target::Encrypt(_)
                        | Target::Decrypt(_)
                        | Target::Rewrap(_)
                        | Target::Datakey(..)
                )
            )
    }

    /// Serves one request; `path` is relative to the mount.
    pub async fn handle(&self, op: Operation, path: &str, req: &Request) -> ApiResult<Response> {
        let write = matches!(op, Operation::Create | Operation::Update);
        if write && path.ends_with('/') {
            return Err(bad("cannot write to a path ending in '/'"));
        }
        let target = Self::route(path).ok_or_else(unsupported_path)?;
        let data = &req.data;
        let (mut response, schema) = match (target, op) {
            (Target::KeyList, Operation::List) => return self.list_keys().await,
            (Target::Key(name), Operation::Read) => (self.read_key(name, data).await?, &KEY_FIELDS),
            (Target::Key(name), Operation::Delete) => return self.delete_key(name).await,
            (Target::Key(name), _) if write => (self.write_key(name, data).await?, &KEY_FIELDS),
            (Target::Config(name), _) if write => {
                (self.write_config(name, data).await?, &CONFIG_FIELDS)
            }
            (Target::Rotate(name), _) if write => (
                Response::data(self.rotate_key(name).await?.record.json()),
                &ROTATE_FIELDS,
            ),
            (Target::Trim(name), _) if write => (self.trim(name, data).await?, &TRIM_FIELDS),
            (Target::Encrypt(name), _) if write => {
                (self.encrypt_request(op, name, data).await?, &ENCRYPT_FIELDS)
            }
            (Target::Decrypt(name), _) if write => {
                (self.decrypt_request(name, data).await?, &DECRYPT_FIELDS)
            }
            (Target::Rewrap(name), _) if write => (self.rewrap(name, data).await?, &REWRAP_FIELDS),
            (Target::Datakey(kind, name), _) if write => {
                (self.datakey(kind, name, data).await?, &DATAKEY_FIELDS)
            }
            _ => return Err(unsupported_operation()),
        };
        schema.warn(data, &mut response);
        Ok(response)
    }

    // --- Key cache and storage ---------------------------------------------------------

    fn cached(&self, name: &str) -> Option<Arc<LoadedKey>> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache
            .get(name)
            .filter(|k| k.loaded_at.elapsed() < CACHE_REFRESH)
            .cloned()
    }

    /// The key, from the cache when fresh.
    async fn load(&self, name: &str) -> ApiResult<Option<Arc<LoadedKey>>> {
        match self.cached(name) {
            Some(key) => Ok(Some(key)),
            None => self.reload(name).await,
        }
    }

    /// The key as stored now; caches it unless a change raced with the read.
    async fn reload(&self, name: &str) -> ApiResult<Option<Arc<LoadedKey>>> {
        let generation = self.generation.load(Ordering::Acquire);
        let fetched = self.fetch(name).await?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let unchanged = self.generation.load(Ordering::Acquire) == generation;
        Ok(match fetched {
            Some((record, _)) => {
                let key = Arc::new(LoadedKey::new(record));
                if unchanged {
                    cache.insert(name.to_string(), key.clone());
                }
                Some(key)
            }
            None => {
                if unchanged {
                    cache.remove(name);
                }
                None
            }
        })
    }

    async fn fetch(&self, name: &str) -> ApiResult<Option<(KeyRecord, Revision)>> {
        let Some((bytes, revision)) = self.barrier.get(&self.storage_key(name)).await? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&bytes).map_err(|e| {
            tracing::error!(key = name, error = %e, "stored transit key does not parse");
            ApiError::internal(format!("the stored transit key {name:?} is corrupt"))
        })?;
        Ok(Some((record, revision)))
    }

    async fn store(
        &self,
        record: &KeyRecord,
        precondition: Precondition,
    ) -> Result<Revision, BarrierError> {
        // Serialising a record of strings, numbers and maps with string keys cannot fail.
        let bytes = Zeroizing::new(serde_json::to_vec(record).unwrap_or_default());
        self.barrier
            .put(&self.storage_key(&record.name), &bytes, precondition)
            .await
    }

    /// Caches a record just read or written under the write lock.
    fn install(&self, record: KeyRecord) -> Arc<LoadedKey> {
        let name = record.name.clone();
        let key = Arc::new(LoadedKey::new(record));
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        cache.insert(name, key.clone());
        key
    }

    fn forget(&self, name: &str) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        cache.remove(name);
    }

    /// Applies `change` to the stored key, retrying when another replica wrote it first.
    /// `change` returns whether anything changed (nothing is written otherwise). `None`
    /// when there is no such key.
    async fn update<F>(&self, name: &str, mut change: F) -> ApiResult<Option<Arc<LoadedKey>>>
    where
        F: FnMut(&mut KeyRecord) -> ApiResult<bool>,
    {
        let _guard = self.writes.lock().await;
        loop {
            let Some((mut record, revision)) = self.fetch(name).await? else {
                self.forget(name);
                return Ok(None);
            };
            if !change(&mut record)? {
                return Ok(Some(self.install(record)));
            }
            match self.store(&record, Precondition::Revision(revision)).await {
                Ok(_) => return Ok(Some(self.install(record))),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Returns the key, creating it with `options` if it does not exist; the flag says
    /// whether this call created it.
    async fn upsert(&self, name: &str, options: &KeyOptions) -> ApiResult<(Arc<LoadedKey>, bool)> {
        if let Some(key) = self.load(name).await? {
            return Ok((key, false));
        }
        let _guard = self.writes.lock().await;
        loop {
            if let Some((record, _)) = self.fetch(name).await? {
                return Ok((self.install(record), false));
            }
            let record = KeyRecord::new(name, options, self.now());
            match self.store(&record, Precondition::Absent).await {
                Ok(_) => {
                    tracing::info!(key = name, key_type = %options.key_type, "transit key created");
                    return Ok((self.install(record), true));
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    // --- Typed API for in-process callers ----------------------------------------------

    /// Creates a key unless one exists; returns it and whether it was created.
    pub async fn create_key(&self, name: &str, options: &KeyOptions) -> ApiResult<(KeyInfo, bool)> {
        if !valid_name(name) {
            return Err(bad(format!(
                "invalid transit key name {name:?}: use letters, digits and '_', with '-' or '.' inside"
            )));
        }
        validate_options(options)?;
        let (key, created) = self.upsert(name, options).await?;
        Ok((key.record.info(), created))
    }

    /// The key's settings and versions, read from storage.
    pub async fn key_info(&self, name: &str) -> ApiResult<Option<KeyInfo>> {
        Ok(self.reload(name).await?.map(|k| k.record.info()))
    }

    /// Encrypts with the latest version; `context` is required for derived keys.
    pub async fn encrypt(&self, name: &str, plaintext: &[u8], context: &[u8]) -> ApiResult<String> {
        let key = self
            .load(name)
            .await?
            .ok_or_else(|| bad("encryption key not found"))?;
        let (ciphertext, _) = key
            .encrypt(0, context, plaintext, &[])
            .map_err(|e| bad(e.to_string()))?;
        Ok(ciphertext)
    }

    /// Decrypts a `vault:v<N>:` ciphertext.
    pub async fn decrypt(
        &self,
        name: &str,
        ciphertext: &str,
        context: &[u8],
    ) -> ApiResult<Zeroizing<Vec<u8>>> {
        let mut key = self
            .load(name)
            .await?
            .ok_or_else(|| bad("encryption key not found"))?;
        let mut reloaded = false;
        self.decrypt_one(name, &mut key, &mut reloaded, context, ciphertext, &[])
            .await
            .map_err(|e| bad(e.to_string()))
    }

    /// Adds a new version; `None` when there is no such key.
    pub async fn rotate(&self, name: &str) -> ApiResult<Option<KeyInfo>> {
        let now = self.now();
        let key = self
            .update(name, |r| {
                r.rotate(now);
                Ok(true)
            })
            .await?;
        if key.is_some() {
            tracing::info!(key = name, "transit key rotated");
        }
        Ok(key.map(|k| k.record.info()))
    }

    /// Changes a key's settings with Vault's validation; returns the key and any warning.
    pub async fn configure(
        &self,
        name: &str,
        change: &KeyConfigChange,
    ) -> ApiResult<Option<(KeyInfo, Vec<String>)>> {
        let mut warnings = Vec::new();
        let key = self
            .update(name, |r| {
                warnings.clear();
                apply_config(r, change, &mut warnings)
            })
            .await?;
        Ok(key.map(|k| (k.record.info(), warnings)))
    }

    /// Rotates every key whose `auto_rotate_period` has elapsed since its latest version
    /// was created, and returns their names. Run periodically (`Vault::maintain`); the
    /// time comes from storage, so a restart does not reset the period.
    pub async fn rotate_due_keys(&self) -> ApiResult<Vec<String>> {
        let names = self.barrier.list(&self.keys_prefix()).await?;
        let mut rotated = Vec::new();
        let mut first_error = None;
        for name in names.iter().filter(|n| !n.ends_with('/')) {
            let now = self.now();
            let due = match self.fetch(name).await {
                Ok(Some((record, _))) => record.rotation_due(now),
                Ok(None) => false,
                Err(e) => {
                    first_error.get_or_insert(e);
                    false
                }
            };
            if !due {
                continue;
            }
            let mut did_rotate = false;
            let result = self
                .update(name, |r| {
                    // Another replica may have rotated it since it was read.
                    did_rotate = r.rotation_due(now);
                    if did_rotate {
                        r.rotate(now);
                    }
                    Ok(did_rotate)
                })
                .await;
            match result {
                Ok(_) if did_rotate => {
                    tracing::info!(key = %name, "transit key rotated automatically");
                    rotated.push(name.clone());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(key = %name, error = %e, "automatic rotation of a transit key failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if rotated.is_empty() => Err(e),
            _ => Ok(rotated),
        }
    }

    // --- keys/ ---------------------------------------------------------------------------

    async fn list_keys(&self) -> ApiResult<Response> {
        let names: Vec<String> = self
            .barrier
            .list(&self.keys_prefix())
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect();
        if names.is_empty() {
            return Err(ApiError::not_found());
        }
        Ok(Response::data(json!({ "keys": names })))
    }

    async fn read_key(&self, name: &str, data: &Map<String, Value>) -> ApiResult<Response> {
        let key = self.reload(name).await?.ok_or_else(ApiError::not_found)?;
        if let Some(context) = text(data, "context")? {
            // Only asymmetric derived keys use it (to show public keys); check it as Vault does.
            decode_optional(&context).map_err(|_| bad("failed to base64-decode context"))?;
        }
        Ok(Response::data(key.record.json()))
    }

    async fn write_key(&self, name: &str, data: &Map<String, Value>) -> ApiResult<Response> {
        let fields = Fields(data);
        let auto_rotate_period = fields.duration("auto_rotate_period")?.unwrap_or_default();
        let derived = fields.bool("derived")?.unwrap_or(false);
        let convergent_encryption = fields.bool("convergent_encryption")?.unwrap_or(false);
        let exportable = fields.bool("exportable")?.unwrap_or(false);
        let allow_plaintext_backup = fields.bool("allow_plaintext_backup")?.unwrap_or(false);
        let key_size = fields.int("key_size")?.unwrap_or(0);
        let type_name = text(data, "type")?.unwrap_or(Cow::Borrowed("aes256-gcm96"));
        if !auto_rotate_period.is_zero() && auto_rotate_period < MIN_AUTO_ROTATE {
            return Err(bad(
                "auto rotate period must be 0 to disable or at least an hour",
            ));
        }
        if convergent_encryption && !derived {
            return Err(bad(
                "convergent encryption requires derivation to be enabled",
            ));
        }
        let key_type = KeyType::parse(&type_name).map_err(|e| bad(e.to_string()))?;
        if key_size != 0 {
            return Err(bad(format!(
                "key_size is not valid for algorithm {key_type}"
            )));
        }
        let options = KeyOptions {
            key_type,
            derived,
            convergent_encryption,
            exportable,
            allow_plaintext_backup,
            auto_rotate_period,
        };
        // An existing key is returned as it is: its type and flags are fixed at creation.
        let (key, _) = self.upsert(name, &options).await?;
        Ok(Response::data(key.record.json()))
    }

    async fn delete_key(&self, name: &str) -> ApiResult<Response> {
        let _guard = self.writes.lock().await;
        loop {
            let Some((record, revision)) = self.fetch(name).await? else {
                self.forget(name);
                return Err(bad(format!(
                    "error deleting policy {name}: could not delete key; not found"
                )));
            };
            if !record.deletion_allowed {
                return Err(bad(format!(
                    "error deleting policy {name}: deletion is not allowed for this key"
                )));
            }
            match self
                .barrier
                .delete(&self.storage_key(name), Precondition::Revision(revision))
                .await
            {
                Ok(_) => {
                    self.forget(name);
                    tracing::info!(key = name, "transit key deleted");
                    return Ok(Response::no_content());
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn write_config(&self, name: &str, data: &Map<String, Value>) -> ApiResult<Response> {
        let fields = Fields(data);
        let change = KeyConfigChange {
            min_decryption_version: fields.int("min_decryption_version")?,
            min_encryption_version: fields.int("min_encryption_version")?,
            deletion_allowed: fields.bool("deletion_allowed")?,
            exportable: fields.bool("exportable")?,
            allow_plaintext_backup: fields.bool("allow_plaintext_backup")?,
            auto_rotate_period: fields.duration("auto_rotate_period")?,
        };
        let mut warnings = Vec::new();
        let key = self
            .update(name, |r| {
                warnings.clear();
                apply_config(r, &change, &mut warnings)
            })
            .await?
            .ok_or_else(|| bad(format!("no existing key named {name} could be found")))?;
        let mut response = Response::data(key.record.json());
        response.warnings = warnings;
        Ok(response)
    }

    async fn rotate_key(&self, name: &str) -> ApiResult<Arc<LoadedKey>> {
        let now = self.now();
        let key = self
            .update(name, |r| {
                r.rotate(now);
                Ok(true)
            })
            .await?
            .ok_or_else(|| bad("key not found"))?;
        tracing::info!(
            key = name,
            version = key.record.latest_version,
            "transit key rotated"
        );
        Ok(key)
    }

    async fn trim(&self, name: &str, data: &Map<String, Value>) -> ApiResult<Response> {
        let requested = Fields(data).int("min_available_version")?;
        let key = self
            .update(name, |r| {
                let min_available = requested.ok_or_else(|| bad("missing min_available_version"))?;
                let message = if min_available < i64::from(r.min_available_version) {
                    "minimum available version cannot be decremented"
                } else if r.min_encryption_version == 0 {
                    "minimum available version cannot be set when minimum encryption version is not set"
                } else if r.min_decryption_version == 0 {
                    "minimum available version cannot be set when minimum decryption version is not set"
                } else if min_available > i64::from(r.min_encryption_version) {
                    // Vault's spelling, which clients may match on.
                    "minimum available version cannot be greater than minmum encryption version"
                } else if min_available > i64::from(r.min_decryption_version) {
                    "minimum available version cannot be greater than minimum decryption version"
                } else if min_available < 0 {
                    "minimum available version cannot be negative"
                } else if min_available == 0 {
                    "minimum available version should be positive"
                } else {
                    // Within 1..=min_decryption_version, so a valid u32.
                    r.min_available_version = min_available as u32;
                    r.drop_trimmed_versions();
                    return Ok(true);
                };
                Err(bad(message))
            })
            .await?
            .ok_or_else(|| bad("invalid key name"))?;
        Ok(Response::data(key.record.json()))
    }

    // --- encrypt/, decrypt/, rewrap/, datakey/ ---------------------------------------------

    /// The key for encrypt: created first when the router decided this is a create.
    async fn key_for_encrypt(
        &self,
        op: Operation,
        name: &str,
        data: &Map<String, Value>,
        context_set: bool,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Arc<LoadedKey>> {
        if op != Operation::Create {
            return self
                .load(name)
                .await?
                .ok_or_else(|| bad("encryption key not found"));
        }
        let convergent_encryption = Fields(data).bool("convergent_encryption")?.unwrap_or(false);
        if convergent_encryption && !context_set {
            return Err(bad(
                "convergent encryption requires derivation to be enabled, so context is required",
            ));
        }
        let type_name = text(data, "type")?.unwrap_or(Cow::Borrowed("aes256-gcm96"));
        let key_type = match KeyType::parse(&type_name) {
            Ok(t) => t,
            Err(_) if type_name.starts_with("ecdsa-") => {
                return Err(bad(format!(
                    "key type {type_name} not supported for this operation"
                )));
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        let options = KeyOptions {
            key_type,
            derived: context_set,
            convergent_encryption,
            ..Default::default()
        };
        let (key, created) = self.upsert(name, &options).await?;
        if !created {
            warnings.push(
                "Attempted creation of the key during the encrypt operation, but it was created beforehand".into(),
            );
        }
        Ok(key)
    }

    async fn encrypt_request(
        &self,
        op: Operation,
        name: &str,
        data: &Map<String, Value>,
    ) -> ApiResult<Response> {
        let fields = Fields(data);
        let partial_code = fields.int("partial_failure_response_code")?;
        let single: (Cow<'_, str>, Cow<'_, str>, Cow<'_, str>);
        let batch_mode = fields.get("batch_input").is_some();
        let items = match fields.get("batch_input") {
            Some(raw) => {
                let items = batch::decode(raw, batch::Kind::Encrypt)
                    .map_err(|e| bad(format!("failed to parse batch input: {e}")))?;
                if items.is_empty() {
                    return Err(bad("missing batch input to process"));
                }
                items
            }
            None => {
                let plaintext =
                    text(data, "plaintext")?.ok_or_else(|| bad("missing plaintext to encrypt"))?;
                single = (
                    plaintext,
                    text(data, "context")?.unwrap_or_default(),
                    text(data, "associated_data")?.unwrap_or_default(),
                );
                vec![batch::Item {
                    plaintext: &single.0,
                    context: &single.1,
                    associated_data: &single.2,
                    key_version: fields.int("key_version")?.unwrap_or(0),
                    ..Default::default()
                }]
            }
        };

        // Decode every item first, as Vault does: a context given to some items but not
        // others fails the whole request.
        let context_set = !items[0].context.is_empty();
        let mut prepared = Vec::with_capacity(items.len());
        for item in &items {
            if item.context.is_empty() == context_set {
                return Err(bad(
                    "context should be set either in all the request blocks or in none",
                ));
            }
            prepared.push(
                base64::decode(item.plaintext)
                    .and_then(|plaintext| Ok((plaintext, decode_optional(item.context)?)))
                    .map_err(|e| e.to_string()),
            );
        }

        let mut warnings = Vec::new();
        let key = self
            .key_for_encrypt(op, name, data, context_set, &mut warnings)
            .await?;

        let mut results = Vec::with_capacity(items.len());
        let (mut user_error, mut success) = (false, false);
        for (item, input) in items.iter().zip(prepared) {
            let outcome = input.and_then(|(plaintext, context)| {
                let aad = decode_associated_data(item.associated_data)?;
                key.encrypt(item.key_version, &context, &plaintext, &aad)
                    .map_err(|e| e.to_string())
            });
            match &outcome {
                Ok(_) => success = true,
                Err(_) => user_error = true,
            }
            results.push((outcome, item.reference));
        }

        let mut response = if batch_mode {
            let batch_results: Vec<Value> = results
                .into_iter()
                .map(|(outcome, reference)| match outcome {
                    Ok((ciphertext, version)) => json!({
                        "ciphertext": ciphertext, "key_version": version, "reference": reference,
                    }),
                    Err(error) => json!({ "error": error, "reference": reference }),
                })
                .collect();
            let mut response = Response::data(json!({ "batch_results": batch_results }));
            batch_status(partial_code, user_error, success, &mut response);
            response
        } else {
            match results.pop() {
                Some((Ok((ciphertext, version)), _)) => Response::data(json!({
                    "ciphertext": ciphertext, "key_version": version,
                })),
                Some((Err(error), _)) => return Err(bad(error)),
                None => return Err(bad("missing plaintext to encrypt")),
            }
        };
        response.warnings.append(&mut warnings);
        Ok(response)
    }

    /// Decrypts one ciphertext; when it names a version newer than the cached key, the key
    /// is re-read once (another replica may have rotated it).
    async fn decrypt_one(
        &self,
        name: &str,
        key: &mut Arc<LoadedKey>,
        reloaded: &mut bool,
        context: &[u8],
        ciphertext: &str,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let result = key.decrypt(context, ciphertext, aad);
        if result == Err(CryptoError::VersionTooNew) && !*reloaded {
            *reloaded = true;
            if let Ok(Some(fresh)) = self.reload(name).await {
                *key = fresh;
                return key.decrypt(context, ciphertext, aad);
            }
        }
        result
    }

    async fn decrypt_request(&self, name: &str, data: &Map<String, Value>) -> ApiResult<Response> {
        let fields = Fields(data);
        let partial_code = fields.int("partial_failure_response_code")?;
        let single: (Cow<'_, str>, Cow<'_, str>, Cow<'_, str>);
        let batch_mode = fields.get("batch_input").is_some();
        let items = match fields.get("batch_input") {
            Some(raw) => {
                let items = batch::decode(raw, batch::Kind::Decrypt)
                    .map_err(|e| bad(format!("failed to parse batch input: {e}")))?;
                if items.is_empty() {
                    return Err(bad("missing batch input to process"));
                }
                items
            }
            None => {
                let ciphertext = text(data, "ciphertext")?.unwrap_or_default();
                if ciphertext.is_empty() {
                    return Err(bad("missing ciphertext to decrypt"));
                }
                single = (
                    ciphertext,
                    text(data, "context")?.unwrap_or_default(),
                    text(data, "associated_data")?.unwrap_or_default(),
                );
                vec![batch::Item {
                    ciphertext: &single.0,
                    context: &single.1,
                    associated_data: &single.2,
                    ..Default::default()
                }]
            }
        };
        let contexts = decode_contexts(&items)?;
        let mut key = self
            .load(name)
            .await?
            .ok_or_else(|| bad("encryption key not found"))?;

        let mut reloaded = false;
        let (mut user_error, mut success) = (false, false);
        let mut results = Vec::with_capacity(items.len());
        for (item, context) in items.iter().zip(contexts) {
            let outcome = match (context, decode_associated_data(item.associated_data)) {
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                (Ok(context), Ok(aad)) => self
                    .decrypt_one(
                        name,
                        &mut key,
                        &mut reloaded,
                        &context,
                        item.ciphertext,
                        &aad,
                    )
                    .await
                    .map(|plaintext| b64(&plaintext))
                    .map_err(|e| e.to_string()),
            };
            match &outcome {
                Ok(_) => success = true,
                Err(_) => user_error = true,
            }
            results.push((outcome, item.reference));
        }

        if batch_mode {
            let batch_results: Vec<Value> = results
                .into_iter()
                .map(|(outcome, reference)| match outcome {
                    Ok(plaintext) => json!({ "plaintext": plaintext, "reference": reference }),
                    Err(error) => {
                        json!({ "plaintext": "", "error": error, "reference": reference })
                    }
                })
                .collect();
            let mut response = Response::data(json!({ "batch_results": batch_results }));
            batch_status(partial_code, user_error, success, &mut response);
            Ok(response)
        } else {
            match results.pop() {
                Some((Ok(plaintext), _)) => Ok(Response::data(json!({ "plaintext": plaintext }))),
                Some((Err(error), _)) => Err(bad(error)),
                None => Err(bad("missing ciphertext to decrypt")),
            }
        }
    }

    async fn rewrap(&self, name: &str, data: &Map<String, Value>) -> ApiResult<Response> {
        let fields = Fields(data);
        let single: (Cow<'_, str>, Cow<'_, str>);
        let batch_mode = fields.get("batch_input").is_some();
        let items = match fields.get("batch_input") {
            Some(raw) => {
                let items = batch::decode(raw, batch::Kind::Rewrap)
                    .map_err(|e| bad(format!("failed to parse batch input: {e}")))?;
                if items.is_empty() {
                    return Err(bad("missing batch input to process"));
                }
                items
            }
            None => {
                let ciphertext = text(data, "ciphertext")?.unwrap_or_default();
                if ciphertext.is_empty() {
                    return Err(bad("missing ciphertext to decrypt"));
                }
                single = (ciphertext, text(data, "context")?.unwrap_or_default());
                vec![batch::Item {
                    ciphertext: &single.0,
                    context: &single.1,
                    key_version: fields.int("key_version")?.unwrap_or(0),
                    ..Default::default()
                }]
            }
        };
        let contexts = decode_contexts(&items)?;
        let mut key = self
            .load(name)
            .await?
            .ok_or_else(|| bad("encryption key not found"))?;

        let mut reloaded = false;
        let mut results = Vec::with_capacity(items.len());
        for (item, context) in items.iter().zip(contexts) {
            let outcome = match context {
                Err(e) => Err(e),
                Ok(context) => {
                    match self
                        .decrypt_one(
                            name,
                            &mut key,
                            &mut reloaded,
                            &context,
                            item.ciphertext,
                            &[],
                        )
                        .await
                    {
                        // The plaintext never leaves this function.
                        Ok(plaintext) => key
                            .encrypt(item.key_version, &context, &plaintext, &[])
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            results.push((outcome, item.reference));
        }

        if batch_mode {
            // Vault answers 200 for a rewrap batch whatever its items' fate.
            let batch_results: Vec<Value> = results
                .into_iter()
                .map(|(outcome, reference)| match outcome {
                    Ok((ciphertext, version)) => json!({
                        "ciphertext": ciphertext, "key_version": version, "reference": reference,
                    }),
                    Err(error) => json!({ "error": error, "reference": reference }),
                })
                .collect();
            Ok(Response::data(json!({ "batch_results": batch_results })))
        } else {
            match results.pop() {
                Some((Ok((ciphertext, version)), _)) => Ok(Response::data(json!({
                    "ciphertext": ciphertext, "key_version": version,
                }))),
                Some((Err(error), _)) => Err(bad(error)),
                None => Err(bad("missing ciphertext to decrypt")),
            }
        }
    }

    async fn datakey(
        &self,
        kind: &str,
        name: &str,
        data: &Map<String, Value>,
    ) -> ApiResult<Response> {
        let fields = Fields(data);
        let bits = fields.int("bits")?.unwrap_or(256);
        let key_version = fields.int("key_version")?.unwrap_or(0);
        let include_plaintext = match kind {
            "plaintext" => true,
            "wrapped" => false,
            _ => return Err(bad("Invalid path, must be 'plaintext' or 'wrapped'")),
        };
        let context = text(data, "context")?.unwrap_or_default();
        let context =
            decode_optional(&context).map_err(|_| bad("failed to base64-decode context"))?;
        let aad = decode_associated_data(&text(data, "associated_data")?.unwrap_or_default())
            .map_err(bad)?;
        let key = self
            .load(name)
            .await?
            .ok_or_else(|| bad("encryption key not found"))?;
        let len = match bits {
            128 => 16,
            256 => 32,
            512 => 64,
            _ => return Err(bad("invalid bit length")),
        };
        let mut data_key = Zeroizing::new(vec![0u8; len]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut data_key);
        let (ciphertext, version) = key
            .encrypt(key_version, &context, &data_key, &aad)
            .map_err(|e| bad(e.to_string()))?;
        let mut out = json!({ "ciphertext": ciphertext, "key_version": version });
        if include_plaintext {
            out["plaintext"] = json!(b64(&data_key));
        }
        Ok(Response::data(out))
    }
}

/// Checks the contexts of decrypt and rewrap items: all or none must have one; an empty
/// ciphertext or undecodable context fails only its item.
fn decode_contexts(
    items: &[batch::Item<'_>],
) -> ApiResult<Vec<Result<Zeroizing<Vec<u8>>, String>>> {
    let context_set = items.first().is_some_and(|i| !i.context.is_empty());
    items
        .iter()
        .map(|item| {
            if item.context.is_empty() == context_set {
                return Err(bad(
                    "context should be set either in all the request blocks or in none",
                ));
            }
            if item.ciphertext.is_empty() {
                return Ok(Err("missing ciphertext to decrypt".to_string()));
            }
            Ok(decode_optional(item.context).map_err(|e| e.to_string()))
        })
        .collect()
}

fn validate_options(options: &KeyOptions) -> ApiResult<()> {
    if !options.auto_rotate_period.is_zero() && options.auto_rotate_period < MIN_AUTO_ROTATE {
        return Err(bad(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    if options.convergent_encryption && !options.derived {
        return Err(bad(
            "convergent encryption requires derivation to be enabled",
        ));
    }
    Ok(())
}

/// `keys/<name>/config` on a record, with Vault's checks in Vault's order. Returns whether
/// anything changed; an error leaves the stored key as it was.
fn apply_config(
    r: &mut KeyRecord,
    change: &KeyConfigChange,
    warnings: &mut Vec<String>,
) -> ApiResult<bool> {
    let mut changed = false;
    if let Some(mut v) = change.min_decryption_version {
        if v < 0 {
            return Err(bad("min decryption version cannot be negative"));
        }
        if v == 0 {
            v = 1;
            warnings.push(
                "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1".into(),
            );
        }
        if v != i64::from(r.min_decryption_version) {
            if v > i64::from(r.latest_version) {
                return Err(bad(format!(
                    "cannot set min decryption version of {v}, latest key version is {}",
                    r.latest_version
                )));
            }
            // At most latest_version, so a valid u32.
            r.min_decryption_version = v as u32;
            changed = true;
        }
    }
    if let Some(v) = change.min_encryption_version {
        if v < 0 {
            return Err(bad("min encryption version cannot be negative"));
        }
        if v != i64::from(r.min_encryption_version) {
            if v > i64::from(r.latest_version) {
                return Err(bad(format!(
                    "cannot set min encryption version of {v}, latest key version is {}",
                    r.latest_version
                )));
            }
            r.min_encryption_version = v as u32;
            changed = true;
        }
    }
    if r.min_encryption_version > 0 && r.min_encryption_version < r.min_decryption_version {
        return Err(bad(format!(
            "cannot set min encryption/decryption values; min encryption version of {} must be greater than or equal to min decryption version of {}",
            r.min_encryption_version, r.min_decryption_version
        )));
    }
    if let Some(allowed) = change.deletion_allowed
        && allowed != r.deletion_allowed
    {
        r.deletion_allowed = allowed;
        changed = true;
    }
    // exportable and allow_plaintext_backup cannot be taken back once given.
    if change.exportable == Some(true) && !r.exportable {
        r.exportable = true;
        changed = true;
    }
    if change.allow_plaintext_backup == Some(true) && !r.allow_plaintext_backup {
        r.allow_plaintext_backup = true;
        changed = true;
    }
    if let Some(period) = change.auto_rotate_period {
        if !period.is_zero() && period < MIN_AUTO_ROTATE {
            return Err(bad(
                "auto rotate period must be 0 to disable or at least an hour",
            ));
        }
        if period.as_secs() != r.auto_rotate_period {
            r.auto_rotate_period = period.as_secs();
            changed = true;
        }
    }
    if !changed {
        return Ok(false);
    }
    if r.min_available_version > r.min_encryption_version {
        return Err(bad(
            "min encryption version should not be less than min available version",
        ));
    }
    if r.min_available_version > r.min_decryption_version {
        return Err(bad(
            "min decryption version should not be less then min available version",
        ));
    }
    Ok(true)
}
