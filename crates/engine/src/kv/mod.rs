//! KV version 2, with Vault's semantics and JSON shapes.
//!
//! Storage layout under the mount's prefix (e.g. `kv/secret/`):
//! - `config`: the mount's [`KvConfig`];
//! - `meta/<path>`: a secret's [`Metadata`], including the list of its versions;
//! - `blob/<uuid>`: one version's data, named by a random id recorded in the metadata.
//!
//! A write stores the new version's blob first and then replaces the metadata with a
//! compare-and-set on its revision, retrying on conflict. A crash between the two leaves
//! an orphan blob that nothing references, never a version without its data.
//!
//! Every operation that changes what a read of a secret returns (or its metadata)
//! publishes the secret's name to the mount's [`ChangeLog`] once the change is stored.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::crypto::Barrier;
use crate::logical::{ApiError, ApiResult, Fields, Operation, Request, Response, format_time};
use crate::storage::{Precondition, Revision};
use crate::util::duration::format_go_duration;
use crate::watch::ChangeLog;

/// Versions kept when neither the secret nor the mount says otherwise.
pub const DEFAULT_MAX_VERSIONS: u64 = 10;

/// Vault's limits on `custom_metadata`.
const CUSTOM_METADATA_MAX_KEYS: usize = 64;
const CUSTOM_METADATA_MAX_KEY_LEN: usize = 128;
const CUSTOM_METADATA_MAX_VALUE_LEN: usize = 512;

/// The mount-wide settings at `<mount>/config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvConfig {
    pub max_versions: u64,
    pub cas_required: bool,
    /// Seconds; zero means versions are never deleted automatically.
    pub delete_version_after: u64,
}

/// One secret's metadata and version list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(with = "crate::util::nanos")]
    pub created_time: DateTime<Utc>,
    #[serde(with = "crate::util::nanos")]
    pub updated_time: DateTime<Utc>,
    pub current_version: u64,
    pub oldest_version: u64,
    pub max_versions: u64,
    pub cas_required: bool,
    pub delete_version_after: u64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub versions: BTreeMap<u64, VersionMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionMeta {
    #[serde(with = "crate::util::nanos")]
    pub created_time: DateTime<Utc>,
    #[serde(with = "crate::util::nanos::option")]
    pub deletion_time: Option<DateTime<Utc>>,
    pub destroyed: bool,
    /// Id of the blob holding this version's data; empty once destroyed.
    pub blob: String,
}

impl VersionMeta {
    fn is_deleted(&self, now: DateTime<Utc>) -> bool {
        self.deletion_time.is_some_and(|t| t <= now)
    }

    /// `created_time`, `deletion_time` and `destroyed`, built by moving values in (on the
    /// read path; `json!` would copy each one).
    fn fields(&self) -> Map<String, Value> {
        let deletion_time = self.deletion_time.as_ref().map(format_time);
        Map::from_iter([
            (
                "created_time".to_string(),
                Value::String(format_time(&self.created_time)),
            ),
            (
                "deletion_time".to_string(),
                Value::String(deletion_time.unwrap_or_default()),
            ),
            ("destroyed".to_string(), Value::Bool(self.destroyed)),
        ])
    }
}

impl Metadata {
    fn new(now: DateTime<Utc>) -> Self {
        Metadata {
            created_time: now,
            updated_time: now,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            custom_metadata: None,
            versions: BTreeMap::new(),
        }
    }

    fn custom_metadata_json(&self) -> Value {
        match &self.custom_metadata {
            Some(m) if !m.is_empty() => json!(m),
            _ => Value::Null,
        }
    }

    /// The version block in data reads and write responses.
    fn version_json(&self, version: u64, meta: &VersionMeta) -> Value {
        let mut fields = meta.fields();
        fields.insert("custom_metadata".to_string(), self.custom_metadata_json());
        fields.insert("version".to_string(), Value::from(version));
        Value::Object(fields)
    }

