//! `svctl kv …`: KV version 2, addressed like the Vault CLI addresses it. The mount is found
//! with `sys/internal/ui/mounts/<path>` (or given with `-mount`), and `data/`, `metadata/`,
//! `delete/`, `undelete/` or `destroy/` goes between the mount and the secret's path.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{connect, output_path};
use crate::Error;
use crate::args::{
    HttpArgs, KvCommand, KvDeleteArgs, KvGetArgs, KvListArgs, KvMetadataCommand,
    KvMetadataDeleteArgs, KvMetadataGetArgs, KvMetadataPutArgs, KvPatchArgs, KvPutArgs,
    KvVersionsArgs,
};
use crate::client::{Body, Client, ClientError};
use crate::kvdata::parse_args_data;
use crate::output::{Format, Json, Ui, header_for_keys, table};
use crate::secret::{Secret, output_map, output_secret, print_raw_field, print_warnings};

/// The mount svctl assumes when a path names no mount.
pub const DEFAULT_MOUNT: &str = "secret";

pub fn run(cmd: KvCommand, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    match cmd {
        KvCommand::Put(a) => put(a, http, ui),
        KvCommand::Get(a) => get(a, http, ui),
        KvCommand::Patch(a) => patch(a, http, ui),
        KvCommand::List(a) => list(a, http, ui),
        KvCommand::Delete(a) => delete(a, http, ui),
        KvCommand::Undelete(a) => versions_op(a, "undelete", http, ui),
        KvCommand::Destroy(a) => versions_op(a, "destroy", http, ui),
        KvCommand::Metadata(KvMetadataCommand::Get(a)) => metadata_get(a, http, ui),
        KvCommand::Metadata(KvMetadataCommand::Put(a)) => metadata_put(a, http, ui),
        KvCommand::Metadata(KvMetadataCommand::Delete(a)) => metadata_delete(a, http, ui),
    }
}

/// A secret's place: its KV v2 mount (`secret/`) and its path inside it (`app/db`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvTarget {
    pub mount: String,
    pub path: String,
}

impl KvTarget {
    /// `<mount>/<prefix>/<path>`, cleaned like Go's `path.Join`.
    pub fn api_path(&self, prefix: &str) -> String {
        clean_join(&[&self.mount, prefix, &self.path])
    }
}

/// Trims whitespace and leading/trailing slashes (the Vault CLI's `sanitizePath`).
pub fn sanitize_path(path: &str) -> String {
    path.trim()
        .trim_start_matches('/')
        .trim_end_matches('/')
        .trim()
        .to_owned()
}

/// Go's `path.Join` for relative paths: empty and `.` segments dropped, `..` resolved.
pub fn clean_join(parts: &[&str]) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for part in parts {
        for segment in part.split('/') {
            match segment {
                "" | "." => {}
                ".." if segments.last().is_some_and(|s| *s != "..") => {
                    segments.pop();
                }
                s => segments.push(s),
            }
        }
    }
    segments.join("/")
}

/// Where a mount's answer to `sys/internal/ui/mounts` puts the path: the part after the mount.
fn strip_mount<'p>(path: &'p str, mount: &str) -> &'p str {
    let mount = mount.trim_end_matches('/');
    if path == mount {
        ""
    } else if let Some(rest) = path.strip_prefix(mount).and_then(|r| r.strip_prefix('/')) {
        rest
    } else {
        path
    }
}

/// What `sys/internal/ui/mounts/<path>` says about a path's mount.
struct Mount {
    path: String,
    version: u8,
}

