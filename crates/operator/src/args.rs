//! Command-line arguments (each also settable from the environment).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "secretvault-operator",
    version,
    about = "secretvault: Kubernetes controllers and the Vault-compatible API server"
)]
pub struct Args {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "SECRETVAULT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a complete vault on this machine: embedded storage, no cluster needed.
    Dev(DevArgs),
}

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Address to serve the API on.
    #[arg(long, env = "SECRETVAULT_LISTEN", default_value = "127.0.0.1:8200")]
    pub listen: SocketAddr,

    /// Where the encrypted store, root key and audit log live (kept across restarts).
    #[arg(
        long,
        env = "SECRETVAULT_DATA_DIR",
        default_value = "./.secretvault-dev"
    )]
    pub data_dir: PathBuf,

    /// Use this root token instead of the stored (or a generated) one.
    #[arg(long, env = "SECRETVAULT_ROOT_TOKEN", hide_env_values = true)]
    pub root_token: Option<String>,

    /// Audit log file, or `stdout`. Default: <data-dir>/audit.log.
    #[arg(long, env = "SECRETVAULT_AUDIT_LOG")]
    pub audit_log: Option<String>,

    /// Load every *.hcl / *.json file in this directory as a policy at start.
    #[arg(long, env = "SECRETVAULT_POLICY_DIR")]
    pub policy_dir: Option<PathBuf>,

    /// Serve HTTPS with this PEM certificate chain (re-read when the file changes).
    #[arg(long, env = "SECRETVAULT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(long, env = "SECRETVAULT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SECRETVAULT_MAX_REQUEST_SIZE", default_value_t = 1024 * 1024)]
    pub max_request_size: usize,

    /// Rotate the storage keyring when its key is this old (e.g. 90d, 2160h; 0 disables).
    #[arg(long, env = "SECRETVAULT_KEYRING_ROTATION_PERIOD", default_value = "90d", value_parser = parse_duration)]
    pub keyring_rotation_period: Duration,

    /// Add a new sealing key pair (for `svctl seal`) when the current one is this old
    /// (e.g. 30d, 720h; 0 disables). Old pairs are kept, so older sealed values still open.
    #[arg(long, env = "SECRETVAULT_SEALING_KEY_ROTATION_PERIOD", default_value = "30d", value_parser = parse_duration)]
    pub sealing_key_rotation_period: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    secretvault_engine::util::duration::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn dev_defaults() {
        let args = Args::try_parse_from(["secretvault-operator", "dev"]).unwrap();
        let Command::Dev(dev) = args.command;
        assert_eq!(dev.listen.to_string(), "127.0.0.1:8200");
        assert_eq!(dev.keyring_rotation_period, Duration::from_secs(90 * 86400));
        assert_eq!(
            dev.sealing_key_rotation_period,
            Duration::from_secs(30 * 86400)
        );
        assert!(
            Args::try_parse_from(["secretvault-operator", "dev", "--tls-cert", "x"]).is_err(),
            "cert needs key"
        );
        assert!(
            Args::try_parse_from([
                "secretvault-operator",
                "dev",
                "--keyring-rotation-period",
                "soon"
            ])
            .is_err()
        );
    }

    #[test]
    fn sealing_key_rotation_period() {
        let args = Args::try_parse_from([
            "secretvault-operator",
            "dev",
            "--sealing-key-rotation-period",
            "12h",
        ])
        .unwrap();
        let Command::Dev(dev) = args.command;
        assert_eq!(
            dev.sealing_key_rotation_period,
            Duration::from_secs(12 * 3600)
        );
        assert!(
            Args::try_parse_from([
                "secretvault-operator",
                "dev",
                "--sealing-key-rotation-period",
                "monthly"
            ])
            .is_err()
        );
    }
}
