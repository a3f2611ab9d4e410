//! The vault: every subsystem behind one request router.
//!
//! [`Vault::handle`] does for each request what Vault's core does, in this order:
//! route to a mount → authenticate the token → decide create vs update (existence check)
//! → authorise against the token's ACL → write the request to the audit log (refusing
//! the request if no device can record it) → run the handler → write the response to
//! the audit log → reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::audit::{AuditAuth, AuditBroker, AuditRequest, AuditResponse};
use crate::crypto::{Barrier, RootKey};
use crate::identity::{AuthMountRef, Identity, IdentityStore};
use crate::kv::Kv;
use crate::logical::{ApiError, ApiResult, Fields, Operation, Request, Response, format_time};
use crate::policy::Acl;
use crate::storage::Backend;
use crate::sys::policies::PolicyStore;
use crate::token::{Caller, TOKEN_MOUNT_ACCESSOR, TokenEntry, TokenStore};
use crate::transit::Transit;

mod mounts;

pub use mounts::{ClusterInfo, MountInfo};

/// Settings the embedding server chooses.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Rotate the storage keyring when its active key is older than this (0 disables).
    pub keyring_rotation_period: Duration,
    /// Reported by `sys/health`.
    pub version: String,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            keyring_rotation_period: Duration::from_secs(90 * 24 * 3600),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Barrier(#[from] crate::crypto::BarrierError),
    #[error("{0}")]
    Api(String),
}

impl From<ApiError> for OpenError {
    fn from(e: ApiError) -> Self {
        OpenError::Api(e.errors.join("; "))
    }
}

/// The outcome of one request: an HTTP status and, unless 204, a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

impl Reply {
    fn error(e: &ApiError) -> Self {
        Reply {
            status: e.status,
            body: Some(e.body()),
        }
    }
}

/// Which subsystem a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MountKind {
    Sys,
    Token,
    Identity,
    Kv,
    Transit,
}

/// Cached ACLs are keyed by what they are built from.
#[derive(Hash, PartialEq, Eq)]
struct AclKey {
    policies: Vec<String>,
    entity_id: String,
}

/// The most ACLs kept; past this the cache starts over (cheap to rebuild).
const ACL_CACHE_LIMIT: usize = 4096;

pub struct Vault {
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) tokens: TokenStore,
    pub(crate) policies: PolicyStore,
    pub(crate) identity: IdentityStore,
    pub(crate) kv: Kv,
    pub(crate) transit: Transit,
    pub(crate) audit: AuditBroker,
    pub(crate) cluster: ClusterInfo,
    pub(crate) config: VaultConfig,
    acl_cache: Mutex<(u64, HashMap<AclKey, Arc<Acl>>)>,
}

impl Vault {
    /// Opens the vault over a storage backend: unlocks the keyring with the root key and
    /// loads tokens, policies, identities and audit devices.
    pub async fn open(
        backend: Arc<dyn Backend>,
        root_key: RootKey,
        config: VaultConfig,
    ) -> Result<Vault, OpenError> {
        let barrier = Arc::new(Barrier::open(backend, root_key).await?);
        let cluster = ClusterInfo::load_or_create(&barrier).await?;
        let tokens = TokenStore::open(barrier.clone()).await?;
        let policies = PolicyStore::open(barrier.clone()).await?;
        let auth_mounts = vec![AuthMountRef {
            accessor: TOKEN_MOUNT_ACCESSOR.to_string(),
            mount_type: "token".into(),
            path: "auth/token/".into(),
        }];
        let identity = IdentityStore::open(barrier.clone(), auth_mounts).await?;
        let kv = Kv::new(barrier.clone(), "kv/secret/");
        let transit = Transit::new(barrier.clone(), "transit/transit/");
        let vault = Vault {
            audit: AuditBroker::new(),
            barrier,
            tokens,
            policies,
            identity,
            kv,
            transit,
            cluster,
            config,
            acl_cache: Mutex::new((0, HashMap::new())),
        };
        vault.restore_audit_devices().await?;
        Ok(vault)
    }

    /// The KV v2 mount at `secret/`, for in-process callers (the operator).
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// The transit mount at `transit/`, for in-process callers (the operator).
    pub fn transit(&self) -> &Transit {
        &self.transit
    }

    pub fn policies(&self) -> &PolicyStore {
        &self.policies
    }

    pub fn audit(&self) -> &AuditBroker {
        &self.audit
    }

    pub fn cluster(&self) -> &ClusterInfo {
        &self.cluster
    }

    /// Makes sure a root token exists (dev mode) and returns it.
    pub async fn ensure_root_token(&self, requested: Option<&str>) -> ApiResult<Zeroizing<String>> {
        self.tokens.ensure_root_token(requested).await
    }