fn preflight(client: &Client, path: &str) -> Result<Mount, ClientError> {
    let response = client.send(
        Method::GET,
        &format!("sys/internal/ui/mounts/{path}"),
        &[],
        Body::None,
    )?;
    // Servers without the endpoint predate KV v2 detection: the Vault CLI assumes version 1.
    if response.status == reqwest::StatusCode::NOT_FOUND {
        return Ok(Mount {
            path: String::new(),
            version: 1,
        });
    }
    let Some(secret) = client.secret_from(response)? else {
        return Err(ClientError::Unexpected(
            "nil response from pre-flight request".to_owned(),
        ));
    };
    let mount_path = secret
        .data_field("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let version = match secret
        .data_field("options")
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str)
    {
        Some("2") => 2,
        _ => 1,
    };
    Ok(Mount {
        path: mount_path,
        version,
    })
}

/// Finds the mount of `path` as the Vault CLI does; a path that names no mount the token
/// can see is looked for under `secret/` instead.
pub fn resolve(client: &Client, mount_flag: Option<&str>, path: &str) -> Result<KvTarget, Error> {
    let path = sanitize_path(path);
    let (mount, relative) = match mount_flag.map(sanitize_path).filter(|m| !m.is_empty()) {
        Some(flag) => (preflight(client, &flag)?, path),
        None => {
            let first = preflight(client, &path);
            // bao answers 403 for a path under no mount; older servers 404 (seen as an
            // unnamed version 1 mount).
            let names_no_mount = match &first {
                Ok(mount) => mount.path.is_empty(),
                Err(e) => matches!(e.status(), Some(400 | 403 | 404)),
            };
            let fallback = if names_no_mount && path.split('/').next() != Some(DEFAULT_MOUNT) {
                preflight(client, &clean_join(&[DEFAULT_MOUNT, &path]))
                    .ok()
                    .filter(|m| m.version == 2)
            } else {
                None
            };
            match (fallback, first) {
                (Some(mount), _) => (mount, path),
                (None, Ok(mount)) => {
                    let relative = strip_mount(&path, &mount.path).to_owned();
                    (mount, relative)
                }
                (None, Err(e)) => return Err(e.into()),
            }
        }
    };
    if mount.version != 2 || mount.path.is_empty() {
        let name = if mount.path.is_empty() {
            path_head(mount_flag, &relative)
        } else {
            mount.path.clone()
        };
        return Err(Error::Remote(format!(
            "{name} is not a KV version 2 mount, and svctl supports only KV version 2; \
             check the path, or name a KV v2 mount with -mount=NAME"
        )));
    }
    Ok(KvTarget {
        mount: mount.path,
        path: relative,
    })
}

fn path_head(mount_flag: Option<&str>, path: &str) -> String {
    match mount_flag {
        Some(m) => format!("{}/", sanitize_path(m)),
        None => format!("{}/", path.split('/').next().unwrap_or_default()),
    }
}

/// `-versions=1,2 -versions=3` → `[1, 2, 3]`.
pub fn parse_versions(flags: &[String]) -> Result<Vec<u64>, Error> {
    let mut versions = Vec::new();
    for flag in flags {
        for part in flag.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let version = part.parse::<u64>().map_err(|_| {
                Error::Usage(format!(
                    "invalid version {part:?} in -versions: versions are positive integers, like -versions=1,2"
                ))
            })?;
            versions.push(version);
        }
    }
    Ok(versions)
}

fn raw_field(
    ui: &mut Ui,
    format: Format,
    value: Option<Value>,
    field: &str,
    kind: &str,
    secret: Option<&Secret>,
) -> Result<(), Error> {
    print_raw_field(ui, format, value, field, kind, secret).map_err(Error::Usage)
}

