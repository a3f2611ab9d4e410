use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

use super::format::{BINDING_TAG_LEN, KEY_ID_LEN, binding_tag};
use super::keys::RING_KEY;
use super::*;
use crate::crypto::{Barrier, RootKey};
use crate::storage::{self, Backend, Entry, MemoryBackend, Precondition, Revision};

fn root() -> RootKey {
    RootKey::from_bytes(zeroize::Zeroizing::new([3; 32]))
}

async fn barrier_over(backend: Arc<dyn Backend>) -> Arc<Barrier> {
    Arc::new(Barrier::open(backend, root()).await.unwrap())
}

async fn keys() -> (Arc<MemoryBackend>, Arc<Barrier>, SealingKeys) {
    let backend = Arc::new(MemoryBackend::new());
    let barrier = barrier_over(backend.clone()).await;
    let keys = SealingKeys::open(barrier.clone()).await.unwrap();
    (backend, barrier, keys)
}

fn db() -> Binding {
    Binding::new("prod", "db", "password")
}

#[tokio::test]
async fn round_trip() {
    let (_, _, keys) = keys().await;
    let public = keys.current().public_key;
    for plaintext in [
        &b""[..],
        b"hunter2",
        &[0u8, 255, 10, 13][..],
        &[7u8; 100_000][..],
    ] {
        let sealed = seal(&public, &db(), plaintext).unwrap();
        assert!(
            sealed.starts_with(&format!("sv:v1:{}:", public.id())),
            "{sealed}"
        );
        assert!(sealed.bytes().all(|b| b.is_ascii_graphic()), "printable");
        assert_eq!(
            keys.unseal(&db(), &sealed).await.unwrap().as_slice(),
            plaintext
        );
    }
    // Fresh randomness every time: equal plaintexts do not give equal sealed values.
    assert_ne!(
        seal(&public, &db(), b"same").unwrap(),
        seal(&public, &db(), b"same").unwrap()
    );
}

#[tokio::test]
async fn wrong_binding_fails() {
    let (_, _, keys) = keys().await;
    let sealed = seal(&keys.current().public_key, &db(), b"hunter2").unwrap();
    for other in [
        Binding::new("staging", "db", "password"),
        Binding::new("prod", "db2", "password"),
        Binding::new("prod", "db", "username"),
    ] {
        let err = keys.unseal(&other, &sealed).await.unwrap_err();
        assert!(
            matches!(&err, SealError::WrongBinding { binding } if *binding == other),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains(&other.to_string()), "{text}");
        assert!(text.contains("svctl seal --namespace"), "{text}");
    }
}

#[tokio::test]
async fn binding_is_enforced_by_the_cipher_not_the_tag() {
    // Rewriting the (unauthenticated) binding tag to the target's gains nothing: HPKE's
    // associated data still holds the original binding.
    let (_, _, keys) = keys().await;
    let sealed = seal(&keys.current().public_key, &db(), b"hunter2").unwrap();
    let other = Binding::new("staging", "db", "password");
    let mut value = SealedValue::parse(&sealed).unwrap();
    value.binding_tag = binding_tag(&other);
    let err = keys.unseal(&other, &value.to_string()).await.unwrap_err();
    assert!(matches!(err, SealError::Tampered { .. }), "{err}");
}

