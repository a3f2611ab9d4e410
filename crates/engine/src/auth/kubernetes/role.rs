//! `auth/kubernetes/role/<name>`: which service accounts may log in, and what their
//! tokens get.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::verify::{LoginError, ServiceAccount};
use crate::logical::{ApiError, ApiResult, Fields};

/// The audience a role requires when it is created without one (the agent asks the
/// kubelet for tokens with this audience).
pub const DEFAULT_AUDIENCE: &str = "secretvault";

/// Token TTL of a role created without one.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Token max TTL of a role created without one.
pub const DEFAULT_TOKEN_MAX_TTL: Duration = Duration::from_secs(4 * 3600);

/// Metadata keys the login sets itself; a role's `alias_metadata` may not use them.
pub const RESERVED_METADATA: [&str; 7] = [
    "role",
    "service_account_name",
    "service_account_namespace",
    "service_account_secret_name",
    "service_account_uid",
    "pod_name",
    "pod_uid",
];

/// Most `alias_metadata` entries a role may carry.
pub const MAX_ALIAS_METADATA: usize = 32;

/// Most bytes of `alias_metadata` keys and values together (a token carries them three
/// times: token, entity and alias metadata).
pub const MAX_ALIAS_METADATA_BYTES: usize = 2048;

/// What names the entity alias of a login.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AliasNameSource {
    /// The service account's UID: a re-created account with the same name is someone new.
    #[default]
    ServiceaccountUid,
    /// `<namespace>/<name>`.
    ServiceaccountName,
}

impl AliasNameSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AliasNameSource::ServiceaccountUid => "serviceaccount_uid",
            AliasNameSource::ServiceaccountName => "serviceaccount_name",
        }
    }
}

/// Which of Vault's deprecated field names the role was last written with; reads show
/// those names too, as Vault does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyFields {
    #[serde(default)]
    pub policies: bool,
    #[serde(default)]
    pub ttl: bool,
    #[serde(default)]
    pub max_ttl: bool,
    #[serde(default)]
    pub period: bool,
    #[serde(default)]
    pub num_uses: bool,
}

/// A role, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesRole {
    pub bound_service_account_names: Vec<String>,
    pub bound_service_account_namespaces: Vec<String>,
    /// Required member of the token's `aud`; empty means no audience check.
    #[serde(default)]
    pub audience: String,
    #[serde(default)]
    pub alias_name_source: AliasNameSource,
    /// Fixed metadata added to every login's alias, entity and token metadata.
    #[serde(default)]
    pub alias_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub token_policies: Vec<String>,
    /// Seconds.
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    #[serde(default)]
    pub token_explicit_max_ttl: u64,
    #[serde(default)]
    pub token_period: u64,
    #[serde(default)]
    pub token_num_uses: u64,
    #[serde(default)]
    pub token_no_default_policy: bool,
    pub token_type: String,
    #[serde(default)]
    pub legacy: LegacyFields,
}

impl Default for KubernetesRole {
    fn default() -> Self {
        KubernetesRole {
            bound_service_account_names: Vec::new(),
            bound_service_account_namespaces: Vec::new(),
            audience: DEFAULT_AUDIENCE.to_string(),
            alias_name_source: AliasNameSource::default(),
            alias_metadata: BTreeMap::new(),
            token_policies: Vec::new(),
            token_ttl: DEFAULT_TOKEN_TTL.as_secs(),
            token_max_ttl: DEFAULT_TOKEN_MAX_TTL.as_secs(),
            token_explicit_max_ttl: 0,
            token_period: 0,
            token_num_uses: 0,
            token_no_default_policy: false,
            token_type: "default".into(),
            legacy: LegacyFields::default(),
        }
    }
}

/// Whether a role name is one Vault's path pattern accepts (`\w(([\w-.]+)?\w)?`).
pub fn valid_role_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = name.chars();
    let (Some(first), last) = (chars.next(), name.chars().last()) else {
        return false;
    };
    word(first) && last.is_some_and(word) && name.chars().all(|c| word(c) || c == '-' || c == '.')
}

/// Glob matching as Vault's `strutil.StrListContainsGlob` (go-glob): every `*` matches
/// any run of characters, wherever it is.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        // No `*`: a plain comparison.
        return pattern == value;
    };
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn list_matches(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, value))
}

/// Vault's `policyutil.ParsePolicies`, for the deprecated `policies` field: trimmed,
/// lower-cased, de-duplicated, sorted.
fn parse_policies(policies: Vec<String>) -> Vec<String> {
    crate::token::sanitize_policies(policies, false)
}

fn duration_secs(fields: &Fields<'_>, name: &str) -> ApiResult<Option<u64>> {
    Ok(fields.duration(name)?.map(|d| d.as_secs()))
}

/// Vault's `tokenutil.UpgradeValue`: the `token_*` name wins; a deprecated name given
/// alone sets both. Returns the new value and whether reads should show the old name.
fn upgraded<T>(new: Option<T>, old: Option<T>) -> Option<(T, bool)> {
    match (new, old) {
        (Some(n), old) => Some((n, old.is_some())),
        (None, Some(o)) => Some((o, true)),
        (None, None) => None,
    }
}