fn non_null(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn get(a: KvGetArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let client = connect(http, ui)?;
    let target = resolve(&client, a.mount.mount.as_deref(), &a.path)?;
    let full = target.api_path("data");
    let version = a.version.filter(|v| *v > 0).map(|v| v.to_string());
    let query: Vec<(&str, &str)> = version.iter().map(|v| ("version", v.as_str())).collect();
    let secret = client
        .read(&full, &query)
        .map_err(|e| Error::api(format!("Error reading {full}"), e))?;
    let Some(secret) = secret else {
        return Err(Error::Remote(format!("No value found at {full}")));
    };
    let format = a.format.format;

    if let Some(field) = &a.field.field {
        let Some(data) = non_null(secret.data_field("data")) else {
            return Err(Error::Remote(format!("No data found at {full}")));
        };
        let data = data.as_object();
        if field == "data" {
            // "-field=data" is a key named data if there is one, else the whole data block.
            if let Some(inner) = data.filter(|d| d.contains_key("data")) {
                return raw_field(
                    ui,
                    format,
                    non_null(inner.get("data")).cloned(),
                    field,
                    "map",
                    None,
                );
            }
            return raw_field(
                ui,
                format,
                secret.raw_field("data"),
                field,
                "secret",
                Some(&secret),
            );
        }
        let value = non_null(data.and_then(|d| d.get(field.as_str()))).cloned();
        return raw_field(ui, format, value, field, "map", None);
    }

    if format == Format::Json || secret.wrap_info.is_some() {
        output_secret(ui, format, &secret);
        return Ok(());
    }
    print_warnings(ui, &secret);
    output_path(ui, &full, "Secret Path");
    if let Some(metadata) = non_null(secret.data_field("metadata")) {
        let metadata = metadata.as_object().cloned().unwrap_or_default();
        ui.output(&header_for_keys("Metadata", metadata.keys()));
        output_map(ui, Format::Table, &metadata);
        ui.output("");
    }
    if let Some(data) = non_null(secret.data_field("data")).and_then(Value::as_object) {
        ui.output(&header_for_keys("Data", data.keys()));
        output_map(ui, Format::Table, data);
    }
    Ok(())
}

/// What `kv put` and `kv patch` print after a write.
fn output_write(
    ui: &mut Ui,
    format: Format,
    field: Option<&str>,
    full: &str,
    secret: Option<Secret>,
) -> Result<(), Error> {
    let Some(secret) = secret else {
        if format == Format::Table {
            ui.output(&format!("Success! Data written to: {full}"));
        }
        return Ok(());
    };
    if let Some(field) = field {
        return raw_field(
            ui,
            format,
            secret.raw_field(field),
            field,
            "secret",
            Some(&secret),
        );
    }
    if secret.wrap_info.is_some() || format == Format::Json {
        output_secret(ui, format, &secret);
        return Ok(());
    }
    print_warnings(ui, &secret);
    output_path(ui, full, "Secret Path");
    let metadata = secret.data.clone().unwrap_or_default();
    ui.output(&header_for_keys("Metadata", metadata.keys()));
    output_map(ui, Format::Table, &metadata);
    Ok(())
}

fn put(a: KvPutArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let Some(path) = a.path else {
        return Err(Error::Usage(
            "Not enough arguments (expected >1, got 0)".to_owned(),
        ));
    };
    if a.data.is_empty() {
        return Err(Error::Usage("Must supply data".to_owned()));
    }
    let data = parse_args_data(&a.data, ui.stdin)
        .map_err(|e| Error::Usage(format!("Failed to parse K=V data: {e}")))?;
    let client = connect(http, ui)?;
    let target = resolve(&client, a.mount.mount.as_deref(), &path)?;
    let full = target.api_path("data");
    let mut options = Map::new();
    if let Some(cas) = a.cas.filter(|c| *c >= 0) {
        options.insert("cas".to_owned(), cas.into());
    }
    let body = json!({ "data": data, "options": options });
    let secret = client
        .write(Method::PUT, &full, Body::Json(&body))
        .map_err(|e| Error::api(format!("Error writing data to {full}"), e))?;
    output_write(ui, a.format.format, a.field.field.as_deref(), &full, secret)
}

fn patch(a: KvPatchArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let Some(path) = a.path else {
        return Err(Error::Usage(
            "Not enough arguments (expected >1, got 0)".to_owned(),
        ));
    };
    if a.data.is_empty() && a.remove_data.is_empty() {
        return Err(Error::Usage("Must supply data".to_owned()));
    }
    let method = a.method.as_deref().unwrap_or_default();
    if !matches!(method, "" | "patch" | "rw") {
        return Err(Error::Usage(format!(
            "Unsupported method provided to -method flag: {method} (use \"patch\" or \"rw\")"
        )));
    }
    let mut changes = parse_args_data(&a.data, ui.stdin)
        .map_err(|e| Error::Usage(format!("Failed to parse K=V data: {e}")))?;
    for key in &a.remove_data {
        // A null in a JSON merge patch removes the key.
        changes.insert(key.clone(), Value::Null);
    }
    let client = connect(http, ui)?;
    let target = resolve(&client, a.mount.mount.as_deref(), &path)?;
    let full = target.api_path("data");
    let format = a.format.format;
    let secret = match method {
        "rw" => read_then_write(&client, &full, changes)?,
        _ => {
            let mut options = Map::new();
            if let Some(cas) = a.cas.filter(|c| *c > 0) {
                options.insert("cas".to_owned(), cas.into());
            }
            let body = json!({ "data": changes, "options": options });
            match client.write(Method::PATCH, &full, Body::MergePatch(&body)) {
                Ok(secret) => secret,
                // Servers without PATCH, or tokens without the patch capability: the Vault
                // CLI falls back to read-then-write unless -method=patch was asked for.
                Err(e) if method.is_empty() && matches!(e.status(), Some(403 | 405)) => {
                    if e.status() == Some(403) {
                        ui.error(&format!(
                            "Data was written to {full} but we recommend that you add the \"patch\" \
                             capability to your ACL policy in order to use HTTP PATCH in the future."
                        ));
                    }
                    read_then_write(&client, &full, changes)?
                }
                Err(e) => return Err(Error::api(format!("Error writing data to {full}"), e)),
            }
        }
    };
    output_write(ui, format, a.field.field.as_deref(), &full, secret)
}

/// `kv patch -method=rw`: read the current version, merge, and write it back with
/// check-and-set on the version read.
fn read_then_write(
    client: &Client,
    full: &str,
    changes: Map<String, Value>,
) -> Result<Option<Secret>, Error> {
    let secret = client
        .read(full, &[])
        .map_err(|e| Error::api(format!("Error doing pre-read at {full}"), e))?
        .filter(|s| s.data.is_some())
        .ok_or_else(|| Error::Remote(format!("No value found at {full}")))?;
    let metadata = non_null(secret.data_field("metadata"))
        .ok_or_else(|| {
            Error::Remote(format!(
                "No metadata found at {full}; patch only works on existing data"
            ))
        })?
        .as_object()
        .ok_or_else(|| {
            Error::Remote(format!(
                "Metadata found at {full} is not the expected type (JSON object)"
            ))
        })?;
    let mut data = non_null(secret.data_field("data"))
        .ok_or_else(|| {
            Error::Remote(format!(
                "No data found at {full}; patch only works on existing data"
            ))
        })?
        .as_object()
        .ok_or_else(|| {
            Error::Remote(format!(
                "Data found at {full} is not the expected type (JSON object)"
            ))
        })?
        .clone();
    for (key, value) in changes {
        if value.is_null() {
            data.remove(&key);
        } else {
            data.insert(key, value);
        }
    }
    let cas = metadata.get("version").cloned().unwrap_or(Value::Null);
    let body = json!({ "data": data, "options": { "cas": cas } });
    client
        .write(Method::PUT, full, Body::Json(&body))
        .map_err(|e| Error::api(format!("Error writing data to {full}"), e))
}

fn list(a: KvListArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let client = connect(http, ui)?;
    let (mount, path) = match (&a.mount.mount, &a.path) {
        (Some(mount), path) => (Some(mount.as_str()), path.clone().unwrap_or_default()),
        (None, Some(path)) => (None, path.clone()),
        // With neither, list the root of the default mount.
        (None, None) => (Some(DEFAULT_MOUNT), String::new()),
    };
    let target = resolve(&client, mount, &path)?;
    let full = target.api_path("metadata");
    let secret = client
        .list(&full)
        .map_err(|e| Error::api(format!("Error listing {full}"), e))?;
    let keys = secret
        .as_ref()
        .and_then(|s| s.data_field("keys"))
        .and_then(Value::as_array);
    let format = a.format.format;
    if format == Format::Json {
        let Some(keys) = keys else {
            ui.output("{}");
            return Err(Error::Reported(2));
        };
        ui.output(&Json::from(&Value::Array(keys.clone())).pretty());
        return Ok(());
    }
    let Some(secret) = secret.as_ref().filter(|s| s.data.is_some()) else {
        return Err(Error::Remote(format!("No value found at {full}")));
    };
    let Some(keys) = keys else {
        return Err(Error::Remote(format!("No entries found at {full}")));
    };
    print_warnings(ui, secret);
    let mut names = Vec::with_capacity(keys.len());
    for key in keys {
        let name = key.as_str().ok_or_else(|| {
            Error::Remote(format!(
                "The server listed {key} at {full}, which is not a string"
            ))
        })?;
        names.push(name.to_owned());
    }
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    ui.output(&table(
        &["Keys"],
        names.into_iter().map(|n| vec![n]).collect(),
    ));
    Ok(())
}

fn delete(a: KvDeleteArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let versions = parse_versions(&a.versions)?;
    let client = connect(http, ui)?;
    let target = resolve(&client, a.mount.mount.as_deref(), &a.path)?;
    let full = target.api_path("data");
    let result = if versions.is_empty() {
        client.write(Method::DELETE, &full, Body::None)
    } else {
        let body = json!({ "versions": versions });
        client.write(Method::PUT, &target.api_path("delete"), Body::Json(&body))
    };
    let secret = result.map_err(|e| Error::api(format!("Error deleting {full}"), e))?;
    let format = a.format.format;
    let Some(secret) = secret else {
        if format == Format::Table {
            ui.output(&format!("Success! Data deleted (if it existed) at: {full}"));
        }
        return Ok(());
    };
    if let Some(field) = &a.field.field {
        return raw_field(
            ui,
            format,
            secret.raw_field(field),
            field,
            "secret",
            Some(&secret),
        );
    }
    output_secret(ui, format, &secret);
    Ok(())
}

/// `kv undelete` and `kv destroy`.
fn versions_op(a: KvVersionsArgs, op: &str, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let versions = parse_versions(&a.versions)?;
    if versions.is_empty() {
        return Err(Error::Usage(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {op}."
        )));
    }
    let client = connect(http, ui)?;
    let target = resolve(&client, a.mount.mount.as_deref(), &a.path)?;
    let full = target.api_path(op);
    let body = json!({ "versions": versions });
    let secret = client
        .write(Method::PUT, &full, Body::Json(&body))
        .map_err(|e| Error::api(format!("Error writing data to {full}"), e))?;
    match secret {
        None if a.format.format == Format::Table => {
            ui.output(&format!("Success! Data written to: {full}"))
        }
        None => {}
        Some(secret) => output_secret(ui, a.format.format, &secret),
    }
    Ok(())
}

