//! The sealing key as the dev binary serves it: public, read-only, kept across restarts,
//! renewed on `--sealing-key-rotation-period`.

mod common;

use std::time::{Duration, Instant};

use common::{Client, DevServer};
use serde_json::Value;

fn sealing_key(server: &DevServer) -> Value {
    let (status, body) = Client::anonymous(&server.url).get("sys/sealing-key");
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

#[test]
fn sealing_key_is_public_read_only_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_in(dir.path(), &[]);
    let key = sealing_key(&server);
    assert_eq!(key["key_id"].as_str().unwrap().len(), 16, "{key}");
    assert_eq!(key["public_key"].as_str().unwrap().len(), 44, "{key}");
    assert_eq!(
        key["algorithm"],
        "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"
    );
    // A token is not needed, and not in the way either.
    let (status, body) = server.client().get("sys/sealing-key");
    assert_eq!((status, &body["data"]), (200, &key));
    for method in ["PUT", "POST", "DELETE"] {
        let (status, body) = Client::anonymous(&server.url).send(method, "sys/sealing-key", None);
        assert_eq!(status, 405, "{method}: {body}");
    }
    assert!(server.stop().success());

    let server = DevServer::start_in(dir.path(), &[]);
    assert_eq!(sealing_key(&server), key, "the same key after a restart");
    assert!(server.stop().success());

    // A period shorter than the key's age renews it at the first housekeeping pass.
    let server = DevServer::start_in(dir.path(), &["--sealing-key-rotation-period", "1ms"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let renewed = loop {
        let now = sealing_key(&server);
        if now["key_id"] != key["key_id"] {
            break now;
        }
        assert!(Instant::now() < deadline, "the sealing key was not renewed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(renewed["creation_time"], key["creation_time"]);
    assert_ne!(renewed["public_key"], key["public_key"]);
}
