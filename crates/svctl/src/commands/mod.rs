//! The commands. Each checks its arguments first (exit 1), then connects and talks to the
//! server (exit 2 on failure), printing what the Vault CLI prints.

pub mod audit;
pub mod kv;
pub mod policy;
pub mod seal;
pub mod token;
pub mod transit;

use std::path::PathBuf;

use crate::Error;
use crate::args::{Cli, Command, HttpArgs};
use crate::client::{Client, ClientConfig, env_flag_is_true, resolve_token};
use crate::output::{Ui, pad_equal_signs};

/// Runs a parsed command line.
pub fn run(cli: Cli, ui: &mut Ui) -> Result<(), Error> {
    let http = cli.http;
    match cli.command {
        Command::Kv(cmd) => kv::run(cmd, &http, ui),
        Command::Token(cmd) => token::run(cmd, &http, ui),
        Command::Policy(cmd) => policy::run(cmd, &http, ui),
        Command::Audit(cmd) => audit::run(cmd, &http, ui),
        Command::Seal(args) => seal::run(args, &http, ui),
        Command::Transit(cmd) => transit::run(cmd, &http, ui),
    }
}

/// Builds the client from the flags and the Vault environment variables.
pub fn connect(http: &HttpArgs, ui: &mut Ui) -> Result<Client, Error> {
    if std::env::var("VAULT_SKIP_VERIFY").is_ok_and(|v| env_flag_is_true(v.trim())) {
        ui.error(
            "WARNING! VAULT_SKIP_VERIFY is not supported: svctl always verifies the server's \
             certificate. Set VAULT_CACERT to the CA bundle that signed it instead.",
        );
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let token = resolve_token(std::env::var_os("VAULT_TOKEN"), home.as_deref())?;
    let address = http
        .address
        .clone()
        .unwrap_or_else(|| secretvault_types::DEFAULT_DEV_ADDR.to_owned());
    let config = ClientConfig {
        address,
        ca_cert: http.ca_cert.clone(),
        token,
    };
    Ok(Client::new(&config)?)
}

/// `== Title ==` sized to the path, the path, and a blank line (`outputPath`).
pub fn output_path(ui: &mut Ui, path: &str, title: &str) {
    ui.output(&pad_equal_signs(title, path.len()));
    ui.output(path);
    ui.output("");
}

/// An I/O error worded as Go words it (`open /x: no such file or directory`).
pub fn go_io_error(op: &str, path: &str, error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    let mut chars = text.chars();
    let text: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    };
    format!("{op} {path}: {text}")
}

/// A value given as `-` (stdin), `@file`, `\@literal` or itself, as `key=value` values are.
pub fn read_value(value: &str, ui: &mut Ui, what: &str) -> Result<String, Error> {
    if value == "-" {
        let mut text = String::new();
        ui.stdin
            .read_to_string(&mut text)
            .map_err(|e| Error::Usage(format!("reading {what} from stdin: {e}")))?;
        return Ok(text);
    }
    if let Some(file) = value.strip_prefix('@') {
        return std::fs::read_to_string(file).map_err(|e| {
            Error::Usage(format!("reading {what}: {}", go_io_error("open", file, &e)))
        });
    }
    if let Some(literal) = value.strip_prefix("\\@") {
        return Ok(format!("@{literal}"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_go() {
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        let real = std::fs::read("/nonexistent/x").unwrap_err();
        assert_eq!(
            go_io_error("open", "/nonexistent/x", &real),
            "open /nonexistent/x: no such file or directory"
        );
        assert!(go_io_error("open", "f", &e).starts_with("open f: "));
    }

    #[test]
    fn values_from_stdin_files_and_literals() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdin: &[u8] = b"from stdin";
        let mut ui = Ui {
            out: &mut out,
            err: &mut err,
            stdin: &mut stdin,
            stdout_is_terminal: false,
        };
        assert_eq!(read_value("-", &mut ui, "input").unwrap(), "from stdin");
        assert_eq!(read_value("\\@x", &mut ui, "input").unwrap(), "@x");
        assert_eq!(read_value("plain", &mut ui, "input").unwrap(), "plain");
        let err = read_value("@/nonexistent/x", &mut ui, "input").unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("/nonexistent/x"));
    }
}
