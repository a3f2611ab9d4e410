//! ACL evaluation with Vault's semantics (`vault/acl.go`):
//! 1. an exact rule for the path wins outright (for LIST, also the path without its `/`);
//! 2. otherwise the candidates are the longest matching `*`-prefix rule and every
//!    matching `+`-segment rule, and the most specific wins: the one whose first
//!    wildcard comes latest, then non-prefix over prefix, then fewer `+`, then longer,
//!    then lexicographically smaller;
//! 3. rules with the same pattern in several policies are merged: capabilities unioned,
//!    except that `deny` leaves only `deny`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::template;
use super::{Capabilities, Capability, Parameters, Policy};
use crate::identity::Identity;
use crate::logical::Operation;
use crate::util::glob::glob_match;

#[derive(Debug, Clone, Default)]
struct Perms {
    capabilities: Capabilities,
    parameters: Parameters,
}

impl Perms {
    fn merge(&mut self, other: &Perms) {
        self.capabilities = self.capabilities.merge(other.capabilities);
        merge_values(&mut self.parameters.allowed, &other.parameters.allowed);
        merge_values(&mut self.parameters.denied, &other.parameters.denied);
        for r in &other.parameters.required {
            if !self.parameters.required.contains(r) {
                self.parameters.required.push(r.clone());
            }
        }
    }
}

/// Vault's merge of parameter lists: an empty list (any value) absorbs the other.
fn merge_values(into: &mut BTreeMap<String, Vec<Value>>, from: &BTreeMap<String, Vec<Value>>) {
    for (key, values) in from {
        match into.get_mut(key) {
            Some(existing) if existing.is_empty() || values.is_empty() => existing.clear(),
            Some(existing) => {
                for v in values {
                    if !existing.contains(v) {
                        existing.push(v.clone());
                    }
                }
            }
            None => {
                into.insert(key.clone(), values.clone());
            }
        }
    }
}

#[derive(Debug)]
struct SegmentRule {
    /// The pattern without a trailing `*`.
    wc_path: String,
    parts: Vec<String>,
    is_prefix: bool,
    first_wildcard: usize,
    plus_count: usize,
    perms: Perms,
}

/// The merged rules of one token's policies.
#[derive(Debug, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Perms>,
    /// `*` rules keyed by prefix, longest first.
    prefix: Vec<(String, Perms)>,
    segment: Vec<SegmentRule>,
}

/// The outcome of [`Acl::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization {
    pub allowed: bool,
    /// The matching rule grants `sudo` (or the token is root).
    pub sudo: bool,
}

struct Candidate<'a> {
    first_wildcard: usize,
    is_prefix: bool,
    plus_count: usize,
    wc_path: &'a str,
    perms: &'a Perms,
}

/// Vault's `less`: true when `a` has lower priority than `b`.
fn lower_priority(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    if a.first_wildcard != b.first_wildcard {
        return a.first_wildcard < b.first_wildcard;
    }
    if a.is_prefix != b.is_prefix {
        return a.is_prefix;
    }
    if a.plus_count != b.plus_count {
        return a.plus_count > b.plus_count;
    }
    if a.wc_path.len() != b.wc_path.len() {
        return a.wc_path.len() < b.wc_path.len();
    }
    a.wc_path > b.wc_path
}

