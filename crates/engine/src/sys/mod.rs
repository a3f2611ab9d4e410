//! The `sys/` backend: mounts, policies, capabilities, audit devices, keyring, and the
//! `secretvault/watch` change notification.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::audit::{DeviceConfig, DeviceKind};
use crate::logical::{ApiError, ApiResult, Fields, Operation, Request, Response, format_time};
use crate::policy::Acl;
use crate::storage::Precondition;
use crate::token::Caller;
use crate::vault::{OpenError, Vault};

pub mod policies;
mod watch;

const AUDIT_DEVICE_PREFIX: &str = "sys/audit-device/";

/// An enabled audit device as stored (the salt keeps HMACs stable across restarts).
#[derive(Serialize, Deserialize)]
struct StoredDevice {
    path: String,
    description: String,
    options: Map<String, Value>,
    salt: String,
}

impl Drop for StoredDevice {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.salt);
    }
}

/// `file` → `file/`, as Vault normalises mount paths.
fn device_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    format!("{trimmed}/")
}

fn option_bool(options: &Map<String, Value>, key: &str, default: bool) -> ApiResult<bool> {
    Fields(options).bool(key).map(|v| v.unwrap_or(default))
}

fn device_config(stored: &StoredDevice) -> ApiResult<DeviceConfig> {
    let file_path = Fields(&stored.options)
        .string("file_path")?
        .or(Fields(&stored.options).string("path")?)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "audit device option \"file_path\" is required (a file path, or \"stdout\")",
            )
        })?;
    let mode = match Fields(&stored.options).string("mode")? {
        Some(m) if !m.is_empty() => u32::from_str_radix(&m, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "audit device option \"mode\": {m:?} is not an octal file mode like \"0600\""
                ))
            })?,
        _ => 0o600,
    };
    let kind = if file_path == "stdout" || file_path == "-" {
        DeviceKind::Stdout
    } else {
        DeviceKind::File {
            path: PathBuf::from(&file_path),
            mode,
        }
    };
    let salt_bytes = Zeroizing::new(
        hex::decode(&stored.salt).map_err(|_| ApiError::internal("audit salt is corrupt"))?,
    );
    let salt: [u8; 32] = salt_bytes
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal("audit salt is corrupt"))?;
    Ok(DeviceConfig {
        path: stored.path.clone(),
        kind,
        salt: Zeroizing::new(salt),
        hmac_accessor: option_bool(&stored.options, "hmac_accessor", true)?,
        log_raw: option_bool(&stored.options, "log_raw", false)?,
    })
}

impl Vault {
    /// Re-enables the audit devices stored in previous runs. A device that cannot be
    /// opened stops start-up: serving without the audit trail it promised is not allowed.
    pub(crate) async fn restore_audit_devices(&self) -> Result<(), OpenError> {
        for name in self.barrier.list(AUDIT_DEVICE_PREFIX).await? {
            let Some((bytes, _)) = self
                .barrier
                .get(&format!("{AUDIT_DEVICE_PREFIX}{name}"))
                .await?
            else {
                continue;
            };
            let stored: StoredDevice = serde_json::from_slice(&bytes)
                .map_err(|e| OpenError::Api(format!("audit device {name} is corrupt: {e}")))?;
            let config = device_config(&stored)?;
            self.audit.enable(config).map_err(|e| {
                OpenError::Api(format!(
                    "cannot re-enable audit device {}: {e}",
                    stored.path
                ))
            })?;
        }
        Ok(())
    }

    /// Enables (or re-points) a file audit device; `file` may be `stdout`. Used by dev mode.
    pub async fn enable_file_audit(&self, path: &str, file: &str) -> ApiResult<()> {
        let mut options = Map::new();
        options.insert("file_path".into(), Value::String(file.to_string()));
        self.enable_audit_device(path, "file", String::new(), options, true)
            .await
    }