#[tokio::test]
async fn tampered_ciphertext_fails() {
    let (_, _, keys) = keys().await;
    let sealed = seal(&keys.current().public_key, &db(), b"hunter2").unwrap();
    let value = SealedValue::parse(&sealed).unwrap();
    // Every byte of the encapsulated key, ciphertext and tag is covered.
    for i in 0..value.payload.len() {
        let mut altered = value.clone();
        altered.payload[i] ^= 0x01;
        let err = keys.unseal(&db(), &altered.to_string()).await.unwrap_err();
        assert!(matches!(err, SealError::Tampered { .. }), "byte {i}: {err}");
    }
    let mut truncated = value.clone();
    truncated.payload.pop();
    let err = keys
        .unseal(&db(), &truncated.to_string())
        .await
        .unwrap_err();
    assert!(matches!(err, SealError::Tampered { .. }), "{err}");
    let mut extended = value;
    extended.payload.push(0);
    let err = keys.unseal(&db(), &extended.to_string()).await.unwrap_err();
    assert!(matches!(err, SealError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains("prod/db/password"), "{err}");
}

#[tokio::test]
async fn unknown_key_id_fails() {
    let (_, _, ours) = keys().await;
    let (_, _, theirs) = keys().await;
    let foreign = seal(&theirs.current().public_key, &db(), b"hunter2").unwrap();
    let err = ours.unseal(&db(), &foreign).await.unwrap_err();
    let SealError::UnknownKey { key_id } = &err else {
        panic!("{err}")
    };
    assert_eq!(key_id, theirs.current().key_id());
    assert!(err.to_string().contains("another cluster"), "{err}");
}

#[tokio::test]
async fn malformed_and_unsupported_values_are_told_apart() {
    let (_, _, keys) = keys().await;
    let err = keys.unseal(&db(), "sv:v2:whatever").await.unwrap_err();
    assert!(
        matches!(&err, SealError::UnsupportedVersion { version } if version == "v2"),
        "{err}"
    );
    for bad in [
        "",
        "hunter2",
        "sv:",
        "sv:v1",
        "sv:v1:abc",
        "sv:v1:0123456789abcdef:01234567",
        "sv:v1:0123456789ABCDEF:01234567:AAAA",
        "sv:v1:0123456789abcdef:0123456:AAAA",
        "sv:v1:0123456789abcdef:01234567:not base64!",
        "sv:v1:0123456789abcdef:01234567:AAAA",
        "sv:v1:0123456789abcdef:01234567:AAAA:extra",
    ] {
        let err = keys.unseal(&db(), bad).await.unwrap_err();
        assert!(matches!(err, SealError::Malformed { .. }), "{bad:?}: {err}");
        assert!(err.to_string().contains("svctl seal"), "{err}");
    }
}

#[tokio::test]
async fn invalid_bindings_are_refused_with_the_field_named() {
    let (_, _, keys) = keys().await;
    let public = keys.current().public_key;
    for (binding, field) in [
        (Binding::new("", "db", "k"), "namespace"),
        (Binding::new("Prod", "db", "k"), "namespace"),
        (Binding::new("a/b", "db", "k"), "namespace"),
        (Binding::new("n".repeat(64), "db", "k"), "namespace"),
        (Binding::new("prod", "", "k"), "name"),
        (Binding::new("prod", "db/x", "k"), "name"),
        (Binding::new("prod", "-db", "k"), "name"),
        (Binding::new("prod", "db..x", "k"), "name"),
        (Binding::new("prod", "db", ""), "key"),
        (Binding::new("prod", "db", "a/b"), "key"),
        (Binding::new("prod", "db", ".."), "key"),
        (Binding::new("prod", "db", "pass word"), "key"),
    ] {
        let err = seal(&public, &binding, b"x").unwrap_err();
        assert!(
            matches!(&err, SealError::InvalidBinding { field: f, .. } if *f == field),
            "{binding:?}: {err}"
        );
        let err = keys.unseal(&binding, "sv:v1:x").await.unwrap_err();
        assert!(matches!(err, SealError::InvalidBinding { .. }), "{err}");
    }
    for ok in [
        Binding::new("prod", "db", "password"),
        Binding::new("a", "a.b-c.d", "TLS_CERT.pem"),
        Binding::new("kube-system", "x", "_-."),
    ] {
        ok.validate().unwrap();
    }
}

#[tokio::test]
async fn old_keys_still_unseal_after_renewal() {
    let (backend, _, keys) = keys().await;
    let first = keys.current();
    let old = seal(&first.public_key, &db(), b"sealed-before").unwrap();
    let second = keys.renew().await.unwrap();
    assert_ne!(first.key_id(), second.key_id());
    assert_eq!(keys.current(), second);
    assert_eq!(keys.all().len(), 2);
    let new = seal(&second.public_key, &db(), b"sealed-after").unwrap();
    assert_eq!(
        keys.unseal(&db(), &old).await.unwrap().as_slice(),
        b"sealed-before"
    );
    assert_eq!(
        keys.unseal(&db(), &new).await.unwrap().as_slice(),
        b"sealed-after"
    );

    // After a restart both keys are still there, and the newer one is current.
    let reopened = SealingKeys::open(barrier_over(backend).await)
        .await
        .unwrap();
    assert_eq!(reopened.current(), second);
    assert_eq!(reopened.all(), keys.all());
    assert_eq!(
        reopened.unseal(&db(), &old).await.unwrap().as_slice(),
        b"sealed-before"
    );

    // Renewal by age: not due within the period, due past it, never with zero.
    assert!(!keys.renew_if_due(Duration::from_secs(3600)).await.unwrap());
    assert!(!keys.renew_if_due(Duration::ZERO).await.unwrap());
    assert!(keys.renew_if_due(Duration::from_nanos(1)).await.unwrap());
    assert_eq!(keys.all().len(), 3);
    assert_eq!(
        keys.unseal(&db(), &old).await.unwrap().as_slice(),
        b"sealed-before"
    );
}

#[tokio::test]
async fn the_ring_is_stored_encrypted() {
    let (backend, barrier, keys) = keys().await;
    let raw = backend.get(RING_KEY).await.unwrap().unwrap().value;
    let private = barrier.get(RING_KEY).await.unwrap().unwrap().0;
    let text = std::str::from_utf8(&private).unwrap();
    assert!(text.contains(keys.current().key_id()), "{text}");
    assert!(
        !raw.windows(KEY_ID_LEN)
            .any(|w| w == keys.current().key_id().as_bytes())
    );
}

#[tokio::test]
async fn replicas_share_one_ring() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let barrier = barrier_over(backend.clone()).await;
    let (a, b) = tokio::join!(
        SealingKeys::open(barrier.clone()),
        SealingKeys::open(barrier.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.current(),
        b.current(),
        "both replicas use the first key written"
    );

    // A renews; B, which has not reloaded, still opens values sealed to A's new key.
    let renewed = a.renew().await.unwrap();
    let sealed = seal(&renewed.public_key, &db(), b"from-a").unwrap();
    assert_ne!(b.current(), renewed, "B has not looked yet");
    assert_eq!(
        b.unseal(&db(), &sealed).await.unwrap().as_slice(),
        b"from-a"
    );
    assert_eq!(b.current(), renewed, "and now serves the new key");

    // Housekeeping with renewal disabled still picks up other replicas' renewals.
    let again = a.renew().await.unwrap();
    assert!(!b.renew_if_due(Duration::ZERO).await.unwrap());
    assert_eq!(b.current(), again);
}

/// A backend that lets "another replica" write the ring just before this one's next
/// conditional write of it, so that write loses the compare-and-set.
struct Racing {
    inner: MemoryBackend,
    competing_write: Mutex<Option<Vec<u8>>>,
}

#[async_trait]
impl Backend for Racing {
    fn name(&self) -> &'static str {
        "racing"
    }
    async fn get(&self, key: &str) -> storage::Result<Option<Entry>> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> storage::Result<Revision> {
        if key == RING_KEY && matches!(precondition, Precondition::Revision(_)) {
            let competing = self.competing_write.lock().unwrap().take();
            if let Some(blob) = competing {
                self.inner.put(key, blob, Precondition::None).await?;
            }
        }
        self.inner.put(key, value, precondition).await
    }
    async fn delete(&self, key: &str, precondition: Precondition) -> storage::Result<bool> {
        self.inner.delete(key, precondition).await
    }
    async fn list(&self, prefix: &str) -> storage::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
}

