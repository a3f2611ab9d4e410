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

use crate::audit::{AuditAuth, AuditBroker, AuditRecord, AuditRequest, AuditResponse};
use crate::auth::kubernetes::KubernetesAuth;
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
    /// Add a new sealing key pair when the current one is older than this (0 disables).
    pub sealing_key_rotation_period: Duration,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            keyring_rotation_period: Duration::from_secs(90 * 24 * 3600),
            version: env!("CARGO_PKG_VERSION").to_string(),
            sealing_key_rotation_period: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Barrier(#[from] crate::crypto::BarrierError),
    #[error("{0}")]
    Api(String),
    #[error(transparent)]
    Sealing(#[from] crate::seal::SealError),
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
    /// Seconds for a `Retry-After` header (busy answers).
    pub retry_after: Option<u64>,
}

/// The outcome of one request with its body already serialised, as the HTTP server
/// sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedReply {
    pub status: u16,
    /// JSON, or `None` for an empty body (204).
    pub body: Option<Vec<u8>>,
    /// Seconds for a `Retry-After` header (busy answers).
    pub retry_after: Option<u64>,
}

impl EncodedReply {
    /// Vault's `{"errors": [...]}` answer for `e`.
    pub fn error(e: &ApiError) -> Self {
        EncodedReply {
            status: e.status,
            body: Some(serde_json::to_vec(&e.body()).unwrap_or_default()),
            retry_after: e.retry_after,
        }
    }
}

impl Reply {
    fn error(e: &ApiError) -> Self {
        Reply {
            status: e.status,
            body: Some(e.body()),
            retry_after: e.retry_after,
        }
    }
}

/// Status recorded for a request abandoned by its client (nginx's "client closed
/// request"; Vault logs such requests with a `context canceled` error).
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Armed while a recorded request runs; if the request's future is dropped (the client
/// hung up), queues the response entry the handler never got to write.
struct InFlight<'a> {
    vault: &'a Vault,
    record: &'a AuditRecord,
    entry: &'a AuditRequest<'a>,
    armed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            let gone = ApiError::new(
                CLIENT_CLOSED_REQUEST,
                "the client closed the connection before the response was ready",
            );
            self.vault.audit.log_response_detached(
                self.record,
                self.entry,
                &Vault::audit_result(&Err(gone)),
            );
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
    Kubernetes,
    Transit,
}

/// What is cached per token accessor.
struct CachedAuthz {
    acl: Arc<Acl>,
    /// Filled by the first audited request (tokens with a use limit are never cached:
    /// their entries show the remaining uses).
    audit: Option<Arc<AuditAuth>>,
}

/// The most ACLs kept; past this the cache starts over (cheap to rebuild).
const ACL_CACHE_LIMIT: usize = 4096;

pub struct Vault {
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) tokens: TokenStore,
    pub(crate) policies: PolicyStore,
    pub(crate) identity: IdentityStore,
    pub(crate) kv: Kv,
    pub(crate) kubernetes: KubernetesAuth,
    pub(crate) transit: Transit,
    pub(crate) audit: AuditBroker,
    pub(crate) cluster: ClusterInfo,
    pub(crate) config: VaultConfig,
    /// ACLs (and how audit entries show the token) by token accessor — a token's policies
    /// never change — valid for one policy-store generation; cleared when identities change.
    acl_cache: Mutex<(u64, HashMap<String, CachedAuthz>)>,
    /// (route prefix, mount type, accessor) for every routed mount, computed once: the
    /// accessors are derived with HMACs, too costly to redo for every audit entry.
    mount_index: Vec<(&'static str, String, String)>,
    pub(crate) sealing: crate::seal::SealingKeys,
    /// Concurrent `sys/secretvault/watch` long polls.
    pub(crate) watch_limits: crate::watch::WatchLimits,
}

