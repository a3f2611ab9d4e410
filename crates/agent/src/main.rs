//! `secretvault-agent`: see `secretvault_agent::cli` and docs/agent.md.

fn main() -> std::process::ExitCode {
    secretvault_agent::cli::main_with(std::env::args().skip(1).collect())
}
