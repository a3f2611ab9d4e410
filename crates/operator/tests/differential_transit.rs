//! The transit differential suite: keys, config, rotate, trim, delete, encrypt, decrypt,
//! rewrap, datakey and batches sent to OpenBao (`bao server -dev` with transit mounted at
//! `transit/`) and to secretvault, compared by status and JSON shape. Ciphertexts and data
//! keys are random, so they are compared by type; each server decrypts its own. Remaining
//! differences are listed with their reasons in
//! `tests/data/differential-transit-allowlist.json` (documented in docs/compatibility.md).

mod common;

use common::DevServer;
use common::differential::{
    Scenario, allowlist, assert_all_explained, differences, enable_transit_on_openbao, run,
};
use secretvault_testsupport::{BAO_ROOT_TOKEN, BaoDev};
use serde_json::{Value, json};

const HELLO: &str = "aGVsbG8=";

fn scenario() -> Scenario {
    let mut s = Scenario::default();
    // --- keys ----------------------------------------------------------------------------
    s.step("list no keys", "LIST", "transit/keys", None);
    s.step("key create", "POST", "transit/keys/k1", Some(json!({})));
    // `vault write -f` sends a JSON null body.
    s.step(
        "key create null body",
        "PUT",
        "transit/keys/k9",
        Some(Value::Null),
    );
    s.step("key read", "GET", "transit/keys/k1", None);
    s.step("key create derived chacha", "POST", "transit/keys/k2", Some(json!({"type": "chacha20-poly1305", "derived": true, "convergent_encryption": true, "exportable": true})));
    s.step(
        "key create aes128 auto-rotate",
        "PUT",
        "transit/keys/k3",
        Some(json!({"type": "aes128-gcm96", "auto_rotate_period": "2h"})),
    );
    s.step(
        "key create aes256 explicit",
        "POST",
        "transit/keys/k5",
        Some(json!({"type": "aes256-gcm96", "exportable": true})),
    );
    s.step(
        "key create derived aes256",
        "POST",
        "transit/keys/k6",
        Some(json!({"derived": true})),
    );
    s.step(
        "key create derived convergent aes128",
        "POST",
        "transit/keys/k7",
        Some(json!({"type": "aes128-gcm96", "derived": true, "convergent_encryption": true})),
    );
    s.step(
        "key create asymmetric type",
        "POST",
        "transit/keys/asym",
        Some(json!({"type": "ed25519"})),
    );
    s.step(
        "key create existing",
        "POST",
        "transit/keys/k1",
        Some(json!({"type": "aes128-gcm96"})),
    );
    s.step(
        "key create existing with flags",
        "POST",
        "transit/keys/k1",
        Some(json!({"derived": true, "exportable": true})),
    );
    s.step(
        "key create bad type",
        "POST",
        "transit/keys/bad",
        Some(json!({"type": "bogus"})),
    );
    s.step(
        "key create convergent not derived",
        "POST",
        "transit/keys/bad",
        Some(json!({"convergent_encryption": true})),
    );
    s.step(
        "key create rotate period too short",
        "POST",
        "transit/keys/bad",
        Some(json!({"auto_rotate_period": "30m"})),
    );
    s.step(
        "key create rotate period seconds",
        "POST",
        "transit/keys/k8",
        Some(json!({"auto_rotate_period": 7200})),
    );
    s.step(
        "key create rotate period not a duration",
        "POST",
        "transit/keys/bad",
        Some(json!({"auto_rotate_period": "soon"})),
    );
    s.step(
        "key create key_size",
        "POST",
        "transit/keys/bad",
        Some(json!({"key_size": 16})),
    );
    s.step(
        "key create bool not a bool",
        "POST",
        "transit/keys/bad",
        Some(json!({"derived": "maybe"})),
    );
    s.step(
        "key create unknown fields",
        "POST",
        "transit/keys/k4",
        Some(json!({"zz": 1, "nonce": "", "name": "other"})),
    );
    s.step("key read missing", "GET", "transit/keys/missing", None);
    s.step(
        "key read with unknown query",
        "GET",
        "transit/keys/k1?foo=1",
        None,
    );
    s.step("list keys", "LIST", "transit/keys", None);
    s.step("list keys query", "GET", "transit/keys?list=true", None);
    s.step("get keys folder", "GET", "transit/keys/", None);
    s.step(
        "write keys folder",
        "POST",
        "transit/keys/",
        Some(json!({})),
    );
    s.step("bad key name", "POST", "transit/keys/a@b", Some(json!({})));
    s.step("unknown path", "GET", "transit/foo", None);
    s.step("read of encrypt", "GET", "transit/encrypt/k1", None);
    s.step("read of config", "GET", "transit/keys/k1/config", None);
    s.step(
        "ui mounts for transit",
        "GET",
        "sys/internal/ui/mounts/transit/keys/k1",
        None,
    );

    // --- encrypt / decrypt ---------------------------------------------------------------
    s.step(
        "encrypt",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": HELLO})),
    )
    .capture("ct1", "/data/ciphertext");
    s.step(
        "decrypt",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct1}"})),
    );
    s.step(
        "encrypt empty",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": ""})),
    )
    .capture("ct_empty", "/data/ciphertext");
    s.step(
        "decrypt empty",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct_empty}"})),
    );
    s.step(
        "encrypt missing plaintext",
        "POST",
        "transit/encrypt/k1",
        Some(json!({})),
    );
    s.step(
        "encrypt bad base64",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": "not base64!"})),
    );
    s.step(
        "encrypt unpadded base64",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": "aGVsbG8"})),
    );
    s.step(
        "encrypt version too high",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": HELLO, "key_version": 9})),
    );
    s.step(
        "encrypt version negative",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": HELLO, "key_version": -1})),
    );
    s.step(
        "encrypt unknown fields",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": HELLO, "foo": 1, "bar": 2})),
    );
    s.step(
        "encrypt with associated data",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": HELLO, "associated_data": "YWQ="})),
    )
    .capture("ct_ad", "/data/ciphertext");
    s.step(
        "decrypt without associated data",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct_ad}"})),
    );
    s.step(
        "decrypt with associated data",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct_ad}", "associated_data": "YWQ="})),
    );
    s.step(
        "encrypt creates a key",
        "POST",
        "transit/encrypt/upserted",
        Some(json!({"plaintext": HELLO})),
    );
    s.step("read created key", "GET", "transit/keys/upserted", None);
    s.step(
        "encrypt creates a derived key",
        "POST",
        "transit/encrypt/upserted-derived",
        Some(json!({"plaintext": HELLO, "context": "Y3R4", "type": "chacha20-poly1305"})),
    );
    s.step(
        "read created derived key",
        "GET",
        "transit/keys/upserted-derived",
        None,
    );
    s.step(
        "encrypt create convergent without context",
        "POST",
        "transit/encrypt/nope",
        Some(json!({"plaintext": HELLO, "convergent_encryption": true})),
    );
    s.step(
        "encrypt create bad type",
        "POST",
        "transit/encrypt/nope",
        Some(json!({"plaintext": HELLO, "type": "bogus"})),
    );
    for (name, ciphertext) in [
        ("decrypt no prefix", "garbage"),
        ("decrypt wrong fields", "vault:v1"),
        ("decrypt bad version", "vault:vx:abcd"),
        ("decrypt version too new", "vault:v9:abcd"),
        ("decrypt negative version", "vault:v-1:abcd"),
        ("decrypt bad base64", "vault:v1:!!!"),
        ("decrypt extra field", "vault:v1:abcd:extra"),
        ("decrypt short", "vault:v1:abcd"),
        ("decrypt empty payload", "vault:v1:"),
        (
            "decrypt forged",
            "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
        ("decrypt missing ciphertext", ""),
    ] {
        s.step(
            name,
            "POST",
            "transit/decrypt/k1",
            Some(json!({"ciphertext": ciphertext})),
        );
    }
    s.step(
        "decrypt no key",
        "POST",
        "transit/decrypt/nokey",
        Some(json!({"ciphertext": "{ct1}"})),
    );
    s.step(
        "decrypt with another key",
        "POST",
        "transit/decrypt/k5",
        Some(json!({"ciphertext": "{ct1}"})),
    );
    s.step(
        "encrypt aes128",
        "POST",
        "transit/encrypt/k3",
        Some(json!({"plaintext": HELLO})),
    )
    .capture("ct_aes128", "/data/ciphertext");
    s.step(
        "decrypt aes128",
        "POST",
        "transit/decrypt/k3",
        Some(json!({"ciphertext": "{ct_aes128}"})),
    );
    s.step(
        "encrypt aes256",
        "POST",
        "transit/encrypt/k5",
        Some(json!({"plaintext": HELLO})),
    )
    .capture("ct_aes256", "/data/ciphertext");
    s.step(
        "decrypt aes256",
        "POST",
        "transit/decrypt/k5",
        Some(json!({"ciphertext": "{ct_aes256}"})),
    );
    s.step(
        "encrypt chacha",
        "POST",
        "transit/encrypt/k4",
        Some(json!({"plaintext": HELLO})),
    );
    s.step(
        "encrypt context on a plain key",
        "POST",
        "transit/encrypt/k5",
        Some(json!({"plaintext": HELLO, "context": "Y3R4"})),
    )
    .capture("ct_plain_ctx", "/data/ciphertext");
    s.step(
        "decrypt context on a plain key",
        "POST",
        "transit/decrypt/k5",
        Some(json!({"ciphertext": "{ct_plain_ctx}", "context": "b3RoZXI="})),
    );

    // --- derived and convergent keys -----------------------------------------------------
    s.step(
        "derived encrypt without context",
        "POST",
        "transit/encrypt/k2",
        Some(json!({"plaintext": HELLO})),
    );
    s.step(
        "derived encrypt bad context",
        "POST",
        "transit/encrypt/k2",
        Some(json!({"plaintext": HELLO, "context": "!!"})),
    );
    s.step(
        "derived encrypt",
        "POST",
        "transit/encrypt/k2",
        Some(json!({"plaintext": HELLO, "context": "Y3R4"})),
    )
    .capture("ct_derived", "/data/ciphertext");
    s.step(
        "derived decrypt without context",
        "POST",
        "transit/decrypt/k2",
        Some(json!({"ciphertext": "{ct_derived}"})),
    );
    s.step(
        "derived decrypt wrong context",
        "POST",
        "transit/decrypt/k2",
        Some(json!({"ciphertext": "{ct_derived}", "context": "Y3R5"})),
    );
    s.step(
        "derived decrypt",
        "POST",
        "transit/decrypt/k2",
        Some(json!({"ciphertext": "{ct_derived}", "context": "Y3R4"})),
    );
    s.step(
        "convergent encrypt again",
        "POST",
        "transit/encrypt/k2",
        Some(json!({"plaintext": HELLO, "context": "Y3R4"})),
    )
    .capture("ct_derived_again", "/data/ciphertext");
    s.step(
        "convergent aes128 encrypt",
        "POST",
        "transit/encrypt/k7",
        Some(json!({"plaintext": HELLO, "context": "Y3R4"})),
    )
    .capture("ct_conv", "/data/ciphertext");
    s.step(
        "convergent aes128 encrypt again",
        "POST",
        "transit/encrypt/k7",
        Some(json!({"plaintext": HELLO, "context": "Y3R4"})),
    )
    .capture("ct_conv_again", "/data/ciphertext");
    s.step(
        "convergent aes128 decrypt",
        "POST",
        "transit/decrypt/k7",
        Some(json!({"ciphertext": "{ct_conv}", "context": "Y3R4"})),
    );
    s.step(
        "derived aes256 encrypt",
        "POST",
        "transit/encrypt/k6",
        Some(json!({"plaintext": HELLO, "context": "YWJj"})),
    )
    .capture("ct_k6", "/data/ciphertext");
    s.step(
        "derived aes256 decrypt",
        "POST",
        "transit/decrypt/k6",
        Some(json!({"ciphertext": "{ct_k6}", "context": "YWJj"})),
    );
    s.step(
        "derived aes256 decrypt wrong context",
        "POST",
        "transit/decrypt/k6",
        Some(json!({"ciphertext": "{ct_k6}", "context": "YWJk"})),
    );
    s.step(
        "derived aes256 encrypt without context",
        "POST",
        "transit/encrypt/k6",
        Some(json!({"plaintext": HELLO})),
    );
    s.step("derived batch encrypt", "POST", "transit/encrypt/k6", Some(json!({"batch_input": [{"plaintext": HELLO, "context": "YWJj"}, {"plaintext": HELLO, "context": "!!"}, {"plaintext": HELLO, "context": "eHl6"}]})))
        .capture("bct_k6", "/data/batch_results/2/ciphertext");
    s.step(
        "derived batch encrypt without contexts",
        "POST",
        "transit/encrypt/k6",
        Some(json!({"batch_input": [{"plaintext": HELLO}]})),
    );
    s.step("derived batch decrypt", "POST", "transit/decrypt/k6", Some(json!({"batch_input": [{"ciphertext": "{ct_k6}", "context": "YWJj"}, {"ciphertext": "{bct_k6}", "context": "eHl6"}, {"ciphertext": "{bct_k6}", "context": "YWJj"}]})));
    s.step("derived batch decrypt context in some items", "POST", "transit/decrypt/k6", Some(json!({"batch_input": [{"ciphertext": "{ct_k6}", "context": "YWJj"}, {"ciphertext": "{bct_k6}"}]})));
    s.step(
        "derived rewrap",
        "POST",
        "transit/rewrap/k6",
        Some(json!({"ciphertext": "{ct_k6}", "context": "YWJj"})),
    );
    s.step(
        "derived rewrap without context",
        "POST",
        "transit/rewrap/k6",
        Some(json!({"ciphertext": "{ct_k6}"})),
    );
    s.step(
        "derived rotate",
        "POST",
        "transit/keys/k6/rotate",
        Some(json!({})),
    );
    s.step(
        "derived encrypt v1",
        "POST",
        "transit/encrypt/k6",
        Some(json!({"plaintext": HELLO, "context": "YWJj", "key_version": 1})),
    );
    s.step(
        "derived datakey with context",
        "POST",
        "transit/datakey/wrapped/k6",
        Some(json!({"context": "YWJj"})),
    );
    s.step(
        "derived datakey without context",
        "POST",
        "transit/datakey/plaintext/k6",
        Some(json!({})),
    );

    // --- batches -------------------------------------------------------------------------
    s.step("batch encrypt mixed", "POST", "transit/encrypt/k1", Some(json!({"batch_input": [{"plaintext": HELLO}, {"plaintext": "!!"}, {"plaintext": "aGk=", "reference": "r3"}]})))
        .capture("bct", "/data/batch_results/0/ciphertext");
    s.step(
        "batch encrypt ok",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"batch_input": [{"plaintext": HELLO}, {"plaintext": "aGk="}]})),
    );
    s.step("batch encrypt partial code", "POST", "transit/encrypt/k1", Some(json!({"batch_input": [{"plaintext": HELLO}, {"plaintext": "!!"}], "partial_failure_response_code": 207})));
    s.step(
        "batch encrypt all fail",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"batch_input": [{"plaintext": "!!"}], "partial_failure_response_code": 207})),
    );
    s.step(
        "batch encrypt empty",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"batch_input": []})),
    );
    s.step(
        "batch encrypt not a list",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"batch_input": "x"})),
    );
    s.step(
        "batch encrypt missing plaintext",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"batch_input": [{}]})),
    );
    s.step(
        "batch encrypt context mismatch",
        "POST",
        "transit/encrypt/k1",
        Some(
            json!({"batch_input": [{"plaintext": HELLO, "context": "Y3R4"}, {"plaintext": HELLO}]}),
        ),
    );
    s.step(
        "batch encrypt version too high",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"batch_input": [{"plaintext": HELLO, "key_version": 5}]})),
    );
    s.step("batch decrypt mixed", "POST", "transit/decrypt/k1", Some(json!({"batch_input": [{"ciphertext": "{bct}", "reference": "a"}, {"ciphertext": "garbage"}, {"ciphertext": ""}]})));
    s.step(
        "batch decrypt ok",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"batch_input": [{"ciphertext": "{bct}"}]})),
    );
    s.step(
        "batch decrypt missing ciphertext",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"batch_input": [{"plaintext": "x"}]})),
    );
    s.step("batch decrypt partial code", "POST", "transit/decrypt/k1", Some(json!({"batch_input": [{"ciphertext": "{bct}"}, {"ciphertext": "vault:v1:AAAA"}], "partial_failure_response_code": 207})));
    s.step("batch decrypt bad partial code", "POST", "transit/decrypt/k1", Some(json!({"batch_input": [{"ciphertext": "{bct}"}, {"ciphertext": "vault:v1:AAAA"}], "partial_failure_response_code": 600})));
    s.step(
        "batch encrypt creates a key",
        "POST",
        "transit/encrypt/batch-new",
        Some(json!({"batch_input": [{"plaintext": HELLO}, {"plaintext": "aGk="}]})),
    );
    s.step(
        "read batch-created key",
        "GET",
        "transit/keys/batch-new",
        None,
    );

    // --- rotate and rewrap ---------------------------------------------------------------
    s.step("rotate", "POST", "transit/keys/k1/rotate", Some(json!({})));
    s.step(
        "rotate null body",
        "PUT",
        "transit/keys/k9/rotate",
        Some(Value::Null),
    );
    s.step(
        "datakey null body",
        "PUT",
        "transit/datakey/plaintext/k9",
        Some(Value::Null),
    )
    .volatile(&["plaintext"]);
    s.step(
        "rotate missing key",
        "POST",
        "transit/keys/nokey/rotate",
        Some(json!({})),
    );
    s.step(
        "encrypt after rotate",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": HELLO})),
    );
    s.step(
        "decrypt old version",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct1}"})),
    );
    s.step(
        "rewrap",
        "POST",
        "transit/rewrap/k1",
        Some(json!({"ciphertext": "{ct1}"})),
    )
    .capture("ct_rewrapped", "/data/ciphertext");
    s.step(
        "decrypt rewrapped",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct_rewrapped}"})),
    );
    s.step(
        "rewrap to version",
        "POST",
        "transit/rewrap/k1",
        Some(json!({"ciphertext": "{ct1}", "key_version": 1})),
    );
    s.step(
        "rewrap missing ciphertext",
        "POST",
        "transit/rewrap/k1",
        Some(json!({})),
    );
    s.step(
        "rewrap garbage",
        "POST",
        "transit/rewrap/k1",
        Some(json!({"ciphertext": "garbage"})),
    );
    s.step("rewrap batch", "POST", "transit/rewrap/k1", Some(json!({"batch_input": [{"ciphertext": "{ct1}", "reference": "x"}, {"ciphertext": "garbage"}, {}]})));

    // --- datakey ---------------------------------------------------------------------------
    s.step(
        "datakey plaintext",
        "POST",
        "transit/datakey/plaintext/k1",
        Some(json!({})),
    )
    .volatile(&["plaintext"]);
    s.step(
        "datakey wrapped",
        "POST",
        "transit/datakey/wrapped/k1",
        Some(json!({})),
    );
    s.step(
        "datakey 512 bits",
        "POST",
        "transit/datakey/plaintext/k1",
        Some(json!({"bits": 512})),
    )
    .volatile(&["plaintext"]);
    s.step(
        "datakey plaintext 128 bits",
        "POST",
        "transit/datakey/plaintext/k1",
        Some(json!({"bits": 128})),
    )
    .volatile(&["plaintext"]);
    s.step(
        "datakey plaintext 256 bits",
        "POST",
        "transit/datakey/plaintext/k1",
        Some(json!({"bits": 256})),
    )
    .volatile(&["plaintext"]);
    s.step(
        "datakey wrapped 128 bits",
        "POST",
        "transit/datakey/wrapped/k1",
        Some(json!({"bits": 128})),
    );
    s.step(
        "datakey wrapped 256 bits",
        "POST",
        "transit/datakey/wrapped/k1",
        Some(json!({"bits": 256})),
    );
    s.step(
        "datakey wrapped 512 bits",
        "POST",
        "transit/datakey/wrapped/k1",
        Some(json!({"bits": 512})),
    )
    .capture("dk_wrapped", "/data/ciphertext");
    s.step(
        "decrypt wrapped datakey",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{dk_wrapped}"})),
    )
    .volatile(&["plaintext"]);
    s.step(
        "datakey bits as string",
        "POST",
        "transit/datakey/plaintext/k1",
        Some(json!({"bits": "128"})),
    )
    .volatile(&["plaintext"]);
    s.step(
        "datakey bad bits",
        "POST",
        "transit/datakey/wrapped/k1",
        Some(json!({"bits": 100})),
    );
    s.step(
        "datakey zero bits",
        "POST",
        "transit/datakey/plaintext/k1",
        Some(json!({"bits": 0})),
    );
    s.step(
        "datakey bits not a number",
        "POST",
        "transit/datakey/plaintext/k1",
        Some(json!({"bits": "many"})),
    );
    s.step(
        "datakey aes128 key",
        "POST",
        "transit/datakey/plaintext/k3",
        Some(json!({"bits": 512})),
    )
    .volatile(&["plaintext"]);
    s.step(
        "datakey with unknown field",
        "POST",
        "transit/datakey/wrapped/k1",
        Some(json!({"nope": true})),
    );
    s.step(
        "datakey bad kind",
        "POST",
        "transit/datakey/other/k1",
        Some(json!({})),
    );
    s.step(
        "datakey no key",
        "POST",
        "transit/datakey/plaintext/nokey",
        Some(json!({})),
    );
    s.step(
        "datakey version too high",
        "POST",
        "transit/datakey/wrapped/k1",
        Some(json!({"key_version": 9})),
    );

    // --- config and min versions ---------------------------------------------------------
    s.step(
        "rotate again",
        "POST",
        "transit/keys/k1/rotate",
        Some(json!({})),
    );
    s.step(
        "config min decryption",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"min_decryption_version": 2})),
    );
    s.step(
        "decrypt too old",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct1}"})),
    );
    s.step(
        "rewrap too old",
        "POST",
        "transit/rewrap/k1",
        Some(json!({"ciphertext": "{ct1}"})),
    );
    s.step(
        "batch decrypt too old",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"batch_input": [{"ciphertext": "{ct1}"}, {"ciphertext": "{ct_rewrapped}"}]})),
    );
    s.step(
        "datakey archived version",
        "POST",
        "transit/datakey/wrapped/k1",
        Some(json!({"key_version": 1})),
    );
    s.step(
        "key read after min decryption",
        "GET",
        "transit/keys/k1",
        None,
    );
    s.step(
        "encrypt archived version",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": HELLO, "key_version": 1})),
    );
    s.step(
        "config min decryption too high",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"min_decryption_version": 5})),
    );
    s.step(
        "config min encryption too high",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"min_encryption_version": 5})),
    );
    s.step(
        "config min decryption negative",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"min_decryption_version": -1})),
    );
    s.step(
        "config encryption below decryption",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"min_encryption_version": 1})),
    );
    s.step(
        "config rotate period too short",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"auto_rotate_period": "10m"})),
    );
    s.step(
        "config rotate period not a duration",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"auto_rotate_period": "soon"})),
    );
    s.step(
        "config rotate period negative",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"auto_rotate_period": "-2h"})),
    );
    s.step(
        "config rotate period off",
        "POST",
        "transit/keys/k3/config",
        Some(json!({"auto_rotate_period": "0"})),
    );
    s.step(
        "config rotate period in seconds",
        "POST",
        "transit/keys/k3/config",
        Some(json!({"auto_rotate_period": 3600})),
    );
    s.step(
        "config deletion_allowed not a bool",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"deletion_allowed": "sure"})),
    );
    s.step(
        "config nothing",
        "POST",
        "transit/keys/k1/config",
        Some(json!({})),
    );
    s.step(
        "config min decryption zero",
        "POST",
        "transit/keys/k3/config",
        Some(json!({"min_decryption_version": 0})),
    );
    s.step(
        "config min encryption",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"min_encryption_version": 3, "auto_rotate_period": "24h"})),
    );
    s.step(
        "encrypt below min encryption",
        "POST",
        "transit/encrypt/k1",
        Some(json!({"plaintext": HELLO, "key_version": 2})),
    );
    s.step(
        "config exportable",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"exportable": true})),
    );
    s.step(
        "config exportable off ignored",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"exportable": false})),
    );
    s.step(
        "config missing key",
        "POST",
        "transit/keys/nokey/config",
        Some(json!({"deletion_allowed": true})),
    );
    s.step(
        "config unknown field",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"zz": 1})),
    );

    // --- trim ----------------------------------------------------------------------------
    s.step(
        "trim without field",
        "POST",
        "transit/keys/k1/trim",
        Some(json!({})),
    );
    s.step(
        "trim without min encryption",
        "POST",
        "transit/keys/k3/trim",
        Some(json!({"min_available_version": 1})),
    );
    s.step(
        "trim above min decryption",
        "POST",
        "transit/keys/k1/trim",
        Some(json!({"min_available_version": 3})),
    );
    s.step(
        "trim zero",
        "POST",
        "transit/keys/k1/trim",
        Some(json!({"min_available_version": 0})),
    );
    s.step(
        "trim",
        "POST",
        "transit/keys/k1/trim",
        Some(json!({"min_available_version": 2})),
    );
    s.step("read after trim", "GET", "transit/keys/k1", None);
    s.step(
        "decrypt trimmed version",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct1}"})),
    );
    s.step(
        "decrypt after trim",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct_rewrapped}"})),
    );
    s.step(
        "trim decremented",
        "POST",
        "transit/keys/k1/trim",
        Some(json!({"min_available_version": 1})),
    );
    s.step(
        "config below min available",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"min_decryption_version": 1})),
    );
    s.step(
        "trim missing key",
        "POST",
        "transit/keys/nokey/trim",
        Some(json!({"min_available_version": 1})),
    );

    // --- delete --------------------------------------------------------------------------
    s.step("delete not allowed", "DELETE", "transit/keys/k1", None);
    s.step(
        "allow deletion",
        "POST",
        "transit/keys/k1/config",
        Some(json!({"deletion_allowed": true})),
    );
    s.step("delete", "DELETE", "transit/keys/k1", None);
    s.step("read deleted", "GET", "transit/keys/k1", None);
    s.step("delete missing", "DELETE", "transit/keys/k1", None);
    s.step(
        "decrypt with deleted key",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct1}"})),
    );
    s.step(
        "recreate deleted key",
        "POST",
        "transit/keys/k1",
        Some(json!({"type": "chacha20-poly1305"})),
    );
    s.step(
        "decrypt with recreated key",
        "POST",
        "transit/decrypt/k1",
        Some(json!({"ciphertext": "{ct_rewrapped}"})),
    );
    s.step(
        "delete key of another kind",
        "DELETE",
        "transit/keys/k3",
        None,
    );

    // --- ACLs: encrypting with a missing key is a create ------------------------------------
    s.step(
        "policy encrypt update only",
        "PUT",
        "sys/policies/acl/enc-update",
        Some(json!({"policy": "path \"transit/encrypt/*\" { capabilities = [\"update\"] }"})),
    );
    s.step(
        "token encrypt update only",
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["enc-update"]})),
    )
    .capture("upd", "/auth/client_token");
    s.step(
        "update-only encrypts with existing key",
        "POST",
        "transit/encrypt/k3",
        Some(json!({"plaintext": HELLO})),
    )
    .as_token("upd");
    s.step(
        "update-only cannot create a key",
        "POST",
        "transit/encrypt/acl-new",
        Some(json!({"plaintext": HELLO})),
    )
    .as_token("upd");
    s.step(
        "policy encrypt create only",
        "PUT",
        "sys/policies/acl/enc-create",
        Some(json!({"policy": "path \"transit/encrypt/*\" { capabilities = [\"create\"] }"})),
    );
    s.step(
        "token encrypt create only",
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["enc-create"]})),
    )
    .capture("crt", "/auth/client_token");
    s.step(
        "create-only creates a key",
        "POST",
        "transit/encrypt/acl-new",
        Some(json!({"plaintext": HELLO})),
    )
    .as_token("crt");
    s.step(
        "create-only cannot update",
        "POST",
        "transit/encrypt/acl-new",
        Some(json!({"plaintext": HELLO})),
    )
    .as_token("crt");
    s.step(
        "policy decrypt only",
        "PUT",
        "sys/policies/acl/dec-only",
        Some(json!({"policy": "path \"transit/decrypt/k5\" { capabilities = [\"update\"] }"})),
    );
    s.step(
        "token decrypt only",
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["dec-only"]})),
    )
    .capture("dec", "/auth/client_token");
    s.step(
        "decrypt-only decrypts",
        "POST",
        "transit/decrypt/k5",
        Some(json!({"ciphertext": "{ct_aes256}"})),
    )
    .as_token("dec");
    s.step(
        "decrypt-only cannot encrypt",
        "POST",
        "transit/encrypt/k5",
        Some(json!({"plaintext": HELLO})),
    )
    .as_token("dec");
    s.step(
        "decrypt-only cannot read the key",
        "GET",
        "transit/keys/k5",
        None,
    )
    .as_token("dec");
    s.step("decrypt-only cannot list", "LIST", "transit/keys", None)
        .as_token("dec");
    s.step(
        "no token",
        "POST",
        "transit/encrypt/k5",
        Some(json!({"plaintext": HELLO})),
    )
    .anonymous();
    s.step("list keys at the end", "LIST", "transit/keys", None);
    s
}

