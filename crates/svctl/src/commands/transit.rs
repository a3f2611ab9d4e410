//! `svctl transit …`: named keys of a transit secrets engine (`<mount>/keys/<name>`) and
//! encryption as a service (`encrypt`, `decrypt`, `rewrap`). Plaintexts and contexts are
//! base64 on the wire; svctl encodes and decodes them so people can pass text and files.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::{connect, go_io_error};
use crate::Error;
use crate::args::{
    HttpArgs, TransitCommand, TransitConfigArgs, TransitCreateArgs, TransitDecryptArgs,
    TransitDeleteArgs, TransitEncryptArgs, TransitListArgs, TransitReadArgs, TransitRewrapArgs,
    TransitRotateArgs,
};
use crate::client::{Body, Client};
use crate::output::{
    Format, Json, Ui, go_value, key_value_table, map_rows, pad_equal_signs, table,
};
use crate::secret::{Secret, output_secret, print_raw_field, print_warnings};

pub fn run(cmd: TransitCommand, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    match cmd {
        TransitCommand::Create(a) => create(a, http, ui),
        TransitCommand::Read(a) => read(a, http, ui),
        TransitCommand::List(a) => list(a, http, ui),
        TransitCommand::Config(a) => config(a, http, ui),
        TransitCommand::Rotate(a) => rotate(a, http, ui),
        TransitCommand::Encrypt(a) => encrypt(a, http, ui),
        TransitCommand::Decrypt(a) => decrypt(a, http, ui),
        TransitCommand::Rewrap(a) => rewrap(a, http, ui),
        TransitCommand::Delete(a) => delete(a, http, ui),
    }
}

/// `<mount>/<action>/<name>`, after checking the name is one path segment (a `/` would
/// silently address another endpoint, such as `keys/<name>/rotate`).
fn key_path(mount: &str, action: &str, name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.contains('/') {
        return Err(Error::Usage(format!(
            "invalid key name {name:?}: a transit key name is one path segment (letters, digits, '_', '-', '.')"
        )));
    }
    let mount = mount.trim().trim_matches('/');
    if mount.is_empty() {
        return Err(Error::Usage(
            "-mount is empty: give the path the transit engine is mounted at (default \"transit\")"
                .to_owned(),
        ));
    }
    Ok(format!("{mount}/{action}/{name}"))
}

/// The request body field for a context given as text.
fn context_field(body: &mut Map<String, Value>, context: Option<&str>) {
    if let Some(context) = context {
        body.insert(
            "context".to_owned(),
            Value::String(STANDARD.encode(context.as_bytes())),
        );
    }
}

/// The bytes of an input argument: `-` or nothing reads stdin, `@FILE` a file, `\@…` is
/// a literal starting with `@`, anything else is itself.
fn input_bytes(value: Option<&str>, ui: &mut Ui, what: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut bytes = Zeroizing::new(Vec::new());
    match value {
        None | Some("-") => {
            ui.stdin
                .read_to_end(&mut bytes)
                .map_err(|e| Error::Usage(format!("reading the {what} from stdin: {e}")))?;
        }
        Some(v) => {
            if let Some(file) = v.strip_prefix('@') {
                *bytes = std::fs::read(file).map_err(|e| {
                    Error::Usage(format!(
                        "reading the {what}: {}",
                        go_io_error("open", file, &e)
                    ))
                })?;
            } else {
                let literal = v
                    .strip_prefix("\\@")
                    .map_or(v.to_owned(), |l| format!("@{l}"));
                bytes.extend_from_slice(literal.as_bytes());
            }
        }
    }
    Ok(bytes)
}

/// A ciphertext from an argument, file or stdin, without surrounding whitespace.
fn input_ciphertext(value: Option<&str>, ui: &mut Ui) -> Result<String, Error> {
    let bytes = input_bytes(value, ui, "ciphertext")?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| {
            Error::Usage("the ciphertext is not text: expected vault:v<N>:<base64>".to_owned())
        })?
        .trim();
    if text.is_empty() {
        return Err(Error::Usage(
            "no ciphertext given: pass it as an argument, with @FILE, or on stdin".to_owned(),
        ));
    }
    Ok(text.to_owned())
}