#[tokio::test]
async fn a_replica_that_loses_the_renewal_race_adds_no_second_key() {
    let racing = Arc::new(Racing {
        inner: MemoryBackend::new(),
        competing_write: Mutex::new(None),
    });
    let barrier = barrier_over(racing.clone()).await;
    let a = SealingKeys::open(barrier.clone()).await.unwrap();
    let b = SealingKeys::open(barrier.clone()).await.unwrap();
    let period = Duration::from_millis(400);
    tokio::time::sleep(period + Duration::from_millis(100)).await;

    // Record the ring as A's renewal leaves it, then put the old ring back: B will read the
    // old ring (key due), and A's ring lands just before B's write.
    let before = racing.inner.get(RING_KEY).await.unwrap().unwrap().value;
    let renewed = a.renew().await.unwrap();
    let after = racing.inner.get(RING_KEY).await.unwrap().unwrap().value;
    racing
        .inner
        .put(RING_KEY, before, Precondition::None)
        .await
        .unwrap();
    *racing.competing_write.lock().unwrap() = Some(after);

    assert!(!b.renew_if_due(period).await.unwrap(), "A already renewed");
    assert!(
        racing.competing_write.lock().unwrap().is_none(),
        "the race happened"
    );
    assert_eq!(b.current(), renewed);
    assert_eq!(b.all().len(), 2);

    // A lost race on a forced renewal retries on the new ring and keeps every key.
    let before = racing.inner.get(RING_KEY).await.unwrap().unwrap().value;
    let third = a.renew().await.unwrap();
    let after = racing.inner.get(RING_KEY).await.unwrap().unwrap().value;
    racing
        .inner
        .put(RING_KEY, before, Precondition::None)
        .await
        .unwrap();
    *racing.competing_write.lock().unwrap() = Some(after);
    let fourth = b.renew().await.unwrap();
    let ids: Vec<String> = b.all().iter().map(|k| k.key_id().to_string()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[2], third.key_id());
    assert_eq!(ids[3], fourth.key_id());
}