    async fn enable_audit_device(
        &self,
        path: &str,
        kind: &str,
        description: String,
        options: Map<String, Value>,
        replace: bool,
    ) -> ApiResult<()> {
        if kind != "file" {
            return Err(ApiError::bad_request(format!(
                "unknown audit backend type: {kind:?} (secretvault supports \"file\", with file_path set to a path or \"stdout\")"
            )));
        }
        let path = device_path(path);
        let key = format!("{AUDIT_DEVICE_PREFIX}{}", path.trim_end_matches('/'));
        let existing: Option<StoredDevice> = match self.barrier.get(&key).await? {
            Some((bytes, _)) => serde_json::from_slice(&bytes).ok(),
            None => None,
        };
        if existing.is_some() && !replace {
            return Err(ApiError::bad_request(format!(
                "path already in use at {path}"
            )));
        }
        // Keep the salt of a re-pointed device so earlier hashes still match.
        let salt = existing
            .as_ref()
            .map(|d| d.salt.clone())
            .unwrap_or_else(|| hex::encode(crate::crypto::random_bytes::<32>()));
        let stored = StoredDevice {
            path: path.clone(),
            description,
            options,
            salt,
        };
        let config = device_config(&stored)?;
        if existing.is_some() {
            self.audit.disable(&path);
        }
        self.audit
            .enable(config)
            .map_err(|e| ApiError::bad_request(format!("audit device {path}: {e}")))?;
        let bytes = Zeroizing::new(serde_json::to_vec(&stored).map_err(ApiError::internal)?);
        self.barrier.put(&key, &bytes, Precondition::None).await?;
        Ok(())
    }

    async fn audit_devices_json(&self) -> ApiResult<Value> {
        let mut out = Map::new();
        for name in self.barrier.list(AUDIT_DEVICE_PREFIX).await? {
            let Some((bytes, _)) = self
                .barrier
                .get(&format!("{AUDIT_DEVICE_PREFIX}{name}"))
                .await?
            else {
                continue;
            };
            let Ok(stored) = serde_json::from_slice::<StoredDevice>(&bytes) else {
                continue;
            };
            out.insert(
                stored.path.clone(),
                json!({
                    "type": "file",
                    "description": stored.description,
                    "options": stored.options,
                    "local": false,
                    "path": stored.path,
                }),
            );
        }
        Ok(Value::Object(out))
    }