/// Whole days since 1970-01-01 as a civil date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // In range by construction: day 1..=31, month 1..=12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds as RFC 3339 in UTC (`2026-11-23T11:08:35Z`).
pub fn unix_to_rfc3339(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// When a key version was created, from the `keys` map of a key read: unix seconds for
/// symmetric keys, an object with `creation_time` for Vault's asymmetric ones.
fn version_created(value: &Value) -> String {
    match value {
        Value::Number(n) => n.as_i64().map_or_else(|| n.to_string(), unix_to_rfc3339),
        Value::Object(map) => map
            .get("creation_time")
            .map_or_else(|| go_value(value), go_value),
        other => go_value(other),
    }
}

/// A key for people: its settings as `Key  Value` rows, then one row per version.
fn output_key(ui: &mut Ui, format: Format, secret: &Secret) {
    if format == Format::Json {
        output_secret(ui, format, secret);
        return;
    }
    print_warnings(ui, secret);
    let mut data = secret.data.clone().unwrap_or_default();
    let versions = data.remove("keys");
    if let Some(table) = key_value_table(map_rows(&data)) {
        ui.output(&table);
    }
    let Some(Value::Object(versions)) = versions else {
        return;
    };
    let mut rows: Vec<(u64, Vec<String>)> = versions
        .iter()
        .map(|(v, created)| {
            (
                v.parse().unwrap_or(u64::MAX),
                vec![v.clone(), version_created(created)],
            )
        })
        .collect();
    rows.sort_by_key(|(n, _)| *n);
    ui.output("");
    ui.output(&pad_equal_signs("Versions", 0));
    ui.output(&table(
        &["Version", "Created"],
        rows.into_iter().map(|(_, row)| row).collect(),
    ));
}

/// Prints what a key endpoint returned, or `success` when it returned nothing (older
/// Vault versions answer some key writes with 204).
fn output_key_response(
    ui: &mut Ui,
    format: Format,
    secret: Option<Secret>,
    success: &str,
) -> Result<(), Error> {
    match secret {
        Some(secret) => output_key(ui, format, &secret),
        None if format == Format::Json => ui.output("{}"),
        None => ui.output(success),
    }
    Ok(())
}

fn write(
    client: &Client,
    path: &str,
    body: &Value,
) -> Result<Option<Secret>, crate::client::ClientError> {
    client.write(Method::PUT, path, Body::Json(body))
}

fn create(a: TransitCreateArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let path = key_path(&a.mount.mount, "keys", &a.name)?;
    if a.convergent_encryption == Some(true) && a.derived != Some(true) {
        return Err(Error::Usage(
            "-convergent-encryption needs -derived: convergent ciphertexts depend on a per-request context"
                .to_owned(),
        ));
    }
    let mut body = Map::new();
    if let Some(kind) = &a.key_type {
        body.insert("type".to_owned(), Value::String(kind.trim().to_owned()));
    }
    for (field, value) in [
        ("derived", a.derived),
        ("convergent_encryption", a.convergent_encryption),
        ("exportable", a.exportable),
        ("allow_plaintext_backup", a.allow_plaintext_backup),
    ] {
        if let Some(v) = value {
            body.insert(field.to_owned(), Value::Bool(v));
        }
    }
    if let Some(period) = a.auto_rotate_period {
        body.insert(
            "auto_rotate_period".to_owned(),
            period.whole_seconds().into(),
        );
    }
    let client = connect(http, ui)?;
    let secret = write(&client, &path, &Value::Object(body))
        .map_err(|e| Error::api(format!("Error creating transit key {}", a.name.trim()), e))?;
    output_key_response(
        ui,
        a.format.format,
        secret,
        &format!("Success! Created transit key at: {path}"),
    )
}

fn read(a: TransitReadArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let path = key_path(&a.mount.mount, "keys", &a.name)?;
    let client = connect(http, ui)?;
    let secret = client
        .read(&path, &[])
        .map_err(|e| Error::api(format!("Error reading {path}"), e))?
        .ok_or_else(|| Error::Remote(format!("No transit key found at {path}")))?;
    let format = a.format.format;
    if let Some(field) = &a.field.field {
        return print_raw_field(
            ui,
            format,
            secret.raw_field(field),
            field,
            "secret",
            Some(&secret),
        )
        .map_err(Error::Usage);
    }
    output_key(ui, format, &secret);
    Ok(())
}

fn list(a: TransitListArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let mount = a.mount.mount.trim().trim_matches('/');
    let path = format!("{mount}/keys");
    let client = connect(http, ui)?;
    let secret = client
        .list(&path)
        .map_err(|e| Error::api(format!("Error listing {path}"), e))?;
    let keys = secret
        .as_ref()
        .and_then(|s| s.data_field("keys"))
        .and_then(Value::as_array);
    let format = a.format.format;
    let Some(keys) = keys else {
        // As `vault list`: nothing there is an error (exit 2), `{}` for scripts.
        if format == Format::Json {
            ui.output("{}");
            return Err(Error::Reported(2));
        }
        return Err(Error::Remote(format!("No transit keys found at {path}")));
    };
    let mut names = Vec::with_capacity(keys.len());
    for key in keys {
        let name = key.as_str().ok_or_else(|| {
            Error::Remote(format!(
                "The server listed {key} at {path}, which is not a string"
            ))
        })?;
        names.push(name.to_owned());
    }
    names.sort();
    match format {
        Format::Json => ui.output(&Json::string_list(&names).pretty()),
        Format::Table => {
            if let Some(secret) = &secret {
                print_warnings(ui, secret);
            }
            ui.output(&table(
                &["Keys"],
                names.into_iter().map(|n| vec![n]).collect(),
            ));
        }
    }
    Ok(())
}

fn config(a: TransitConfigArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let path = key_path(&a.mount.mount, "keys", &a.name)?;
    let mut body = Map::new();
    for (field, value) in [
        ("min_decryption_version", a.min_decryption_version),
        ("min_encryption_version", a.min_encryption_version),
    ] {
        if let Some(v) = value {
            body.insert(field.to_owned(), v.into());
        }
    }
    for (field, value) in [
        ("deletion_allowed", a.deletion_allowed),
        ("exportable", a.exportable),
        ("allow_plaintext_backup", a.allow_plaintext_backup),
    ] {
        if let Some(v) = value {
            body.insert(field.to_owned(), Value::Bool(v));
        }
    }
    if let Some(period) = a.auto_rotate_period {
        body.insert(
            "auto_rotate_period".to_owned(),
            period.whole_seconds().into(),
        );
    }
    if body.is_empty() {
        return Err(Error::Usage(
            "nothing to change: give at least one of -min-decryption-version, -min-encryption-version, \
             -deletion-allowed, -exportable, -allow-plaintext-backup, -auto-rotate-period"
                .to_owned(),
        ));
    }
    let client = connect(http, ui)?;
    let secret = write(&client, &format!("{path}/config"), &Value::Object(body)).map_err(|e| {
        Error::api(
            format!("Error configuring transit key {}", a.name.trim()),
            e,
        )
    })?;
    output_key_response(
        ui,
        a.format.format,
        secret,
        &format!("Success! Configured transit key at: {path}"),
    )
}

fn rotate(a: TransitRotateArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let path = key_path(&a.mount.mount, "keys", &a.name)?;
    let client = connect(http, ui)?;
    let secret = write(&client, &format!("{path}/rotate"), &json!({}))
        .map_err(|e| Error::api(format!("Error rotating transit key {}", a.name.trim()), e))?;
    output_key_response(
        ui,
        a.format.format,
        secret,
        &format!("Success! Rotated transit key at: {path}"),
    )
}

fn delete(a: TransitDeleteArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let path = key_path(&a.mount.mount, "keys", &a.name)?;
    let client = connect(http, ui)?;
    client
        .write(Method::DELETE, &path, Body::None)
        .map_err(|e| Error::api(format!("Error deleting transit key {}", a.name.trim()), e))?;
    ui.output(&format!("Success! Deleted transit key at: {path}"));
    Ok(())
}

/// Prints an encrypt or rewrap result: a field, the JSON, or the table.
fn output_ciphertext(
    ui: &mut Ui,
    format: Format,
    field: Option<&str>,
    secret: &Secret,
) -> Result<(), Error> {
    match field {
        Some(field) => print_raw_field(
            ui,
            format,
            secret.raw_field(field),
            field,
            "secret",
            Some(secret),
        )
        .map_err(Error::Usage),
        None => {
            output_secret(ui, format, secret);
            Ok(())
        }
    }
}

fn encrypt(a: TransitEncryptArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let path = key_path(&a.mount.mount, "encrypt", &a.name)?;
    let input = input_bytes(a.plaintext.as_deref(), ui, "plaintext")?;
    let plaintext = if a.base64 == Some(true) {
        let text = std::str::from_utf8(&input)
            .map(str::trim)
            .map_err(|_| Error::Usage("-base64: the plaintext is not base64 text".to_owned()))?;
        // Checked here so a typo is a local error that names the flag, not a server 400.
        STANDARD.decode(text).map_err(|e| {
            Error::Usage(format!(
                "-base64: the plaintext is not valid base64 ({e}); drop -base64 to encrypt it as it is"
            ))
        })?;
        Zeroizing::new(text.to_owned())
    } else {
        Zeroizing::new(STANDARD.encode(&*input))
    };
    let mut body = Map::new();
    body.insert("plaintext".to_owned(), Value::String(plaintext.to_string()));
    context_field(&mut body, a.context.as_deref());
    if let Some(version) = a.key_version {
        body.insert("key_version".to_owned(), version.into());
    }
    let client = connect(http, ui)?;
    let secret = client
        .write(Method::PUT, &path, Body::Json(&Value::Object(body)))
        .map_err(|e| {
            Error::api(
                format!("Error encrypting with transit key {}", a.name.trim()),
                e,
            )
        })?
        .ok_or_else(|| Error::Remote(format!("No ciphertext returned from {path}")))?;
    output_ciphertext(ui, a.format.format, a.field.field.as_deref(), &secret)
}

fn decrypt(a: TransitDecryptArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let path = key_path(&a.mount.mount, "decrypt", &a.name)?;
    let ciphertext = input_ciphertext(a.ciphertext.as_deref(), ui)?;
    let mut body = Map::new();
    body.insert("ciphertext".to_owned(), Value::String(ciphertext));
    context_field(&mut body, a.context.as_deref());
    let client = connect(http, ui)?;
    let secret = client
        .write(Method::PUT, &path, Body::Json(&Value::Object(body)))
        .map_err(|e| {
            Error::api(
                format!("Error decrypting with transit key {}", a.name.trim()),
                e,
            )
        })?
        .ok_or_else(|| Error::Remote(format!("No plaintext returned from {path}")))?;
    if a.format.format == Format::Json {
        output_secret(ui, Format::Json, &secret);
        return Ok(());
    }
    print_warnings(ui, &secret);
    let Some(Value::String(encoded)) = secret.data_field("plaintext") else {
        return Err(Error::Remote(format!(
            "The server's answer from {path} has no plaintext"
        )));
    };
    if a.base64 == Some(true) {
        ui.raw(encoded);
        return Ok(());
    }
    let plaintext = Zeroizing::new(STANDARD.decode(encoded).map_err(|e| {
        Error::Remote(format!(
            "The server's plaintext from {path} is not base64 ({e})"
        ))
    })?);
    ui.raw_bytes(&plaintext);
    Ok(())
}

fn rewrap(a: TransitRewrapArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let path = key_path(&a.mount.mount, "rewrap", &a.name)?;
    let ciphertext = input_ciphertext(a.ciphertext.as_deref(), ui)?;
    let mut body = Map::new();
    body.insert("ciphertext".to_owned(), Value::String(ciphertext));
    context_field(&mut body, a.context.as_deref());
    if let Some(version) = a.key_version {
        body.insert("key_version".to_owned(), version.into());
    }
    let client = connect(http, ui)?;
    let secret = client
        .write(Method::PUT, &path, Body::Json(&Value::Object(body)))
        .map_err(|e| {
            Error::api(
                format!("Error rewrapping with transit key {}", a.name.trim()),
                e,
            )
        })?
        .ok_or_else(|| Error::Remote(format!("No ciphertext returned from {path}")))?;
    output_ciphertext(ui, a.format.format, a.field.field.as_deref(), &secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_print_as_rfc3339() {
        assert_eq!(unix_to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(unix_to_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(unix_to_rfc3339(1_795_432_706), "2026-11-23T11:18:26Z");
        assert_eq!(unix_to_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(unix_to_rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn key_paths_are_one_segment() {
        assert_eq!(key_path("transit", "keys", "k").unwrap(), "transit/keys/k");
        assert_eq!(
            key_path("/other/", "encrypt", " k ").unwrap(),
            "other/encrypt/k"
        );
        for bad in ["", "a/rotate", " "] {
            let err = key_path("transit", "keys", bad).unwrap_err();
            assert_eq!(err.exit_code(), 1, "{bad:?}");
        }
        assert!(key_path("/", "keys", "k").is_err());
    }

    #[test]
    fn versions_show_creation_times() {
        assert_eq!(version_created(&json!(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            version_created(&json!({"creation_time": "2026-11-23T11:08:35Z", "name": "ed25519"})),
            "2026-11-23T11:08:35Z"
        );
        assert_eq!(version_created(&json!("x")), "x");
    }

    #[test]
    fn inputs_from_arguments_files_and_stdin() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdin: &[u8] = b"\x00binary\n";
        let mut ui = Ui {
            out: &mut out,
            err: &mut err,
            stdin: &mut stdin,
            stdout_is_terminal: false,
        };
        assert_eq!(
            input_bytes(None, &mut ui, "plaintext").unwrap().as_slice(),
            b"\x00binary\n"
        );
        assert_eq!(
            input_bytes(Some("\\@at"), &mut ui, "plaintext")
                .unwrap()
                .as_slice(),
            b"@at"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p");
        std::fs::write(&file, b"from file").unwrap();
        let arg = format!("@{}", file.display());
        assert_eq!(
            input_bytes(Some(&arg), &mut ui, "plaintext")
                .unwrap()
                .as_slice(),
            b"from file"
        );
        let missing = input_bytes(Some("@/nonexistent/p"), &mut ui, "plaintext").unwrap_err();
        assert_eq!(missing.exit_code(), 1);
        assert!(missing.to_string().contains("/nonexistent/p"), "{missing}");
        assert_eq!(
            input_ciphertext(Some(" vault:v1:abc \n"), &mut ui).unwrap(),
            "vault:v1:abc"
        );
        assert_eq!(
            input_ciphertext(Some("  "), &mut ui)
                .unwrap_err()
                .exit_code(),
            1
        );
    }
}