impl Vault {
    /// A vault on in-memory storage with a fresh root key and `root_token` as its root
    /// token. Nothing outlives the process: for tests and in-process tools.
    pub async fn open_in_memory(root_token: &str) -> Result<Vault, OpenError> {
        let vault = Vault::open(
            Arc::new(crate::storage::MemoryBackend::new()),
            RootKey::generate(),
            VaultConfig::default(),
        )
        .await?;
        vault
            .ensure_root_token(Some(root_token))
            .await
            .map_err(|e| OpenError::Api(e.errors.join("; ")))?;
        Ok(vault)
    }

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
        let kubernetes = KubernetesAuth::new(barrier.clone(), cluster.kubernetes_accessor());
        let auth_mounts = vec![
            AuthMountRef {
                accessor: TOKEN_MOUNT_ACCESSOR.to_string(),
                mount_type: "token".into(),
                path: "auth/token/".into(),
            },
            AuthMountRef {
                accessor: kubernetes.accessor().to_string(),
                mount_type: "kubernetes".into(),
                path: crate::auth::kubernetes::MOUNT_PATH.into(),
            },
        ];
        let identity = IdentityStore::open(barrier.clone(), auth_mounts).await?;
        let kv = Kv::new(barrier.clone(), "kv/secret/");
        let sealing = crate::seal::SealingKeys::open(barrier.clone()).await?;
        let transit = Transit::new(barrier.clone(), "transit/transit/");
        let vault = Vault {
            kubernetes,
            audit: AuditBroker::new(),
            barrier,
            tokens,
            policies,
            identity,
            kv,
            transit,
            cluster,
            config,
            sealing,
            acl_cache: Mutex::new((0, HashMap::new())),
            mount_index: Vec::new(),
            watch_limits: crate::watch::WatchLimits::default(),
        };
        let mut vault = vault;
        vault.mount_index = mounts::route_prefixes()
            .iter()
            .map(|(prefix, kind)| {
                let info = vault.cluster.mount_for(*kind, prefix);
                (*prefix, info.kind.to_string(), info.accessor)
            })
            .collect();
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

    /// The Kubernetes auth method at `auth/kubernetes/` (to install another verifier).
    pub fn kubernetes_auth(&self) -> &KubernetesAuth {
        &self.kubernetes
    }

    /// Makes sure a root token exists (dev mode) and returns it.
    pub async fn ensure_root_token(&self, requested: Option<&str>) -> ApiResult<Zeroizing<String>> {
        self.tokens.ensure_root_token(requested).await
    }

    /// Called when the server starts draining: pending `sys/secretvault/watch` long polls
    /// (and any that arrive later) answer at once, so they do not hold up the drain.
    pub fn begin_shutdown(&self) {
        self.kv.changes().shut_down();
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
        self.renew_sealing_key_if_due().await;
        if let Err(e) = self.transit.rotate_due_keys().await {
            tracing::error!(error = %e, "automatic transit key rotation failed; will retry");
        }
    }

    pub(crate) fn route(path: &str) -> Option<(MountKind, &'static str)> {
        mounts::route_prefixes()
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map(|(prefix, kind)| (*kind, *prefix))
    }

    /// Paths answered without a token (and without an audit entry), as in Vault.
    fn is_public(path: &str) -> bool {
        matches!(
            path,
            "sys/health" | "sys/seal-status" | "sys/leader" | "sys/sealing-key"
        )
    }

    /// Login paths: no token needed, but audited like every other request.
    fn is_login(path: &str) -> bool {
        path == crate::auth::kubernetes::LOGIN_PATH
    }

