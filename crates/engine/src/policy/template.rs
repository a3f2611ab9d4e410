//! Identity templating in policy paths: `{{identity.entity.metadata.agent_id}}` …
//!
//! A rule whose templates cannot all be resolved for the token's identity is dropped, as
//! in Vault. So is one whose resolved values contain `/`, `*` or `+`: a metadata value
//! must never widen a path into other tenants' secrets (OpenBao's safe default for
//! `allow_slashes_in_identity_templates` / `allow_wildcards_in_identity_templates`).

use crate::identity::Identity;

pub(super) fn is_templated(path: &str) -> bool {
    path.contains("{{")
}

/// The path with every template replaced, or `None` when the rule must be dropped.
pub(super) fn render(path: &str, identity: &Identity) -> Option<String> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let value = resolve(after[..end].trim(), identity)?;
        if value.is_empty() || value.contains(['/', '*', '+']) || value.contains("{{") {
            return None;
        }
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

fn resolve(name: &str, identity: &Identity) -> Option<String> {
    if identity.is_empty() {
        return None;
    }
    if let Some(field) = name.strip_prefix("identity.entity.") {
        return match field {
            "id" => Some(identity.entity_id.clone()),
            "name" => Some(identity.entity_name.clone()),
            _ => {
                if let Some(key) = field.strip_prefix("metadata.") {
                    return identity.entity_metadata.get(key).cloned();
                }
                let rest = field.strip_prefix("aliases.")?;
                let (accessor, attribute) = rest.split_once('.')?;
                let alias = identity
                    .aliases
                    .iter()
                    .find(|a| a.mount_accessor == accessor)?;
                match attribute {
                    "id" => Some(alias.id.clone()),
                    "name" => Some(alias.name.clone()),
                    _ => {
                        let key = attribute
                            .strip_prefix("metadata.")
                            .or_else(|| attribute.strip_prefix("custom_metadata."))?;
                        alias.metadata.get(key).cloned()
                    }
                }
            }
        };
    }
    if let Some(rest) = name.strip_prefix("identity.groups.ids.") {
        let (id, attribute) = rest.split_once('.')?;
        let group = identity.groups.iter().find(|g| g.id == id)?;
        return match attribute {
            "name" => Some(group.name.clone()),
            _ => group
                .metadata
                .get(attribute.strip_prefix("metadata.")?)
                .cloned(),
        };
    }
    if let Some(rest) = name.strip_prefix("identity.groups.names.") {
        let (group_name, attribute) = rest.split_once('.')?;
        let group = identity.groups.iter().find(|g| g.name == group_name)?;
        return match attribute {
            "id" => Some(group.id.clone()),
            _ => group
                .metadata
                .get(attribute.strip_prefix("metadata.")?)
                .cloned(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Alias, Group};

    fn alice() -> Identity {
        Identity {
            entity_id: "e-1".into(),
            entity_name: "alice".into(),
            entity_metadata: [
                ("agent_id".to_string(), "a1".to_string()),
                ("bad".to_string(), "x/*".to_string()),
            ]
            .into_iter()
            .collect(),
            aliases: vec![Alias {
                id: "al-1".into(),
                name: "sa-alice".into(),
                mount_accessor: "auth_k8s_1".into(),
                metadata: [(
                    "service_account_namespace".to_string(),
                    "team-a".to_string(),
                )]
                .into_iter()
                .collect(),
            }],
            groups: vec![Group {
                id: "g-1".into(),
                name: "ops".into(),
                metadata: Default::default(),
            }],
        }
    }

    #[test]
    fn renders_vault_template_names() {
        let id = alice();
        assert_eq!(
            render("secret/data/{{identity.entity.id}}/x", &id).unwrap(),
            "secret/data/e-1/x"
        );
        assert_eq!(
            render("s/{{ identity.entity.name }}", &id).unwrap(),
            "s/alice"
        );
        assert_eq!(
            render("s/{{identity.entity.metadata.agent_id}}", &id).unwrap(),
            "s/a1"
        );
        assert_eq!(
            render("s/{{identity.entity.aliases.auth_k8s_1.name}}", &id).unwrap(),
            "s/sa-alice"
        );
        assert_eq!(
            render(
                "s/{{identity.entity.aliases.auth_k8s_1.metadata.service_account_namespace}}/*",
                &id
            )
            .unwrap(),
            "s/team-a/*"
        );
        assert_eq!(
            render("s/{{identity.groups.names.ops.id}}", &id).unwrap(),
            "s/g-1"
        );
        assert_eq!(
            render("s/{{identity.groups.ids.g-1.name}}", &id).unwrap(),
            "s/ops"
        );
        assert_eq!(render("plain/path", &id).unwrap(), "plain/path");
    }

    #[test]
    fn unresolvable_or_unsafe_templates_drop_the_rule() {
        let id = alice();
        assert!(render("s/{{identity.entity.metadata.missing}}", &id).is_none());
        assert!(
            render("s/{{identity.entity.metadata.bad}}", &id).is_none(),
            "values may not add path segments or globs"
        );
        assert!(render("s/{{identity.entity.id", &id).is_none());
        assert!(render("s/{{identity.unknown}}", &id).is_none());
        assert!(
            render("s/{{identity.entity.id}}", &Identity::default()).is_none(),
            "no entity, no match"
        );
    }
}
