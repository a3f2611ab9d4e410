//! Sealed values (`sv:v1:<key id>:<binding tag>:<payload>`) and what travels with them.
//!
//! Modes (first byte):
//! 0. the rest is a sealed value: parsing never panics and round-trips through `Display`,
//!    and unsealing it fails (the vault's sealing key is random per process);
//! 1. a real sealed value of the rest, damaged by edits the input describes: unsealing
//!    fails or gives back the same plaintext; for any other binding it always fails;
//! 2. the rest is `namespace/name/key`: a binding that validates seals and unseals;
//! 3. the rest is a public key file (`svctl seal --public-key`): parsing never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use secretvault_engine::seal::{Binding, SealedValue, SealingPublicKey, seal};
use secretvault_fuzz::harness;

const BINDINGS: [(&str, &str, &str); 3] = [
    ("default", "db", "password"),
    ("payments", "api.v2", "token"),
    ("payments", "api.v2", "token2"),
];

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = secretvault_fuzz::split_mode(data, 4) else {
        return;
    };
    match mode {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                sealed_text(text);
            }
        }
        1 => damaged(rest),
        2 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                any_binding(text);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = SealingPublicKey::parse(text);
            }
        }
    }
});

fn binding(i: usize) -> Binding {
    let (ns, name, key) = BINDINGS[i % BINDINGS.len()];
    Binding::new(ns, name, key)
}

fn current_key() -> SealingPublicKey {
    harness().vault.sealing_keys().current().public_key
}

fn sealed_text(text: &str) {
    if let Ok(value) = SealedValue::parse(text) {
        let printed = value.to_string();
        assert_eq!(
            printed,
            text.trim_matches(|c: char| c.is_ascii_whitespace())
        );
        assert_eq!(SealedValue::parse(&printed).ok(), Some(value));
    }
    let h = harness();
    let result = h.rt.block_on(h.vault.unseal(&binding(0), text));
    assert!(result.is_err(), "unsealed a forged value");
}

fn damaged(rest: &[u8]) {
    let Some((selector, rest)) = rest.split_first() else {
        return;
    };
    let split = rest.iter().position(|b| *b == 0xff).unwrap_or(rest.len());
    let (plaintext, edits) = rest.split_at(split);
    let edits = edits.get(1..).unwrap_or_default();
    let i = usize::from(*selector);
    let sealed = seal(&current_key(), &binding(i), plaintext).expect("seal");
    let h = harness();
    let opened =
        h.rt.block_on(h.vault.unseal(&binding(i), &sealed))
            .expect("unseal what was just sealed");
    assert_eq!(opened.as_slice(), plaintext);
    let other = binding(i + 1);
    assert!(
        h.rt.block_on(h.vault.unseal(&other, &sealed)).is_err(),
        "unsealed for another binding"
    );
    let Ok(damaged) = String::from_utf8(secretvault_fuzz::mutate(&sealed, edits)) else {
        return;
    };
    if let Ok(opened) = h.rt.block_on(h.vault.unseal(&binding(i), &damaged)) {
        assert_eq!(
            opened.as_slice(),
            plaintext,
            "{damaged:?} unsealed to something else"
        );
    }
    assert!(h.rt.block_on(h.vault.unseal(&other, &damaged)).is_err());
}

fn any_binding(text: &str) {
    let mut parts = text.splitn(3, '/');
    let (Some(ns), Some(name), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let binding = Binding::new(ns, name, key);
    let sealed = seal(&current_key(), &binding, b"value");
    assert_eq!(sealed.is_ok(), binding.validate().is_ok());
    let Ok(sealed) = sealed else {
        return;
    };
    let h = harness();
    let opened =
        h.rt.block_on(h.vault.unseal(&binding, &sealed))
            .expect("unseal what was just sealed");
    assert_eq!(opened.as_slice(), b"value");
}
