//! `svctl seal`: encrypts values for Git to the cluster's public sealing key (HPKE, see
//! `secretvault_engine::seal`), bound to `NAMESPACE/NAME/KEY` so a value opens only in the
//! SecretVault key it was sealed for. Sealing needs no token: the public key is public, and
//! with `--public-key` no server at all.

use std::collections::BTreeMap;
use std::path::Path;

use secretvault_engine::seal::{Binding, SealError, SealingPublicKey, seal};
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::go_io_error;
use crate::Error;
use crate::args::{HttpArgs, SealArgs};
use crate::client::{Client, ClientConfig};
use crate::output::Ui;

/// Where the server serves its public sealing key (no token needed).
pub const SEALING_KEY_PATH: &str = "sys/sealing-key";

pub const API_VERSION: &str = "secretvault.io/v1alpha1";
pub const KIND: &str = "SecretVault";

pub fn run(a: SealArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    if a.fetch_public_key == Some(true) {
        let (_, document) = fetch_public_key(http)?;
        ui.output(&serde_json::to_string_pretty(&document).unwrap_or_default());
        return Ok(());
    }
    let (Some(namespace), Some(name)) = (a.namespace, a.name) else {
        return Err(Error::Usage(
            "--namespace and --name are required: they name the SecretVault the value is for"
                .into(),
        ));
    };
    if a.manifest == Some(true) {
        // Check the resource's names before reading secrets or contacting anyone.
        Binding::new(&namespace, &name, "k")
            .validate()
            .map_err(usage)?;
        let (input, source) = read_input(a.from_file.as_deref(), ui)?;
        let yaml = !a
            .from_file
            .as_deref()
            .and_then(Path::extension)
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let values = parse_values(&input, yaml, &source)?;
        for key in values.keys() {
            Binding::new(&namespace, &name, key)
                .validate()
                .map_err(|e| Error::Usage(format!("{source}: {e}")))?;
        }
        let public_key = public_key(a.public_key.as_deref(), http)?;
        let mut data = BTreeMap::new();
        for (key, value) in &values {
            let binding = Binding::new(&namespace, &name, key);
            data.insert(
                key.clone(),
                seal(&public_key, &binding, value.as_bytes()).map_err(usage)?,
            );
        }
        ui.output(&manifest_yaml(&namespace, &name, public_key.id(), &data)?);
        return Ok(());
    }
    let Some(key) = a.key else {
        return Err(Error::Usage(
            "--key is required: it names the key under spec.data the value is for (or use --manifest)".into(),
        ));
    };
    let binding = Binding::new(namespace, name, key);
    binding.validate().map_err(usage)?;
    let (input, source) = read_input(a.from_file.as_deref(), ui)?;
    if std::str::from_utf8(&input).is_err() {
        return Err(Error::Usage(format!(
            "the value from {source} is not UTF-8 text; secret values are text, so base64-encode binary data first (base64 < FILE | svctl seal ...)"
        )));
    }
    if a.from_file.is_none() {
        if input.is_empty() {
            ui.error("Warning: the value read from stdin is empty.");
        } else if input.ends_with(b"\n") {
            ui.error(
                "Warning: the value ends with a newline, which is sealed as part of it; \
                 use printf '%s' (or echo -n) to leave it out.",
            );
        }
    }
    let public_key = public_key(a.public_key.as_deref(), http)?;
    ui.output(&seal(&public_key, &binding, &input).map_err(usage)?);
    Ok(())
}

fn usage(e: SealError) -> Error {
    Error::Usage(e.to_string())
}

