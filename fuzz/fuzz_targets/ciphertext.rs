//! Transit ciphertexts (`vault:v<N>:<base64>`).
//!
//! Modes (first byte):
//! 0. the rest is a ciphertext string: the parser must never panic, must agree with the
//!    formatter, and decrypting it with every transit key must fail (the keys are random
//!    per process, so no input can be a real ciphertext);
//! 1. the rest is a JSON body for `transit/{decrypt,rewrap,encrypt}/<key>` through the
//!    vault's router: never a panic, never a 5xx;
//! 2. a real ciphertext of the rest, damaged by edits the input describes: decrypting it
//!    fails, or gives back the same plaintext (edits Go's base64 decoder ignores).

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use secretvault_engine::fuzzing::{format_ciphertext, parse_ciphertext};
use secretvault_fuzz::{CONTEXT, TRANSIT_KEYS, assert_not_server_error, harness, json_object};

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = secretvault_fuzz::split_mode(data, 3) else {
        return;
    };
    match mode {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                ciphertext_string(text);
            }
        }
        1 => handler_body(rest),
        _ => damaged_ciphertext(rest),
    }
});

fn ciphertext_string(text: &str) {
    if let Ok((version, payload)) = parse_ciphertext(text) {
        assert!(version != 0, "version 0 must read as 1");
        assert!(text.ends_with(payload), "the payload is the text's tail");
        // Whatever decodes canonically formats back to the same text, up to the version's
        // spelling (`v0`, `v+1`, `v01` all name version 1).
        if let (Ok(v), Ok(bytes)) = (u32::try_from(version), STANDARD.decode(payload)) {
            let formatted = format_ciphertext(v, &bytes);
            assert_eq!(parse_ciphertext(&formatted), Ok((version, payload)));
        }
    }
    let h = harness();
    for (name, _, derived) in TRANSIT_KEYS {
        let context: &[u8] = if derived { CONTEXT } else { b"" };
        let result =
            h.rt.block_on(h.vault.transit().decrypt(name, text, context));
        assert!(result.is_err(), "decrypted a forged ciphertext with {name}");
    }
}

fn handler_body(rest: &[u8]) {
    let Some((selector, body)) = rest.split_first() else {
        return;
    };
    let Some(body) = json_object(body) else {
        return;
    };
    let (name, _, _) = TRANSIT_KEYS[usize::from(selector % 4)];
    let endpoint = ["decrypt", "rewrap", "encrypt"][usize::from(selector / 4 % 3)];
    let path = format!("transit/{endpoint}/{name}");
    let reply = harness().request(None, &path, body);
    assert_not_server_error(&reply, &path);
}

fn damaged_ciphertext(rest: &[u8]) {
    let Some((selector, rest)) = rest.split_first() else {
        return;
    };
    // The plaintext is the part before the first 0xff byte, the edits the part after.
    let split = rest.iter().position(|b| *b == 0xff).unwrap_or(rest.len());
    let (plaintext, edits) = rest.split_at(split);
    let edits = edits.get(1..).unwrap_or_default();
    let (name, _, derived) = TRANSIT_KEYS[usize::from(selector % 4)];
    let context: &[u8] = if derived { CONTEXT } else { b"" };
    let h = harness();
    let transit = h.vault.transit();
    let ciphertext =
        h.rt.block_on(transit.encrypt(name, plaintext, context))
            .expect("encrypt");
    let opened =
        h.rt.block_on(transit.decrypt(name, &ciphertext, context))
            .expect("decrypt what was just encrypted");
    assert_eq!(opened.as_slice(), plaintext);
    let damaged = secretvault_fuzz::mutate(&ciphertext, edits);
    let Ok(damaged) = String::from_utf8(damaged) else {
        return;
    };
    if let Ok(opened) = h.rt.block_on(transit.decrypt(name, &damaged, context)) {
        assert_eq!(
            opened.as_slice(),
            plaintext,
            "{damaged:?} decrypted to something else"
        );
    }
}