#[test]
fn secretvault_transit_answers_like_openbao() {
    let Some(bao) = BaoDev::start("transit differential suite") else {
        return;
    };
    enable_transit_on_openbao(&bao.url(), BAO_ROOT_TOKEN);
    let ours = DevServer::start();
    let scenario = scenario();
    let reference = run(&bao.url(), BAO_ROOT_TOKEN, &scenario);
    let actual = run(&ours.url, common::ROOT, &scenario);

    // Sanity: each server decrypted its own ciphertexts back to the plaintext.
    let at = |name: &str| {
        scenario
            .0
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no step {name}"))
    };
    for name in [
        "decrypt",
        "decrypt rewrapped",
        "derived decrypt",
        "decrypt aes128",
        "decrypt aes256",
        "convergent aes128 decrypt",
        "derived aes256 decrypt",
        "decrypt-only decrypts",
        "decrypt after trim",
    ] {
        let i = at(name);
        assert_eq!(
            actual[i].1["data"]["plaintext"], HELLO,
            "{name}: {}",
            actual[i].1
        );
        assert_eq!(
            reference[i].1["data"]["plaintext"], HELLO,
            "{name}: {}",
            reference[i].1
        );
    }
    // Convergent encryption: the same plaintext and context give the same ciphertext.
    for (first, again) in [
        ("derived encrypt", "convergent encrypt again"),
        (
            "convergent aes128 encrypt",
            "convergent aes128 encrypt again",
        ),
    ] {
        for results in [&actual, &reference] {
            let ct = &results[at(first)].1["data"]["ciphertext"];
            assert!(ct.is_string(), "{first}: {ct}");
            assert_eq!(ct, &results[at(again)].1["data"]["ciphertext"], "{again}");
        }
    }
    // A wrapped 512-bit data key decrypts to 64 bytes.
    let i = at("decrypt wrapped datakey");
    let key = actual[i].1["data"]["plaintext"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(key.len(), 88, "64 bytes in base64: {key}");
    let allowed = allowlist(
        "differential-transit-allowlist.json",
        include_str!("data/differential-transit-allowlist.json"),
    );
    assert_all_explained(
        "transit differential suite",
        scenario.0.len(),
        &differences(&scenario, &reference, &actual),
        &allowed,
    );
}
