//! `svctl audit …`. `audit hash` finds the `hmac-sha256:` form an audit device logs a value
//! as, so a value can be searched for in the log without the log holding it. `audit
//! verify` checks a log's hash chain offline: every line must carry the SHA-256 of the
//! line before it.

use reqwest::Method;
use serde_json::json;

use super::{connect, read_value};
use crate::Error;
use crate::args::{AuditCommand, AuditHashArgs, AuditVerifyArgs, HttpArgs};
use crate::client::Body;
use crate::output::{Format, Ui};
use crate::secret::{output_secret, print_raw_field};

pub fn run(cmd: AuditCommand, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    match cmd {
        AuditCommand::Hash(a) => hash(a, http, ui),
        AuditCommand::Verify(a) => verify(a, ui),
    }
}

/// Verifies the chain; exit 0 when intact, 2 (after saying where) when broken.
fn verify(a: AuditVerifyArgs, ui: &mut Ui) -> Result<(), Error> {
    use secretvault_engine::audit::{VerifyError, verify_file};
    let file = a.file.display().to_string();
    match verify_file(&a.file) {
        Ok(report) => {
            match a.format.format {
                Format::Json => ui.output(
                    &serde_json::to_string_pretty(&json!({
                        "file": file,
                        "intact": true,
                        "lines": report.lines,
                        "anchor": report.anchor,
                        "last_hash": report.last_hash,
                    }))
                    .unwrap_or_default(),
                ),
                _ => {
                    ui.output(&format!(
                        "Success! The hash chain of {file} is intact ({} lines).",
                        report.lines
                    ));
                    ui.output(&format!("First line chains from: {}", report.anchor));
                    ui.output(&format!("Last line hash:         {}", report.last_hash));
                    ui.output("Keep the last line hash elsewhere: cutting lines off the end cannot be detected from the file alone.");
                }
            }
            Ok(())
        }
        Err(e @ VerifyError::Io { .. }) => {
            Err(Error::Usage(format!("Error reading audit log: {e}")))
        }
        Err(VerifyError::Broken { source, .. }) => {
            match a.format.format {
                Format::Json => ui.output(
                    &serde_json::to_string_pretty(&json!({
                        "file": file,
                        "intact": false,
                        "broken_line": source.line,
                        "reason": source.reason,
                    }))
                    .unwrap_or_default(),
                ),
                _ => ui.error(&format!(
                    "Error: the hash chain of {file} is broken at line {}: {}",
                    source.line, source.reason
                )),
            }
            Err(Error::Reported(2))
        }
    }
}

/// Prints what `bao write sys/audit-hash/<device> input=<input>` prints.
fn hash(a: AuditHashArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let device = crate::commands::kv::sanitize_path(&a.device);
    if device.is_empty() {
        return Err(Error::Usage(
            "the audit device path is empty; name the device, e.g. svctl audit hash file -"
                .to_owned(),
        ));
    }
    let input = read_value(&a.input, ui, "the input")?;
    let client = connect(http, ui)?;
    let path = format!("sys/audit-hash/{device}");
    let body = json!({ "input": input });
    let secret = client
        .write(Method::PUT, &path, Body::Json(&body))
        .map_err(|e| Error::api(format!("Error writing data to {path}"), e))?;
    let format = a.format.format;
    let Some(secret) = secret else {
        if format == Format::Table {
            ui.output(&format!("Success! Data written to: {path}"));
        }
        return Ok(());
    };
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
    output_secret(ui, format, &secret);
    Ok(())
}
