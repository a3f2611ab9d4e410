//! `secretvault-bench`: throughput, latency and memory of secretvault, side by side with
//! a bare hyper server (the ceiling on this machine) and OpenBao, in one run.
//!
//! Every server runs as its own process on 127.0.0.1 and is driven by the same
//! keep-alive HTTP/1.1 client: `--concurrency` connections, each sending requests back to
//! back for `--duration`. Figures: requests/s, p50/p99/p99.9 latency, each as a ratio to
//! the bare server and to OpenBao, each server's CPU time per request (steady even on a
//! busy machine, unlike requests/s) and each server's peak RSS. The ceiling is measured
//! right before each secretvault workload (the bare server stays up), so a ratio compares
//! two figures taken under the same conditions; `--rounds N` repeats each pair and keeps
//! the median.
//!
//! `secretvault-bench agent` instead measures the agent's footprint (binary size, memory,
//! CPU, time to the first file) next to `bao agent` rendering the same templates from the
//! same server (see `agent.rs`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod agent;
mod bare;
mod load;
mod report;
mod servers;

#[derive(Debug, Parser)]
#[command(
    name = "secretvault-bench",
    about = "Benchmark secretvault against a bare hyper server and OpenBao"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// How long to drive each workload (after a warm-up).
    #[arg(long, default_value = "10s", value_parser = parse_secs)]
    pub duration: Duration,
    /// Warm-up before measuring each workload.
    #[arg(long, default_value = "2s", value_parser = parse_secs)]
    pub warmup: Duration,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Size of the secret value and of the transit plaintext, in bytes.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// The secretvault-operator binary (default: next to this one; build with --release).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// OpenBao's binary (default: $BAO_BIN, else `bao` on PATH).
    #[arg(long, env = "BAO_BIN")]
    pub bao_bin: Option<PathBuf>,
    /// Measure each secretvault workload this many times, each time right after the bare
    /// ceiling, and report the round with the median ratio (steadier on a noisy machine).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=15))]
    pub rounds: u32,
    /// Skip OpenBao (its figures and ratios are then missing).
    #[arg(long)]
    pub skip_openbao: bool,
    /// Print machine-readable JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Internal: run the bare hyper server on this port (used by the bench itself).
    #[arg(long, hide = true)]
    pub bare_server: Option<u16>,
    /// Internal: body size of the bare server's reply.
    #[arg(long, hide = true, default_value_t = 256)]
    pub bare_body: usize,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The agent's footprint next to `bao agent`, both rendering the same templates from
    /// one secretvault dev server.
    Agent(agent::AgentArgs),
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let digits = s.trim_end_matches('s');
    digits
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|_| format!("{s:?} is not a number of seconds like 10s"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(port) = args.bare_server {
        return bare::serve(port, args.bare_body);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(BenchCommand::Agent(agent_args)) = &args.command {
        let report = runtime.block_on(agent::run(agent_args))?;
        if agent_args.json || args.json {
            println!("{}", serde_json::to_string_pretty(&report.json())?);
        } else {
            report.print();
        }
        return Ok(());
    }
    let results = runtime.block_on(servers::run_all(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report::json(&results))?);
    } else {
        report::print(&results, &args);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        <Args as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn agent_subcommand_has_its_own_defaults() {
        let args =
            Args::try_parse_from(["secretvault-bench", "agent", "--duration", "20s"]).unwrap();
        let Some(BenchCommand::Agent(a)) = args.command else {
            panic!("expected the agent subcommand");
        };
        assert_eq!(a.duration, Duration::from_secs(20));
        assert_eq!(a.secrets, 10);
        assert_eq!(a.refresh, Duration::from_secs(5));
        let plain = Args::try_parse_from(["secretvault-bench"]).unwrap();
        assert!(plain.command.is_none());
        assert_eq!(plain.duration, Duration::from_secs(10));
        assert_eq!(plain.rounds, 1);
    }

    #[test]
    fn rounds_are_bounded() {
        let three = Args::try_parse_from(["secretvault-bench", "--rounds", "3"]).unwrap();
        assert_eq!(three.rounds, 3);
        for bad in ["0", "16", "x"] {
            assert!(Args::try_parse_from(["secretvault-bench", "--rounds", bad]).is_err());
        }
    }
}
