//! Who a token speaks for: the identity that templated policies are resolved against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The identity behind a token, as templated policy paths see it
/// (`{{identity.entity.id}}`, `{{identity.entity.name}}`,
/// `{{identity.entity.metadata.<key>}}`,
/// `{{identity.entity.aliases.<mount accessor>.{id,name,metadata.<key>}}}`,
/// `{{identity.groups.ids.<id>.name}}`, `{{identity.groups.names.<name>.id}}` …).
///
/// Tokens without an entity (Vault's plain `auth/token/create` tokens) have an empty
/// identity; every template that references it then fails to resolve and, as in Vault,
/// the path rule that used it is dropped rather than matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Entity id; empty when the token has no entity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity_name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entity_metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<Alias>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
}

/// An entity alias: the entity as one auth mount knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub id: String,
    pub name: String,
    pub mount_accessor: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// An identity group the entity belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Identity {
    pub fn is_empty(&self) -> bool {
        self.entity_id.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// The identity store: Vault's `identity/entity` and `identity/entity-alias` endpoints.
// ---------------------------------------------------------------------------------------

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::crypto::Barrier;
use crate::logical::{ApiError, ApiResult, Fields, Operation, Response, format_time};
use crate::storage::Precondition;

const ENTITY_PREFIX: &str = "identity/entity/";

/// An entity as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub policies: Vec<String>,
    pub disabled: bool,
    pub creation_time: DateTime<Utc>,
    pub last_update_time: DateTime<Utc>,
    pub aliases: Vec<EntityAlias>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityAlias {
    pub id: String,
    pub name: String,
    pub mount_accessor: String,
    pub mount_type: String,
    pub mount_path: String,
    pub metadata: BTreeMap<String, String>,
    pub creation_time: DateTime<Utc>,
}

impl Entity {
    fn json(&self) -> Value {
        json!({
            "aliases": self.aliases.iter().map(|a| json!({
                "canonical_id": self.id,
                "creation_time": format_time(&a.creation_time),
                "custom_metadata": null,
                "id": a.id,
                "last_update_time": format_time(&a.creation_time),
                "local": false,
                "merged_from_canonical_ids": null,
                "metadata": if a.metadata.is_empty() { Value::Null } else { json!(a.metadata) },
                "mount_accessor": a.mount_accessor,
                "mount_path": a.mount_path,
                "mount_type": a.mount_type,
                "name": a.name,
            })).collect::<Vec<_>>(),
            "creation_time": format_time(&self.creation_time),
            "direct_group_ids": [],
            "disabled": self.disabled,
            "group_ids": [],
            "id": self.id,
            "inherited_group_ids": [],
            "last_update_time": format_time(&self.last_update_time),
            "merged_entity_ids": null,
            "metadata": if self.metadata.is_empty() { Value::Null } else { json!(self.metadata) },
            "name": self.name,
            "namespace_id": "root",
            "policies": self.policies,
        })
    }

    fn identity(&self) -> Identity {
        Identity {
            entity_id: self.id.clone(),
            entity_name: self.name.clone(),
            entity_metadata: self.metadata.clone(),
            aliases: self
                .aliases
                .iter()
                .map(|a| Alias {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    mount_accessor: a.mount_accessor.clone(),
                    metadata: a.metadata.clone(),
                })
                .collect(),
            groups: Vec::new(),
        }
    }
}

/// An auth mount that entity aliases may name.
#[derive(Debug, Clone)]
pub struct AuthMountRef {
    pub accessor: String,
    pub mount_type: String,
    pub path: String,
}

#[derive(Default)]
struct Index {
    by_id: HashMap<String, Arc<Entity>>,
    by_name: HashMap<String, String>,
    /// (mount accessor, alias name) → entity id
    by_alias: HashMap<(String, String), String>,
}

impl Index {
    fn insert(&mut self, entity: Entity) {
        self.remove(&entity.id);
        self.by_name
            .insert(entity.name.to_lowercase(), entity.id.clone());
        for a in &entity.aliases {
            self.by_alias.insert(
                (a.mount_accessor.clone(), a.name.clone()),
                entity.id.clone(),
            );
        }
        self.by_id.insert(entity.id.clone(), Arc::new(entity));
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Entity>> {
        let old = self.by_id.remove(id)?;
        self.by_name.remove(&old.name.to_lowercase());
        for a in &old.aliases {
            self.by_alias
                .remove(&(a.mount_accessor.clone(), a.name.clone()));
        }
        Some(old)
    }
}

pub struct IdentityStore {
    barrier: Arc<Barrier>,
    index: RwLock<Index>,
    mounts: Vec<AuthMountRef>,
    /// Serialises writers so read-modify-write of the indexes stays consistent.
    write_lock: tokio::sync::Mutex<()>,
}

impl IdentityStore {
    /// Loads every entity into memory. `mounts` are the auth mounts aliases may refer to.
    pub async fn open(barrier: Arc<Barrier>, mounts: Vec<AuthMountRef>) -> ApiResult<Self> {
        let mut index = Index::default();
        for id in barrier.list(ENTITY_PREFIX).await? {
            if let Some((bytes, _)) = barrier.get(&format!("{ENTITY_PREFIX}{id}")).await? {
                let entity: Entity = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::internal(format!("entity {id} is corrupt: {e}")))?;
                index.insert(entity);
            }
        }
        Ok(IdentityStore {
            barrier,
            index: RwLock::new(index),
            mounts,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The identity templated policies see for `entity_id` (empty when unknown or disabled).
    pub fn resolve(&self, entity_id: &str) -> Option<Identity> {
        if entity_id.is_empty() {
            return None;
        }
        self.read()
            .by_id
            .get(entity_id)
            .filter(|e| !e.disabled)
            .map(|e| e.identity())
    }

    /// The entity holding an alias on an auth mount, if one exists (never creates one:
    /// logins that must not write storage use this).
    pub fn entity_id_for_alias(&self, mount_accessor: &str, alias_name: &str) -> Option<String> {
        self.read()
            .by_alias
            .get(&(mount_accessor.to_string(), alias_name.to_string()))
            .cloned()
    }

    /// Whether the entity exists and is disabled (its tokens must then be refused).
    pub fn is_disabled(&self, entity_id: &str) -> bool {
        !entity_id.is_empty() && self.read().by_id.get(entity_id).is_some_and(|e| e.disabled)
    }

    /// Policies granted by the entity itself (Vault's identity policies).
    pub fn policies_for(&self, entity_id: &str) -> Vec<String> {
        if entity_id.is_empty() {
            return Vec::new();
        }
        self.read()
            .by_id
            .get(entity_id)
            .map(|e| e.policies.clone())
            .unwrap_or_default()
    }

    async fn save(&self, entity: Entity) -> ApiResult<()> {
        let bytes = serde_json::to_vec(&entity).map_err(ApiError::internal)?;
        self.barrier
            .put(
                &format!("{ENTITY_PREFIX}{}", entity.id),
                &bytes,
                Precondition::None,
            )
            .await?;
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entity);
        Ok(())
    }

    /// The entity bound to an alias on an auth mount, created (with its alias) when absent.
    pub async fn entity_for_alias(
        &self,
        mount_accessor: &str,
        mount_type: &str,
        alias_name: &str,
    ) -> ApiResult<String> {
        let key = (mount_accessor.to_string(), alias_name.to_string());
        if let Some(id) = self.read().by_alias.get(&key) {
            return Ok(id.clone());
        }
        let _guard = self.write_lock.lock().await;
        if let Some(id) = self.read().by_alias.get(&key) {
            return Ok(id.clone());
        }
        let now = Utc::now();
        let id = uuid::Uuid::new_v4().to_string();
        let path = self
            .mounts
            .iter()
            .find(|m| m.accessor == mount_accessor)
            .map(|m| m.path.clone())
            .unwrap_or_default();
        let entity = Entity {
            name: format!("entity_{}", &id[..8]),
            id: id.clone(),
            metadata: BTreeMap::new(),
            policies: Vec::new(),
            disabled: false,
            creation_time: now,
            last_update_time: now,
            aliases: vec![EntityAlias {
                id: uuid::Uuid::new_v4().to_string(),
                name: alias_name.to_string(),
                mount_accessor: mount_accessor.to_string(),
                mount_type: mount_type.to_string(),
                mount_path: path,
                metadata: BTreeMap::new(),
                creation_time: now,
            }],
        };
        self.save(entity).await?;
        Ok(id)
    }

    /// Handles `identity/<path>`.
    pub async fn handle(
        &self,
        op: Operation,
        path: &str,
        fields: &Fields<'_>,
    ) -> ApiResult<Response> {
        let write = matches!(op, Operation::Create | Operation::Update);
        match (path, op) {
            ("entity", _) if write => {
                let id = fields.string("id")?.filter(|s| !s.is_empty());
                let by_name = fields
                    .string("name")?
                    .and_then(|n| self.read().by_name.get(&n.to_lowercase()).cloned());
                self.upsert_entity(id.or(by_name), fields).await
            }
            ("entity/id" | "entity/id/", Operation::List) => self.list_entities(false),
            ("entity/name" | "entity/name/", Operation::List) => self.list_entities(true),
            (p, _) if p.starts_with("entity/id/") => {
                let id = &p["entity/id/".len()..];
                self.entity_op(op, Some(id.to_string()), fields).await
            }
            (p, _) if p.starts_with("entity/name/") => {
                let name = &p["entity/name/".len()..];
                let id = self.read().by_name.get(&name.to_lowercase()).cloned();
                if write && id.is_none() {
                    // POST entity/name/<name> creates the entity.
                    let mut data = fields.0.clone();
                    data.insert("name".into(), Value::String(name.to_string()));
                    return self.upsert_entity(None, &Fields(&data)).await;
                }
                self.entity_op(op, id, fields).await
            }
            ("entity-alias", _) if write => self.create_alias(fields).await,
            ("entity-alias/id" | "entity-alias/id/", Operation::List) => {
                let keys: Vec<String> = self
                    .read()
                    .by_id
                    .values()
                    .flat_map(|e| e.aliases.iter().map(|a| a.id.clone()))
                    .collect();
                if keys.is_empty() {
                    Err(ApiError::not_found())
                } else {
                    Ok(Response::data(json!({ "keys": keys })))
                }
            }
            (p, _) if p.starts_with("entity-alias/id/") => {
                self.alias_op(op, &p["entity-alias/id/".len()..]).await
            }
            _ => Err(ApiError::no_route(&format!("identity/{path}"))),
        }
    }

    fn list_entities(&self, by_name: bool) -> ApiResult<Response> {
        let index = self.read();
        let mut keys: Vec<String> = if by_name {
            index.by_id.values().map(|e| e.name.clone()).collect()
        } else {
            index.by_id.keys().cloned().collect()
        };
        keys.sort();
        if keys.is_empty() {
            return Err(ApiError::not_found());
        }
        Ok(Response::data(json!({ "keys": keys })))
    }

    async fn entity_op(
        &self,
        op: Operation,
        id: Option<String>,
        fields: &Fields<'_>,
    ) -> ApiResult<Response> {
        match op {
            Operation::Read => {
                let entity = id.and_then(|id| self.read().by_id.get(&id).cloned());
                match entity {
                    Some(e) => Ok(Response::data(e.json())),
                    None => Err(ApiError::not_found()),
                }
            }
            Operation::Create | Operation::Update => match id {
                Some(id) if self.read().by_id.contains_key(&id) => {
                    self.upsert_entity(Some(id), fields).await
                }
                _ => Err(ApiError::bad_request("entity not found from id")),
            },
            Operation::Delete => {
                if let Some(id) = id {
                    let _guard = self.write_lock.lock().await;
                    self.barrier
                        .delete(&format!("{ENTITY_PREFIX}{id}"), Precondition::None)
                        .await?;
                    self.index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                }
                Ok(Response::no_content())
            }
            _ => Err(ApiError::unsupported_operation()),
        }
    }

    async fn upsert_entity(&self, id: Option<String>, fields: &Fields<'_>) -> ApiResult<Response> {
        let _guard = self.write_lock.lock().await;
        let now = Utc::now();
        let existing = id
            .as_ref()
            .and_then(|id| self.read().by_id.get(id).cloned());
        if id.is_some() && existing.is_none() {
            return Err(ApiError::bad_request("entity not found from id"));
        }
        let creating = existing.is_none();
        let mut entity = existing.map(|e| (*e).clone()).unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().to_string();
            Entity {
                name: format!("entity_{}", &id[..8]),
                id,
                metadata: BTreeMap::new(),
                policies: Vec::new(),
                disabled: false,
                creation_time: now,
                last_update_time: now,
                aliases: Vec::new(),
            }
        });
        if let Some(name) = fields.string("name")?.filter(|n| !n.is_empty()) {
            if let Some(other) = self.read().by_name.get(&name.to_lowercase())
                && *other != entity.id
            {
                return Err(ApiError::bad_request("entity name is already in use"));
            }
            entity.name = name;
        }
        if let Some(metadata) = fields.string_map("metadata")? {
            entity.metadata = metadata;
        }
        if let Some(policies) = fields.string_list("policies")? {
            entity.policies = crate::token::sanitize_policies(policies, false);
        }
        if let Some(disabled) = fields.bool("disabled")? {
            entity.disabled = disabled;
        }
        entity.last_update_time = now;
        let (id, name) = (entity.id.clone(), entity.name.clone());
        self.save(entity).await?;
        if creating {
            Ok(Response::data(
                json!({ "aliases": null, "id": id, "name": name }),
            ))
        } else {
            Ok(Response::no_content())
        }
    }

    async fn create_alias(&self, fields: &Fields<'_>) -> ApiResult<Response> {
        let name = fields
            .string("name")?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing alias name"))?;
        let accessor = fields
            .string("mount_accessor")?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing mount_accessor"))?;
        let Some(mount) = self.mounts.iter().find(|m| m.accessor == accessor).cloned() else {
            return Err(ApiError::bad_request(format!(
                "invalid mount accessor {accessor:?}"
            )));
        };
        let canonical = fields.string("canonical_id")?.filter(|n| !n.is_empty());
        let metadata = fields.string_map("custom_metadata")?.unwrap_or_default();
        let _guard = self.write_lock.lock().await;
        if self
            .read()
            .by_alias
            .contains_key(&(accessor.clone(), name.clone()))
        {
            return Err(ApiError::bad_request(
                "alias already exists for requested entity and mount accessor",
            ));
        }
        let now = Utc::now();
        let mut entity = match canonical {
            Some(id) => match self.read().by_id.get(&id) {
                Some(e) => (**e).clone(),
                None => return Err(ApiError::bad_request("invalid canonical ID")),
            },
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                Entity {
                    name: format!("entity_{}", &id[..8]),
                    id,
                    metadata: BTreeMap::new(),
                    policies: Vec::new(),
                    disabled: false,
                    creation_time: now,
                    last_update_time: now,
                    aliases: Vec::new(),
                }
            }
        };
        if entity.aliases.iter().any(|a| a.mount_accessor == accessor) {
            return Err(ApiError::bad_request(
                "mount accessor already exists for the entity; an entity has at most one alias per auth mount",
            ));
        }
        let alias_id = uuid::Uuid::new_v4().to_string();
        entity.aliases.push(EntityAlias {
            id: alias_id.clone(),
            name,
            mount_accessor: mount.accessor,
            mount_type: mount.mount_type,
            mount_path: mount.path,
            metadata,
            creation_time: now,
        });
        let canonical_id = entity.id.clone();
        self.save(entity).await?;
        Ok(Response::data(
            json!({ "canonical_id": canonical_id, "id": alias_id }),
        ))
    }

    async fn alias_op(&self, op: Operation, alias_id: &str) -> ApiResult<Response> {
        let owner = self
            .read()
            .by_id
            .values()
            .find(|e| e.aliases.iter().any(|a| a.id == alias_id))
            .cloned();
        match op {
            Operation::Read => {
                let Some(entity) = owner else {
                    return Err(ApiError::not_found());
                };
                let Some(alias) = entity.aliases.iter().find(|a| a.id == alias_id) else {
                    return Err(ApiError::not_found());
                };
                Ok(Response::data(json!({
                    "canonical_id": entity.id,
                    "creation_time": format_time(&alias.creation_time),
                    "id": alias.id,
                    "mount_accessor": alias.mount_accessor,
                    "mount_path": alias.mount_path,
                    "mount_type": alias.mount_type,
                    "name": alias.name,
                    "metadata": if alias.metadata.is_empty() { Value::Null } else { json!(alias.metadata) },
                    "namespace_id": "root",
                })))
            }
            Operation::Delete => {
                if let Some(entity) = owner {
                    let _guard = self.write_lock.lock().await;
                    let mut entity = (*entity).clone();
                    entity.aliases.retain(|a| a.id != alias_id);
                    self.save(entity).await?;
                }
                Ok(Response::no_content())
            }
            _ => Err(ApiError::unsupported_operation()),
        }
    }
}