    /// Periodic housekeeping: rotates the keyring and transit keys when due. Safe to call often.
    pub async fn maintain(&self) {
        match self
            .barrier
            .rotate_if_due(self.config.keyring_rotation_period)
            .await
        {
            Ok(true) => tracing::info!(
                term = self.barrier.key_status().term,
                "keyring rotated automatically"
            ),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "automatic keyring rotation failed; will retry"),
        }
        if let Err(e) = self.transit.rotate_due_keys().await {
            tracing::error!(error = %e, "automatic transit key rotation failed; will retry");
        }
    }

    pub(crate) fn route(path: &str) -> Option<(MountKind, &'static str)> {
        const TABLE: &[(&str, MountKind)] = &[
            ("sys/", MountKind::Sys),
            ("auth/token/", MountKind::Token),
            ("identity/", MountKind::Identity),
            ("secret/", MountKind::Kv),
            ("transit/", MountKind::Transit),
        ];
        TABLE
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map(|(prefix, kind)| (*kind, *prefix))
    }

    /// Paths answered without a token (and without an audit entry), as in Vault.
    fn is_public(path: &str) -> bool {
        matches!(path, "sys/health" | "sys/seal-status" | "sys/leader")
    }

    /// Paths that need a valid token but no ACL grant (the handler checks what it must).
    fn skips_acl(path: &str) -> bool {
        path == "sys/internal/ui/mounts" || path.starts_with("sys/internal/ui/mounts/")
    }

    /// Paths that also need `sudo` (Vault's root-protected paths).
    fn needs_sudo(path: &str) -> bool {
        path == "sys/audit"
            || path.starts_with("sys/audit/")
            || path == "sys/rotate"
            || path.starts_with("sys/raw")
            || path.starts_with("auth/token/revoke-orphan")
            || path.starts_with("auth/token/accessors")
    }

    /// Handles one request end to end.
    pub async fn handle(&self, mut req: Request) -> Reply {
        if req.id.is_empty() {
            req.id = uuid::Uuid::new_v4().to_string();
        }
        req.path = req.path.trim_start_matches('/').to_string();
        if req.operation == Some(Operation::List) && !req.path.ends_with('/') {
            req.path.push('/');
        }
        if req.path.split('/').any(|s| s == "..") {
            return Reply::error(&ApiError::bad_request(format!(
                "invalid request path {:?}: '..' segments are not allowed",
                req.path
            )));
        }
        if Self::is_public(&req.path) {
            return self.finish(&req, self.handle_public(&req).await);
        }

        // Authenticate.
        let caller = match req
            .token
            .as_deref()
            .map(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .and_then(|t| {
                let entry = self.tokens.verify(t)?;
                (!self.identity.is_disabled(&entry.claims.ent)).then_some((t, entry))
            }) {
            Some((token, entry)) => Caller {
                token: Zeroizing::new(token.to_string()),
                entry,
                sudo: false,
            },
            None => {
                let err = ApiError::permission_denied();
                let _ = self.audit_request(&req, None, req.operation.unwrap_or(Operation::Read));
                self.audit_response(
                    &req,
                    None,
                    req.operation.unwrap_or(Operation::Read),
                    &Err(err.clone()),
                );
                return Reply::error(&err);
            }
        };
        let route = Self::route(&req.path);

        // Create or update? Decided by whether something exists at the path.
        let op = match req.operation {
            Some(op) => op,
            None => match route {
                Some((MountKind::Kv, prefix)) => {
                    match self.kv.exists(&req.path[prefix.len()..]).await {
                        Ok(true) => Operation::Update,
                        Ok(false) => Operation::Create,
                        Err(e) => return Reply::error(&e),
                    }
                }
                Some((MountKind::Transit, prefix)) => {
                    match self.transit.exists(&req.path[prefix.len()..]).await {
                        Ok(true) => Operation::Update,
                        Ok(false) => Operation::Create,
                        Err(e) => return Reply::error(&e),
                    }
                }
                Some((MountKind::Sys, _)) if req.path.starts_with("sys/policies/acl/") => {
                    let name = crate::sys::policies::normalize_name(
                        &req.path["sys/policies/acl/".len()..],
                    );
                    if self.policies.get(&name).is_some() {
                        Operation::Update
                    } else {
                        Operation::Create
                    }
                }
                _ => Operation::Update,
            },
        };

        // Authorise.
        let acl = self.acl_for(&caller.entry);
        let mut caller = caller;
        if !Self::skips_acl(&req.path) {
            let authz = acl.authorize(&req.path, op, Some(&req.data));
            if !authz.allowed || (Self::needs_sudo(&req.path) && !authz.sudo) {
                let err = ApiError::acl_denied();
                let _ = self.audit_request(&req, Some(&caller), op);
                self.audit_response(&req, Some(&caller), op, &Err(err.clone()));
                return Reply::error(&err);
            }
            caller.sudo = authz.sudo;
        }

        // Nothing is served unaudited.
        if let Err(e) = self.audit_request(&req, Some(&caller), op) {
            tracing::error!(error = %e, path = %req.path, "refusing request: no audit device could record it");
            return Reply::error(&ApiError::internal("internal error"));
        }
        if let Err(e) = self.tokens.consume_use(&mut caller.entry).await {
            return Reply::error(&e);
        }

        let result = match route {
            None => Err(ApiError::no_route(&req.path)),
            Some((kind, prefix)) => self.dispatch(kind, prefix, op, &req, &caller, &acl).await,
        };
        if self.audit_response(&req, Some(&caller), op, &result) {
            self.finish(&req, result)
        } else {
            tracing::error!(path = %req.path, "withholding response: no audit device could record it");
            Reply::error(&ApiError::internal("internal error"))
        }
    }

    fn finish(&self, req: &Request, result: ApiResult<Response>) -> Reply {
        match result {
            Ok(response) => Reply {
                status: response.status(),
                body: response.body(&req.id),
            },
            Err(e) => Reply::error(&e),
        }
    }

    async fn dispatch(
        &self,
        kind: MountKind,
        prefix: &str,
        op: Operation,
        req: &Request,
        caller: &Caller,
        acl: &Acl,
    ) -> ApiResult<Response> {
        let rel = &req.path[prefix.len()..];
        match kind {
            MountKind::Kv => self.kv.handle(op, rel, req).await,
            MountKind::Transit => self.transit.handle(op, rel, req).await,
            MountKind::Token => {
                self.tokens
                    .handle(op, rel, req, Some(caller), &self.identity)
                    .await
            }
            MountKind::Identity => {
                let result = self.identity.handle(op, rel, &Fields(&req.data)).await;
                if result.is_ok() && op != Operation::Read && op != Operation::List {
                    // Entity metadata and policies feed ACLs.
                    self.clear_acl_cache();
                }
                result
            }
            MountKind::Sys => self.handle_sys(op, rel, req, caller, acl).await,
        }
    }

    /// The ACL for a token: its policies plus its entity's, resolved against its identity.
    pub(crate) fn acl_for(&self, entry: &TokenEntry) -> Arc<Acl> {
        if entry.is_root() {
            return Arc::new(Acl::root());
        }
        let identity_policies = self.identity.policies_for(&entry.claims.ent);
        let mut names = crate::token::merged_policies(entry.policies(), &identity_policies);
        names.dedup();
        let key = AclKey {
            policies: names,
            entity_id: entry.claims.ent.clone(),
        };
        let inline_identity = entry.claims.idn.is_some();
        let generation = self.policies.generation();
        if !inline_identity {
            let cache = self.acl_cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.0 == generation
                && let Some(acl) = cache.1.get(&key)
            {
                return acl.clone();
            }
        }
        let identity: Identity = entry
            .claims
            .idn
            .clone()
            .or_else(|| self.identity.resolve(&entry.claims.ent))
            .unwrap_or_default();
        let policies: Vec<_> = key
            .policies
            .iter()
            .filter_map(|name| self.policies.get(name))
            .collect();
        let acl = Arc::new(Acl::new(&policies, &identity));
        if !inline_identity {
            let mut cache = self.acl_cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.0 != generation || cache.1.len() >= ACL_CACHE_LIMIT {
                *cache = (generation, HashMap::new());
            }
            cache.1.insert(key, acl.clone());
        }
        acl
    }

    pub(crate) fn clear_acl_cache(&self) {
        self.acl_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clear();
    }

    fn mount_of(&self, path: &str) -> (String, String, String) {
        match Self::route(path) {
            Some((kind, prefix)) => {
                let info = self.cluster.mount_for(kind, prefix);
                (prefix.to_string(), info.kind.to_string(), info.accessor)
            }
            None => (String::new(), String::new(), String::new()),
        }
    }

    fn audit_auth(&self, caller: &Caller) -> AuditAuth {
        let c = &caller.entry.claims;
        let identity_policies = self.identity.policies_for(&c.ent);
        AuditAuth {
            client_token: Some(caller.token.to_string()),
            accessor: Some(c.jti.clone()),
            display_name: c.dn.clone(),
            policies: crate::token::merged_policies(&c.pol, &identity_policies),
            token_policies: c.pol.clone(),
            identity_policies,
            metadata: c.meta.clone(),
            entity_id: c.ent.clone(),
            token_type: "service".into(),
            token_ttl: c.ttl as i64,
            token_issue_time: Some(format_time(&caller.entry.issue_time)),
            remaining_uses: (c.uses > 0).then_some(caller.entry.remaining_uses),
        }
    }

    fn audit_request_entry(
        &self,
        req: &Request,
        caller: Option<&Caller>,
        op: Operation,
    ) -> AuditRequest {
        let (mount_point, mount_type, mount_accessor) = self.mount_of(&req.path);
        AuditRequest {
            id: req.id.clone(),
            operation: op,
            path: req.path.clone(),
            mount_point,
            mount_type,
            mount_accessor,
            client_token: req.token.as_ref().map(|t| t.to_string()),
            client_token_accessor: caller.map(|c| c.entry.claims.jti.clone()),
            data: (!req.data.is_empty()).then(|| Value::Object(req.data.clone())),
            remote_address: req.remote_addr.map(|a| a.ip().to_string()),
            remote_port: req.remote_addr.map(|a| a.port()),
        }
    }

    fn audit_request(
        &self,
        req: &Request,
        caller: Option<&Caller>,
        op: Operation,
    ) -> Result<(), crate::audit::AuditError> {
        let auth = caller.map(|c| self.audit_auth(c));
        self.audit
            .log_request(auth.as_ref(), &self.audit_request_entry(req, caller, op))
    }

    /// Returns whether the response may be sent (some device recorded it, or none is enabled).
    fn audit_response(
        &self,
        req: &Request,
        caller: Option<&Caller>,
        op: Operation,
        result: &ApiResult<Response>,
    ) -> bool {
        let auth = caller.map(|c| self.audit_auth(c));
        let entry = self.audit_request_entry(req, caller, op);
        let response = match result {
            Ok(r) => AuditResponse {
                status: r.status(),
                auth: r.auth.as_ref().map(|a| AuditAuth {
                    client_token: Some(a.client_token.clone()),
                    accessor: Some(a.accessor.clone()),
                    display_name: String::new(),
                    policies: a.policies.clone(),
                    token_policies: a.token_policies.clone(),
                    identity_policies: a.identity_policies.clone(),
                    metadata: a.metadata.clone().unwrap_or_default(),
                    entity_id: a.entity_id.clone(),
                    token_type: a.token_type.to_string(),
                    token_ttl: a.lease_duration as i64,
                    token_issue_time: None,
                    remaining_uses: None,
                }),
                data: r.data.clone().or_else(|| r.raw.clone()),
                warnings: r.warnings.clone(),
                error: None,
            },
            Err(e) => AuditResponse {
                status: e.status,
                auth: None,
                data: None,
                warnings: vec![],
                error: Some(e.errors.join("; ")),
            },
        };
        self.audit
            .log_response(auth.as_ref(), &entry, &response)
            .is_ok()
    }

    async fn handle_public(&self, req: &Request) -> ApiResult<Response> {
        let now = Utc::now();
        match req.path.as_str() {
            "sys/health" => Ok(Response::raw(
                200,
                serde_json::json!({
                    "initialized": true,
                    "sealed": false,
                    "standby": false,
                    "replication_performance_mode": "disabled",
                    "replication_dr_mode": "disabled",
                    "server_time_utc": now.timestamp(),
                    "version": self.config.version,
                    "cluster_name": self.cluster.name,
                    "cluster_id": self.cluster.id,
                }),
            )),
            "sys/seal-status" => Ok(Response::raw(
                200,
                serde_json::json!({
                    "type": "shamir",
                    "initialized": true,
                    "sealed": false,
                    "t": 1,
                    "n": 1,
                    "progress": 0,
                    "nonce": "",
                    "version": self.config.version,
                    "build_date": "",
                    "migration": false,
                    "cluster_name": self.cluster.name,
                    "cluster_id": self.cluster.id,
                    "recovery_seal": false,
                    "storage_type": self.barrier.backend().name(),
                }),
            )),
            "sys/leader" => Ok(Response::raw(
                200,
                serde_json::json!({
                    "ha_enabled": false,
                    "is_self": false,
                    "active_time": "0001-01-01T00:00:00Z",
                    "leader_address": "",
                    "leader_cluster_address": "",
                    "performance_standby": false,
                    "performance_standby_last_remote_wal": 0,
                }),
            )),
            _ => Err(ApiError::no_route(&req.path)),
        }
    }
}

#[cfg(test)]
mod tests;
