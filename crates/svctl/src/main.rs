use std::process::ExitCode;

fn main() -> ExitCode {
    // rustls needs a process-wide crypto provider; ring is the one the workspace builds.
    // An error only means one is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ExitCode::from(svctl::run(std::env::args_os()))
}