    /// Paths that need a valid token but no ACL grant (the handler checks what it must:
    /// the watch endpoint checks `read` on every path it is asked to watch).
    fn skips_acl(path: &str) -> bool {
        path == "sys/internal/ui/mounts"
            || path.starts_with("sys/internal/ui/mounts/")
            || path == crate::watch::WATCH_PATH
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

    /// Handles one request end to end; the body as a JSON value (for in-process callers
    /// and tests).
    pub async fn handle(&self, mut req: Request) -> Reply {
        Self::give_id(&mut req);
        match self.serve(&mut req).await {
            Ok(response) => Reply {
                status: response.status(),
                body: response.into_body(&req.id),
                retry_after: None,
            },
            Err(e) => Reply::error(&e),
        }
    }

    /// Handles one request end to end; the body as JSON bytes, serialised straight from
    /// the response (what the HTTP server sends).
    pub async fn handle_encoded(&self, mut req: Request) -> EncodedReply {
        Self::give_id(&mut req);
        // `serve` is awaited here directly (not through a shared wrapper) so its large
        // future is moved into place once less per request.
        match self.serve(&mut req).await {
            Ok(response) => {
                let status = response.status();
                let mut body = Vec::with_capacity(1024);
                let body = response.write_body(&req.id, &mut body).then_some(body);
                EncodedReply {
                    status,
                    body,
                    retry_after: None,
                }
            }
            Err(e) => EncodedReply::error(&e),
        }
    }

    /// Gives the request an id if it has none (Vault's `request_id`).
    fn give_id(req: &mut Request) {
        if req.id.is_empty() {
            req.id = uuid::Uuid::new_v4().to_string();
        }
    }

    async fn serve(&self, req: &mut Request) -> ApiResult<Response> {
        if req.path.starts_with('/') {
            req.path = req.path.trim_start_matches('/').to_string();
        }
        if req.operation == Some(Operation::List) && !req.path.ends_with('/') {
            req.path.push('/');
        }
        // No storage key may hold a NUL (OpenBao refuses such paths with 400 as well).
        if req.path.contains('\0') {
            return Err(ApiError::bad_request(
                "invalid request path: it contains a NUL byte (%00)",
            ));
        }
        if req.path.split('/').any(|s| s == "..") {
            return Err(ApiError::bad_request(format!(
                "invalid request path {:?}: '..' segments are not allowed",
                req.path
            )));
        }
        if Self::is_public(&req.path) {
            return self.handle_public(req).await;
        }
        if Self::is_login(&req.path) {
            return self.handle_login(req).await;
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
                let entry = self.audit_entry(req, None, req.operation.unwrap_or(Operation::Read));
                let record = self.audit.record(None, &entry);
                self.audit_exchange(&record, &entry, &Err(err.clone()))
                    .await;
                return Err(err);
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
                        Err(e) => return Err(e),
                    }
                }
                Some((MountKind::Kubernetes, prefix)) => {
                    match self.kubernetes.exists(&req.path[prefix.len()..]).await {
                        Ok(true) => Operation::Update,
                        Ok(false) => Operation::Create,
                        Err(e) => return Err(e),
                    }
                }
                Some((MountKind::Transit, prefix)) => {
                    match self.transit.exists(&req.path[prefix.len()..]).await {
                        Ok(true) => Operation::Update,
                        Ok(false) => Operation::Create,
                        Err(e) => return Err(e),
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
        let audit_auth = self.audit_auth(&caller);
        let entry = self.audit_entry(req, Some(&caller), op);
        let record = self.audit.record(Some(&audit_auth), &entry);
        if !Self::skips_acl(&req.path) {
            let authz = acl.authorize(&req.path, op, Some(&req.data));
            if !authz.allowed || (Self::needs_sudo(&req.path) && !authz.sudo) {
                // Refused before anything ran: request and response in one write.
                let err = ApiError::acl_denied();
                self.audit_exchange(&record, &entry, &Err(err.clone()))
                    .await;
                return Err(err);
            }
            caller.sudo = authz.sudo;
        }

        // Nothing is served unaudited. A request with side effects is recorded before it
        // runs; a read or a pure computation (transit encrypt/decrypt; no side effects, no
        // use counted) is recorded together with its response, in one write, before the
        // response is released.
        let side_effect_free = match (op, route) {
            (Operation::Read | Operation::List, _) => true,
            (_, Some((MountKind::Transit, prefix))) => {
                Transit::is_side_effect_free(op, &req.path[prefix.len()..])
            }
            _ => false,
        };
        let record_first = !side_effect_free || caller.entry.claims.uses > 0;
        if record_first && let Err(e) = self.audit.log_request(&record, &entry).await {
            tracing::error!(error = %e, path = %req.path, "refusing request: no audit device could record it");
            return Err(ApiError::internal("internal error"));
        }
        self.tokens.consume_use(&mut caller.entry).await?;

        // A request on record whose client goes away mid-handler (a long poll, usually)
        // still gets a response entry, so the trail shows how it ended.
        let mut in_flight = InFlight {
            vault: self,
            record: &record,
            entry: &entry,
            armed: record_first,
        };
        let result = match route {
            None => Err(ApiError::no_route(&req.path)),
            // Boxed: the dispatch future is the largest of every backend's, and inline it
            // would make this future (and each one wrapping it, moved on every request)
            // that much larger.
            Some((kind, prefix)) => {
                Box::pin(self.dispatch(kind, prefix, op, req, &caller, &acl)).await
            }
        };
        in_flight.armed = false;
        let recorded = if record_first {
            self.audit_response(&record, &entry, &result).await
        } else {
            self.audit_exchange(&record, &entry, &result).await
        };
        if recorded {
            result
        } else {
            tracing::error!(path = %req.path, "withholding response: no audit device could record it");
            Err(ApiError::internal("internal error"))
        }
    }

    /// A login: no caller to authenticate or authorise, but the request and the response
    /// (with the issued token, which the broker HMACs) are audited, failing closed.
    async fn handle_login(&self, req: &Request) -> ApiResult<Response> {
        let op = req.operation.unwrap_or(Operation::Update);
        let entry = self.audit_entry(req, None, op);
        let record = self.audit.record(None, &entry);
        if let Err(e) = self.audit.log_request(&record, &entry).await {
            tracing::error!(error = %e, path = %req.path, "refusing login: no audit device could record it");
            return Err(ApiError::internal("internal error"));
        }
        let result = match Self::route(&req.path) {
            Some((MountKind::Kubernetes, _)) => {
                self.kubernetes
                    .login(op, req, &self.tokens, &self.identity)
                    .await
            }
            _ => Err(ApiError::no_route(&req.path)),
        };
        if self.audit_response(&record, &entry, &result).await {
            result
        } else {
            tracing::error!(path = %req.path, "withholding login response: no audit device could record it");
            Err(ApiError::internal("internal error"))
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
            MountKind::Kubernetes => {
                self.kubernetes
                    .handle(op, rel, req, &self.tokens, &self.identity)
                    .await
            }
        }
    }

    /// The ACL for a token: its policies plus its entity's, resolved against its identity.
    pub(crate) fn acl_for(&self, entry: &TokenEntry) -> Arc<Acl> {
        if entry.is_root() {
            return Arc::new(Acl::root());
        }
        let accessor = entry.accessor();
        let generation = self.policies.generation();
        {
            let cache = self.acl_cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.0 == generation
                && let Some(cached) = cache.1.get(accessor)
            {
                return cached.acl.clone();
            }
        }
        let identity_policies = self.identity.policies_for(&entry.claims.ent);
        let names = crate::token::merged_policies(entry.policies(), &identity_policies);
        let identity: Identity = entry
            .claims
            .idn
            .clone()
            .or_else(|| self.identity.resolve(&entry.claims.ent))
            .unwrap_or_default();
        let policies: Vec<_> = names
            .iter()
            .filter_map(|name| self.policies.get(name))
            .collect();
        let acl = Arc::new(Acl::new(&policies, &identity));
        let mut cache = self.acl_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != generation || cache.1.len() >= ACL_CACHE_LIMIT {
            *cache = (generation, HashMap::new());
        }
        cache.1.insert(
            accessor.to_string(),
            CachedAuthz {
                acl: acl.clone(),
                audit: None,
            },
        );
        acl
    }

    pub(crate) fn clear_acl_cache(&self) {
        self.acl_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clear();
    }

    /// Mount point, type and accessor of the mount serving `path`, for audit entries.
    fn mount_of(&self, path: &str) -> (&str, &str, &str) {
        match Self::route(path)
            .and_then(|(_, prefix)| self.mount_index.iter().find(|(p, _, _)| *p == prefix))
        {
            Some((prefix, kind, accessor)) => (prefix, kind, accessor),
            None => ("", "", ""),
        }
    }

    /// How audit entries show the caller's token; built once per token (see [`CachedAuthz`]).
    fn audit_auth(&self, caller: &Caller) -> Arc<AuditAuth> {
        let cacheable = caller.entry.claims.uses == 0 && !caller.entry.is_root();
        let accessor = caller.entry.accessor();
        if cacheable
            && let Some(audit) = self
                .acl_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .get(accessor)
                .and_then(|c| c.audit.clone())
        {
            return audit;
        }
        let audit = Arc::new(self.build_audit_auth(caller));
        if cacheable
            && let Some(cached) = self
                .acl_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .get_mut(accessor)
        {
            cached.audit = Some(audit.clone());
        }
        audit
    }

    fn build_audit_auth(&self, caller: &Caller) -> AuditAuth {
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

    /// What the audit log records about a request; built once, used for both entries.
    fn audit_entry<'r>(
        &'r self,
        req: &'r Request,
        caller: Option<&Caller>,
        op: Operation,
    ) -> AuditRequest<'r> {
        let (mount_point, mount_type, mount_accessor) = self.mount_of(&req.path);
        AuditRequest {
            id: &req.id,
            operation: op,
            path: &req.path,
            mount_point,
            mount_type,
            mount_accessor,
            client_token: req.token.as_ref().map(|t| t.as_str()),
            client_token_accessor: caller.map(|c| c.entry.claims.jti.clone()),
            data: (!req.data.is_empty()).then_some(&req.data),
            remote_address: req.remote_addr.map(|a| a.ip()),
            remote_port: req.remote_addr.map(|a| a.port()),
        }
    }

    /// Records the response; returns whether it may be sent (some device recorded it, or
    /// none is enabled).
    async fn audit_response(
        &self,
        record: &AuditRecord,
        entry: &AuditRequest<'_>,
        result: &ApiResult<Response>,
    ) -> bool {
        self.audit
            .log_response(record, entry, &Self::audit_result(result))
            .await
            .is_ok()
    }

    /// Records request and response together; returns whether the response may be sent.
    async fn audit_exchange(
        &self,
        record: &AuditRecord,
        entry: &AuditRequest<'_>,
        result: &ApiResult<Response>,
    ) -> bool {
        self.audit
            .log_exchange(record, entry, &Self::audit_result(result))
            .await
            .is_ok()
    }

    fn audit_result(result: &ApiResult<Response>) -> AuditResponse<'_> {
        match result {
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
                data: r.data.as_ref().or(r.raw.as_ref()),
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
        }
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
            "sys/sealing-key" => self.sealing_key_response(req),
            _ => Err(ApiError::no_route(&req.path)),
        }
    }
}

#[cfg(test)]
mod tests;
