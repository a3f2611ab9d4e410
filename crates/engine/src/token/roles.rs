//! Token roles (`auth/token/roles/<name>`): presets for `auth/token/create/<name>`,
//! including which entity aliases a token may be bound to.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::crypto::Barrier;
use crate::logical::{ApiError, ApiResult, Fields, Operation, Response};
use crate::storage::Precondition;
use crate::util::glob::glob_match;

const ROLE_PREFIX: &str = "token/role/";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenRole {
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_entity_aliases: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub token_explicit_max_ttl: u64,
    pub token_period: u64,
    pub token_no_default_policy: bool,
    pub token_num_uses: u64,
}

impl TokenRole {
    /// Whether `alias` matches one of the allowed patterns (`*` matches any run of characters).
    pub fn allows_entity_alias(&self, alias: &str) -> bool {
        self.allowed_entity_aliases
            .iter()
            .any(|pattern| glob_match(pattern, alias))
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "allowed_entity_aliases": self.allowed_entity_aliases,
            "allowed_policies": self.allowed_policies,
            "allowed_policies_glob": [],
            "disallowed_policies": self.disallowed_policies,
            "disallowed_policies_glob": [],
            "explicit_max_ttl": self.token_explicit_max_ttl,
            "name": self.name,
            "orphan": self.orphan,
            "path_suffix": self.path_suffix,
            "period": self.token_period,
            "renewable": self.renewable,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,

            "token_period": self.token_period,
            "token_type": "default-service",
        })
    }
}

pub(super) struct Roles {
    barrier: Arc<Barrier>,
}

impl Roles {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Roles { barrier }
    }

    pub async fn get(&self, name: &str) -> ApiResult<Option<TokenRole>> {
        if !valid_name(name) {
            return Ok(None);
        }
        match self
            .barrier
            .get(&format!("{ROLE_PREFIX}{}", name.to_lowercase()))
            .await?
        {
            None => Ok(None),
            Some((bytes, _)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ApiError::internal(format!("token role {name} is corrupt: {e}"))),
        }
    }

    /// `auth/token/roles` (LIST) and `auth/token/roles/<name>`.
    pub async fn handle(
        &self,
        op: Operation,
        name: &str,
        fields: &Fields<'_>,
    ) -> ApiResult<Response> {
        if name.is_empty() {
            if op != Operation::List {
                return Err(ApiError::unsupported_operation());
            }
            let keys = self.barrier.list(ROLE_PREFIX).await?;
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            return Ok(Response::data(json!({ "keys": keys })));
        }
        if !valid_name(name) {
            return Err(ApiError::bad_request(format!(
                "invalid role name {name:?}: use letters, digits, '-', '_' and '.'"
            )));
        }
        let key = format!("{ROLE_PREFIX}{}", name.to_lowercase());
        match op {
            Operation::Read => match self.get(name).await? {
                Some(role) => Ok(Response::data(role.json())),
                None => Err(ApiError::not_found()),
            },
            Operation::Delete => {
                self.barrier.delete(&key, Precondition::None).await?;
                Ok(Response::no_content())
            }
            Operation::Create | Operation::Update => {
                let mut role = self.get(name).await?.unwrap_or(TokenRole {
                    name: name.to_lowercase(),
                    renewable: true,
                    ..Default::default()
                });
                if let Some(v) = fields.string_list("allowed_policies")? {
                    role.allowed_policies = super::sanitize_policies(v, false);
                }
                if let Some(v) = fields.string_list("disallowed_policies")? {
                    role.disallowed_policies = super::sanitize_policies(v, false);
                }
                if let Some(v) = fields.string_list("allowed_entity_aliases")? {
                    role.allowed_entity_aliases = v;
                }
                if let Some(v) = fields.bool("orphan")? {
                    role.orphan = v;
                }
                if let Some(v) = fields.bool("renewable")? {
                    role.renewable = v;
                }
                if let Some(v) = fields.string("path_suffix")? {
                    if v.contains("..") {
                        return Err(ApiError::bad_request(
                            "error validating path suffix: path suffix cannot contain '..'",
                        ));
                    }
                    role.path_suffix = v;
                }
                if let Some(v) = fields
                    .duration("token_explicit_max_ttl")?
                    .or(fields.duration("explicit_max_ttl")?)
                {
                    role.token_explicit_max_ttl = v.as_secs();
                }
                if let Some(v) = fields
                    .duration("token_period")?
                    .or(fields.duration("period")?)
                {
                    role.token_period = v.as_secs();
                }
                if let Some(v) = fields.bool("token_no_default_policy")? {
                    role.token_no_default_policy = v;
                }
                if let Some(v) = fields.uint("token_num_uses", u32::MAX as u64)? {
                    role.token_num_uses = v;
                }
                if let Some(t) = fields.string("token_type")?
                    && !matches!(t.as_str(), "" | "service" | "default" | "default-service")
                {
                    return Err(ApiError::bad_request(format!(
                        "unsupported token_type {t:?}: secretvault issues service tokens only"
                    )));
                }
                let bytes = serde_json::to_vec(&role).map_err(ApiError::internal)?;
                self.barrier.put(&key, &bytes, Precondition::None).await?;
                Ok(Response::no_content())
            }
            _ => Err(ApiError::unsupported_operation()),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_globs() {
        let role = TokenRole {
            allowed_entity_aliases: vec!["svc-*".into(), "exact".into()],
            ..Default::default()
        };
        assert!(role.allows_entity_alias("svc-a"));
        assert!(role.allows_entity_alias("exact"));
        assert!(!role.allows_entity_alias("other"));
    }
}