    fn json(&self) -> Value {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, v)| (n.to_string(), Value::Object(v.fields())))
            .collect();
        json!({
            "cas_required": self.cas_required,
            "created_time": format_time(&self.created_time),
            "current_version": self.current_version,
            "custom_metadata": self.custom_metadata_json(),
            "delete_version_after": format_go_duration(Duration::from_secs(self.delete_version_after)),
            "max_versions": self.max_versions,
            "oldest_version": self.oldest_version,
            "updated_time": format_time(&self.updated_time),
            "versions": versions,
        })
    }
}

/// What a successful data read returns (for in-process callers such as the operator).
#[derive(Debug, Clone)]
pub struct SecretVersion {
    pub version: u64,
    pub data: Map<String, Value>,
    pub created_time: DateTime<Utc>,
}

/// One KV v2 mount.
pub struct Kv {
    barrier: Arc<Barrier>,
    prefix: String,
    config: RwLock<Option<KvConfig>>,
    /// Every change to a secret, published once durable, for `sys/secretvault/watch`.
    changes: ChangeLog,
}

enum Target<'a> {
    Config,
    Data(&'a str),
    Metadata(&'a str),
    Delete(&'a str),
    Undelete(&'a str),
    Destroy(&'a str),
    Subkeys(&'a str),
}

impl<'a> Target<'a> {
    /// The secret path (or folder) the request names; `None` for the mount's config.
    fn secret(&self) -> Option<&'a str> {
        match *self {
            Target::Config => None,
            Target::Data(p)
            | Target::Metadata(p)
            | Target::Delete(p)
            | Target::Undelete(p)
            | Target::Destroy(p)
            | Target::Subkeys(p) => Some(p),
        }
    }
}

impl Kv {
    /// `prefix` is where this mount's data lives in storage, e.g. `kv/secret/`.
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        Kv {
            barrier,
            prefix: prefix.into(),
            config: RwLock::new(None),
            changes: ChangeLog::new(),
        }
    }

    /// Which secrets changed, by name relative to the mount (`app/db`), since this
    /// process started.
    pub fn changes(&self) -> &ChangeLog {
        &self.changes
    }

    fn route(path: &str) -> Option<Target<'_>> {
        if path == "config" {
            return Some(Target::Config);
        }
        let (head, rest) = path.split_once('/')?;
        let secret = rest;
        Some(match head {
            "data" if !secret.is_empty() => Target::Data(secret),
            "metadata" => Target::Metadata(secret),
            "delete" if !secret.is_empty() => Target::Delete(secret),
            "undelete" if !secret.is_empty() => Target::Undelete(secret),
            "destroy" if !secret.is_empty() => Target::Destroy(secret),
            "subkeys" if !secret.is_empty() => Target::Subkeys(secret),
            _ => return None,
        })
    }

    /// Whether `path` (relative to the mount) is one this engine serves.
    pub fn handles(path: &str) -> bool {
        Self::route(path).is_some()
    }

    /// The response Vault gives for a path a KV v2 mount does not have.
    pub fn invalid_path_response() -> Response {
        Response {
            status: Some(404),
            warnings: vec!["Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.".into()],
            ..Default::default()
        }
    }

    /// Vault's existence check, which turns a write into `create` or `update` for ACLs.
    pub async fn exists(&self, path: &str) -> ApiResult<bool> {
        match Self::route(path) {
            // A path too long to store names nothing; `handle` says why.
            Some(Target::Data(p) | Target::Metadata(p)) if self.path_too_long(p).is_some() => {
                Ok(false)
            }
            Some(Target::Data(p) | Target::Metadata(p)) if !p.is_empty() && !p.ends_with('/') => {
                Ok(self.load_meta(p).await?.is_some())
            }
            Some(Target::Config) => Ok(true),
            _ => Ok(true),
        }
    }

    pub async fn handle(&self, op: Operation, path: &str, req: &Request) -> ApiResult<Response> {
        let Some(target) = Self::route(path) else {
            return Ok(Self::invalid_path_response());
        };
        if let Some(err) = target.secret().and_then(|p| self.path_too_long(p)) {
            return Err(err);
        }
        let fields = Fields(&req.data);
        let write = matches!(op, Operation::Create | Operation::Update);
        match (target, op) {
            (Target::Config, Operation::Read) => self.read_config().await.map(|c| {
                Response::data(json!({
                    "cas_required": c.cas_required,
                    "delete_version_after": format_go_duration(Duration::from_secs(c.delete_version_after)),
                    "max_versions": c.max_versions,
                }))
            }),
            (Target::Config, _) if write => self.write_config(&fields).await,
            (Target::Metadata(p), Operation::List) => self.list(p).await,
            (Target::Data(p) | Target::Metadata(p) | Target::Subkeys(p) | Target::Delete(p) | Target::Undelete(p) | Target::Destroy(p), _)
                if p.ends_with('/') || p.split('/').any(|s| s == ".." || s == ".") =>
            {
                Err(ApiError::bad_request(format!("invalid secret path {p:?}: it must name a secret, not a folder, and may not contain '.' or '..' segments")))
            }
            (Target::Data(p), Operation::Read) => self.read_data(p, &fields).await,
            (Target::Data(p), _) if write => self.write_data(p, &fields).await,
            (Target::Data(p), Operation::Patch) => {
                require_merge_patch(req)?;
                self.patch_data(p, &fields).await
            }
            (Target::Data(p), Operation::Delete) => self.soft_delete_latest(p).await,
            (Target::Metadata(p), Operation::Read) => self.read_metadata(p).await,
            (Target::Metadata(p), _) if write && !p.is_empty() => self.write_metadata(p, &fields, false).await,
            (Target::Metadata(p), Operation::Patch) if !p.is_empty() => {
                require_merge_patch(req)?;
                self.write_metadata(p, &fields, true).await
            }
            (Target::Metadata(p), Operation::Delete) if !p.is_empty() => self.delete_metadata(p).await,
            (Target::Delete(p), _) if write => self.mark_versions(p, &fields, Mark::Delete).await,
            (Target::Undelete(p), _) if write => self.mark_versions(p, &fields, Mark::Undelete).await,
            (Target::Destroy(p), _) if write => self.mark_versions(p, &fields, Mark::Destroy).await,
            (Target::Subkeys(p), Operation::Read) => self.subkeys(p, &fields).await,
            _ => Err(ApiError::unsupported_operation()),
        }
    }

    /// The 400 for a secret path whose storage keys would exceed what backends store
    /// ([`MAX_KEY_LEN`](crate::storage::MAX_KEY_LEN) bytes); the metadata key is the
    /// longest of a secret's keys.
    fn path_too_long(&self, path: &str) -> Option<ApiError> {
        // The longest storage key is the metadata key: prefix, "meta/", path.
        let max = crate::storage::MAX_KEY_LEN - self.prefix.len() - "meta/".len();
        (path.len() > max).then(|| {
            ApiError::bad_request(format!(
                "invalid secret path: it is {} bytes long; the longest this mount stores is {max} bytes",
                path.len()
            ))
        })
    }

    // Built by concatenation rather than `format!`: these run on every read.
    fn meta_key(&self, path: &str) -> String {
        [self.prefix.as_str(), "meta/", path].concat()
    }

    fn blob_key(&self, id: &str) -> String {
        [self.prefix.as_str(), "blob/", id].concat()
    }

    fn config_key(&self) -> String {
        format!("{}config", self.prefix)
    }

    /// A secret's metadata, shared: decoded once per write thanks to the barrier's cache.
    async fn load_meta(&self, path: &str) -> ApiResult<Option<(Arc<Metadata>, Revision)>> {
        let Some((meta, revision)) = self
            .barrier
            .get_parsed(&self.meta_key(path), |bytes| {
                serde_json::from_slice::<Metadata>(bytes)
            })
            .await?
        else {
            return Ok(None);
        };
        let meta =
            meta.map_err(|e| ApiError::internal(format!("metadata of {path:?} is corrupt: {e}")))?;
        Ok(Some((meta, revision)))
    }

    /// A secret's metadata, to change and store back.
    async fn load_meta_owned(&self, path: &str) -> ApiResult<Option<(Metadata, Revision)>> {
        Ok(self
            .load_meta(path)
            .await?
            .map(|(meta, revision)| (Arc::unwrap_or_clone(meta), revision)))
    }

    async fn store_meta(
        &self,
        path: &str,
        meta: &Metadata,
        revision: Option<Revision>,
    ) -> ApiResult<Result<(), ()>> {
        let bytes = serde_json::to_vec(meta).map_err(ApiError::internal)?;
        let precondition = revision
            .map(Precondition::Revision)
            .unwrap_or(Precondition::Absent);
        match self
            .barrier
            .put(&self.meta_key(path), &bytes, precondition)
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(crate::crypto::BarrierError::Storage(crate::storage::StorageError::Conflict {
                ..
            })) => Ok(Err(())),
            Err(e) => Err(e.into()),
        }
    }

    async fn load_blob(&self, id: &str) -> ApiResult<Map<String, Value>> {
        let Some((bytes, _)) = self.barrier.get(&self.blob_key(id)).await? else {
            return Err(ApiError::internal("version data is missing from storage"));
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::internal(format!("version data is corrupt: {e}")))
    }

    pub async fn read_config(&self) -> ApiResult<KvConfig> {
        if let Some(config) = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(config);
        }
        let config = match self.barrier.get(&self.config_key()).await? {
            Some((bytes, _)) => serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::internal(format!("KV config is corrupt: {e}")))?,
            None => KvConfig::default(),
        };
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
        Ok(config)
    }

    async fn write_config(&self, fields: &Fields<'_>) -> ApiResult<Response> {
        let mut config = self.read_config().await?;
        if let Some(n) = fields.uint("max_versions", u32::MAX as u64)? {
            config.max_versions = n;
        }
        if let Some(b) = fields.bool("cas_required")? {
            config.cas_required = b;
        }
        if let Some(d) = fields.duration("delete_version_after")? {
            config.delete_version_after = d.as_secs();
        }
        let bytes = serde_json::to_vec(&config).map_err(ApiError::internal)?;
        self.barrier
            .put(&self.config_key(), &bytes, Precondition::None)
            .await?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Some(config);
        Ok(Response::no_content())
    }

    async fn read_data(&self, path: &str, fields: &Fields<'_>) -> ApiResult<Response> {
        let requested = fields.uint("version", u64::MAX)?.unwrap_or(0);
        let Some((meta, _)) = self.load_meta(path).await? else {
            return Err(ApiError::not_found());
        };
        let version = if requested == 0 {
            meta.current_version
        } else {
            requested
        };
        let Some(vmeta) = meta.versions.get(&version) else {
            return Err(ApiError::not_found());
        };
        let now = Utc::now();
        if vmeta.destroyed || vmeta.is_deleted(now) {
            // Vault answers 404 but still shows the version's metadata.
            return Ok(Response {
                status: Some(404),
                data: Some(json!({ "data": null, "metadata": meta.version_json(version, vmeta) })),
                ..Default::default()
            });
        }
        let data = self.load_blob(&vmeta.blob).await?;
        // The data moves into the response (`json!` would copy it, value by value).
        Ok(Response::data(Value::Object(Map::from_iter([
            ("data".to_string(), Value::Object(data)),
            ("metadata".to_string(), meta.version_json(version, vmeta)),
        ]))))
    }

    /// Reads a version (0 = latest) for in-process callers; `None` when absent, deleted or destroyed.
    pub async fn read(&self, path: &str, version: u64) -> ApiResult<Option<SecretVersion>> {
        let Some((meta, _)) = self.load_meta(path).await? else {
            return Ok(None);
        };
        let version = if version == 0 {
            meta.current_version
        } else {
            version
        };
        let Some(vmeta) = meta.versions.get(&version) else {
            return Ok(None);
        };
        if vmeta.destroyed || vmeta.is_deleted(Utc::now()) {
            return Ok(None);
        }
        let data = self.load_blob(&vmeta.blob).await?;
        Ok(Some(SecretVersion {
            version,
            data,
            created_time: vmeta.created_time,
        }))
    }

    async fn write_data(&self, path: &str, fields: &Fields<'_>) -> ApiResult<Response> {
        let data = match fields.0.get("data") {
            None | Some(Value::Null) => return Err(ApiError::bad_request("no data provided")),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "error converting input for field \"data\": expected a JSON object (map) of keys to values, got {}",
                    crate::logical::json_type_name(other)
                )));
            }
        };
        let cas = cas_option(fields)?;
        self.put_version(path, data, cas).await
    }

    /// Writes a new version for in-process callers; returns the new version number.
    pub async fn write(
        &self,
        path: &str,
        data: Map<String, Value>,
        cas: Option<u64>,
    ) -> ApiResult<u64> {
        let response = self.put_version(path, data, cas).await?;
        Ok(response
            .data
            .as_ref()
            .and_then(|d| d["version"].as_u64())
            .unwrap_or(0))
    }

    async fn put_version(
        &self,
        path: &str,
        data: Map<String, Value>,
        cas: Option<u64>,
    ) -> ApiResult<Response> {
        let config = self.read_config().await?;
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&data).map_err(ApiError::internal)?);
        loop {
            let now = Utc::now();
            let (mut meta, revision) = match self.load_meta_owned(path).await? {
                Some((m, r)) => (m, Some(r)),
                None => (Metadata::new(now), None),
            };
            check_cas(&config, &meta, cas)?;
            let blob = uuid::Uuid::new_v4().to_string();
            self.barrier
                .put(&self.blob_key(&blob), &bytes, Precondition::Absent)
                .await?;
            let version = meta.current_version + 1;
            let delete_after = if meta.delete_version_after > 0 {
                meta.delete_version_after
            } else {
                config.delete_version_after
            };
            // Checked: metadata stored before durations were bounded may hold more than any
            // date can be away; such versions are simply never deleted.
            let deletion_time = i64::try_from(delete_after)
                .ok()
                .filter(|secs| *secs > 0)
                .and_then(chrono::Duration::try_seconds)
                .and_then(|after| now.checked_add_signed(after));
            meta.versions.insert(
                version,
                VersionMeta {
                    created_time: now,
                    deletion_time,
                    destroyed: false,
                    blob: blob.clone(),
                },
            );
            meta.current_version = version;
            meta.updated_time = now;
            let trimmed = trim_versions(&mut meta, &config);
            match self.store_meta(path, &meta, revision).await? {
                Ok(()) => {
                    self.changes.publish(path);
                    for old in trimmed {
                        self.delete_blob(&old).await;
                    }
                    let vmeta = &meta.versions[&version];
                    return Ok(Response::data(meta.version_json(version, vmeta)));
                }
                Err(()) => {
                    // Someone else wrote this secret meanwhile: drop our blob and decide again
                    // (the check-and-set option must be judged against their version).
                    self.delete_blob(&blob).await;
                }
            }
        }
    }

    async fn delete_blob(&self, id: &str) {
        if id.is_empty() {
            return;
        }
        if let Err(e) = self
            .barrier
            .delete(&self.blob_key(id), Precondition::None)
            .await
        {
            // An orphan blob is harmless (nothing references it); the write itself succeeded.
            tracing::warn!(error = %e, "could not delete an unreferenced KV blob");
        }
    }

    async fn patch_data(&self, path: &str, fields: &Fields<'_>) -> ApiResult<Response> {
        let patch = match fields.0.get("data") {
            None | Some(Value::Null) => return Err(ApiError::bad_request("no data provided")),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "error converting input for field \"data\": expected a JSON object (map), got {}",
                    crate::logical::json_type_name(other)
                )));
            }
        };
        let cas = cas_option(fields)?;
        let config = self.read_config().await?;
        // Vault answers a PATCH of a missing or deleted secret with a bare 404.
        let bare_not_found = || Response {
            status: Some(404),
            ..Default::default()
        };
        let Some((meta, _)) = self.load_meta(path).await? else {
            return Ok(bare_not_found());
        };
        let Some(current) = meta.versions.get(&meta.current_version) else {
            return Ok(bare_not_found());
        };
        if current.destroyed || current.is_deleted(Utc::now()) {
            return Ok(bare_not_found());
        }
        check_cas(&config, &meta, cas)?;
        let mut data = Value::Object(self.load_blob(&current.blob).await?);
        merge_patch(&mut data, &Value::Object(patch));
        let Value::Object(data) = data else {
            return Err(ApiError::internal("patched data is not an object"));
        };
        // Pin the version we patched so a concurrent write makes this fail rather than
        // silently patching a newer version.
        self.put_version(path, data, Some(cas.unwrap_or(meta.current_version)))
            .await
    }

    async fn soft_delete_latest(&self, path: &str) -> ApiResult<Response> {
        self.update_meta(path, |meta, now| {
            let current = meta.current_version;
            if let Some(v) = meta.versions.get_mut(&current)
                && !v.destroyed
                && !v.is_deleted(now)
            {
                v.deletion_time = Some(now);
            }
            Ok(Vec::new())
        })
        .await?;
        Ok(Response::no_content())
    }

    async fn mark_versions(
        &self,
        path: &str,
        fields: &Fields<'_>,
        mark: Mark,
    ) -> ApiResult<Response> {
        let versions = fields.int_list("versions")?.unwrap_or_default();
        if versions.is_empty() {
            return Err(ApiError::bad_request("No version number provided"));
        }
        let versions: Vec<u64> = versions
            .into_iter()
            .filter(|v| *v > 0)
            .map(|v| v as u64)
            .collect();
        self.update_meta(path, |meta, now| {
            let mut destroyed_blobs = Vec::new();
            for n in &versions {
                let Some(v) = meta.versions.get_mut(n) else {
                    continue;
                };
                match mark {
                    Mark::Delete => {
                        if !v.destroyed && !v.is_deleted(now) {
                            v.deletion_time = Some(now);
                        }
                    }
                    Mark::Undelete => {
                        if !v.destroyed {
                            v.deletion_time = None;
                        }
                    }
                    Mark::Destroy => {
                        if !v.destroyed {
                            v.destroyed = true;
                            destroyed_blobs.push(std::mem::take(&mut v.blob));
                        }
                    }
                }
            }
            Ok(destroyed_blobs)
        })
        .await?;
        Ok(Response::no_content())
    }

    /// Read-modify-write of a secret's metadata with retry; `change` returns blobs to delete
    /// once the new metadata is stored. A missing secret is left alone (Vault answers 204).
    async fn update_meta(
        &self,
        path: &str,
        mut change: impl FnMut(&mut Metadata, DateTime<Utc>) -> ApiResult<Vec<String>>,
    ) -> ApiResult<bool> {
        loop {
            let Some((mut meta, revision)) = self.load_meta_owned(path).await? else {
                return Ok(false);
            };
            let blobs = change(&mut meta, Utc::now())?;
            if self.store_meta(path, &meta, Some(revision)).await?.is_ok() {
                self.changes.publish(path);
                for blob in blobs {
                    self.delete_blob(&blob).await;
                }
                return Ok(true);
            }
        }
    }

    async fn read_metadata(&self, path: &str) -> ApiResult<Response> {
        if path.is_empty() {
            return Err(ApiError::not_found());
        }
        let Some((meta, _)) = self.load_meta(path).await? else {
            return Err(ApiError::not_found());
        };
        Ok(Response::data(meta.json()))
    }

    async fn write_metadata(
        &self,
        path: &str,
        fields: &Fields<'_>,
        patch: bool,
    ) -> ApiResult<Response> {
        let max_versions = fields.uint("max_versions", u32::MAX as u64)?;
        let cas_required = fields.bool("cas_required")?;
        let delete_version_after = fields.duration("delete_version_after")?;
        let custom = match fields.0.get("custom_metadata") {
            None => None,
            Some(Value::Null) if !patch => Some(None),
            Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(Some(map.clone())),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "error converting input for field \"custom_metadata\": expected a map of strings, got {}",
                    crate::logical::json_type_name(other)
                )));
            }
        };
        loop {
            let now = Utc::now();
            let (mut meta, revision) = match self.load_meta_owned(path).await? {
                Some((m, r)) => (m, Some(r)),
                None if patch => return Err(ApiError::not_found()),
                None => (Metadata::new(now), None),
            };
            if let Some(n) = max_versions {
                meta.max_versions = n;
            }
            if let Some(b) = cas_required {
                meta.cas_required = b;
            }
            if let Some(d) = delete_version_after {
                meta.delete_version_after = d.as_secs();
            }
            if let Some(custom) = &custom {
                let merged = match (patch, custom) {
                    (_, None) => None,
                    (false, Some(map)) => Some(string_values(map)?),
                    (true, Some(map)) => {
                        let mut current = meta.custom_metadata.clone().unwrap_or_default();
                        for (k, v) in map {
                            match v {
                                Value::Null => {
                                    current.remove(k);
                                }
                                Value::String(s) => {
                                    current.insert(k.clone(), s.clone());
                                }
                                _ => {
                                    return Err(custom_metadata_error(vec![format!(
                                        "value for key {k:?} must be a string"
                                    )]));
                                }
                            }
                        }
                        Some(current)
                    }
                };
                if let Some(m) = &merged {
                    validate_custom_metadata(m)?;
                }
                meta.custom_metadata = merged;
            }
            meta.updated_time = now;
            if self.store_meta(path, &meta, revision).await?.is_ok() {
                self.changes.publish(path);
                return Ok(Response::no_content());
            }
        }
    }

    async fn delete_metadata(&self, path: &str) -> ApiResult<Response> {
        loop {
            let Some((meta, revision)) = self.load_meta(path).await? else {
                return Ok(Response::no_content());
            };
            match self
                .barrier
                .delete(&self.meta_key(path), Precondition::Revision(revision))
                .await
            {
                Ok(_) => {
                    self.changes.publish(path);
                    for v in meta.versions.values() {
                        self.delete_blob(&v.blob).await;
                    }
                    return Ok(Response::no_content());
                }
                Err(crate::crypto::BarrierError::Storage(
                    crate::storage::StorageError::Conflict { .. },
                )) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn list(&self, prefix: &str) -> ApiResult<Response> {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            return Err(ApiError::not_found());
        }
        let keys = self.barrier.list(&self.meta_key(prefix)).await?;
        if keys.is_empty() {
            return Err(ApiError::not_found());
        }
        Ok(Response::data(json!({ "keys": keys })))
    }

    async fn subkeys(&self, path: &str, fields: &Fields<'_>) -> ApiResult<Response> {
        let depth = fields.uint("depth", u32::MAX as u64)?.unwrap_or(0);
        let response = self.read_data(path, fields).await?;
        if response.status == Some(404) {
            let mut response = response;
            if let Some(Value::Object(d)) = &mut response.data {
                d.remove("data");
                d.insert("subkeys".into(), Value::Null);
            }
            return Ok(response);
        }
        let data = response.data.unwrap_or(Value::Null);
        Ok(Response::data(json!({
            "subkeys": subkeys_of(&data["data"], depth, 1),
            "metadata": data["metadata"],
        })))
    }
}

#[derive(Clone, Copy)]
enum Mark {
    Delete,
    Undelete,
    Destroy,
}

fn require_merge_patch(req: &Request) -> ApiResult<()> {
    let provided = req.content_type.as_deref().unwrap_or("");
    let essence = provided.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/merge-patch+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            format!(
                "PATCH requires Content-Type of application/merge-patch+json, provided {provided}"
            ),
        ))
    }
}

