//! Profiles the request hot path in-process: N KV v2 reads with a non-root token whose
//! policy allows the path, on redb with a file audit device — what the bench's `kv_read`
//! drives over HTTP. Run under `valgrind --tool=callgrind` to see where instructions go:
//!   cargo build --release --example hotpath -p secretvault-engine
//!   valgrind --tool=callgrind target/release/examples/hotpath 2000

use std::sync::Arc;
use std::time::Instant;

use secretvault_engine::crypto::RootKey;
use secretvault_engine::logical::{Operation, Request};
use secretvault_engine::storage::RedbBackend;
use secretvault_engine::vault::{Vault, VaultConfig};
use serde_json::json;
use zeroize::Zeroizing;

fn request(token: &str, op: Option<Operation>, path: &str, body: serde_json::Value) -> Request {
    Request {
        operation: op,
        is_write: op.is_none(),
        path: path.into(),
        data: body.as_object().cloned().unwrap_or_default(),
        token: Some(Zeroizing::new(token.into())),
        ..Default::default()
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let workload = std::env::args().nth(2).unwrap_or_else(|| "read".into());
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let backend = Arc::new(RedbBackend::open(&dir.path().join("db")).unwrap());
        let vault = Vault::open(backend, RootKey::generate(), VaultConfig::default())
            .await
            .unwrap();
        let root = vault
            .ensure_root_token(Some("root"))
            .await
            .unwrap()
            .to_string();
        vault
            .enable_file_audit("file", dir.path().join("audit.log").to_str().unwrap())
            .await
            .unwrap();
        let policy =
            r#"path "secret/data/bench/*" { capabilities = ["create", "read", "update"] }"#;
        vault
            .handle(request(
                &root,
                None,
                "sys/policies/acl/bench",
                json!({ "policy": policy }),
            ))
            .await;
        let token = vault
            .handle(request(
                &root,
                None,
                "auth/token/create",
                json!({"policies": ["bench"]}),
            ))
            .await
            .body
            .unwrap()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        let value: String = (0..256).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        vault
            .handle(request(
                &token,
                None,
                "secret/data/bench/item",
                json!({"data": {"value": value}}),
            ))
            .await;
        let start = Instant::now();
        for _ in 0..n {
            let reply = match workload.as_str() {
                "write" => {
                    vault
                        .handle(request(
                            &token,
                            None,
                            "secret/data/bench/item",
                            json!({"data": {"value": value}}),
                        ))
                        .await
                }
                _ => {
                    vault
                        .handle(request(
                            &token,
                            Some(Operation::Read),
                            "secret/data/bench/item",
                            json!({}),
                        ))
                        .await
                }
            };
            assert_eq!(reply.status, 200);
        }
        let per = start.elapsed() / n as u32;
        eprintln!("{n} {workload}s: {per:?} per request");
    });
}
