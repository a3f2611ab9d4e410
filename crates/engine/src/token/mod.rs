//! Tokens: issue, verify, renew, revoke — Vault's `auth/token/` backend.
//!
//! Tokens are signed ([`claims`]), so verifying one needs no storage read and issuing one
//! needs no storage write. Mutable facts live in small records keyed by accessor and are
//! mirrored in memory: renewals (`token/lease/`), revocations (`token/revoked/`), spent
//! uses (`token/uses/`). Tokens made by `auth/token/create` also record their claims
//! (without the token itself) under `token/accessor/` so they can be looked up by accessor.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::crypto::{Barrier, constant_time_eq, hmac_sha256};
use crate::identity::IdentityStore;
use crate::logical::{
    ApiError, ApiResult, Auth, Fields, Operation, Request, Response, format_time,
};
use crate::storage::Precondition;

pub mod claims;
mod roles;

pub use claims::{Claims, ParentRef, Signer, TOKEN_PREFIX};
pub use roles::TokenRole;

/// Vault's system-wide default and maximum lease TTL: 768h (32 days).
pub const SYSTEM_MAX_TTL: Duration = Duration::from_secs(768 * 3600);

/// The accessor of the token auth mount, as `sys/auth` reports it; entity aliases made
/// by `auth/token/create/<role>` live on it.
pub const TOKEN_MOUNT_ACCESSOR: &str = "auth_token_secretvault";

const SIGNING_KEY: &str = "token/signing-key";
const ROOT_RECORD: &str = "token/root";
const ACCESSOR_PREFIX: &str = "token/accessor/";
const LEASE_PREFIX: &str = "token/lease/";
const REVOKED_PREFIX: &str = "token/revoked/";
const USES_PREFIX: &str = "token/uses/";

/// Verified tokens remembered; past this the cache starts over (re-verifying is cheap).
const VERIFIED_CACHE_LIMIT: usize = 16_384;

/// A verified token and its current state.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// Shared with the verified-token cache: verifying a known token allocates nothing.
    pub claims: Arc<Claims>,
    pub issue_time: DateTime<Utc>,
    /// When it expires now (after renewals); `None` for tokens that never expire.
    pub expire_time: Option<DateTime<Utc>>,
    pub last_renewal: Option<DateTime<Utc>>,
    /// Uses left, for use-limited tokens (0 = unlimited). After the router counts the
    /// current request's use this is what remains; Vault shows -1 on the last use.
    pub remaining_uses: i64,
}

impl TokenEntry {
    pub fn accessor(&self) -> &str {
        &self.claims.jti
    }

    pub fn policies(&self) -> &[String] {
        &self.claims.pol
    }

    pub fn is_root(&self) -> bool {
        self.claims.pol.iter().any(|p| p == "root")
    }

    /// Seconds left before expiry, rounded up so a fresh token reports its full TTL
    /// (0 for tokens that never expire).
    pub fn ttl_secs(&self, now: DateTime<Utc>) -> u64 {
        self.expire_time
            .map(|t| ((t - now).num_milliseconds().max(0) as u64).div_ceil(1000))
            .unwrap_or(0)
    }
}

