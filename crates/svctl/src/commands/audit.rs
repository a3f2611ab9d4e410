//! `svctl audit …`. `audit hash` finds the `hmac-sha256:` form an audit device logs a value
//! as, so a value can be searched for in the log without the log holding it.

use reqwest::Method;
use serde_json::json;

use super::{connect, read_value};
use crate::Error;
use crate::args::{AuditCommand, AuditHashArgs, HttpArgs};
use crate::client::Body;
use crate::output::{Format, Ui};
use crate::secret::{output_secret, print_raw_field};

pub fn run(cmd: AuditCommand, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    match cmd {
        AuditCommand::Hash(a) => hash(a, http, ui),
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
