//! The command line: `secretvault-agent [init|sidecar|probe] [--config FILE]`, and the
//! top of the program (exit codes, signals, the init deadline).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tracing::{error, info};

use crate::agent::Agent;
use crate::config::{self, CONFIG_ENV, Config, ConfigError, ConfigSource, Mode};
use crate::duration::display as dur;
use crate::vault::VaultClient;

/// `EX_USAGE`: bad command line or configuration.
pub const EXIT_USAGE: u8 = 64;
/// A run that did not finish its job (init deadline, start-up failure).
pub const EXIT_FAILURE: u8 = 1;
/// `probe`: the first complete render has not happened yet.
pub const EXIT_NOT_READY: u8 = 1;

pub const USAGE: &str = "\
secretvault-agent: log in to secretvault as this pod, render secrets to files, keep them fresh

Usage:
  secretvault-agent [init|sidecar] [--config FILE]
  secretvault-agent probe [--config FILE | --ready-file FILE]

Commands:
  init      render every secret once, then exit 0 (non-zero if not done by init_deadline)
  sidecar   render every secret, then keep the files fresh until SIGTERM
  probe     exit 0 once a running agent has rendered every secret (a startupProbe)
  (none)    the configuration's `mode` (default sidecar)

The configuration is JSON: base64-encoded in $SECRETVAULT_AGENT_CONFIG, or a file given
with --config. Reference: docs/agent.md.

Exit codes: 0 done / clean shutdown; 1 init deadline passed (probe: not ready yet);
64 bad command line or configuration; 130/143 init interrupted by SIGINT/SIGTERM.";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Option<Mode>),
    Probe,
    Help,
    Version,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub config: Option<PathBuf>,
    pub ready_file: Option<PathBuf>,
}

/// Parses the arguments after the program name.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let mut command = None;
    let mut config = None;
    let mut ready_file = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" | "help" => {
                return Ok(Args {
                    command: Command::Help,
                    config,
                    ready_file,
                });
            }
            "-V" | "--version" | "version" => {
                return Ok(Args {
                    command: Command::Version,
                    config,
                    ready_file,
                });
            }
            "--config" | "--ready-file" => {
                let value = match inline.or_else(|| it.next()) {
                    Some(v) if !v.is_empty() => v,
                    _ => return Err(format!("{flag} needs a file path")),
                };
                if flag == "--config" {
                    config = Some(PathBuf::from(value));
                } else {
                    ready_file = Some(PathBuf::from(value));
                }
            }
            "init" | "sidecar" | "probe" if command.is_none() => {
                command = Some(match flag.as_str() {
                    "init" => Command::Run(Some(Mode::Init)),
                    "sidecar" => Command::Run(Some(Mode::Sidecar)),
                    _ => Command::Probe,
                });
            }
            other => {
                return Err(format!(
                    "unexpected argument {other:?}; the commands are init, sidecar and probe"
                ));
            }
        }
    }
    let command = command.unwrap_or(Command::Run(None));
    if ready_file.is_some() && command != Command::Probe {
        return Err("--ready-file is for `probe` only; set ready_file in the configuration".into());
    }
    Ok(Args {
        command,
        config,
        ready_file,
    })
}

