use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::crypto::RootKey;
use crate::storage::{Backend, MemoryBackend};

async fn kv() -> Kv {
    let barrier = Barrier::open(Arc::new(MemoryBackend::new()), RootKey::generate())
        .await
        .unwrap();
    Kv::new(Arc::new(barrier), "kv/secret/")
}

fn req(body: Value) -> Request {
    Request {
        data: body.as_object().cloned().unwrap_or_default(),
        ..Default::default()
    }
}

fn patch_req(body: Value) -> Request {
    Request {
        content_type: Some("application/merge-patch+json".into()),
        ..req(body)
    }
}

async fn call(kv: &Kv, op: Operation, path: &str, body: Value) -> ApiResult<Response> {
    kv.handle(op, path, &req(body)).await
}

async fn put(kv: &Kv, path: &str, data: Value) -> Response {
    call(
        kv,
        Operation::Update,
        &format!("data/{path}"),
        json!({ "data": data }),
    )
    .await
    .unwrap()
}

async fn get(kv: &Kv, path: &str) -> ApiResult<Response> {
    call(kv, Operation::Read, &format!("data/{path}"), json!({})).await
}

#[tokio::test]
async fn write_then_read_versions() {
    let kv = kv().await;
    let r1 = put(&kv, "app/db", json!({"password": "one"})).await;
    assert_eq!(r1.data.as_ref().unwrap()["version"], 1);
    assert_eq!(r1.data.as_ref().unwrap()["deletion_time"], "");
    put(&kv, "app/db", json!({"password": "two", "n": 5})).await;
    let latest = get(&kv, "app/db").await.unwrap().data.unwrap();
    assert_eq!(latest["data"], json!({"password": "two", "n": 5}));
    assert_eq!(latest["metadata"]["version"], 2);
    assert_eq!(latest["metadata"]["custom_metadata"], Value::Null);
    let v1 = call(&kv, Operation::Read, "data/app/db", json!({"version": "1"}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(v1["data"]["password"], "one");
    assert_eq!(
        call(&kv, Operation::Read, "data/app/db", json!({"version": 9}))
            .await
            .unwrap_err(),
        ApiError::not_found()
    );
    assert_eq!(get(&kv, "nope").await.unwrap_err(), ApiError::not_found());
}

#[tokio::test]
async fn check_and_set() {
    let kv = kv().await;
    let create_only = json!({"data": {"a": "1"}, "options": {"cas": 0}});
    call(&kv, Operation::Create, "data/x", create_only.clone())
        .await
        .unwrap();
    let err = call(&kv, Operation::Update, "data/x", create_only)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::bad_request("check-and-set parameter did not match the current version")
    );
    call(
        &kv,
        Operation::Update,
        "data/x",
        json!({"data": {"a": "2"}, "options": {"cas": 1}}),
    )
    .await
    .unwrap();
    // cas_required on the secret makes the option mandatory.
    call(
        &kv,
        Operation::Update,
        "metadata/x",
        json!({"cas_required": true}),
    )
    .await
    .unwrap();
    let err = call(
        &kv,
        Operation::Update,
        "data/x",
        json!({"data": {"a": "3"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.errors[0],
        "check-and-set parameter required for this call"
    );
}

#[tokio::test]
async fn bad_bodies_are_400s() {
    let kv = kv().await;
    assert_eq!(
        call(&kv, Operation::Update, "data/x", json!({}))
            .await
            .unwrap_err()
            .errors[0],
        "no data provided"
    );
    let err = call(&kv, Operation::Update, "data/x", json!({"data": "str"}))
        .await
        .unwrap_err();
    assert_eq!(err.status, 400);
    assert!(err.errors[0].contains("\"data\""));
    let err = call(
        &kv,
        Operation::Update,
        "data/x",
        json!({"data": {}, "options": {"cas": "abc"}}),
    )
    .await
    .unwrap_err();
    assert!(err.errors[0].contains("\"cas\""), "{err:?}");
    let err = call(
        &kv,
        Operation::Update,
        "metadata/x",
        json!({"max_versions": "abc"}),
    )
    .await
    .unwrap_err();
    assert!(err.errors[0].contains("\"max_versions\""));
}

#[tokio::test]
async fn max_versions_destroys_the_oldest() {
    let kv = kv().await;
    call(
        &kv,
        Operation::Update,
        "metadata/m",
        json!({"max_versions": 2}),
    )
    .await
    .unwrap();
    for i in 1..=4 {
        put(&kv, "m", json!({"i": i})).await;
    }
    let meta = call(&kv, Operation::Read, "metadata/m", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(meta["current_version"], 4);
    assert_eq!(meta["oldest_version"], 3);
    assert_eq!(
        meta["versions"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["3", "4"]
    );
    assert_eq!(
        call(&kv, Operation::Read, "data/m", json!({"version": 1}))
            .await
            .unwrap_err(),
        ApiError::not_found()
    );
}

#[tokio::test]
async fn default_keeps_ten_versions() {
    let kv = kv().await;
    for i in 1..=12 {
        put(&kv, "ten", json!({"i": i})).await;
    }
    let meta = call(&kv, Operation::Read, "metadata/ten", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(meta["versions"].as_object().unwrap().len(), 10);
    assert_eq!(meta["oldest_version"], 3);
}

#[tokio::test]
async fn soft_delete_undelete_destroy() {
    let kv = kv().await;
    put(&kv, "s", json!({"v": "1"})).await;
    put(&kv, "s", json!({"v": "2"})).await;
    let deleted = call(&kv, Operation::Delete, "data/s", json!({}))
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let read = get(&kv, "s").await.unwrap();
    assert_eq!(read.status, Some(404));
    let body = read.data.unwrap();
    assert_eq!(body["data"], Value::Null);
    assert_ne!(body["metadata"]["deletion_time"], "");
    call(
        &kv,
        Operation::Update,
        "undelete/s",
        json!({"versions": [2]}),
    )
    .await
    .unwrap();
    assert_eq!(get(&kv, "s").await.unwrap().data.unwrap()["data"]["v"], "2");
    call(&kv, Operation::Update, "delete/s", json!({"versions": [1]}))
        .await
        .unwrap();
    assert_eq!(
        call(&kv, Operation::Read, "data/s", json!({"version": 1}))
            .await
            .unwrap()
            .status,
        Some(404)
    );
    call(
        &kv,
        Operation::Update,
        "destroy/s",
        json!({"versions": "2"}),
    )
    .await
    .unwrap();
    let read = get(&kv, "s").await.unwrap();
    assert_eq!(read.status, Some(404));
    assert_eq!(read.data.unwrap()["metadata"]["destroyed"], true);
    // A destroyed version cannot be brought back.
    call(
        &kv,
        Operation::Update,
        "undelete/s",
        json!({"versions": [2]}),
    )
    .await
    .unwrap();
    assert_eq!(get(&kv, "s").await.unwrap().status, Some(404));
    let err = call(&kv, Operation::Update, "delete/s", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.errors[0], "No version number provided");
}

#[tokio::test]
async fn destroy_removes_the_stored_blob() {
    let backend = Arc::new(MemoryBackend::new());
    let barrier = Barrier::open(backend.clone(), RootKey::generate())
        .await
        .unwrap();
    let kv = Kv::new(Arc::new(barrier), "kv/secret/");
    put(&kv, "d", json!({"v": "1"})).await;
    assert_eq!(backend.list("kv/secret/blob/").await.unwrap().len(), 1);
    call(
        &kv,
        Operation::Update,
        "destroy/d",
        json!({"versions": [1]}),
    )
    .await
    .unwrap();
    assert!(backend.list("kv/secret/blob/").await.unwrap().is_empty());
    call(&kv, Operation::Delete, "metadata/d", json!({}))
        .await
        .unwrap();
    assert!(backend.list("kv/secret/").await.unwrap().is_empty());
}

#[tokio::test]
async fn patch_merges_into_a_new_version() {
    let kv = kv().await;
    put(&kv, "p", json!({"a": "1", "b": {"c": "2", "d": "3"}})).await;
    let plain = call(&kv, Operation::Patch, "data/p", json!({"data": {"a": "x"}}))
        .await
        .unwrap_err();
    assert_eq!(plain.status, 415);
    let r = kv
        .handle(
            Operation::Patch,
            "data/p",
            &patch_req(json!({"data": {"a": null, "b": {"d": "4"}, "e": "5"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.data.unwrap()["version"], 2);
    assert_eq!(
        get(&kv, "p").await.unwrap().data.unwrap()["data"],
        json!({"b": {"c": "2", "d": "4"}, "e": "5"})
    );
    let missing = kv
        .handle(
            Operation::Patch,
            "data/none",
            &patch_req(json!({"data": {"a": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.into_body("r"), None, "a bare 404, as Vault answers");
    let bad_cas = kv
        .handle(
            Operation::Patch,
            "data/p",
            &patch_req(json!({"data": {"a": "1"}, "options": {"cas": 1}})),
        )
        .await
        .unwrap_err();
    assert_eq!(bad_cas.status, 400);
}

#[tokio::test]
async fn metadata_and_custom_metadata() {
    let kv = kv().await;
    call(
        &kv,
        Operation::Update,
        "metadata/c",
        json!({"custom_metadata": {"owner": "team-a"}, "delete_version_after": "1h"}),
    )
    .await
    .unwrap();
    let meta = call(&kv, Operation::Read, "metadata/c", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(meta["current_version"], 0);
    assert_eq!(meta["custom_metadata"]["owner"], "team-a");
    assert_eq!(meta["delete_version_after"], "1h0m0s");
    let written = put(&kv, "c", json!({"k": "v"})).await.data.unwrap();
    assert_eq!(written["custom_metadata"]["owner"], "team-a");
    assert_ne!(
        written["deletion_time"], "",
        "delete_version_after schedules deletion"
    );
    kv.handle(
        Operation::Patch,
        "metadata/c",
        &patch_req(json!({"custom_metadata": {"owner": null, "tier": "1"}})),
    )
    .await
    .unwrap();
    let meta = call(&kv, Operation::Read, "metadata/c", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(meta["custom_metadata"], json!({"tier": "1"}));
    let too_long = "x".repeat(600);
    let err = call(
        &kv,
        Operation::Update,
        "metadata/c",
        json!({"custom_metadata": {"a": too_long}}),
    )
    .await
    .unwrap_err();
    assert!(
        err.errors[0]
            .contains("custom_metadata validation failed: length of value for key \"a\" is 600"),
        "{err:?}"
    );
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let err = call(
        &kv,
        Operation::Update,
        "metadata/c",
        json!({"custom_metadata": many}),
    )
    .await
    .unwrap_err();
    assert!(err.errors[0].contains("at most 64 keys"));
}

/// Vault's durations are Go's `time.Duration`: at most 2562047h47m16.854775807s. Longer
/// ones were accepted here and made the next write panic computing its deletion time.
#[tokio::test]
async fn delete_version_after_is_bounded_like_vault() {
    let kv = kv().await;
    for path in ["metadata/huge", "config"] {
        for too_long in [
            json!(99_999_999_999_999_u64),
            json!(u64::MAX),
            json!("2562048h"),
        ] {
            let err = call(
                &kv,
                Operation::Update,
                path,
                json!({"delete_version_after": too_long}),
            )
            .await
            .unwrap_err();
            assert_eq!(err.status, 400, "{path} {too_long}: {err}");
            assert!(
                err.errors[0]
                    .starts_with("error converting input for field \"delete_version_after\""),
                "{err}"
            );
        }
        call(
            &kv,
            Operation::Update,
            path,
            json!({"delete_version_after": 9_223_372_036_u64}),
        )
        .await
        .unwrap();
    }
    let written = put(&kv, "huge", json!({"k": "v"})).await.data.unwrap();
    let deletion: DateTime<Utc> = written["deletion_time"].as_str().unwrap().parse().unwrap();
    assert!(deletion > Utc::now() + chrono::Duration::days(365 * 290));
    assert!(get(&kv, "huge").await.is_ok());
}

#[tokio::test]
async fn list_folders() {
    let kv = kv().await;
    for p in ["a/b", "a/c/d", "top"] {
        put(&kv, p, json!({"x": "1"})).await;
    }
    let root = call(&kv, Operation::List, "metadata/", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(root["keys"], json!(["a/", "top"]));
    let a = call(&kv, Operation::List, "metadata/a/", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(a["keys"], json!(["b", "c/"]));
    assert_eq!(
        call(&kv, Operation::List, "metadata/zzz/", json!({}))
            .await
            .unwrap_err(),
        ApiError::not_found()
    );
}

#[tokio::test]
async fn config_applies_to_the_mount() {
    let kv = kv().await;
    call(
        &kv,
        Operation::Update,
        "config",
        json!({"max_versions": 3, "cas_required": true}),
    )
    .await
    .unwrap();
    let cfg = call(&kv, Operation::Read, "config", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        cfg,
        json!({"cas_required": true, "delete_version_after": "0s", "max_versions": 3})
    );
    let err = call(
        &kv,
        Operation::Update,
        "data/q",
        json!({"data": {"a": "1"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.errors[0],
        "check-and-set parameter required for this call"
    );
}

#[tokio::test]
async fn subkeys_hide_values() {
    let kv = kv().await;
    put(
        &kv,
        "sk",
        json!({"a": "secret", "b": {"c": "secret", "d": {"e": 1}}}),
    )
    .await;
    let r = call(&kv, Operation::Read, "subkeys/sk", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        r["subkeys"],
        json!({"a": null, "b": {"c": null, "d": {"e": null}}})
    );
    let r = call(&kv, Operation::Read, "subkeys/sk", json!({"depth": 1}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(r["subkeys"], json!({"a": null, "b": null}));
}

#[tokio::test]
async fn unknown_paths_and_operations() {
    let kv = kv().await;
    let r = call(&kv, Operation::Read, "nope/x", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, Some(404));
    assert!(r.warnings[0].contains("Invalid path for a versioned K/V secrets engine"));
    assert_eq!(
        call(&kv, Operation::List, "data/x", json!({}))
            .await
            .unwrap_err()
            .status,
        405
    );
    assert_eq!(
        call(&kv, Operation::Read, "data/../x", json!({}))
            .await
            .unwrap_err()
            .status,
        400
    );
}

/// Found by the `kv_request` fuzz target: a path too long for a storage key reached the
/// backend, which refused it, and came back as a 500.
#[tokio::test]
async fn paths_too_long_to_store_are_400s() {
    let kv = kv().await;
    let longest = crate::storage::MAX_KEY_LEN - "kv/secret/meta/".len();
    let fits = "p".repeat(longest);
    put(&kv, &fits, json!({"a": "b"})).await;
    assert!(kv.exists(&format!("data/{fits}")).await.unwrap());

    let long = "p".repeat(longest + 1);
    assert!(!kv.exists(&format!("data/{long}")).await.unwrap());
    assert!(!kv.exists(&format!("metadata/{long}")).await.unwrap());
    let data = json!({"data": {"a": "b"}, "versions": [1], "max_versions": 2});
    for (op, head) in [
        (Operation::Create, "data"),
        (Operation::Read, "data"),
        (Operation::Delete, "data"),
        (Operation::Create, "metadata"),
        (Operation::Read, "metadata"),
        (Operation::Delete, "metadata"),
        (Operation::List, "metadata"),
        (Operation::Update, "delete"),
        (Operation::Update, "undelete"),
        (Operation::Update, "destroy"),
        (Operation::Read, "subkeys"),
    ] {
        let err = call(&kv, op, &format!("{head}/{long}"), data.clone())
            .await
            .unwrap_err();
        assert_eq!(err.status, 400, "{op:?} {head}: {err}");
        assert!(
            err.errors[0].starts_with(&format!(
                "invalid secret path: it is {} bytes long; the longest this mount stores is {longest} bytes",
                long.len()
            )),
            "{err}"
        );
    }
    let err = kv
        .handle(Operation::Patch, &format!("data/{long}"), &patch_req(data))
        .await
        .unwrap_err();
    assert_eq!(err.status, 400, "{err}");
}

#[tokio::test]
async fn concurrent_writers_never_lose_a_version() {
    let kv = Arc::new(kv().await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            put(&kv, "race", json!({"writer": i})).await
        }));
    }
    let mut versions: Vec<u64> = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().data.unwrap()["version"].as_u64().unwrap());
    }
    versions.sort();
    assert_eq!(versions, (1..=16).collect::<Vec<_>>());
}

#[test]
fn merge_patch_follows_rfc7386() {
    let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
    merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
    assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
    let mut doc = json!({"a": [1]});
    merge_patch(&mut doc, &json!({"a": {"b": 1}}));
    assert_eq!(doc, json!({"a": {"b": 1}}));
}

/// The change log's answer to "did `name` change since `index`?", and the next index.
fn changed_since(kv: &Kv, index: &str, name: &str) -> (bool, String) {
    let out = kv.changes().poll(Some(index), &[name]);
    assert!(!out.reset, "the log kept every change");
    (out.changed == vec![0], out.index)
}

#[tokio::test]
async fn every_change_to_a_secret_is_published_once_stored() {
    let kv = kv().await;
    let mut index = kv.changes().current_index();
    // Each step changes `app/db` through a different operation and must be published.
    type Step = (&'static str, Operation, &'static str, Value);
    let steps: Vec<Step> = vec![
        (
            "write",
            Operation::Create,
            "data/app/db",
            json!({"data": {"a": "1"}}),
        ),
        (
            "update",
            Operation::Update,
            "data/app/db",
            json!({"data": {"a": "2"}}),
        ),
        (
            "soft delete latest",
            Operation::Delete,
            "data/app/db",
            json!({}),
        ),
        (
            "undelete",
            Operation::Update,
            "undelete/app/db",
            json!({"versions": [2]}),
        ),
        (
            "delete versions",
            Operation::Update,
            "delete/app/db",
            json!({"versions": [1]}),
        ),
        (
            "destroy",
            Operation::Update,
            "destroy/app/db",
            json!({"versions": [1]}),
        ),
        (
            "metadata write",
            Operation::Update,
            "metadata/app/db",
            json!({"max_versions": 1}),
        ),
        // With max_versions 1 this write also trims version 2 away.
        (
            "write that trims",
            Operation::Update,
            "data/app/db",
            json!({"data": {"a": "3"}}),
        ),
        (
            "metadata delete",
            Operation::Delete,
            "metadata/app/db",
            json!({}),
        ),
    ];
    for (what, op, path, body) in steps {
        call(&kv, op, path, body).await.unwrap();
        let (changed, next) = changed_since(&kv, &index, "app/db");
        assert!(changed, "{what} was not published");
        index = next;
    }
    // PATCH of data and of metadata (they need the merge-patch content type).
    put(&kv, "app/db", json!({"a": "4"})).await;
    index = kv.changes().current_index();
    kv.handle(
        Operation::Patch,
        "data/app/db",
        &patch_req(json!({"data": {"b": "5"}})),
    )
    .await
    .unwrap();
    let (changed, next) = changed_since(&kv, &index, "app/db");
    assert!(changed, "data patch was not published");
    index = next;
    kv.handle(
        Operation::Patch,
        "metadata/app/db",
        &patch_req(json!({"custom_metadata": {"owner": "x"}})),
    )
    .await
    .unwrap();
    let (changed, next) = changed_since(&kv, &index, "app/db");
    assert!(changed, "metadata patch was not published");
    index = next;
    // The in-process write the operator uses.
    kv.write("app/db", Map::new(), None).await.unwrap();
    let (changed, next) = changed_since(&kv, &index, "app/db");
    assert!(changed, "Kv::write was not published");
    index = next;

    // Nothing that leaves the secret as it was is published: reads, lists, a failed
    // check-and-set, mount config, and deletes of a secret that does not exist.
    get(&kv, "app/db").await.unwrap();
    call(&kv, Operation::Read, "metadata/app/db", json!({}))
        .await
        .unwrap();
    call(&kv, Operation::List, "metadata/app/", json!({}))
        .await
        .unwrap();
    call(
        &kv,
        Operation::Update,
        "data/app/db",
        json!({"data": {"x": "y"}, "options": {"cas": 99}}),
    )
    .await
    .unwrap_err();
    call(&kv, Operation::Update, "config", json!({"max_versions": 4}))
        .await
        .unwrap();
    call(&kv, Operation::Delete, "data/missing", json!({}))
        .await
        .unwrap();
    call(&kv, Operation::Delete, "metadata/missing", json!({}))
        .await
        .unwrap();
    assert_eq!(kv.changes().current_index(), index, "nothing was published");

    // A change is published under the secret's name only.
    put(&kv, "app/other", json!({"a": "1"})).await;
    assert!(!changed_since(&kv, &index, "app/db").0);
    assert!(changed_since(&kv, &index, "app/other").0);
}