impl Acl {
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Default::default()
        }
    }

    /// Merges `policies` for a token whose identity is `identity`. A policy named `root`
    /// makes a root ACL.
    pub fn new(policies: &[Arc<Policy>], identity: &Identity) -> Acl {
        if policies.iter().any(|p| p.name() == "root") {
            return Acl::root();
        }
        let mut exact: HashMap<String, Perms> = HashMap::new();
        let mut prefix: HashMap<String, Perms> = HashMap::new();
        let mut segment: HashMap<String, Perms> = HashMap::new();
        for policy in policies {
            for rule in policy.rules() {
                let path = if template::is_templated(&rule.path) {
                    match template::render(&rule.path, identity) {
                        Some(p) => p,
                        None => continue,
                    }
                } else {
                    rule.path.clone()
                };
                let perms = Perms {
                    capabilities: rule.capabilities,
                    parameters: rule.parameters.clone(),
                };
                let (bucket, key) = if path.contains('+') {
                    (&mut segment, path)
                } else if let Some(p) = path.strip_suffix('*') {
                    (&mut prefix, p.to_string())
                } else {
                    (&mut exact, path)
                };
                match bucket.get_mut(&key) {
                    Some(existing) => existing.merge(&perms),
                    None => {
                        bucket.insert(key, perms);
                    }
                }
            }
        }
        let mut prefix: Vec<(String, Perms)> = prefix.into_iter().collect();
        prefix.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let segment = segment
            .into_iter()
            .map(|(full, perms)| {
                let (wc_path, is_prefix) = match full.strip_suffix('*') {
                    Some(p) => (p.to_string(), true),
                    None => (full.clone(), false),
                };
                SegmentRule {
                    parts: wc_path.split('/').map(String::from).collect(),
                    first_wildcard: full.find('+').unwrap_or(full.len()),
                    plus_count: wc_path.matches('+').count(),
                    wc_path,
                    is_prefix,
                    perms,
                }
            })
            .collect();
        Acl {
            root: false,
            exact,
            prefix,
            segment,
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    fn lookup(&self, path: &str, list: bool) -> Option<&Perms> {
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        if list
            && let Some(p) = path
                .strip_suffix('/')
                .and_then(|trimmed| self.exact.get(trimmed))
        {
            return Some(p);
        }
        let mut best: Option<Candidate<'_>> = self
            .prefix
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
            .map(|(p, perms)| Candidate {
                first_wildcard: p.len(),
                is_prefix: true,
                plus_count: 0,
                wc_path: p,
                perms,
            });
        if self.segment.is_empty() {
            return best.map(|c| c.perms);
        }
        let path_parts: Vec<&str> = path.split('/').collect();
        for rule in &self.segment {
            if path_parts.len() < rule.parts.len()
                || (!rule.is_prefix && path_parts.len() > rule.parts.len())
            {
                continue;
            }
            let last = rule.parts.len() - 1;
            let matches = rule.parts.iter().enumerate().all(|(i, part)| {
                part == "+"
                    || part == path_parts[i]
                    || (rule.is_prefix && i == last && path_parts[i].starts_with(part.as_str()))
            });
            if !matches {
                continue;
            }
            let candidate = Candidate {
                first_wildcard: rule.first_wildcard,
                is_prefix: rule.is_prefix,
                plus_count: rule.plus_count,
                wc_path: &rule.wc_path,
                perms: &rule.perms,
            };
            best = match best {
                Some(current) if !lower_priority(&current, &candidate) => Some(current),
                _ => Some(candidate),
            };
        }
        best.map(|c| c.perms)
    }

    /// What `sys/capabilities` reports for `path`.
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ROOT;
        }
        self.lookup(path, false)
            .map(|p| p.capabilities)
            .unwrap_or(Capabilities::NONE)
    }

    /// Whether `op` on `path` is allowed, with the request's body fields checked against
    /// the rule's allowed, denied and required parameters.
    pub fn authorize(
        &self,
        path: &str,
        op: Operation,
        data: Option<&Map<String, Value>>,
    ) -> Authorization {
        if self.root {
            return Authorization {
                allowed: true,
                sudo: true,
            };
        }
        let denied = Authorization {
            allowed: false,
            sudo: false,
        };
        let Some(perms) = self.lookup(path, op == Operation::List) else {
            return denied;
        };
        let caps = perms.capabilities;
        let sudo = caps.contains(Capability::Sudo);
        let needed = match op {
            Operation::Read => Capability::Read,
            Operation::List => Capability::List,
            Operation::Update => Capability::Update,
            Operation::Create => Capability::Create,
            Operation::Patch => Capability::Patch,
            Operation::Delete => Capability::Delete,
        };
        if !caps.contains(needed) {
            return Authorization {
                allowed: false,
                sudo,
            };
        }
        let checks_parameters = matches!(
            op,
            Operation::Read | Operation::Update | Operation::Create | Operation::Patch
        );
        if checks_parameters && !parameters_allowed(&perms.parameters, data) {
            return Authorization {
                allowed: false,
                sudo,
            };
        }
        Authorization {
            allowed: true,
            sudo,
        }
    }
}

fn parameters_allowed(params: &Parameters, data: Option<&Map<String, Value>>) -> bool {
    if params.is_empty() {
        return true;
    }
    let empty = Map::new();
    let data = data.unwrap_or(&empty);
    let lowered = |k: &str| k.to_lowercase();
    for required in &params.required {
        if !data.keys().any(|k| lowered(k) == *required) {
            return false;
        }
    }
    if data.is_empty() {
        return true;
    }
    if !params.denied.is_empty() {
        if params.denied.contains_key("*") {
            return false;
        }
        for (key, value) in data {
            if let Some(denied) = params.denied.get(&lowered(key))
                && value_in_list(value, denied)
            {
                return false;
            }
        }
    }
    if params.allowed.is_empty() {
        return true;
    }
    let allow_all = params.allowed.contains_key("*");
    if params.allowed.len() == 1 && allow_all {
        return true;
    }
    for (key, value) in data {
        match params.allowed.get(&lowered(key)) {
            None if !allow_all => return false,
            Some(allowed) if !value_in_list(value, allowed) => return false,
            _ => {}
        }
    }
    true
}

/// Vault's `valueInParameterList`: an empty list matches anything; list values must have
/// every element in the list; strings match `*` globs.
fn value_in_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().all(|item| value_in_list(item, list)),
        _ => list.iter().any(|allowed| value_matches(value, allowed)),
    }
}

fn value_matches(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::String(v), Value::String(p)) => glob_match(p, v),
        (Value::Number(v), Value::String(p)) => glob_match(p, &v.to_string()),
        (Value::Bool(v), Value::String(p)) => glob_match(p, &v.to_string()),
        (v, p) => v == p,
    }
}