    pub(crate) async fn handle_sys(
        &self,
        op: Operation,
        path: &str,
        req: &Request,
        caller: &Caller,
        acl: &Acl,
    ) -> ApiResult<Response> {
        let fields = Fields(&req.data);
        let write = matches!(op, Operation::Create | Operation::Update);
        let top_level = |data: Value| Response {
            data: Some(data),
            data_also_at_top_level: true,
            ..Default::default()
        };
        match (path, op) {
            ("mounts", Operation::Read) => {
                let mounts: Map<String, Value> = self
                    .cluster
                    .secret_mounts()
                    .iter()
                    .map(|m| (m.path.to_string(), m.json()))
                    .collect();
                Ok(top_level(Value::Object(mounts)))
            }
            (p, Operation::Read) if p.starts_with("mounts/") => {
                let target = p["mounts/".len()..].trim_end_matches("/tune");
                let mount = self
                    .cluster
                    .secret_mounts()
                    .into_iter()
                    .find(|m| m.path.trim_end_matches('/') == target.trim_end_matches('/'));
                match mount {
                    Some(m) if p.ends_with("/tune") => Ok(top_level(json!({
                        "default_lease_ttl": crate::token::SYSTEM_MAX_TTL.as_secs(),
                        "max_lease_ttl": crate::token::SYSTEM_MAX_TTL.as_secs(),
                        "force_no_cache": false,
                        "description": m.description,
                        "options": m.options,
                    }))),
                    Some(m) => Ok(top_level(m.json())),
                    None => Err(ApiError::bad_request(format!("no mount at {target:?}"))),
                }
            }
            (p, _) if p.starts_with("mounts/") => {
                // `vault secrets enable transit`: the engine is built in, so enabling it
                // where it already is succeeds.
                let target = device_path(&p["mounts/".len()..]);
                let kind = fields.string("type")?.unwrap_or_default();
                if write && target == "transit/" && kind == "transit" {
                    return Ok(Response::no_content());
                }
                Err(ApiError::bad_request(
                    "secretvault's mounts are fixed (KV v2 at secret/, transit at transit/); enabling, tuning or disabling mounts is not supported",
                ))
            }
            ("auth", Operation::Read) => {
                let mounts: Map<String, Value> = self
                    .cluster
                    .auth_mounts()
                    .iter()
                    .map(|m| (m.path.to_string(), m.json()))
                    .collect();
                Ok(top_level(Value::Object(mounts)))
            }
            (p, _) if p.starts_with("auth/") => {
                let target = device_path(&p["auth/".len()..]);
                let kind = fields.string("type")?.unwrap_or_default();
                // `vault auth enable kubernetes`: the method is built in, so enabling it
                // where it already is succeeds.
                if write && target == "kubernetes/" && kind == "kubernetes" {
                    return Ok(Response::no_content());
                }
                if self.cluster.auth_mounts().iter().any(|m| m.path == target) {
                    return Err(ApiError::bad_request(format!(
                        "path is already in use at {target}"
                    )));
                }
                Err(ApiError::bad_request(format!(
                    "auth method {kind:?} cannot be enabled at {target}: secretvault's auth methods are built in (token/, kubernetes/)"
                )))
            }
            ("internal/ui/mounts", Operation::Read) => {
                let secret: Map<String, Value> = self
                    .cluster
                    .secret_mounts()
                    .iter()
                    .map(|m| (m.path.to_string(), m.json()))
                    .collect();
                let auth: Map<String, Value> = self
                    .cluster
                    .auth_mounts()
                    .iter()
                    .map(|m| (m.path.to_string(), m.json()))
                    .collect();
                Ok(Response::data(json!({ "secret": secret, "auth": auth })))
            }
            (p, Operation::Read) if p.starts_with("internal/ui/mounts/") => {
                let target = &p["internal/ui/mounts/".len()..];
                let Some(mount) = self.cluster.mount_for_path(target) else {
                    return Err(ApiError::bad_request(format!(
                        "no mount found for path {target:?}"
                    )));
                };
                if !has_mount_access(acl, target, &mount) {
                    let shown = if target.ends_with('/') {
                        target.to_string()
                    } else {
                        format!("{target}/")
                    };
                    return Err(ApiError::new(
                        403,
                        format!(
                            "preflight capability check returned 403, please ensure client's policies grant access to path \"{shown}\""
                        ),
                    ));
                }
                let mut data = mount.json();
                data["path"] = json!(if mount.auth {
                    format!("auth/{}", mount.path)
                } else {
                    mount.path.to_string()
                });
                Ok(Response::data(data))
            }
            ("policies/acl" | "policies/acl/", Operation::List) => {
                self.policies.handle(op, "", &fields, false).await
            }
            (p, _) if p.starts_with("policies/acl/") => {
                let r = self
                    .policies
                    .handle(op, &p["policies/acl/".len()..], &fields, false)
                    .await;
                self.clear_acl_cache();
                r
            }
            ("policy" | "policy/", _) => self.policies.handle(op, "", &fields, true).await,
            (p, _) if p.starts_with("policy/") => {
                let r = self
                    .policies
                    .handle(op, &p["policy/".len()..], &fields, true)
                    .await;
                self.clear_acl_cache();
                r
            }
            ("capabilities-self", _) if write => {
                let paths = capability_paths(&fields)?;
                Ok(capabilities_response(acl, &paths))
            }
            ("capabilities", _) if write => {
                let token = Zeroizing::new(
                    fields
                        .string("token")?
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| ApiError::bad_request("missing token"))?,
                );
                let entry = self
                    .tokens
                    .verify(&token)
                    .ok_or_else(|| ApiError::bad_request("invalid token"))?;
                let paths = capability_paths(&fields)?;
                Ok(capabilities_response(&self.acl_for(&entry), &paths))
            }
            ("capabilities-accessor", _) if write => {
                let accessor = fields
                    .string("accessor")?
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ApiError::bad_request("missing accessor"))?;
                let lookup = Request {
                    data: [("accessor".to_string(), Value::String(accessor))]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                };
                let found = self
                    .tokens
                    .handle(
                        Operation::Update,
                        "lookup-accessor",
                        &lookup,
                        Some(caller),
                        &self.identity,
                    )
                    .await?;
                let policies: Vec<String> = found
                    .data
                    .as_ref()
                    .and_then(|d| d["policies"].as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let entity = found
                    .data
                    .as_ref()
                    .and_then(|d| d["entity_id"].as_str().map(String::from))
                    .unwrap_or_default();
                let acl = if policies.iter().any(|p| p == "root") {
                    Acl::root()
                } else {
                    let resolved: Vec<_> = policies
                        .iter()
                        .filter_map(|n| self.policies.get(n))
                        .collect();
                    Acl::new(
                        &resolved,
                        &self.identity.resolve(&entity).unwrap_or_default(),
                    )
                };
                let paths = capability_paths(&fields)?;
                Ok(capabilities_response(&acl, &paths))
            }
            ("audit", Operation::Read) => Ok(Response::data(self.audit_devices_json().await?)),
            (p, _) if p.starts_with("audit/") && write => {
                let target = &p["audit/".len()..];
                let kind = fields.string("type")?.unwrap_or_default();
                let description = fields.string("description")?.unwrap_or_default();
                let options = fields.object("options")?.cloned().unwrap_or_default();
                self.enable_audit_device(target, &kind, description, options, false)
                    .await?;
                Ok(Response::no_content())
            }
            (p, Operation::Delete) if p.starts_with("audit/") => {
                let target = device_path(&p["audit/".len()..]);
                self.barrier
                    .delete(
                        &format!("{AUDIT_DEVICE_PREFIX}{}", target.trim_end_matches('/')),
                        Precondition::None,
                    )
                    .await?;
                self.audit.disable(&target);
                Ok(Response::no_content())
            }
            (p, _) if p.starts_with("audit-hash/") && write => {
                let target = device_path(&p["audit-hash/".len()..]);
                let input = fields
                    .string("input")?
                    .ok_or_else(|| ApiError::bad_request("missing \"input\""))?;
                let hash = self.audit.hash(&target, &input).ok_or_else(|| {
                    ApiError::bad_request(format!("unknown audit backend {target:?}"))
                })?;
                Ok(top_level(json!({ "hash": hash })))
            }
            ("rotate" | "rotate/keyring", _) if write => {
                self.barrier.rotate().await?;
                Ok(Response::no_content())
            }
            ("secretvault/watch", _) if write => self.watch(req, caller, acl).await,
            ("secretvault/watch", _) => Err(ApiError::unsupported_operation()),
            ("key-status", Operation::Read) => {
                let status = self.barrier.key_status();
                Ok(top_level(
                    json!({ "term": status.term, "install_time": format_time(&status.install_time), "encryptions": 0 }),
                ))
            }
            _ => Err(ApiError::no_route(&format!("sys/{path}"))),
        }
    }
}