#[tokio::test]
async fn offline_sealing_with_the_served_document() {
    let (_, _, keys) = keys().await;
    let document = keys.current().document();
    assert_eq!(document.algorithm, ALGORITHM);
    let served = serde_json::json!({"request_id": "x", "data": document});
    let forms = [
        served.to_string(),
        serde_json::to_string_pretty(&document).unwrap(),
        format!("{}\n", document.public_key),
        URL_SAFE_NO_PAD.encode(keys.current().public_key.as_bytes()),
    ];
    for form in forms {
        let public = SealingPublicKey::parse(&form).unwrap();
        assert_eq!(public, keys.current().public_key, "{form}");
        let sealed = seal(&public, &db(), b"offline").unwrap();
        assert_eq!(
            keys.unseal(&db(), &sealed).await.unwrap().as_slice(),
            b"offline"
        );
    }
}

#[test]
fn bad_public_key_files_are_refused_with_the_reason() {
    let public = SealingPublicKey::from_bytes(&[9; 32]).unwrap();
    let doc = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"public_key": public.to_base64()});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v.to_string()
    };
    for (text, needle) in [
        ("", "empty"),
        ("  \n", "empty"),
        ("not a key", "not base64"),
        ("AAAA", "3 bytes long"),
        ("{", "looks like JSON"),
        ("{\"data\": {}}", "no \"public_key\""),
        (&doc(serde_json::json!({"algorithm": "RSA"})), "algorithm"),
        (
            &doc(serde_json::json!({"key_id": "0000000000000000"})),
            "does not match",
        ),
        // The all-zero point is of low order: anyone could open what is sealed to it.
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "low-order"),
    ] {
        let err = SealingPublicKey::parse(text).unwrap_err();
        assert!(err.to_string().contains(needle), "{text:?}: {err}");
    }
    assert_eq!(
        SealingPublicKey::parse(&doc(
            serde_json::json!({"algorithm": ALGORITHM, "key_id": public.id()})
        ))
        .unwrap(),
        public
    );
}

