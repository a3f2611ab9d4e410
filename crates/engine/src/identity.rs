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