/// `paths` (list) or `path` (one) from a capabilities request.
fn capability_paths(fields: &Fields<'_>) -> ApiResult<Vec<String>> {
    let mut paths = fields.string_list("paths")?.unwrap_or_default();
    if paths.is_empty() {
        paths = fields.string_list("path")?.unwrap_or_default();
    }
    if paths.is_empty() {
        return Err(ApiError::bad_request("missing paths"));
    }
    Ok(paths)
}

fn capabilities_response(acl: &Acl, paths: &[String]) -> Response {
    let mut data = Map::new();
    for path in paths {
        let names = acl.capabilities(path.trim_start_matches('/')).names();
        data.insert(path.clone(), json!(names));
    }
    // For older clients Vault repeats a single path's answer under "capabilities".
    if let [only] = paths {
        let repeated = data.get(only).cloned().unwrap_or(Value::Null);
        data.insert("capabilities".into(), repeated);
    }
    Response {
        data: Some(Value::Object(data)),
        data_also_at_top_level: true,
        ..Default::default()
    }
}

/// Whether an ACL grants anything on a mount for `path` (Vault's UI preflight check).
fn has_mount_access(acl: &Acl, path: &str, mount: &crate::vault::MountInfo) -> bool {
    if acl.is_root() {
        return true;
    }
    let granted = |p: &str| acl.capabilities(p).names().iter().any(|c| *c != "deny");
    if granted(path) {
        return true;
    }
    if mount.kind == "kv" {
        let rest = path.strip_prefix(mount.path).unwrap_or("");
        for sub in [
            "data/",
            "metadata/",
            "delete/",
            "undelete/",
            "destroy/",
            "subkeys/",
        ] {
            if granted(&format!("{}{sub}{rest}", mount.path)) {
                return true;
            }
        }
    }
    false
}