fn metadata_get(a: KvMetadataGetArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let client = connect(http, ui)?;
    let target = resolve(&client, a.mount.mount.as_deref(), &a.path)?;
    let full = target.api_path("metadata");
    let secret = client
        .read(&full, &[])
        .map_err(|e| Error::api(format!("Error reading {full}"), e))?;
    let Some(mut secret) = secret else {
        return Err(Error::Remote(format!("No value found at {full}")));
    };
    let format = a.format.format;
    if format == Format::Json || secret.wrap_info.is_some() {
        output_secret(ui, format, &secret);
        return Ok(());
    }
    let versions = secret
        .data
        .as_mut()
        .and_then(|d| d.remove("versions"))
        .filter(|v| !v.is_null());
    let Some(versions) = versions else {
        ui.error(&format!("No value found at {full}"));
        output_secret(ui, format, &secret);
        return Err(Error::Reported(2));
    };
    output_path(ui, &full, "Metadata Path");
    let keys: Vec<String> = secret.data.iter().flat_map(|d| d.keys().cloned()).collect();
    ui.output(&header_for_keys("Metadata", keys.iter()));
    output_secret(ui, Format::Table, &secret);

    let versions = versions.as_object().cloned().unwrap_or_default();
    let mut numbered = Vec::with_capacity(versions.len());
    for (key, value) in versions {
        let number: i64 = key
            .parse()
            .map_err(|_| Error::Remote(format!("Error parsing version {key}")))?;
        numbered.push((number, value));
    }
    numbered.sort_by_key(|(n, _)| *n);
    for (number, value) in numbered {
        let fields = value.as_object().cloned().unwrap_or_default();
        ui.output(&format!(
            "\n{}",
            header_for_keys(&format!("Version {number}"), fields.keys())
        ));
        output_map(ui, Format::Table, &fields);
    }
    Ok(())
}

