//! svctl, the secretvault command line: a client for any server that speaks Vault's HTTP
//! API (secretvault, OpenBao, HashiCorp Vault), whose commands, flags, output and exit
//! codes follow the Vault CLI's.
//!
//! Exit codes, as the Vault CLI documents them: 0 success; 1 bad flags, arguments or local
//! input; 2 the server refused or could not be reached.

pub mod args;
pub mod client;
pub mod commands;
pub mod duration;
pub mod kvdata;
pub mod output;
pub mod secret;

use std::ffi::OsString;
use std::io::IsTerminal;

use crate::client::{ClientError, ConfigError};
use crate::output::Ui;

/// Why a command failed. The message is printed to stderr as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong arguments or unusable local input (exit 1).
    #[error("{0}")]
    Usage(String),
    /// The server said no, or gave nothing back (exit 2).
    #[error("{0}")]
    Remote(String),
    /// A failed request, with what was being done (exit 2).
    #[error("{context}: {source}")]
    Api {
        context: String,
        #[source]
        source: ClientError,
    },
    /// A failed request printed bare, as the Vault CLI prints its preflight errors (exit 2).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The connection settings are unusable (exit 2, as the Vault CLI's client errors).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command already printed what went wrong; exit with this code.
    #[error("exit status {0}")]
    Reported(u8),
}

impl Error {
    pub fn api(context: impl Into<String>, source: ClientError) -> Error {
        Error::Api {
            context: context.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 1,
            Error::Remote(_) | Error::Api { .. } | Error::Client(_) | Error::Config(_) => 2,
            Error::Reported(code) => *code,
        }
    }
}

/// Parses `argv`, runs the command on the process's stdio and returns the exit code.
pub fn run(argv: impl IntoIterator<Item = OsString>) -> u8 {
    let cli = match args::parse(argv) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors are local errors.
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let stdout = std::io::stdout();
    // As the Vault CLI (via fatih/color): NO_COLOR or TERM=dumb also mean "bare -field values".
    let plain =
        std::env::var_os("NO_COLOR").is_some() || std::env::var("TERM").is_ok_and(|t| t == "dumb");
    let stdout_is_terminal = stdout.is_terminal() && !plain;
    let mut out = stdout.lock();
    let mut err = std::io::stderr().lock();
    let mut stdin = std::io::stdin().lock();
    let mut ui = Ui {
        out: &mut out,
        err: &mut err,
        stdin: &mut stdin,
        stdout_is_terminal,
    };
    let code = match commands::run(cli, &mut ui) {
        Ok(()) => 0,
        Err(e) => {
            if !matches!(e, Error::Reported(_)) {
                ui.error(&e.to_string());
            }
            e.exit_code()
        }
    };
    ui.flush();
    code
}
