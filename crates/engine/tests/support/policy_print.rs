//! Prints parsed policy rules back as policy text, in Vault's JSON form and in HCL, so a
//! parse can be checked against a re-parse of its own output.
//!
//! Shared by `tests/parsers_prop.rs` and the `policy` fuzz target (`fuzz/`), which
//! includes this file by path: the two must agree on what "the same policy" means.

use secretvault_engine::policy::{Capability, PathRule};
use serde_json::{Map, Value};

/// Every capability but `deny`, which [`capability_names`] handles on its own.
const GRANTS: [Capability; 7] = [
    Capability::Create,
    Capability::Read,
    Capability::Update,
    Capability::Patch,
    Capability::Delete,
    Capability::List,
    Capability::Sudo,
];

/// The capabilities a rule grants, as policy text lists them.
pub fn capability_names(rule: &PathRule) -> Vec<&'static str> {
    if rule.capabilities.is_deny() {
        return vec!["deny"];
    }
    GRANTS
        .into_iter()
        .filter(|c| rule.capabilities.contains(*c))
        .map(Capability::name)
        .collect()
}

/// A duration as a Go duration string that parses back to exactly the same value.
fn duration_text(d: std::time::Duration) -> String {
    format!("{}ns", d.as_nanos())
}

fn settings(rule: &PathRule) -> Map<String, Value> {
    let p = &rule.parameters;
    let mut out = Map::new();
    out.insert("capabilities".into(), Value::from(capability_names(rule)));
    if !p.allowed.is_empty() {
        let map = p
            .allowed
            .iter()
            .map(|(k, v)| (k.clone(), Value::Array(v.clone())))
            .collect();
        out.insert("allowed_parameters".into(), Value::Object(map));
    }
    if !p.denied.is_empty() {
        let map = p
            .denied
            .iter()
            .map(|(k, v)| (k.clone(), Value::Array(v.clone())))
            .collect();
        out.insert("denied_parameters".into(), Value::Object(map));
    }
    if !p.required.is_empty() {
        out.insert(
            "required_parameters".into(),
            Value::from(p.required.clone()),
        );
    }
    if let Some(d) = p.min_wrapping_ttl {
        out.insert("min_wrapping_ttl".into(), Value::from(duration_text(d)));
    }
    if let Some(d) = p.max_wrapping_ttl {
        out.insert("max_wrapping_ttl".into(), Value::from(duration_text(d)));
    }
    out
}

/// The JSON form: one `{"<path>": {...}}` object per rule, so repeated paths and the
/// rules' order survive.
pub fn to_json(rules: &[PathRule]) -> String {
    let groups: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let mut group = Map::new();
            group.insert(rule.path.clone(), Value::Object(settings(rule)));
            Value::Object(group)
        })
        .collect();
    let mut top = Map::new();
    top.insert("path".into(), Value::Array(groups));
    Value::Object(top).to_string()
}

/// The HCL form, or `None` when a parameter value cannot be written in HCL without
/// changing it: a number HCL reads differently (integers beyond `i64`), or nesting deeper
/// than the HCL parser accepts.
pub fn to_hcl(rules: &[PathRule]) -> Option<String> {
    let mut out = String::new();
    for rule in rules {
        out.push_str("path ");
        hcl_string(&mut out, &rule.path);
        out.push_str(" {\n");
        for (key, value) in settings(rule) {
            out.push_str("  ");
            out.push_str(&key);
            out.push_str(" = ");
            // Inside the path block: one level deep.
            hcl_value(&mut out, &value, 1)?;
            out.push('\n');
        }
        out.push_str("}\n");
    }
    Some(out)
}

/// The HCL parser refuses nesting deeper than 64.
const HCL_MAX_DEPTH: usize = 64;

fn hcl_value(out: &mut String, value: &Value, depth: usize) -> Option<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_u64() && !n.is_i64() {
                return None;
            }
            out.push_str(&n.to_string());
        }
        Value::String(s) => hcl_string(out, s),
        Value::Array(items) => {
            if depth + 1 > HCL_MAX_DEPTH {
                return None;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                hcl_value(out, item, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            if depth + 1 > HCL_MAX_DEPTH {
                return None;
            }
            out.push('{');
            for (k, v) in map {
                out.push(' ');
                hcl_string(out, k);
                out.push_str(" = ");
                hcl_value(out, v, depth + 1)?;
            }
            out.push_str(" }");
        }
    }
    Some(())
}

fn hcl_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
}