impl KubernetesRole {
    /// The role after a create or update request. `existing` is the stored role, if any:
    /// fields the request leaves out keep their values (new roles get the defaults).
    pub fn updated(existing: Option<KubernetesRole>, fields: &Fields<'_>) -> ApiResult<Self> {
        let mut role = existing.unwrap_or_default();

        if let Some(names) = fields.string_list("bound_service_account_names")? {
            role.bound_service_account_names = names;
        }
        if let Some(namespaces) = fields.string_list("bound_service_account_namespaces")? {
            role.bound_service_account_namespaces = namespaces;
        }
        if let Some(selector) = fields.string("bound_service_account_namespace_selector")?
            && !selector.trim().is_empty()
        {
            return Err(ApiError::bad_request(
                "bound_service_account_namespace_selector is not supported: list the namespaces (globs allowed) in bound_service_account_namespaces",
            ));
        }
        if let Some(audience) = fields.string("audience")? {
            role.audience = audience.trim().to_string();
        }
        if let Some(source) = fields.string("alias_name_source")? {
            role.alias_name_source = match source.as_str() {
                "serviceaccount_uid" => AliasNameSource::ServiceaccountUid,
                "serviceaccount_name" => AliasNameSource::ServiceaccountName,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid alias_name_source, must be one of: serviceaccount_uid, serviceaccount_name",
                    ));
                }
            };
        }
        if let Some(metadata) = fields.string_map("alias_metadata")? {
            if let Some(key) = metadata
                .keys()
                .find(|k| RESERVED_METADATA.contains(&k.as_str()))
            {
                return Err(ApiError::bad_request(format!(
                    "alias_metadata key {key:?} is set by the login itself; choose another key"
                )));
            }
            // Every login's token carries these; keep tokens well under their size limit.
            let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            if metadata.len() > MAX_ALIAS_METADATA
                || size > MAX_ALIAS_METADATA_BYTES
                || metadata.keys().any(|k| k.is_empty())
            {
                return Err(ApiError::bad_request(format!(
                    "alias_metadata: at most {MAX_ALIAS_METADATA} entries with non-empty keys, and {MAX_ALIAS_METADATA_BYTES} bytes of keys and values in all"
                )));
            }
            role.alias_metadata = metadata.into_iter().collect();
        }

        // Token settings, with Vault's deprecated names still accepted.
        let new_policies = fields.string_list("token_policies")?;
        let old_policies = fields.string_list("policies")?.map(parse_policies);
        if let Some((policies, legacy)) = upgraded(new_policies, old_policies) {
            role.token_policies = policies;
            role.legacy.policies = legacy;
        }
        let ttl_given = fields.get("token_ttl").is_some();
        let new_max_given = fields.get("token_max_ttl").is_some();
        let max_given = new_max_given || fields.get("max_ttl").is_some();
        if let Some((ttl, legacy)) = upgraded(
            duration_secs(fields, "token_ttl")?,
            duration_secs(fields, "ttl")?,
        ) {
            role.token_ttl = ttl;
            role.legacy.ttl = legacy;
        }
        if let Some((max, legacy)) = upgraded(
            duration_secs(fields, "token_max_ttl")?,
            duration_secs(fields, "max_ttl")?,
        ) {
            role.token_max_ttl = max;
            role.legacy.max_ttl = legacy;
        }
        if let Some((period, legacy)) = upgraded(
            duration_secs(fields, "token_period")?,
            duration_secs(fields, "period")?,
        ) {
            role.token_period = period;
            role.legacy.period = legacy;
        }
        if let Some(explicit) = duration_secs(fields, "token_explicit_max_ttl")? {
            role.token_explicit_max_ttl = explicit;
        }
        let num_uses = |name: &str| -> ApiResult<Option<u64>> {
            match fields.int(name)? {
                Some(n) if n < 0 => Err(ApiError::bad_request(format!(
                    "'{name}' cannot be negative"
                ))),
                other => Ok(other.map(|n| n as u64)),
            }
        };
        if let Some((uses, legacy)) = upgraded(num_uses("token_num_uses")?, num_uses("num_uses")?) {
            role.token_num_uses = uses;
            role.legacy.num_uses = legacy;
        }
        if let Some(no_default) = fields.bool("token_no_default_policy")? {
            role.token_no_default_policy = no_default;
        }
        if let Some(token_type) = fields.string("token_type")? {
            role.token_type = match token_type.as_str() {
                "" | "default" => "default".to_string(),
                "service" | "default-service" => token_type,
                "batch" | "default-batch" => {
                    return Err(ApiError::bad_request(format!(
                        "token_type {token_type:?} is not supported: secretvault issues service tokens only (use \"default\" or \"service\")"
                    )));
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid 'token_type' value {token_type:?}"
                    )));
                }
            };
        }
        for cidrs in ["token_bound_cidrs", "bound_cidrs"] {
            if fields.string_list(cidrs)?.is_some_and(|c| !c.is_empty()) {
                return Err(ApiError::bad_request(format!(
                    "{cidrs} is not supported: secretvault tokens are not bound to client addresses; leave it empty"
                )));
            }
        }
        if fields.bool("token_strictly_bind_ip")? == Some(true) {
            return Err(ApiError::bad_request(
                "token_strictly_bind_ip is not supported: secretvault tokens are not bound to client addresses",
            ));
        }

        role.validate(ttl_given || new_max_given, max_given)?;
        Ok(role)
    }

    fn validate(&self, token_ttls_given: bool, max_given: bool) -> ApiResult<()> {
        if self.bound_service_account_names.is_empty() {
            return Err(ApiError::bad_request(
                "\"bound_service_account_names\" can not be empty",
            ));
        }
        if self.bound_service_account_namespaces.is_empty() {
            return Err(ApiError::bad_request(
                "\"bound_service_account_namespaces\" can not be empty if \"bound_service_account_namespace_selector\" is not set",
            ));
        }
        for list in [
            &self.bound_service_account_names,
            &self.bound_service_account_namespaces,
        ] {
            if list.len() > 1 && list.iter().any(|v| v == "*") {
                return Err(ApiError::bad_request("can not mix \"*\" with values"));
            }
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            let hint = if max_given {
                String::new()
            } else {
                format!(
                    " (token_max_ttl is {}; set it too)",
                    crate::util::duration::format_go_duration(Duration::from_secs(
                        self.token_max_ttl
                    ))
                )
            };
            return Err(ApiError::bad_request(if token_ttls_given {
                format!("'token_ttl' cannot be greater than 'token_max_ttl'{hint}")
            } else {
                format!("token ttl should not be greater than token max ttl{hint}")
            }));
        }
        Ok(())
    }

    /// The `data` of a role read, shaped as Vault's.
    pub fn json(&self) -> Value {
        let mut data = Map::new();
        let mut put = |k: &str, v: Value| {
            data.insert(k.to_string(), v);
        };
        put("alias_name_source", json!(self.alias_name_source.as_str()));
        if !self.audience.is_empty() {
            put("audience", json!(self.audience));
        }
        put(
            "bound_service_account_names",
            json!(self.bound_service_account_names),
        );
        put("bound_service_account_namespace_selector", json!(""));
        put(
            "bound_service_account_namespaces",
            json!(self.bound_service_account_namespaces),
        );
        put("token_bound_cidrs", json!([]));
        put("token_explicit_max_ttl", json!(self.token_explicit_max_ttl));
        put("token_max_ttl", json!(self.token_max_ttl));
        put(
            "token_no_default_policy",
            json!(self.token_no_default_policy),
        );
        put("token_num_uses", json!(self.token_num_uses));
        put("token_period", json!(self.token_period));
        put("token_policies", json!(self.token_policies));
        put("token_strictly_bind_ip", json!(false));
        put("token_ttl", json!(self.token_ttl));
        put("token_type", json!(self.token_type));
        if self.legacy.policies && !self.token_policies.is_empty() {
            put("policies", json!(self.token_policies));
        }
        if self.legacy.ttl && self.token_ttl > 0 {
            put("ttl", json!(self.token_ttl));
        }
        if self.legacy.max_ttl && self.token_max_ttl > 0 {
            put("max_ttl", json!(self.token_max_ttl));
        }
        if self.legacy.period && self.token_period > 0 {
            put("period", json!(self.token_period));
        }
        if self.legacy.num_uses && self.token_num_uses > 0 {
            put("num_uses", json!(self.token_num_uses));
        }
        if !self.alias_metadata.is_empty() {
            put("alias_metadata", json!(self.alias_metadata));
        }
        Value::Object(data)
    }

    /// Whether the role lets this service account in (names first, then namespaces, in
    /// Vault's order and words).
    pub fn authorize(&self, sa: &ServiceAccount) -> Result<(), LoginError> {
        if !list_matches(&self.bound_service_account_names, &sa.name) {
            return Err(LoginError::ServiceAccountName);
        }
        if !list_matches(&self.bound_service_account_namespaces, &sa.namespace) {
            return Err(LoginError::Namespace);
        }
        Ok(())
    }

    /// The name of the login's entity alias.
    pub fn alias_name(&self, sa: &ServiceAccount) -> Result<String, LoginError> {
        match self.alias_name_source {
            AliasNameSource::ServiceaccountUid if sa.uid.is_empty() => {
                Err(LoginError::NotServiceAccount(
                    "no service account uid claim to name the entity alias; set the role's alias_name_source to serviceaccount_name",
                ))
            }
            AliasNameSource::ServiceaccountUid => Ok(sa.uid.clone()),
            AliasNameSource::ServiceaccountName => Ok(format!("{}/{}", sa.namespace, sa.name)),
        }
    }
}
