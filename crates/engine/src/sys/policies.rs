//! The policy store behind `sys/policies/acl/<name>` (and the older `sys/policy/<name>`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::crypto::Barrier;
use crate::logical::{ApiError, ApiResult, Fields, Operation, Response};
use crate::policy::{DEFAULT_POLICY, Policy};
use crate::storage::Precondition;

const POLICY_PREFIX: &str = "sys/policy/";

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    policy: String,
}

pub struct PolicyStore {
    barrier: Arc<Barrier>,
    policies: RwLock<HashMap<String, Arc<Policy>>>,
    /// Bumped on every change, so cached ACLs know they are stale.
    generation: AtomicU64,
}

/// Vault lower-cases policy names and trims surrounding space.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

fn validate_name(name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::bad_request("policy name must not be empty"));
    }
    if name.len() > 128
        || name.contains(['/', '*', '+', '{', '}'])
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "invalid policy name {name:?}: use up to 128 characters without '/', '*', '+', braces or control characters"
        )));
    }
    Ok(())
}

impl PolicyStore {
    /// Loads every stored policy; writes the built-in `default` policy on first start.
    pub async fn open(barrier: Arc<Barrier>) -> ApiResult<Self> {
        let store = PolicyStore {
            barrier,
            policies: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        };
        for name in store.barrier.list(POLICY_PREFIX).await? {
            if let Some((bytes, _)) = store.barrier.get(&format!("{POLICY_PREFIX}{name}")).await? {
                let stored: StoredPolicy = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::internal(format!("policy {name} is corrupt: {e}")))?;
                let policy = Policy::parse(&stored.name, &stored.policy).map_err(|e| {
                    ApiError::internal(format!("stored policy {name} no longer parses: {e}"))
                })?;
                store.cache(policy);
            }
        }
        if store.get("default").is_none() {
            store.put("default", DEFAULT_POLICY).await?;
        }
        Ok(store)
    }

    fn cache(&self, policy: Policy) {
        self.policies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(policy.name().to_string(), Arc::new(policy));
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Policy>> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Policy names as Vault lists them: sorted, then `root` last.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names.push("root".into());
        names
    }

    /// Parses and stores a policy. Refuses to touch `root`.
    pub async fn put(&self, name: &str, text: &str) -> ApiResult<()> {
        let name = normalize_name(name);
        validate_name(&name)?;
        if name == "root" {
            return Err(ApiError::bad_request("cannot update \"root\" policy"));
        }
        let policy = Policy::parse(&name, text)
            .map_err(|e| ApiError::bad_request(format!("failed to parse policy: {e}")))?;
        let stored = StoredPolicy {
            name: name.clone(),
            policy: text.to_string(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(ApiError::internal)?;
        self.barrier
            .put(
                &format!("{POLICY_PREFIX}{name}"),
                &bytes,
                Precondition::None,
            )
            .await?;
        self.cache(policy);
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> ApiResult<()> {
        let name = normalize_name(name);
        match name.as_str() {
            "root" => return Err(ApiError::bad_request("cannot delete \"root\" policy")),
            "default" => return Err(ApiError::bad_request("cannot delete default policy")),
            _ => {}
        }
        validate_name(&name)?;
        self.barrier
            .delete(&format!("{POLICY_PREFIX}{name}"), Precondition::None)
            .await?;
        self.policies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Loads every `*.hcl` and `*.json` file in `dir` as a policy named after the file,
    /// reporting every bad file at once.
    pub async fn load_dir(&self, dir: &Path) -> Result<Vec<String>, String> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read policy directory {}: {e}", dir.display()))?;
        let mut loaded = Vec::new();
        let mut problems = Vec::new();
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
                continue;
            };
            if ext != "hcl" && ext != "json" {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            match self.put(name, &text).await {
                Ok(()) => loaded.push(normalize_name(name)),
                Err(e) => problems.push(format!("{}: {}", path.display(), e.errors.join("; "))),
            }
        }
        if problems.is_empty() {
            Ok(loaded)
        } else {
            Err(problems.join("\n"))
        }
    }

    /// `sys/policies/acl[/<name>]` and the older `sys/policy[/<name>]`.
    pub async fn handle(
        &self,
        op: Operation,
        name: &str,
        fields: &Fields<'_>,
        legacy: bool,
    ) -> ApiResult<Response> {
        let name = normalize_name(name.trim_end_matches('/'));
        if name.is_empty() {
            return match (op, legacy) {
                (Operation::List, false) => Ok(Response::data(json!({ "keys": self.names() }))),
                (Operation::Read, true) | (Operation::List, true) => Ok(Response {
                    data: Some(json!({ "keys": self.names(), "policies": self.names() })),
                    data_also_at_top_level: true,
                    ..Default::default()
                }),
                _ => Err(ApiError::unsupported_operation()),
            };
        }
        match op {
            Operation::Read => {
                let text = if name == "root" {
                    Some(String::new())
                } else {
                    self.get(&name).map(|p| p.raw().to_string())
                };
                let Some(text) = text else {
                    return Err(ApiError::not_found());
                };
                if legacy {
                    Ok(Response {
                        data: Some(json!({ "name": name, "rules": text })),
                        data_also_at_top_level: true,
                        ..Default::default()
                    })
                } else {
                    Ok(Response::data(json!({ "name": name, "policy": text })))
                }
            }
            Operation::Create | Operation::Update => {
                let text = match fields.string("policy")? {
                    Some(t) => Some(t),
                    None if legacy => fields.string("rules")?,
                    None => None,
                };
                let text = text.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                    ApiError::bad_request("'policy' parameter not supplied or empty")
                })?;
                self.put(&name, &text).await?;
                Ok(Response::no_content())
            }
            Operation::Delete => {
                self.delete(&name).await?;
                Ok(Response::no_content())
            }
            _ => Err(ApiError::unsupported_operation()),
        }
    }
}
