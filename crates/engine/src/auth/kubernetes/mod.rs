//! Vault's Kubernetes auth method at `auth/kubernetes/`.
//!
//! - `config`: the cluster (`kubernetes_host`, `kubernetes_ca_cert`), the keys that sign
//!   ServiceAccount tokens (`pem_keys`; ours: `jwks`, `jwks_url`), `issuer`.
//! - `role/<name>`: bound service account names and namespaces (globs), `audience`,
//!   token policies and TTLs.
//! - `login` (`{role, jwt}`, no token needed): verifies the ServiceAccount JWT
//!   ([`verify::TokenVerifier`]), checks the role's bindings and issues a signed vault
//!   token. A login writes nothing to storage: the token carries its identity (entity,
//!   alias on this mount, service account metadata) for templated policies.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use serde_json::json;

use crate::crypto::{Barrier, hmac_sha256};
use crate::identity::{Alias, Identity, IdentityStore};
use crate::logical::{ApiError, ApiResult, Fields, Operation, Request, Response};
use crate::storage::Precondition;
use crate::token::{Claims, SYSTEM_MAX_TTL, TokenStore, display_name, random_id};

pub mod config;
pub mod jwks;
pub mod role;
pub mod verify;

pub use config::KubernetesConfig;
pub use jwks::{FetchError, HttpJwksFetcher, JwksCache, JwksFetcher, JwksRequest};
pub use role::{AliasNameSource, KubernetesRole};
pub use verify::{
    ClaimChecks, KeySet, LocalKeysVerifier, LoginError, ServiceAccount, TokenVerifier,
};

/// The mount's path, as `sys/auth` lists it.
pub const MOUNT_PATH: &str = "auth/kubernetes/";

/// The path that issues tokens, recorded in them (`path` in a token lookup).
pub const LOGIN_PATH: &str = "auth/kubernetes/login";

const CONFIG_KEY: &str = "auth/kubernetes/config";
const ROLE_PREFIX: &str = "auth/kubernetes/role/";

/// The Kubernetes auth backend.
pub struct KubernetesAuth {
    barrier: Arc<Barrier>,
    accessor: String,
    verifier: RwLock<Arc<dyn TokenVerifier>>,
}

fn unsupported_path() -> ApiError {
    ApiError::multi(404, "unsupported path")
}

impl KubernetesAuth {
    /// The backend over `barrier`, for the mount with this accessor. Tokens are verified
    /// with [`LocalKeysVerifier`] fetching `jwks_url` over HTTPS.
    pub fn new(barrier: Arc<Barrier>, accessor: String) -> Self {
        KubernetesAuth {
            barrier,
            accessor,
            verifier: RwLock::new(Arc::new(LocalKeysVerifier::new(Arc::new(
                HttpJwksFetcher::default(),
            )))),
        }
    }

    /// The mount accessor that entity aliases (and templated policies) name.
    pub fn accessor(&self) -> &str {
        &self.accessor
    }

    /// Replaces how tokens are verified (TokenReview, a pod-existence check, tests).
    pub fn set_verifier(&self, verifier: Arc<dyn TokenVerifier>) {
        *self.verifier.write().unwrap_or_else(|e| e.into_inner()) = verifier;
    }