/// The bytes to seal, exactly as given, and where they came from (for messages).
fn read_input(file: Option<&Path>, ui: &mut Ui) -> Result<(Zeroizing<Vec<u8>>, String), Error> {
    let mut input = Zeroizing::new(Vec::new());
    match file {
        Some(path) => {
            let display = path.display().to_string();
            *input = std::fs::read(path).map_err(|e| {
                Error::Usage(format!(
                    "reading --from-file: {}",
                    go_io_error("open", &display, &e)
                ))
            })?;
            Ok((input, display))
        }
        None => {
            ui.stdin
                .read_to_end(&mut input)
                .map_err(|e| Error::Usage(format!("reading the value from stdin: {e}")))?;
            Ok((input, "stdin".into()))
        }
    }
}

/// The public key from `--public-key`, else from the server.
fn public_key(file: Option<&Path>, http: &HttpArgs) -> Result<SealingPublicKey, Error> {
    let Some(path) = file else {
        return Ok(fetch_public_key(http)?.0);
    };
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "reading --public-key: {}",
            go_io_error("open", &display, &e)
        ))
    })?;
    SealingPublicKey::parse(&text).map_err(|e| Error::Usage(format!("--public-key {display}: {e}")))
}

/// Asks the server for its current public key. No token is sent: the key is public, and a
/// token has no business travelling for it.
fn fetch_public_key(http: &HttpArgs) -> Result<(SealingPublicKey, Value), Error> {
    let address = http
        .address
        .clone()
        .unwrap_or_else(|| secretvault_types::DEFAULT_DEV_ADDR.to_owned());
    let client = Client::new(&ClientConfig {
        address: address.clone(),
        ca_cert: http.ca_cert.clone(),
        token: None,
    })?;
    let not_secretvault = |answer: String| {
        Error::Remote(format!(
            "the server at {address} serves no sealing key at /v1/{SEALING_KEY_PATH} ({answer}): it is not a secretvault server (Vault and OpenBao do not seal for Git); point VAULT_ADDR at secretvault, or pass --public-key"
        ))
    };
    // secretvault serves this path to anyone; a refusal means another kind of server.
    let secret = match client.read(SEALING_KEY_PATH, &[]) {
        Ok(secret) => secret,
        Err(e) if matches!(e.status(), Some(403..=405)) => {
            return Err(not_secretvault(format!(
                "it answered {}",
                e.status().unwrap_or_default()
            )));
        }
        Err(e) => {
            return Err(Error::api(
                format!("Error reading the sealing key from {SEALING_KEY_PATH}"),
                e,
            ));
        }
    };
    let Some(data) = secret.and_then(|s| s.data) else {
        return Err(not_secretvault("it answered with no data".into()));
    };
    let document = Value::Object(data);
    let key = SealingPublicKey::parse(&document.to_string()).map_err(|e| {
        Error::Remote(format!(
            "the sealing key served by {address} is unusable: {e}"
        ))
    })?;
    Ok((key, document))
}

/// A map key → value from a YAML (or JSON) document. Values must be strings: an unquoted
/// `0123` or `yes` would otherwise be sealed as something other than what was written.
pub fn parse_values(
    input: &[u8],
    yaml: bool,
    source: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let bad = |msg: String| Error::Usage(format!("{source}: {msg}"));
    let text = std::str::from_utf8(input).map_err(|_| bad("it is not UTF-8 text".into()))?;
    let parsed: Result<Value, String> = if yaml {
        serde_saphyr::from_str(text).map_err(|e| format!("it is not valid YAML: {e}"))
    } else {
        serde_json::from_str(text).map_err(|e| format!("it is not valid JSON: {e}"))
    };
    let value = parsed.map_err(bad)?;
    let Value::Object(map) = value else {
        return Err(bad(format!(
            "it must hold a map of key: value, not {}",
            json_kind(&value)
        )));
    };
    if map.is_empty() {
        return Err(bad("it holds no keys to seal".into()));
    }
    let mut values = BTreeMap::new();
    for (key, value) in map {
        match value {
            Value::String(s) => {
                values.insert(key, s);
            }
            other => {
                return Err(bad(format!(
                    "the value of {key:?} is {}, not a string; quote it so it is sealed exactly as written",
                    json_kind(&other)
                )));
            }
        }
    }
    Ok(values)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    metadata: Metadata<'a>,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

#[derive(Serialize)]
struct Spec<'a> {
    data: &'a BTreeMap<String, String>,
}

