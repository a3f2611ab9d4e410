//! What the fuzz targets share: one in-memory vault per process, a runtime to drive it,
//! and small helpers to split fuzz input.
//!
//! The vault is built once (opening one costs milliseconds; a fuzz input, microseconds)
//! on the in-memory storage backend, with a root token and a file audit device writing to
//! `/dev/null`, so requests go through the same authentication, ACL and audit code as
//! requests from the HTTP server.

use std::sync::{Arc, OnceLock};

use secretvault_engine::crypto::{Barrier, RootKey};
use secretvault_engine::logical::{Operation, Request};
use secretvault_engine::storage::MemoryBackend;
use secretvault_engine::token::TokenStore;
use secretvault_engine::transit::{KeyConfigChange, KeyOptions, KeyType};
use secretvault_engine::vault::{Reply, Vault, VaultConfig};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

#[path = "../../crates/engine/tests/support/policy_print.rs"]
pub mod policy_print;

pub const ROOT_TOKEN: &str = "fuzz-root-token";

/// Transit keys made at start-up: name, type, whether derived (needs a `context`).
pub const TRANSIT_KEYS: [(&str, KeyType, bool); 4] = [
    ("aes256", KeyType::Aes256Gcm96, false),
    ("aes128", KeyType::Aes128Gcm96, false),
    ("chacha", KeyType::ChaCha20Poly1305, false),
    ("derived", KeyType::Aes256Gcm96, true),
];

/// The context every derived-key operation of the harness uses.
pub const CONTEXT: &[u8] = b"fuzz-context";

pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub vault: Vault,
    /// The vault's storage, to check what requests leave behind.
    pub storage: Arc<MemoryBackend>,
    /// A second view of the vault's token store, over the same storage and root key: it
    /// holds the same signing key, so tokens it issues are valid for the vault.
    pub tokens: TokenStore,
}

/// The process-wide vault, built on first use.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let storage = Arc::new(MemoryBackend::new());
        let root_key = secretvault_engine::crypto::random_key();
        let (vault, tokens) = rt.block_on(async {
            let vault = Vault::open(
                storage.clone(),
                RootKey::from_bytes(root_key.clone()),
                VaultConfig::default(),
            )
            .await
            .expect("open vault");
            vault
                .ensure_root_token(Some(ROOT_TOKEN))
                .await
                .expect("root token");
            vault
                .enable_file_audit("file", "/dev/null")
                .await
                .expect("audit device");
            for (name, key_type, derived) in TRANSIT_KEYS {
                let options = KeyOptions {
                    key_type,
                    derived,
                    ..Default::default()
                };
                vault
                    .transit()
                    .create_key(name, &options)
                    .await
                    .expect("transit key");
            }
            // aes128 has three versions and refuses the first, so version checks matter.
            for _ in 0..2 {
                vault.transit().rotate("aes128").await.expect("rotate");
            }
            let change = KeyConfigChange {
                min_decryption_version: Some(2),
                ..Default::default()
            };
            vault
                .transit()
                .configure("aes128", &change)
                .await
                .expect("configure");
            let barrier = Barrier::open(storage.clone(), RootKey::from_bytes(root_key))
                .await
                .expect("second barrier");
            let tokens = TokenStore::open(Arc::new(barrier))
                .await
                .expect("token store");
            (vault, tokens)
        });
        Harness {
            rt,
            vault,
            storage,
            tokens,
        }
    })
}

impl Harness {
    /// One request as the HTTP server would make it, with the root token.
    pub fn request(
        &self,
        operation: Option<Operation>,
        path: &str,
        data: Map<String, Value>,
    ) -> Reply {
        self.request_as(ROOT_TOKEN, operation, path, data)
    }

    /// One request as the HTTP server would make it, with `token`.
    pub fn request_as(
        &self,
        token: &str,
        operation: Option<Operation>,
        path: &str,
        data: Map<String, Value>,
    ) -> Reply {
        let request = Request {
            operation,
            is_write: operation.is_none(),
            path: path.to_string(),
            data,
            token: Some(Zeroizing::new(token.to_string())),
            content_type: Some("application/merge-patch+json".into()),
            ..Default::default()
        };
        self.rt.block_on(self.vault.handle(request))
    }
}

/// Fails the run when the engine answered with a server error: for input a client can
/// send, a 5xx means a bug (an unhandled case, or client input reaching storage).
pub fn assert_not_server_error(reply: &Reply, what: &str) {
    assert!(
        reply.status < 500,
        "{what}: status {} {:?}",
        reply.status,
        reply.body
    );
}

/// The first byte picks a mode of a target, the rest is its input.
pub fn split_mode(data: &[u8], modes: u8) -> Option<(u8, &[u8])> {
    let (first, rest) = data.split_first()?;
    Some((first % modes, rest))
}

/// A JSON object body, as the HTTP server accepts it (anything else it refuses with 400
/// before the engine sees it).
pub fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Some(Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Applies the edits `edits` describes (pairs of position and byte: replace, insert or
/// remove; an odd last byte truncates) to `text`. Used to damage valid tokens and
/// ciphertexts.
pub fn mutate(text: &str, edits: &[u8]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for pair in edits.chunks(2) {
        let [at, byte] = pair else {
            // An odd byte out truncates, another way to damage the input.
            let keep = usize::from(pair[0]) % (bytes.len() + 1);
            bytes.truncate(keep);
            continue;
        };
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let at = usize::from(*at) * 7 % bytes.len();
        match byte % 4 {
            // Replace, never with the same byte.
            0 | 1 => {
                bytes[at] = if bytes[at] == *byte {
                    byte.wrapping_add(1)
                } else {
                    *byte
                }
            }
            2 => bytes.insert(at, *byte),
            _ => {
                bytes.remove(at);
            }
        }
    }
    bytes
}
