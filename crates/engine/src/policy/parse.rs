//! Policy text → rules. HCL goes through [`super::hcl`] (Vault's HCL 1); JSON through serde. Both become the
//! same generic shape (path → map of settings) and are validated by one function, so
//! the two syntaxes cannot drift apart.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::hcl;
use super::{Capabilities, Capability, Parameters, PathRule, PolicyError};

/// A path pattern and its settings as written, before validation.
type RawRule = (String, Map<String, Value>);

/// The longest policy text accepted.
const MAX_POLICY_BYTES: usize = 1024 * 1024;

pub(super) fn parse_rules(text: &str) -> Result<Vec<PathRule>, PolicyError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError(format!(
            "policy is {} bytes; the limit is {MAX_POLICY_BYTES}",
            text.len()
        )));
    }
    let trimmed = text.trim_start();
    let paths = if trimmed.starts_with('{') {
        json_paths(text)?
    } else {
        hcl_paths(text)?
    };
    paths
        .into_iter()
        .map(|(path, settings)| rule(&path, &settings))
        .collect()
}

fn multi(message: String) -> PolicyError {
    PolicyError(format!("1 error occurred:\n\t* {message}\n\n"))
}

/// JSON form: `{"path": {"<pattern>": {...}, ...}}` (or a list of such objects).
fn json_paths(text: &str) -> Result<Vec<RawRule>, PolicyError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| PolicyError(format!("invalid JSON policy: {e}")))?;
    let Value::Object(top) = value else {
        return Err(PolicyError("a JSON policy must be an object".into()));
    };
    let mut out = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "name" => {}
            "path" => {
                let groups = match value {
                    Value::Object(map) => vec![map],
                    Value::Array(items) => items
                        .into_iter()
                        .map(|i| match i {
                            Value::Object(m) => Ok(m),
                            _ => Err(PolicyError(
                                "\"path\" must be an object of path patterns".into(),
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(PolicyError(
                            "\"path\" must be an object of path patterns".into(),
                        ));
                    }
                };
                for group in groups {
                    for (path, settings) in group {
                        let settings = match settings {
                            Value::Object(m) => m,
                            // HCL's JSON form may wrap the block in a one-element list.
                            Value::Array(mut items) if items.len() == 1 => match items.remove(0) {
                                Value::Object(m) => m,
                                _ => {
                                    return Err(PolicyError(format!(
                                        "path {path:?}: settings must be an object"
                                    )));
                                }
                            },
                            _ => {
                                return Err(PolicyError(format!(
                                    "path {path:?}: settings must be an object"
                                )));
                            }
                        };
                        out.push((path, settings));
                    }
                }
            }
            other => return Err(multi(format!("invalid key {other:?}"))),
        }
    }
    Ok(out)
}

fn hcl_paths(text: &str) -> Result<Vec<RawRule>, PolicyError> {
    let entries = hcl::parse(text).map_err(|e| PolicyError(e.to_string()))?;
    let mut out = Vec::new();
    for entry in entries {
        match (entry.key.as_str(), entry.labels.as_slice(), entry.value) {
            ("name", [], _) => {}
            ("path", [path], Value::Object(settings)) => out.push((path.clone(), settings)),
            ("path", [], Value::Object(paths)) => {
                for (path, settings) in paths {
                    match settings {
                        Value::Object(settings) => out.push((path, settings)),
                        _ => {
                            return Err(PolicyError(format!(
                                "path {path:?}: settings must be a block {{ ... }}"
                            )));
                        }
                    }
                }
            }
            ("path", _, _) => {
                return Err(PolicyError(format!(
                    "At {}: each path needs exactly one quoted pattern and a block: path \"secret/*\" {{ ... }}",
                    entry.line
                )));
            }
            (other, _, _) => {
                return Err(multi(format!(
                    "invalid key {other:?} on line {}",
                    entry.line
                )));
            }
        }
    }
    Ok(out)
}

const VALID_KEYS: [&str; 10] = [
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
];