/// A `SecretVault` manifest holding the sealed values, ready for `kubectl apply` or Git.
pub fn manifest_yaml(
    namespace: &str,
    name: &str,
    key_id: &str,
    data: &BTreeMap<String, String>,
) -> Result<String, Error> {
    let manifest = Manifest {
        api_version: API_VERSION,
        kind: KIND,
        metadata: Metadata { name, namespace },
        spec: Spec { data },
    };
    // One sealed value per line, as people write manifests (not folded `>-` blocks).
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    let yaml = serde_saphyr::to_string_with_options(&manifest, options)
        .map_err(|e| Error::Usage(format!("writing the manifest as YAML: {e}")))?;
    Ok(format!(
        "# Sealed by svctl to sealing key {key_id}. Safe to commit: only the cluster can open\n\
         # these values, and only as these keys of SecretVault {namespace}/{name}.\n{}",
        yaml.trim_end()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_yaml_and_json() {
        let yaml = b"password: \"0123\"\nusername: admin\ncert: |\n  line1\n  line2\n";
        let values = parse_values(yaml, true, "v.yaml").unwrap();
        assert_eq!(values["password"], "0123");
        assert_eq!(values["username"], "admin");
        assert_eq!(values["cert"], "line1\nline2\n");
        let values = parse_values(br#"{"a": "1", "b": "x y"}"#, false, "v.json").unwrap();
        assert_eq!(values.len(), 2);
        // JSON is YAML too, so a JSON file with another extension still reads.
        assert_eq!(parse_values(br#"{"a": "1"}"#, true, "v").unwrap()["a"], "1");
    }

    #[test]
    fn non_string_values_are_refused_with_the_key_named() {
        for (input, needle) in [
            (&b"port: 5432\n"[..], "\"port\" is a number"),
            (b"enabled: true\n", "\"enabled\" is a boolean"),
            (b"empty:\n", "\"empty\" is empty"),
            (b"list: [a]\n", "\"list\" is a list"),
            (b"- a\n- b\n", "not a list"),
            (b"{}", "no keys"),
            (b"a: [unclosed", "not valid YAML"),
            (&[0xff, 0xfe][..], "not UTF-8"),
        ] {
            let err = parse_values(input, true, "v.yaml").unwrap_err();
            assert_eq!(err.exit_code(), 1);
            let text = err.to_string();
            assert!(text.starts_with("v.yaml: "), "{text}");
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let err = parse_values(b"{\"a\": 1,}", false, "v.json").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn manifest_is_a_secretvault() {
        let mut data = BTreeMap::new();
        data.insert(
            "password".to_string(),
            "sv:v1:0123456789abcdef:01234567:AAAA".to_string(),
        );
        data.insert(
            "user".to_string(),
            "sv:v1:0123456789abcdef:89abcdef:BBBB".to_string(),
        );
        let yaml = manifest_yaml("prod", "db", "0123456789abcdef", &data).unwrap();
        assert!(
            yaml.contains("\n    password: sv:v1:0123456789abcdef:01234567:AAAA\n"),
            "{yaml}"
        );
        assert!(
            yaml.starts_with("# Sealed by svctl to sealing key 0123456789abcdef."),
            "{yaml}"
        );
        let parsed: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "apiVersion": "secretvault.io/v1alpha1",
                "kind": "SecretVault",
                "metadata": {"name": "db", "namespace": "prod"},
                "spec": {"data": {
                    "password": "sv:v1:0123456789abcdef:01234567:AAAA",
                    "user": "sv:v1:0123456789abcdef:89abcdef:BBBB",
                }},
            })
        );
    }
}
