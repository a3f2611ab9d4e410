//! Vault ACL policies: parsing (HCL and JSON) and evaluation.
//!
//! A [`Policy`] is parsed once when written; an [`Acl`] merges the policies of one token
//! (resolving identity templates for its entity) and answers, per request, whether an
//! operation on a path is allowed — with Vault's matching rules: exact paths first, then
//! the most specific of the `*`-prefix and `+`-segment patterns; `deny` wins.

use std::collections::BTreeMap;

use serde_json::Value;

mod acl;
mod capability;
mod hcl;
mod parse;
mod template;

pub use acl::{Acl, Authorization};
pub use capability::{Capabilities, Capability};

/// OpenBao's built-in `default` policy, verbatim.
pub const DEFAULT_POLICY: &str = include_str!("default.hcl");

/// One `path "..." { ... }` rule as written.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The pattern, possibly with `{{identity...}}` templates, `+` segments and a `*` suffix.
    pub path: String,
    pub capabilities: Capabilities,
    pub parameters: Parameters,
}

/// `allowed_parameters`, `denied_parameters`, `required_parameters`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters {
    /// Parameter (lower-cased) → allowed values; an empty list allows any value.
    pub allowed: BTreeMap<String, Vec<Value>>,
    /// Parameter (lower-cased) → denied values; an empty list denies any value.
    pub denied: BTreeMap<String, Vec<Value>>,
    pub required: Vec<String>,
    pub min_wrapping_ttl: Option<std::time::Duration>,
    pub max_wrapping_ttl: Option<std::time::Duration>,
}

impl Parameters {
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty() && self.denied.is_empty() && self.required.is_empty()
    }
}

/// A parsed policy.
#[derive(Debug, Clone)]
pub struct Policy {
    name: String,
    raw: String,
    rules: Vec<PathRule>,
}

/// Why a policy could not be parsed; the text is shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl Policy {
    /// Parses Vault policy text: HCL, or JSON when the text is a JSON object.
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        let rules = parse::parse_rules(text)?;
        Ok(Policy {
            name: name.to_string(),
            raw: text.to_string(),
            rules,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text as written, as `sys/policies/acl/<name>` returns it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests;