fn metadata_put(a: KvMetadataPutArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let client = connect(http, ui)?;
    let target = resolve(&client, a.mount.mount.as_deref(), &a.path)?;
    let full = target.api_path("metadata");
    let mut body = Map::new();
    if let Some(max) = a.max_versions.filter(|m| *m >= 0) {
        body.insert("max_versions".to_owned(), max.into());
    }
    if let Some(after) = a.delete_version_after {
        body.insert("delete_version_after".to_owned(), after.to_string().into());
    }
    if let Some(required) = a.cas_required {
        body.insert("cas_required".to_owned(), required.into());
    }
    if !a.custom_metadata.is_empty() {
        let custom: Map<String, Value> = a
            .custom_metadata
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        body.insert("custom_metadata".to_owned(), Value::Object(custom));
    }
    let body = Value::Object(body);
    let secret = client
        .write(Method::PUT, &full, Body::Json(&body))
        .map_err(|e| Error::api(format!("Error writing data to {full}"), e))?;
    match secret {
        None if a.format.format == Format::Table => {
            ui.output(&format!("Success! Data written to: {full}"))
        }
        None => {}
        Some(secret) => output_secret(ui, a.format.format, &secret),
    }
    Ok(())
}

fn metadata_delete(a: KvMetadataDeleteArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let client = connect(http, ui)?;
    let target = resolve(&client, a.mount.mount.as_deref(), &a.path)?;
    let full = target.api_path("metadata");
    client
        .write(Method::DELETE, &full, Body::None)
        .map_err(|e| Error::api(format!("Error deleting {full}"), e))?;
    ui.output(&format!("Success! Data deleted (if it existed) at: {full}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_like_go() {
        let t = KvTarget {
            mount: "secret/".into(),
            path: "app/db".into(),
        };
        assert_eq!(t.api_path("data"), "secret/data/app/db");
        let root = KvTarget {
            mount: "secret/".into(),
            path: String::new(),
        };
        assert_eq!(root.api_path("metadata"), "secret/metadata");
        assert_eq!(
            clean_join(&["secret/", "data", "a/./b/../c//"]),
            "secret/data/a/c"
        );
    }

    #[test]
    fn sanitizing_and_stripping_mounts() {
        assert_eq!(sanitize_path(" /secret/foo/ "), "secret/foo");
        assert_eq!(strip_mount("secret/foo/bar", "secret/"), "foo/bar");
        assert_eq!(strip_mount("secret", "secret/"), "");
        assert_eq!(strip_mount("secretive/x", "secret/"), "secretive/x");
    }

    #[test]
    fn versions_flags() {
        let flags = vec!["1, 2".to_owned(), "3".to_owned(), ",".to_owned()];
        assert_eq!(parse_versions(&flags).unwrap(), vec![1, 2, 3]);
        let err = parse_versions(&["1,x".to_owned()]).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("\"x\""));
    }
}
