//! secretvault's signed tokens (`svs.<payload>.<signature>`, HS256).
//!
//! Modes (first byte):
//! 0. the rest is a token string. A signer with a fixed key (the seeds hold tokens it
//!    signed) accepts only what it would have signed itself, byte for byte; the vault,
//!    whose key is random per process, refuses it with 403 (unless it is the root token);
//! 1. the rest is JSON claims: signed, they verify to the same claims, and every damaged
//!    copy (edits the input describes) is refused;
//! 2. the rest is JSON claims issued by the vault's own token store (any values, even
//!    ones no handler would issue): verifying the token and using it for requests never
//!    panics and never answers with a 5xx.

#![no_main]

use libfuzzer_sys::fuzz_target;
use secretvault_engine::Operation;
use secretvault_engine::token::{Claims, Signer};
use secretvault_fuzz::{ROOT_TOKEN, assert_not_server_error, harness};
use serde_json::Map;

/// The key the seed corpus's tokens are signed with.
const SEED_KEY: [u8; 32] = [7; 32];

/// Accessors of issued tokens are folded onto a few, so the token store's per-accessor
/// state (uses, leases) stays bounded however long the fuzzer runs.
const ACCESSORS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = secretvault_fuzz::split_mode(data, 3) else {
        return;
    };
    match mode {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                token_string(text);
            }
        }
        1 => signed_and_damaged(rest),
        _ => issued_by_the_vault(rest),
    }
});

fn token_string(text: &str) {
    let signer = Signer::new(&SEED_KEY);
    if let Some(claims) = signer.verify(text) {
        assert_eq!(
            signer.sign(&claims).as_str(),
            text,
            "accepted a token it did not sign"
        );
    }
    if text == ROOT_TOKEN {
        return;
    }
    let h = harness();
    assert!(
        h.tokens.verify(text).is_none(),
        "the vault accepted {text:?}"
    );
    let reply = h.request_as(
        text,
        Some(Operation::Read),
        "auth/token/lookup-self",
        Map::new(),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
}

/// The claims before the first 0xff byte, and the bytes after it.
fn claims_and_rest(bytes: &[u8]) -> Option<(Claims, &[u8])> {
    let split = bytes.iter().position(|b| *b == 0xff).unwrap_or(bytes.len());
    let claims = serde_json::from_slice(&bytes[..split]).ok()?;
    Some((claims, bytes.get(split + 1..).unwrap_or_default()))
}

fn signed_and_damaged(bytes: &[u8]) {
    let Some((claims, edits)) = claims_and_rest(bytes) else {
        return;
    };
    let signer = Signer::new(&SEED_KEY);
    let token = signer.sign(&claims);
    assert_eq!(signer.verify(&token).as_ref(), Some(&claims));
    let damaged = secretvault_fuzz::mutate(&token, edits);
    if damaged == token.as_bytes() {
        return;
    }
    if let Ok(damaged) = std::str::from_utf8(&damaged) {
        assert!(
            signer.verify(damaged).is_none(),
            "accepted the damaged token {damaged:?}"
        );
    }
}

fn issued_by_the_vault(bytes: &[u8]) {
    let Some((mut claims, selector)) = claims_and_rest(bytes) else {
        return;
    };
    let n = selector.first().map_or(0, |b| usize::from(*b) % ACCESSORS);
    claims.jti = format!("fuzz-accessor-{n}");
    let h = harness();
    let token = h.tokens.issue(&claims);
    let _ = h.tokens.verify(&token);
    for (operation, path) in [
        (Some(Operation::Read), "auth/token/lookup-self"),
        (Some(Operation::Read), "secret/data/fuzz"),
        (Some(Operation::List), "secret/metadata/"),
    ] {
        let reply = h.request_as(&token, operation, path, Map::new());
        assert_not_server_error(&reply, path);
    }
}
