//! ACL policy text, HCL or JSON (`Policy::parse`).
//!
//! Parsing never panics. A policy that parses prints back, in the JSON form and in HCL,
//! to text that parses to the same rules; and an ACL built from it answers for its own
//! paths without panicking.

#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use secretvault_engine::Operation;
use secretvault_engine::identity::Identity;
use secretvault_engine::policy::{Acl, Policy};
use secretvault_fuzz::policy_print;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse("fuzz", text) else {
        return;
    };
    let rules = policy.rules();

    let json = policy_print::to_json(rules);
    let reparsed = Policy::parse("fuzz", &json)
        .unwrap_or_else(|e| panic!("JSON form {json:?} does not parse: {e}"));
    assert_eq!(reparsed.rules(), rules, "JSON form {json:?}");
    if let Some(hcl) = policy_print::to_hcl(rules) {
        let reparsed = Policy::parse("fuzz", &hcl)
            .unwrap_or_else(|e| panic!("HCL form {hcl:?} does not parse: {e}"));
        assert_eq!(reparsed.rules(), rules, "HCL form {hcl:?}");
    }

    let identity = Identity {
        entity_id: "entity-1".into(),
        entity_name: "agent".into(),
        entity_metadata: BTreeMap::from([("team".to_string(), "payments".to_string())]),
        ..Default::default()
    };
    let acl = Acl::new(&[Arc::new(policy.clone())], &identity);
    let body: Map<String, Value> =
        serde_json::from_str(r#"{"a":"b","n":1,"l":["x"]}"#).expect("fixed body");
    for rule in rules {
        let path = rule.path.replace('+', "x").replace('*', "x/y");
        for op in [
            Operation::Create,
            Operation::Read,
            Operation::Update,
            Operation::Patch,
            Operation::Delete,
            Operation::List,
        ] {
            let _ = acl.authorize(&path, op, Some(&body));
            let _ = acl.authorize(&path, op, None);
        }
        let _ = acl.capabilities(&path);
    }
});