/// Loads the configuration from `--config` or the environment.
pub fn load_config(path: Option<&PathBuf>) -> Result<Config, ConfigError> {
    let env = std::env::var(CONFIG_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    match (path, env) {
        (Some(p), _) => config::load(ConfigSource::File(p)),
        (None, Some(v)) => config::load(ConfigSource::Env(&v)),
        (None, None) => Err(ConfigError {
            source_name: "the command line".into(),
            problems: vec![config::Problem {
                field: CONFIG_ENV.into(),
                message: format!(
                    "no configuration: set {CONFIG_ENV} to the base64 of the JSON configuration, or pass --config FILE"
                ),
            }],
        }),
    }
}

/// The whole program, after the arguments are read.
pub fn main_with(args: Vec<String>) -> ExitCode {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("secretvault-agent: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match args.command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("secretvault-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Probe => probe(&args),
        Command::Run(mode) => {
            let cfg = match load_config(args.config.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("secretvault-agent: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let mode = mode.unwrap_or(cfg.mode);
            let level = std::env::var("SECRETVAULT_AGENT_LOG")
                .ok()
                .and_then(|l| l.parse().ok())
                .unwrap_or(cfg.log_level);
            crate::log::init(level, cfg.log_format);
            run(cfg, mode)
        }
    }
}

fn probe(args: &Args) -> ExitCode {
    let ready_file = match &args.ready_file {
        Some(f) => f.clone(),
        None => match load_config(args.config.as_ref()) {
            Ok(c) => c.ready_file,
            Err(e) => {
                eprintln!("secretvault-agent: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    if ready_file.is_file() {
        println!("ready: {} exists", ready_file.display());
        ExitCode::SUCCESS
    } else {
        println!(
            "not ready: {} does not exist yet (the agent writes it once every secret is rendered)",
            ready_file.display()
        );
        ExitCode::from(EXIT_NOT_READY)
    }
}

enum Stop {
    Done,
    Deadline,
    Signal(&'static str, u8),
}

fn run(cfg: Config, mode: Mode) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(async move {
        let client = match VaultClient::new(&cfg.server) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "cannot set up the connection to the server");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        info!(
            version = env!("CARGO_PKG_VERSION"),
            mode = mode.as_str(),
            server = %cfg.server.address,
            secrets = cfg.secrets.len(),
            refresh_interval = %dur(cfg.refresh_interval),
            "secretvault-agent starting"
        );
        let cfg = Arc::new(cfg);
        let mut agent = Agent::new(cfg.clone(), mode, client);
        let mut term = signal(tokio::signal::unix::SignalKind::terminate());
        let mut int = signal(tokio::signal::unix::SignalKind::interrupt());
        let deadline = async {
            match mode {
                Mode::Init => tokio::time::sleep(cfg.init_deadline).await,
                Mode::Sidecar => std::future::pending().await,
            }
        };
        let stop = tokio::select! {
            _ = agent.run() => Stop::Done,
            _ = deadline => Stop::Deadline,
            _ = recv(&mut term) => Stop::Signal("SIGTERM", 143),
            _ = recv(&mut int) => Stop::Signal("SIGINT", 130),
        };
        match stop {
            Stop::Done => {
                info!("init: every secret is rendered; exiting");
                ExitCode::SUCCESS
            }
            Stop::Deadline => {
                error!(
                    deadline = %dur(cfg.init_deadline),
                    problems = %agent.unrendered().join("; "),
                    "init: not every secret was rendered before init_deadline; fix the problems listed, or raise init_deadline"
                );
                ExitCode::from(EXIT_FAILURE)
            }
            Stop::Signal(name, code) => {
                info!(signal = name, "shutting down");
                if cfg.revoke_on_shutdown {
                    agent.revoke().await;
                }
                if mode == Mode::Init {
                    error!(signal = name, "init: interrupted before every secret was rendered");
                    ExitCode::from(code)
                } else {
                    ExitCode::SUCCESS
                }
            }
        }
    })
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            error!(error = %e, "cannot listen for a shutdown signal");
            None
        }
    }
}

async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Args, String> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_commands_and_flags() {
        assert_eq!(parse(&[]).unwrap().command, Command::Run(None));
        let a = parse(&["init", "--config", "/c.json"]).unwrap();
        assert_eq!(a.command, Command::Run(Some(Mode::Init)));
        assert_eq!(a.config, Some(PathBuf::from("/c.json")));
        let a = parse(&["--config=/c.json", "sidecar"]).unwrap();
        assert_eq!(a.command, Command::Run(Some(Mode::Sidecar)));
        let a = parse(&["probe", "--ready-file", "/r"]).unwrap();
        assert_eq!(a.command, Command::Probe);
        assert_eq!(a.ready_file, Some(PathBuf::from("/r")));
        assert!(parse(&["init", "sidecar"]).is_err());
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["init", "--ready-file", "/r"]).is_err());
        assert!(parse(&["bogus"]).is_err());
        assert_eq!(parse(&["--help"]).unwrap().command, Command::Help);
    }
}