fn rule(raw_path: &str, settings: &Map<String, Value>) -> Result<PathRule, PolicyError> {
    let path = raw_path.trim_start_matches('/').to_string();
    let err = |message: String| PolicyError(format!("path {raw_path:?}: {message}"));
    if path.contains("+*") {
        return Err(err("invalid use of wildcards ('+*' is forbidden)".into()));
    }
    for key in settings.keys() {
        if !VALID_KEYS.contains(&key.as_str()) {
            return Err(PolicyError(format!(
                "path {raw_path:?}: {}",
                multi(format!("invalid key {key:?}")).0
            )));
        }
    }
    for unsupported in ["mfa_methods", "control_group"] {
        if settings.contains_key(unsupported) {
            return Err(err(format!(
                "{unsupported} is a Vault Enterprise feature that secretvault does not support"
            )));
        }
    }

    let mut capabilities = Capabilities::NONE;
    if let Some(value) = settings.get("policy") {
        let legacy = value
            .as_str()
            .ok_or_else(|| err("\"policy\" must be a string".into()))?;
        let granted: &[Capability] = match legacy.to_lowercase().as_str() {
            "deny" => &[Capability::Deny],
            "read" => &[Capability::Read, Capability::List],
            "write" => &[
                Capability::Read,
                Capability::List,
                Capability::Create,
                Capability::Update,
                Capability::Delete,
            ],
            "sudo" => &[
                Capability::Read,
                Capability::List,
                Capability::Create,
                Capability::Update,
                Capability::Delete,
                Capability::Sudo,
            ],
            other => {
                return Err(err(format!(
                    "invalid policy {other:?} (use deny, read, write or sudo, or capabilities = [...])"
                )));
            }
        };
        capabilities = capabilities.merge(Capabilities::of(granted));
    }
    if let Some(value) = settings.get("capabilities") {
        let items = value
            .as_array()
            .ok_or_else(|| err("\"capabilities\" must be a list of strings".into()))?;
        for item in items {
            let name = item
                .as_str()
                .ok_or_else(|| err("\"capabilities\" must be a list of strings".into()))?;
            match Capability::from_name(name.trim().to_lowercase().as_str()) {
                Some(c) => capabilities.insert(c),
                None if name == "scan" => {
                    return Err(err(
                        "capability \"scan\" is OpenBao-specific and not supported".into(),
                    ));
                }
                None => {
                    return Err(PolicyError(format!(
                        "path {raw_path:?}: path {raw_path:?}: invalid capability {name:?}"
                    )));
                }
            }
        }
    }
    if capabilities.is_deny() {
        capabilities = Capabilities::of(&[Capability::Deny]);
    }

    let parameters = Parameters {
        allowed: parameter_map(raw_path, settings, "allowed_parameters")?,
        denied: parameter_map(raw_path, settings, "denied_parameters")?,
        required: match settings.get("required_parameters") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(|s| s.to_lowercase()).ok_or_else(|| {
                        err("\"required_parameters\" must be a list of strings".into())
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(err(
                    "\"required_parameters\" must be a list of strings".into()
                ));
            }
        },
        min_wrapping_ttl: wrapping_ttl(raw_path, settings, "min_wrapping_ttl")?,
        max_wrapping_ttl: wrapping_ttl(raw_path, settings, "max_wrapping_ttl")?,
    };
    if let (Some(min), Some(max)) = (parameters.min_wrapping_ttl, parameters.max_wrapping_ttl)
        && max < min
    {
        return Err(err(
            "max_wrapping_ttl cannot be less than min_wrapping_ttl".into()
        ));
    }
    Ok(PathRule {
        path,
        capabilities,
        parameters,
    })
}

fn parameter_map(
    path: &str,
    settings: &Map<String, Value>,
    key: &str,
) -> Result<BTreeMap<String, Vec<Value>>, PolicyError> {
    let err = || {
        PolicyError(format!(
            "path {path:?}: {key:?} must be a map of parameter names to lists of values"
        ))
    };
    match settings.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, values)| {
                let values = match values {
                    Value::Array(items) => items.clone(),
                    Value::Null => Vec::new(),
                    _ => return Err(err()),
                };
                Ok((name.to_lowercase(), values))
            })
            .collect(),
        // HCL's JSON form may wrap the map in a one-element list.
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_object() => {
            let mut wrapped = Map::new();
            wrapped.insert(key.to_string(), items[0].clone());
            parameter_map(path, &wrapped, key)
        }
        Some(_) => Err(err()),
    }
}

fn wrapping_ttl(
    path: &str,
    settings: &Map<String, Value>,
    key: &str,
) -> Result<Option<std::time::Duration>, PolicyError> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => crate::util::duration::parse_duration_value(v)
            .map(Some)
            .map_err(|e| PolicyError(format!("path {path:?}: {key}: {e}"))),
    }
}