#[test]
fn format_round_trips_and_pins_its_shape() {
    let value = SealedValue {
        key_id: "0123456789abcdef".into(),
        binding_tag: "89abcdef".into(),
        payload: (0u8..60).collect(),
    };
    let text = value.to_string();
    assert!(
        text.starts_with("sv:v1:0123456789abcdef:89abcdef:"),
        "{text}"
    );
    assert_eq!(SealedValue::parse(&text).unwrap(), value);
    assert_eq!(SealedValue::parse(&format!("  {text}\n")).unwrap(), value);
    assert_eq!(binding_tag(&db()).len(), BINDING_TAG_LEN);
    // The tag is stable: sealed values in Git must keep their meaning across releases.
    assert_eq!(
        binding_tag(&db()),
        binding_tag(&Binding::new("prod", "db", "password"))
    );
    assert_ne!(
        binding_tag(&db()),
        binding_tag(&Binding::new("prod", "db", "passwore"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = SealedValue::parse(&text);
        let _ = SealingPublicKey::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_near_misses(
        key_id in "[0-9a-fA-F:]{0,20}",
        tag in "[0-9a-f:]{0,10}",
        payload in "[A-Za-z0-9_=+/:-]{0,120}",
        version in prop::sample::select(vec!["v1", "v2", "", "V1"]),
    ) {
        let text = format!("sv:{version}:{key_id}:{tag}:{payload}");
        if let Ok(value) = SealedValue::parse(&text) {
            prop_assert_eq!(SealedValue::parse(&value.to_string()).unwrap(), value);
        }
    }

    #[test]
    fn encode_then_parse_is_identity(
        key_id in "[0-9a-f]{16}",
        tag in "[0-9a-f]{8}",
        payload in prop::collection::vec(any::<u8>(), 48..300),
    ) {
        let value = SealedValue { key_id, binding_tag: tag, payload };
        prop_assert_eq!(SealedValue::parse(&value.to_string()).unwrap(), value);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn unseal_never_panics_and_never_opens_garbage(text in any::<String>(), suffix in "[A-Za-z0-9_-]{0,100}") {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (_, _, keys) = keys().await;
            let id = keys.current().key_id().to_string();
            assert!(keys.unseal(&db(), &text).await.is_err());
            let near = format!("sv:v1:{id}:{}:{suffix}", binding_tag(&db()));
            assert!(keys.unseal(&db(), &near).await.is_err());
        });
    }
}

mod endpoint {
    use super::*;
    use crate::logical::{Operation, Request};
    use crate::vault::{Vault, VaultConfig};

    async fn open_vault(config: VaultConfig) -> Vault {
        Vault::open(Arc::new(MemoryBackend::new()), root(), config)
            .await
            .unwrap()
    }

    fn get(op: Option<Operation>) -> Request {
        Request {
            operation: op,
            is_write: op.is_none(),
            path: "/sys/sealing-key".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn sealing_key_is_served_without_a_token_in_the_envelope() {
        let vault = open_vault(VaultConfig::default()).await;
        let reply = vault.handle(get(Some(Operation::Read))).await;
        assert_eq!(reply.status, 200);
        let body = reply.body.unwrap();
        assert!(body["request_id"].is_string(), "{body}");
        let data = &body["data"];
        let current = vault.sealing_keys().current();
        assert_eq!(data["key_id"], current.key_id());
        assert_eq!(data["public_key"], current.public_key.to_base64());
        assert_eq!(data["algorithm"], ALGORITHM);
        assert!(
            data["creation_time"].as_str().unwrap().ends_with('Z'),
            "{data}"
        );

        // What it serves seals values the vault opens.
        let public = SealingPublicKey::parse(&body.to_string()).unwrap();
        let sealed = seal(&public, &db(), b"via the endpoint").unwrap();
        assert_eq!(
            vault.unseal(&db(), &sealed).await.unwrap().as_slice(),
            b"via the endpoint"
        );

        // Read-only.
        for op in [None, Some(Operation::Delete), Some(Operation::Patch)] {
            let reply = vault.handle(get(op)).await;
            assert_eq!(reply.status, 405, "{op:?}: {:?}", reply.body);
        }
    }

    #[tokio::test]
    async fn maintenance_renews_on_the_configured_period() {
        let vault = open_vault(VaultConfig {
            sealing_key_rotation_period: Duration::from_nanos(1),
            ..Default::default()
        })
        .await;
        let first = vault.sealing_keys().current();
        let sealed = seal(&first.public_key, &db(), b"before").unwrap();
        vault.maintain().await;
        let second = vault.sealing_keys().current();
        assert_ne!(first, second);
        let reply = vault.handle(get(Some(Operation::Read))).await;
        assert_eq!(reply.body.unwrap()["data"]["key_id"], second.key_id());
        assert_eq!(
            vault.unseal(&db(), &sealed).await.unwrap().as_slice(),
            b"before"
        );

        let steady = open_vault(VaultConfig::default()).await;
        let before = steady.sealing_keys().current();
        steady.maintain().await;
        assert_eq!(
            steady.sealing_keys().current(),
            before,
            "30 days have not passed"
        );
    }
}