/// `options.cas` from a write body.
fn cas_option(fields: &Fields<'_>) -> ApiResult<Option<u64>> {
    match fields.object("options")? {
        None => Ok(None),
        Some(options) => Fields(options).uint("cas", u64::MAX),
    }
}

fn check_cas(config: &KvConfig, meta: &Metadata, cas: Option<u64>) -> ApiResult<()> {
    match cas {
        None if config.cas_required || meta.cas_required => Err(ApiError::bad_request(
            "check-and-set parameter required for this call",
        )),
        Some(expected) if expected != meta.current_version => Err(ApiError::bad_request(
            "check-and-set parameter did not match the current version",
        )),
        _ => Ok(()),
    }
}

/// Drops the oldest versions beyond the effective `max_versions`; returns their blob ids.
fn trim_versions(meta: &mut Metadata, config: &KvConfig) -> Vec<String> {
    let max = if meta.max_versions > 0 {
        meta.max_versions
    } else if config.max_versions > 0 {
        config.max_versions
    } else {
        DEFAULT_MAX_VERSIONS
    };
    let mut removed = Vec::new();
    while meta.versions.len() as u64 > max {
        let Some((_, v)) = meta.versions.pop_first() else {
            break;
        };
        removed.push(v.blob);
    }
    if (meta.versions.len() as u64) < meta.current_version {
        meta.oldest_version = meta.versions.keys().next().copied().unwrap_or(0);
    }
    removed
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn subkeys_of(value: &Value, max_depth: u64, depth: u64) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let nested = if v.is_object() && (max_depth == 0 || depth < max_depth) {
                        subkeys_of(v, max_depth, depth + 1)
                    } else {
                        Value::Null
                    };
                    (k.clone(), nested)
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn string_values(map: &Map<String, Value>) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (k, v) in map {
        match v {
            Value::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            _ => errors.push(format!("value for key {k:?} must be a string")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(custom_metadata_error(errors))
    }
}

fn validate_custom_metadata(map: &BTreeMap<String, String>) -> ApiResult<()> {
    let mut errors = Vec::new();
    if map.len() > CUSTOM_METADATA_MAX_KEYS {
        errors.push(format!(
            "payload must contain at most {CUSTOM_METADATA_MAX_KEYS} keys, provided {}",
            map.len()
        ));
    }
    for (k, v) in map {
        if k.is_empty() || k.len() > CUSTOM_METADATA_MAX_KEY_LEN {
            errors.push(format!("length of key {k:?} is {} but must be 0 < len(key) <= {CUSTOM_METADATA_MAX_KEY_LEN}", k.len()));
        }
        if v.is_empty() || v.len() > CUSTOM_METADATA_MAX_VALUE_LEN {
            errors.push(format!(
                "length of value for key {k:?} is {} but must be 0 < len(value) <= {CUSTOM_METADATA_MAX_VALUE_LEN}",
                v.len()
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(custom_metadata_error(errors))
    }
}

/// Vault wraps these in go-multierror's format.
fn custom_metadata_error(errors: Vec<String>) -> ApiError {
    let items: String = errors
        .iter()
        .map(|e| format!("\t* custom_metadata validation failed: {e}\n"))
        .collect();
    let count = if errors.len() == 1 {
        "1 error occurred".to_string()
    } else {
        format!("{} errors occurred", errors.len())
    };
    ApiError::bad_request(format!("{count}:\n{items}\n"))
}

#[cfg(test)]
mod tests;