/// The caller of a request, as the router resolved it.
pub struct Caller {
    pub token: Zeroizing<String>,
    pub entry: TokenEntry,
    /// Whether the caller's ACL grants `sudo` on the requested path.
    pub sudo: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RootRecord {
    token: String,
    accessor: String,
    issue_time: DateTime<Utc>,
}

impl Drop for RootRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseRecord {
    expire_time: DateTime<Utc>,
    last_renewal: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RevokedRecord {
    /// `revoke-orphan`: the token alone is revoked; its children live on as orphans.
    orphan_children: bool,
    revoked_at: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    leases: HashMap<String, LeaseRecord>,
    revoked: HashMap<String, RevokedRecord>,
    used: HashMap<String, u64>,
}

pub struct TokenStore {
    barrier: Arc<Barrier>,
    signer: Signer,
    /// HMAC key for comparing the root token in constant time (derived, never stored).
    root_mac_key: [u8; 32],
    root: RwLock<Option<(Vec<u8>, RootRecord)>>,
    state: RwLock<State>,
    roles: roles::Roles,
    verified: RwLock<HashMap<[u8; 32], Arc<Claims>>>,
}

impl TokenStore {
    /// Loads the signing key (creating it on first start) and the token state.
    pub async fn open(barrier: Arc<Barrier>) -> ApiResult<Self> {
        let key: Zeroizing<[u8; 32]> =
            match barrier.get(SIGNING_KEY).await? {
                Some((bytes, _)) => Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                    ApiError::internal("token signing key in storage is malformed")
                })?),
                None => {
                    let key = crate::crypto::random_key();
                    match barrier
                        .put(SIGNING_KEY, key.as_slice(), Precondition::Absent)
                        .await
                    {
                        Ok(_) => key,
                        Err(_) => {
                            // Another replica created it first.
                            let (bytes, _) = barrier
                                .get(SIGNING_KEY)
                                .await?
                                .ok_or_else(|| ApiError::internal("token signing key vanished"))?;
                            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                                ApiError::internal("token signing key in storage is malformed")
                            })?)
                        }
                    }
                }
            };
        let root_mac_key = hmac_sha256(key.as_slice(), b"secretvault root token comparison");
        let store = TokenStore {
            signer: Signer::new(&key),
            root_mac_key,
            root: RwLock::new(None),
            state: RwLock::new(State::default()),
            roles: roles::Roles::new(barrier.clone()),
            verified: RwLock::new(HashMap::new()),
            barrier,
        };
        store.load_state().await?;
        Ok(store)
    }

    async fn load_state(&self) -> ApiResult<()> {
        let mut state = State::default();
        for accessor in self.barrier.list(LEASE_PREFIX).await? {
            if let Some(record) = self
                .read_json::<LeaseRecord>(&format!("{LEASE_PREFIX}{accessor}"))
                .await?
            {
                state.leases.insert(accessor, record);
            }
        }
        for accessor in self.barrier.list(REVOKED_PREFIX).await? {
            if let Some(record) = self
                .read_json::<RevokedRecord>(&format!("{REVOKED_PREFIX}{accessor}"))
                .await?
            {
                state.revoked.insert(accessor, record);
            }
        }
        for accessor in self.barrier.list(USES_PREFIX).await? {
            if let Some(used) = self
                .read_json::<u64>(&format!("{USES_PREFIX}{accessor}"))
                .await?
            {
                state.used.insert(accessor, used);
            }
        }
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        if let Some(root) = self.read_json::<RootRecord>(ROOT_RECORD).await? {
            let mac = hmac_sha256(&self.root_mac_key, root.token.as_bytes()).to_vec();
            *self.root.write().unwrap_or_else(|e| e.into_inner()) = Some((mac, root));
        }
        Ok(())
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> ApiResult<Option<T>> {
        match self.barrier.get(key).await? {
            None => Ok(None),
            Some((bytes, _)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ApiError::internal(format!("token record {key} is corrupt: {e}"))),
        }
    }

    async fn write_json<T: Serialize>(&self, key: &str, value: &T) -> ApiResult<()> {
        let bytes = Zeroizing::new(serde_json::to_vec(value).map_err(ApiError::internal)?);
        self.barrier.put(key, &bytes, Precondition::None).await?;
        Ok(())
    }

    /// Ensures a root token exists (dev mode): uses `requested` when given, else keeps the
    /// stored one, else generates one. Returns the root token to print.
    pub async fn ensure_root_token(&self, requested: Option<&str>) -> ApiResult<Zeroizing<String>> {
        let existing = self
            .root
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, r)| r.clone());
        let record = match (existing, requested) {
            (Some(r), None) => return Ok(Zeroizing::new(r.token.clone())),
            (Some(r), Some(t)) if constant_time_eq(r.token.as_bytes(), t.as_bytes()) => {
                return Ok(Zeroizing::new(r.token.clone()));
            }
            (previous, requested) => {
                if let Some(previous) = previous {
                    // The old root token stops working when another is requested.
                    self.revoke_record(&previous.accessor, false).await?;
                }
                let token = match requested {
                    Some(t) => {
                        if t.is_empty()
                            || t.len() > 256
                            || t.chars().any(|c| c.is_control() || c.is_whitespace())
                        {
                            return Err(ApiError::bad_request(
                                "root token must be 1-256 visible characters without spaces",
                            ));
                        }
                        t.to_string()
                    }
                    None => format!("svr.{}", random_id(24)),
                };
                RootRecord {
                    token,
                    accessor: random_id(24),
                    issue_time: Utc::now(),
                }
            }
        };
        self.write_json(ROOT_RECORD, &record).await?;
        let mac = hmac_sha256(&self.root_mac_key, record.token.as_bytes()).to_vec();
        let token = Zeroizing::new(record.token.clone());
        *self.root.write().unwrap_or_else(|e| e.into_inner()) = Some((mac, record));
        Ok(token)
    }

    /// Verifies a token and returns its current state; `None` for anything invalid,
    /// expired, revoked or used up (callers answer "permission denied" without detail).
    pub fn verify(&self, token: &str) -> Option<TokenEntry> {
        let now = Utc::now();
        let claims = match self.verified_claims(token) {
            Some(c) => c,
            None => return self.verify_root(token),
        };
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        if state.revoked.contains_key(&claims.jti) {
            return None;
        }
        for parent in &claims.par {
            if state
                .revoked
                .get(&parent.accessor)
                .is_some_and(|r| !r.orphan_children)
            {
                return None;
            }
            let parent_expiry = match state.leases.get(&parent.accessor) {
                Some(lease) => Some(lease.expire_time),
                None if parent.expires > 0 => Utc.timestamp_opt(parent.expires, 0).single(),
                None => None,
            };
            if parent_expiry.is_some_and(|t| t <= now) {
                return None;
            }
        }
        let issue_time = Utc.timestamp_opt(claims.iat, claims.iatn).single()?;
        let lease = state.leases.get(&claims.jti);
        let expire_time = match lease {
            Some(lease) => Some(lease.expire_time),
            // A TTL no date can hold (only in tokens signed before durations were bounded)
            // makes the token invalid rather than the request panic.
            None if claims.ttl > 0 => Some(
                i64::try_from(claims.ttl)
                    .ok()
                    .and_then(chrono::Duration::try_seconds)
                    .and_then(|ttl| issue_time.checked_add_signed(ttl))?,
            ),
            None => None,
        };
        if expire_time.is_some_and(|t| t <= now) {
            return None;
        }
        let remaining_uses = if claims.uses > 0 {
            let used = state.used.get(&claims.jti).copied().unwrap_or(0);
            if used >= claims.uses {
                return None;
            }
            (claims.uses - used) as i64
        } else {
            0
        };
        Some(TokenEntry {
            issue_time,
            expire_time,
            last_renewal: lease.map(|l| l.last_renewal),
            remaining_uses,
            claims,
        })
    }

    /// Claims of a token whose signature checks out, from a cache keyed by the token's
    /// SHA-256 (so a token is parsed and its signature checked once, not per request).
    /// Only the immutable claims are cached; revocation, expiry and uses are checked by
    /// the caller on every request.
    fn verified_claims(&self, token: &str) -> Option<Arc<Claims>> {
        use sha2::Digest;
        if !token.starts_with(TOKEN_PREFIX) || token.len() > claims::MAX_TOKEN_LEN {
            return None;
        }
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
        {
            return Some(claims.clone());
        }
        let claims = Arc::new(self.signer.verify(token)?);
        let mut cache = self.verified.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= VERIFIED_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(digest, claims.clone());
        Some(claims)
    }

    fn verify_root(&self, token: &str) -> Option<TokenEntry> {
        let root = self.root.read().unwrap_or_else(|e| e.into_inner());
        let (mac, record) = root.as_ref()?;
        let presented = hmac_sha256(&self.root_mac_key, token.as_bytes());
        if !constant_time_eq(mac, &presented) {
            return None;
        }
        if self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .revoked
            .contains_key(&record.accessor)
        {
            return None;
        }
        Some(TokenEntry {
            claims: Arc::new(Claims {
                jti: record.accessor.clone(),
                iat: record.issue_time.timestamp(),
                iatn: record.issue_time.timestamp_subsec_nanos(),
                ttl: 0,
                emx: 0,
                max: 0,
                period: 0,
                pol: vec!["root".into()],
                meta: BTreeMap::new(),
                dn: "token".into(),
                ren: false,
                par: vec![],
                orph: true,
                ent: String::new(),
                idn: None,
                uses: 0,
                path: "auth/token/create".into(),
                role: String::new(),
            }),
            issue_time: record.issue_time,
            expire_time: None,
            last_renewal: None,
            remaining_uses: 0,
        })
    }

    /// Counts one use of a use-limited token; the last use revokes it. `entry` is left
    /// showing the uses that remain (-1 when this was the last), as Vault reports them.
    pub async fn consume_use(&self, entry: &mut TokenEntry) -> ApiResult<()> {
        if entry.claims.uses == 0 {
            return Ok(());
        }
        entry.remaining_uses = if entry.remaining_uses <= 1 {
            -1
        } else {
            entry.remaining_uses - 1
        };
        let accessor = entry.accessor().to_string();
        let used = {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            let used = state.used.entry(accessor.clone()).or_insert(0);
            *used += 1;
            *used
        };
        self.write_json(&format!("{USES_PREFIX}{accessor}"), &used)
            .await
    }

    /// Issues a token for already-decided claims (logins and `auth/token/create`).
    pub fn issue(&self, claims: &Claims) -> Zeroizing<String> {
        self.signer.sign(claims)
    }

    /// The `auth` block Vault returns when it issues or renews a token.
    pub fn auth_block(
        &self,
        token: &str,
        entry: &TokenEntry,
        identity_policies: Vec<String>,
    ) -> Auth {
        let c = &entry.claims;
        Auth {
            client_token: token.to_string(),
            accessor: c.jti.clone(),
            policies: merged_policies(&c.pol, &identity_policies),
            token_policies: c.pol.clone(),
            identity_policies,
            metadata: if c.meta.is_empty() {
                None
            } else {
                Some(c.meta.clone())
            },
            lease_duration: entry.ttl_secs(Utc::now()),
            renewable: c.ren,
            entity_id: c.ent.clone(),
            token_type: "service",
            orphan: c.orph,
            mfa_requirement: None,
            num_uses: c.uses,
        }
    }

    async fn revoke_record(&self, accessor: &str, orphan_children: bool) -> ApiResult<()> {
        let record = RevokedRecord {
            orphan_children,
            revoked_at: Utc::now(),
        };
        self.write_json(&format!("{REVOKED_PREFIX}{accessor}"), &record)
            .await?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .revoked
            .insert(accessor.to_string(), record);
        Ok(())
    }

    /// Revokes a token (and, unless `orphan_children`, every token descended from it).
    pub async fn revoke(&self, entry: &TokenEntry, orphan_children: bool) -> ApiResult<()> {
        self.revoke_record(entry.accessor(), orphan_children).await
    }

    /// Claims recorded for a token made by `auth/token/create`, found by accessor.
    async fn claims_by_accessor(&self, accessor: &str) -> ApiResult<Option<Claims>> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        Ok(self
            .entry_by_accessor(accessor)
            .await?
            .map(|e| (*e.claims).clone()))
    }

    /// A token's current state from its accessor (`None` if unknown or no longer valid).
    async fn entry_by_accessor(&self, accessor: &str) -> ApiResult<Option<TokenEntry>> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        let root_token = self
            .root
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(_, root)| root.accessor == accessor)
            .map(|(_, root)| Zeroizing::new(root.token.clone()));
        if let Some(token) = root_token {
            return Ok(self.verify_root(&token));
        }
        let Some(claims) = self
            .read_json::<Claims>(&format!("{ACCESSOR_PREFIX}{accessor}"))
            .await?
        else {
            return Ok(None);
        };
        // Re-sign to reuse the one verification path: same claims, same answer.
        let token = self.signer.sign(&claims);
        Ok(self.verify(&token))
    }

    /// Handles `auth/token/<path>`.
    pub async fn handle(
        &self,
        op: Operation,
        path: &str,
        req: &Request,
        caller: Option<&Caller>,
        identity: &IdentityStore,
    ) -> ApiResult<Response> {
        let fields = Fields(&req.data);
        let caller = caller.ok_or_else(ApiError::permission_denied)?;
        let write = matches!(op, Operation::Create | Operation::Update);
        match (path, op) {
            ("create", _) if write => {
                self.create(caller, &fields, CreateMode::Normal, identity)
                    .await
            }
            ("create-orphan", _) if write => {
                self.create(caller, &fields, CreateMode::Orphan, identity)
                    .await
            }
            (p, _) if write && p.starts_with("create/") => {
                let role_name = &p["create/".len()..];
                let role =
                    self.roles.get(role_name).await?.ok_or_else(|| {
                        ApiError::bad_request(format!("unknown role {role_name}"))
                    })?;
                self.create(caller, &fields, CreateMode::Role(role), identity)
                    .await
            }
            ("lookup-self", Operation::Read) | ("lookup-self", Operation::Update) => Ok(
                Response::data(self.lookup_json(&caller.entry, Some(&caller.token), identity)),
            ),
            ("lookup", Operation::Update) | ("lookup", Operation::Read) => {
                let token = fields.string("token")?.filter(|t| !t.is_empty());
                let Some(token) = token else {
                    return Ok(Response::data(self.lookup_json(
                        &caller.entry,
                        Some(&caller.token),
                        identity,
                    )));
                };
                let token = Zeroizing::new(token);
                let entry = self
                    .verify(&token)
                    .ok_or_else(|| ApiError::new(403, "bad token"))?;
                Ok(Response::data(self.lookup_json(
                    &entry,
                    Some(&token),
                    identity,
                )))
            }
            ("lookup-accessor", _) if write => {
                let entry = self.entry_for_accessor_field(&fields).await?;
                Ok(Response::data(self.lookup_json(&entry, None, identity)))
            }
            ("renew-self", _) if write => {
                let increment = fields.duration("increment")?;
                self.renew(&caller.entry, &caller.token, increment, identity)
                    .await
            }
            ("renew", _) if write => {
                let token = Zeroizing::new(
                    fields
                        .string("token")?
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| ApiError::bad_request("missing token"))?,
                );
                let entry = self
                    .verify(&token)
                    .ok_or_else(|| ApiError::bad_request("invalid lease ID"))?;
                let increment = fields.duration("increment")?;
                self.renew(&entry, &token, increment, identity).await
            }
            ("renew-accessor", _) if write => {
                let entry = self.entry_for_accessor_field(&fields).await?;
                let increment = fields.duration("increment")?;
                let mut response = self.renew(&entry, "", increment, identity).await?;
                if let Some(auth) = &mut response.auth {
                    auth.client_token.clear();
                }
                Ok(response)
            }
            ("revoke-self", _) if write => {
                self.revoke(&caller.entry, false).await?;
                Ok(Response::no_content())
            }
            ("revoke", _) if write => {
                let token = Zeroizing::new(
                    fields
                        .string("token")?
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| ApiError::bad_request("missing token"))?,
                );
                if let Some(entry) = self.verify(&token) {
                    self.revoke(&entry, false).await?;
                }
                Ok(Response::no_content())
            }
            ("revoke-orphan", _) if write => {
                if !caller.sudo && !caller.entry.is_root() {
                    return Err(ApiError::acl_denied());
                }
                let token = Zeroizing::new(
                    fields
                        .string("token")?
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| ApiError::bad_request("missing token"))?,
                );
                if let Some(entry) = self.verify(&token) {
                    self.revoke(&entry, true).await?;
                }
                Ok(Response::no_content())
            }
            ("revoke-accessor", _) if write => {
                let accessor = fields
                    .string("accessor")?
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| ApiError::bad_request("missing accessor"))?;
                if self.claims_by_accessor(&accessor).await?.is_none() {
                    return Err(ApiError::bad_request("invalid accessor"));
                }
                self.revoke_record(&accessor, false).await?;
                Ok(Response::no_content())
            }
            ("accessors/" | "accessors", Operation::List) => {
                if !caller.sudo && !caller.entry.is_root() {
                    return Err(ApiError::acl_denied());
                }
                let mut keys = Vec::new();
                for accessor in self.barrier.list(ACCESSOR_PREFIX).await? {
                    if self.entry_by_accessor(&accessor).await?.is_some() {
                        keys.push(accessor);
                    }
                }
                if let Some((_, root)) =
                    self.root.read().unwrap_or_else(|e| e.into_inner()).as_ref()
                {
                    keys.push(root.accessor.clone());
                }
                Ok(Response::data(json!({ "keys": keys })))
            }
            (p, op) if p == "roles" || p == "roles/" || p.starts_with("roles/") => {
                self.roles
                    .handle(
                        op,
                        p.strip_prefix("roles")
                            .unwrap_or("")
                            .trim_start_matches('/'),
                        &fields,
                    )
                    .await
            }
            (
                "create" | "create-orphan" | "lookup-accessor" | "renew-self" | "renew"
                | "renew-accessor" | "revoke-self" | "revoke" | "revoke-orphan" | "revoke-accessor"
                | "lookup-self" | "lookup",
                _,
            ) => Err(ApiError::unsupported_operation()),
            _ => Err(ApiError::no_route(&format!("auth/token/{path}"))),
        }
    }

    async fn entry_for_accessor_field(&self, fields: &Fields<'_>) -> ApiResult<TokenEntry> {
        let accessor = fields
            .string("accessor")?
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing accessor"))?;
        self.entry_by_accessor(&accessor)
            .await?
            .ok_or_else(|| ApiError::bad_request("invalid accessor"))
    }

    async fn renew(
        &self,
        entry: &TokenEntry,
        token: &str,
        increment: Option<Duration>,
        identity: &IdentityStore,
    ) -> ApiResult<Response> {
        let c = &entry.claims;
        if !c.ren {
            return Err(ApiError::bad_request("lease is not renewable"));
        }
        if entry.expire_time.is_none() {
            // Tokens without a TTL have nothing to renew; Vault answers with the token as is.
            let auth = self.auth_block(token, entry, identity.policies_for(&c.ent));
            return Ok(Response {
                auth: Some(auth),
                ..Default::default()
            });
        }
        let now = Utc::now();
        let requested = if c.period > 0 {
            Duration::from_secs(c.period)
        } else {
            increment
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(c.ttl))
        };
        let mut warnings = Vec::new();
        // Requests are bounded (MAX_DURATION), but a token signed before that may carry a
        // period no date can hold.
        let Some(mut expire) = i64::try_from(requested.as_secs())
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d))
        else {
            return Err(ApiError::bad_request(format!(
                "cannot renew: a TTL of {}s reaches past any date the server can represent; renew with a smaller increment, or create a new token",
                requested.as_secs()
            )));
        };
        if c.max > 0
            && let Some(max) = Utc.timestamp_opt(c.max, 0).single()
            && expire > max
        {
            let capped = (max - now).num_seconds().max(0);
            warnings.push(format!(
                        "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                        crate::util::duration::format_go_duration(requested),
                        crate::util::duration::format_go_duration(Duration::from_secs(capped as u64))
                    ));
            expire = max;
        }
        let record = LeaseRecord {
            expire_time: expire,
            last_renewal: now,
        };
        self.write_json(&format!("{LEASE_PREFIX}{}", c.jti), &record)
            .await?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .leases
            .insert(c.jti.clone(), record);
        let mut renewed = entry.clone();
        renewed.expire_time = Some(expire);
        renewed.last_renewal = Some(now);
        let auth = self.auth_block(token, &renewed, identity.policies_for(&c.ent));
        Ok(Response {
            auth: Some(auth),
            warnings,
            ..Default::default()
        })
    }

    fn lookup_json(
        &self,
        entry: &TokenEntry,
        token: Option<&str>,
        identity: &IdentityStore,
    ) -> Value {
        let c = &entry.claims;
        let now = Utc::now();
        let mut data = json!({
            "accessor": c.jti,
            "creation_time": entry.issue_time.timestamp(),
            "creation_ttl": c.ttl,
            "display_name": c.dn,
            "entity_id": c.ent,
            "expire_time": entry.expire_time.as_ref().map(format_time),
            "explicit_max_ttl": c.emx,
            "id": token.unwrap_or(""),
            "issue_time": format_time(&entry.issue_time),
            "meta": if c.meta.is_empty() { Value::Null } else { json!(c.meta) },
            "num_uses": entry.remaining_uses,
            "orphan": c.orph,
            "path": c.path,
            "policies": c.pol,
            "renewable": c.ren,
            "ttl": entry.ttl_secs(now),
            "type": "service",
        });
        if let Some(renewed) = entry.last_renewal {
            data["last_renewal"] = json!(format_time(&renewed));
            data["last_renewal_time"] = json!(renewed.timestamp());
        }
        if c.period > 0 {
            data["period"] = json!(c.period);
        }
        if !c.role.is_empty() {
            data["role"] = json!(c.role);
        }
        let identity_policies = identity.policies_for(&c.ent);
        if !identity_policies.is_empty() {
            data["identity_policies"] = json!(identity_policies);
        }
        data
    }

    async fn create(
        &self,
        caller: &Caller,
        fields: &Fields<'_>,
        mode: CreateMode,
        identity: &IdentityStore,
    ) -> ApiResult<Response> {
        let parent = &caller.entry;
        let parent_is_root = parent.is_root();
        if fields.get("id").is_some() {
            return Err(ApiError::bad_request(
                "custom token IDs are not supported: secretvault tokens are signed by the server; omit \"id\"",
            ));
        }
        if let Some(t) = fields.string("type")?
            && t != "service"
            && t != "default"
            && !t.is_empty()
        {
            return Err(ApiError::bad_request(format!(
                "unsupported token type {t:?}: secretvault issues service tokens only"
            )));
        }
        let role = match &mode {
            CreateMode::Role(r) => Some(r),
            _ => None,
        };
        let no_default_policy = fields.bool("no_default_policy")?.unwrap_or(false)
            || role.is_some_and(|r| r.token_no_default_policy);
        let mut orphan = matches!(mode, CreateMode::Orphan)
            || fields.bool("no_parent")?.unwrap_or(false)
            || role.is_some_and(|r| r.orphan);
        if fields.bool("no_parent")?.unwrap_or(false)
            && !matches!(mode, CreateMode::Orphan)
            && !parent_is_root
            && !caller.sudo
        {
            return Err(ApiError::bad_request(
                "root or sudo privileges required to create orphan token",
            ));
        }
        if matches!(mode, CreateMode::Orphan) {
            orphan = true;
        }

        // Policies: a subset of the parent's, unless a role says which are allowed.
        let requested = fields.string_list("policies")?;
        let mut policies: Vec<String> = match (role, requested) {
            (Some(r), requested)
                if !r.allowed_policies.is_empty() || !r.disallowed_policies.is_empty() =>
            {
                let requested = requested.unwrap_or_else(|| r.allowed_policies.clone());
                let requested = sanitize_policies(requested, false);
                for p in &requested {
                    if p == "default" {
                        continue;
                    }
                    if r.disallowed_policies.contains(p) {
                        return Err(ApiError::bad_request(format!(
                            "token policies ({p}) must not be in the role's disallowed_policies"
                        )));
                    }
                    if !r.allowed_policies.is_empty() && !r.allowed_policies.contains(p) {
                        return Err(ApiError::bad_request(
                            "token policies must be subset of the role's allowed policies",
                        ));
                    }
                }
                requested
            }
            (_, Some(requested)) => sanitize_policies(requested, false),
            (_, None) => parent
                .policies()
                .iter()
                .filter(|p| !(no_default_policy && *p == "default"))
                .cloned()
                .collect(),
        };
        let role_governs = role
            .is_some_and(|r| !r.allowed_policies.is_empty() || !r.disallowed_policies.is_empty());
        if !parent_is_root && !role_governs {
            if policies.iter().any(|p| p == "root") {
                return Err(ApiError::bad_request(
                    "root tokens may not be created by a non-root token",
                ));
            }
            let parent_set: Vec<&String> = parent.policies().iter().collect();
            if policies
                .iter()
                .any(|p| p != "default" && !parent_set.contains(&p))
            {
                return Err(ApiError::bad_request(
                    "child policies must be subset of parent",
                ));
            }
        }
        if !no_default_policy
            && !policies.iter().any(|p| p == "root")
            && !policies.iter().any(|p| p == "default")
        {
            policies.push("default".into());
        }
        policies = sanitize_policies(policies, false);
        if policies.iter().any(|p| p == "root") {
            policies = vec!["root".into()];
        }
        if policies.is_empty() {
            return Err(ApiError::bad_request("token must have at least one policy"));
        }

        let meta = fields.string_map("meta")?.unwrap_or_default();
        let renewable =
            fields.bool("renewable")?.unwrap_or(true) && role.is_none_or(|r| r.renewable);
        let display = fields.string("display_name")?.unwrap_or_default();
        let display_name = display_name("token", &display);
        let num_uses = match fields
            .int("num_uses")?
            .or(role.map(|r| r.token_num_uses as i64).filter(|n| *n > 0))
        {
            Some(n) if n < 0 => {
                return Err(ApiError::bad_request("number of uses cannot be negative"));
            }
            Some(n) => n as u64,
            None => 0,
        };
        let explicit_max = fields.duration("explicit_max_ttl")?.unwrap_or_default();
        let explicit_max = match role.map(|r| r.token_explicit_max_ttl).filter(|d| *d > 0) {
            Some(role_max) if explicit_max.is_zero() || explicit_max.as_secs() > role_max => {
                Duration::from_secs(role_max)
            }
            _ => explicit_max,
        };
        let period = fields
            .duration("period")?
            .or(role
                .map(|r| Duration::from_secs(r.token_period))
                .filter(|d| !d.is_zero()))
            .unwrap_or_default();
        if !period.is_zero() && !parent_is_root && !caller.sudo {
            return Err(ApiError::bad_request(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let ttl = fields
            .duration("ttl")?
            .or(fields.duration("lease")?)
            .unwrap_or_default();

        let now = Utc::now();
        let is_root_token = policies == ["root"];
        let mut warnings = Vec::new();
        let mut ttl = if !period.is_zero() {
            period
        } else if ttl.is_zero() {
            if is_root_token {
                Duration::ZERO
            } else {
                SYSTEM_MAX_TTL
            }
        } else {
            ttl
        };
        // The latest this token may live: explicit max, then the system max (periodic and root tokens excepted).
        let mut max = None;
        if !explicit_max.is_zero() {
            max = Some(explicit_max);
        } else if period.is_zero() && !is_root_token {
            max = Some(SYSTEM_MAX_TTL);
        }
        if let Some(m) = max
            && (ttl.is_zero() || ttl > m)
        {
            if !ttl.is_zero() {
                warnings.push(format!(
                        "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                        crate::util::duration::format_go_duration(ttl),
                        crate::util::duration::format_go_duration(m)
                    ));
            }
            ttl = m;
        }

        let mut parents = Vec::new();
        if !orphan {
            parents.push(ParentRef {
                accessor: parent.accessor().to_string(),
                expires: parent.expire_time.map(|t| t.timestamp()).unwrap_or(0),
            });
            parents.extend(parent.claims.par.iter().cloned());
        }

        let entity_id = match (
            &mode,
            fields.string("entity_alias")?.filter(|a| !a.is_empty()),
        ) {
            (CreateMode::Role(r), Some(alias)) => {
                if !r.allows_entity_alias(&alias) {
                    return Err(ApiError::bad_request("invalid 'entity_alias' value"));
                }
                identity
                    .entity_for_alias(TOKEN_MOUNT_ACCESSOR, "token", &alias)
                    .await?
            }
            (_, Some(_)) => {
                return Err(ApiError::bad_request(
                    "'entity_alias' is only allowed in combination with token role",
                ));
            }
            (_, None) => parent.claims.ent.clone(),
        };

        let claims = Claims {
            jti: random_id(24),
            iat: now.timestamp(),
            iatn: now.timestamp_subsec_nanos(),
            ttl: ttl.as_secs(),
            emx: explicit_max.as_secs(),
            max: max
                .map(|m| now.timestamp() + m.as_secs() as i64)
                .unwrap_or(0),
            period: period.as_secs(),
            pol: policies,
            meta,
            dn: display_name,
            ren: renewable,
            par: parents,
            orph: orphan,
            ent: entity_id,
            idn: None,
            uses: num_uses,
            path: match &mode {
                CreateMode::Role(r) => format!("auth/token/create/{}", r.name),
                _ => "auth/token/create".into(),
            },
            role: role.map(|r| r.name.clone()).unwrap_or_default(),
        };
        self.write_json(&format!("{ACCESSOR_PREFIX}{}", claims.jti), &claims)
            .await?;
        let token = self.issue(&claims);
        let entry = self
            .verify(&token)
            .ok_or_else(|| ApiError::internal("a freshly issued token failed verification"))?;
        let auth = self.auth_block(&token, &entry, identity.policies_for(&claims.ent));
        Ok(Response {
            auth: Some(auth),
            warnings,
            ..Default::default()
        })
    }
}

enum CreateMode {
    Normal,
    Orphan,
    Role(TokenRole),
}

/// Vault's policy list hygiene: trimmed, lower-cased, de-duplicated, sorted.
pub fn sanitize_policies(policies: Vec<String>, add_default: bool) -> Vec<String> {
    let mut out: Vec<String> = policies
        .into_iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if add_default && !out.iter().any(|p| p == "default") {
        out.push("default".into());
    }
    out.sort();
    out.dedup();
    out
}

/// Token and identity policies together, as the `policies` field shows them.
pub fn merged_policies(token: &[String], identity: &[String]) -> Vec<String> {
    let mut all: Vec<String> = token.iter().chain(identity).cloned().collect();
    all.sort();
    all.dedup();
    all
}

/// Vault's display name: the mount prefix, then the name with anything other than
/// letters, digits and `-` turned into `-`.
pub fn display_name(prefix: &str, name: &str) -> String {
    if name.is_empty() {
        return prefix.to_string();
    }
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{cleaned}")
}

/// A random identifier of `len` characters from `[A-Za-z0-9]`.
pub fn random_id(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests;