    fn verifier(&self) -> Arc<dyn TokenVerifier> {
        self.verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether something exists at `path` (relative to the mount), which makes a write
    /// an update rather than a create for the ACL check.
    pub async fn exists(&self, path: &str) -> ApiResult<bool> {
        Ok(match path {
            "config" => self.barrier.get(CONFIG_KEY).await?.is_some(),
            p if p.starts_with("role/") => {
                let name = &p["role/".len()..];
                valid_role_name(name) && self.role(name).await?.is_some()
            }
            _ => false,
        })
    }

    /// The stored configuration, if any.
    pub async fn config(&self) -> ApiResult<Option<KubernetesConfig>> {
        match self.barrier.get(CONFIG_KEY).await? {
            None => Ok(None),
            Some((bytes, _)) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ApiError::internal(format!("stored kubernetes auth config is corrupt: {e}"))
            }),
        }
    }

    /// A stored role, if any.
    pub async fn role(&self, name: &str) -> ApiResult<Option<KubernetesRole>> {
        match self.barrier.get(&format!("{ROLE_PREFIX}{name}")).await? {
            None => Ok(None),
            Some((bytes, _)) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ApiError::internal(format!("stored kubernetes role {name:?} is corrupt: {e}"))
            }),
        }
    }

    async fn put_json<T: serde::Serialize>(&self, key: &str, value: &T) -> ApiResult<()> {
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec(value).map_err(ApiError::internal)?);
        self.barrier.put(key, &bytes, Precondition::None).await?;
        Ok(())
    }

    /// Handles an authenticated, authorised request under `auth/kubernetes/`.
    pub async fn handle(
        &self,
        op: Operation,
        path: &str,
        req: &Request,
        tokens: &TokenStore,
        identity: &IdentityStore,
    ) -> ApiResult<Response> {
        let fields = Fields(&req.data);
        let write = matches!(op, Operation::Create | Operation::Update);
        match path {
            "config" => match op {
                Operation::Read => match self.config().await? {
                    Some(config) => Ok(Response::data(config.json())),
                    None => Err(ApiError::not_found()),
                },
                _ if write => {
                    let (config, warnings) = KubernetesConfig::from_fields(&fields)?;
                    self.put_json(CONFIG_KEY, &config).await?;
                    // 204, unless there is a warning to show.
                    Ok(Response {
                        status: warnings.is_empty().then_some(204),
                        warnings,
                        ..Default::default()
                    })
                }
                _ => Err(ApiError::multi(405, "unsupported operation")),
            },
            "role/" if op == Operation::List => {
                let mut keys = self.barrier.list(ROLE_PREFIX).await?;
                keys.retain(|k| !k.ends_with('/'));
                keys.sort();
                if keys.is_empty() {
                    return Err(ApiError::not_found());
                }
                Ok(Response::data(json!({ "keys": keys })))
            }
            p if p.starts_with("role/") => {
                let name = &p["role/".len()..];
                if !valid_role_name(name) {
                    return Err(unsupported_path());
                }
                let key = format!("{ROLE_PREFIX}{name}");
                match op {
                    Operation::Read => match self.role(name).await? {
                        Some(role) => Ok(Response::data(role.json())),
                        None => Err(ApiError::not_found()),
                    },
                    Operation::Delete => {
                        self.barrier.delete(&key, Precondition::None).await?;
                        Ok(Response::no_content())
                    }
                    _ if write => {
                        let role = KubernetesRole::updated(self.role(name).await?, &fields)?;
                        self.put_json(&key, &role).await?;
                        Ok(Response::no_content())
                    }
                    _ => Err(ApiError::multi(405, "unsupported operation")),
                }
            }
            "login" => self.login(op, req, tokens, identity).await,
            _ => Err(unsupported_path()),
        }
    }

    /// `auth/kubernetes/login`: needs no token. Reads the role and the configuration,
    /// writes nothing.
    pub async fn login(
        &self,
        op: Operation,
        req: &Request,
        tokens: &TokenStore,
        identity: &IdentityStore,
    ) -> ApiResult<Response> {
        if !matches!(op, Operation::Create | Operation::Update) {
            return Err(ApiError::unsupported_operation());
        }
        let fields = Fields(&req.data);
        let role_name = fields
            .string("role")?
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing role"))?;
        let jwt = zeroize::Zeroizing::new(
            fields
                .string("jwt")?
                .filter(|j| !j.is_empty())
                .ok_or_else(|| ApiError::bad_request("missing jwt"))?,
        );
        let role = match valid_role_name(&role_name) {
            true => self.role(&role_name).await?,
            false => None,
        }
        .ok_or_else(|| ApiError::bad_request(format!("invalid role name {role_name:?}")))?;
        let config = self
            .config()
            .await
            .ok()
            .flatten()
            .ok_or_else(|| ApiError::internal("could not load backend configuration"))?;

        let checks = ClaimChecks {
            audience: Some(role.audience.as_str()).filter(|a| !a.is_empty()),
            issuer: config.required_issuer(),
        };
        let sa = self
            .verifier()
            .verify(&jwt, &config, &checks)
            .await
            .and_then(|sa| role.authorize(&sa).map(|()| sa))
            .map_err(|e| {
                // The reason, never the token.
                tracing::info!(role = %role_name, error = %e, detail = ?e, "kubernetes login refused");
                ApiError::new(e.status(), e.to_string())
            })?;
        let alias_name = role
            .alias_name(&sa)
            .map_err(|e| ApiError::new(e.status(), e.to_string()))?;
        self.issue(&role_name, &role, &sa, &alias_name, tokens, identity)
    }

    /// Builds and signs the token for a verified, authorised service account.
    fn issue(
        &self,
        role_name: &str,
        role: &KubernetesRole,
        sa: &ServiceAccount,
        alias_name: &str,
        tokens: &TokenStore,
        identity: &IdentityStore,
    ) -> ApiResult<Response> {
        let mut alias_metadata: BTreeMap<String, String> = role.alias_metadata.clone();
        alias_metadata.insert("service_account_name".into(), sa.name.clone());
        alias_metadata.insert("service_account_namespace".into(), sa.namespace.clone());
        alias_metadata.insert(
            "service_account_secret_name".into(),
            sa.secret_name.clone().unwrap_or_default(),
        );
        alias_metadata.insert("service_account_uid".into(), sa.uid.clone());
        if let Some(pod) = &sa.pod_name {
            alias_metadata.insert("pod_name".into(), pod.clone());
        }
        if let Some(pod) = &sa.pod_uid {
            alias_metadata.insert("pod_uid".into(), pod.clone());
        }
        let mut token_metadata = alias_metadata.clone();
        token_metadata.insert("role".into(), role_name.to_string());

        let inline = self
            .identity_for(alias_name, &alias_metadata, identity)
            .ok_or_else(|| {
                tracing::info!(role = %role_name, "kubernetes login refused: the alias's entity is disabled");
                ApiError::permission_denied()
            })?;

        let mut policies = role.token_policies.clone();
        if !role.token_no_default_policy {
            policies.push("default".into());
        }
        let policies = crate::token::sanitize_policies(policies, false);

        let now = Utc::now();
        let cap = |secs: u64| secs.min(SYSTEM_MAX_TTL.as_secs());
        let explicit = cap(role.token_explicit_max_ttl);
        let (ttl, max) = if role.token_period > 0 {
            // Periodic tokens renew forever unless an explicit max says otherwise.
            let period = cap(role.token_period);
            (
                if explicit > 0 {
                    period.min(explicit)
                } else {
                    period
                },
                explicit,
            )
        } else {
            let ttl = cap(if role.token_ttl > 0 {
                role.token_ttl
            } else {
                role::DEFAULT_TOKEN_TTL.as_secs()
            });
            let mut max = cap(if role.token_max_ttl > 0 {
                role.token_max_ttl
            } else {
                role::DEFAULT_TOKEN_MAX_TTL.as_secs()
            });
            if explicit > 0 {
                max = max.min(explicit);
            }
            (ttl.min(max), max)
        };

        let claims = Claims {
            jti: random_id(24),
            iat: now.timestamp(),
            iatn: now.timestamp_subsec_nanos(),
            ttl,
            emx: explicit,
            max: if max > 0 {
                now.timestamp() + max as i64
            } else {
                0
            },
            period: cap(role.token_period),
            pol: policies,
            meta: token_metadata,
            dn: display_name("kubernetes", &format!("{}-{}", sa.namespace, sa.name)),
            ren: true,
            par: Vec::new(),
            // Login tokens have no parent, as in Vault.
            orph: true,
            ent: inline.entity_id.clone(),
            idn: Some(inline),
            uses: role.token_num_uses,
            path: LOGIN_PATH.to_string(),
            role: role_name.to_string(),
        };
        let token = tokens.issue(&claims);
        if token.len() > crate::token::claims::MAX_TOKEN_LEN {
            // Claims come from a signed JWT and the role, but a token too long to verify
            // would fail every request; better to say so now.
            return Err(ApiError::internal(
                "the issued token would exceed the token size limit: shorten the role's alias_metadata",
            ));
        }
        let entry = tokens
            .verify(&token)
            .ok_or_else(|| ApiError::internal("a freshly issued token failed verification"))?;
        let auth = tokens.auth_block(&token, &entry, identity.policies_for(&claims.ent));
        Ok(Response {
            auth: Some(auth),
            ..Default::default()
        })
    }

    /// The identity a login's token carries. An entity that already has an alias for this
    /// service account on this mount (made through `identity/`) is used as it is, with
    /// the login's alias metadata; otherwise the entity is derived from the mount accessor
    /// and the alias name, so every login of one service account gets the same entity id
    /// without anything being stored.
    ///
    /// `None` when that entity is disabled: its service account may not log in.
    fn identity_for(
        &self,
        alias_name: &str,
        alias_metadata: &BTreeMap<String, String>,
        identity: &IdentityStore,
    ) -> Option<Identity> {
        let stored = match identity.entity_id_for_alias(&self.accessor, alias_name) {
            Some(id) => Some(identity.resolve(&id)?),
            None => None,
        };
        let mut resolved = stored.unwrap_or_else(|| {
            let entity_id = self.derived_uuid("entity", alias_name);
            Identity {
                entity_name: format!("entity_{}", &entity_id[..8]),
                entity_id,
                ..Default::default()
            }
        });
        // Metadata the entity already has (set by an administrator) wins.
        for (k, v) in alias_metadata {
            resolved
                .entity_metadata
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        let alias_id = resolved
            .aliases
            .iter()
            .find(|a| a.mount_accessor == self.accessor)
            .map(|a| a.id.clone())
            .unwrap_or_else(|| self.derived_uuid("alias", alias_name));
        resolved
            .aliases
            .retain(|a| a.mount_accessor != self.accessor);
        resolved.aliases.push(Alias {
            id: alias_id,
            name: alias_name.to_string(),
            mount_accessor: self.accessor.clone(),
            metadata: alias_metadata.clone(),
        });
        Some(resolved)
    }

    fn derived_uuid(&self, kind: &str, alias_name: &str) -> String {
        let h = hex::encode(hmac_sha256(
            self.accessor.as_bytes(),
            format!("{kind}\0{alias_name}").as_bytes(),
        ));
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

use role::valid_role_name;

#[cfg(test)]
mod tests;
