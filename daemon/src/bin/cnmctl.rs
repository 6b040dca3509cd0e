//! `cnmctl`: the command-line client of cnmd.

use clap::Parser;
use cnmd::cli::{Cli, Outcome};

fn main() {
    let cli = Cli::parse();
    // A single-threaded runtime for the API calls, dropped before an exec
    // enters the sandbox's namespaces.
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| cnmd::cli::CliError::Output(format!("cannot start the runtime: {e}")))
        .and_then(|rt| rt.block_on(cnmd::cli::run(cli)));
    match outcome {
        Ok(Outcome::Exit(code)) => std::process::exit(code),
        Ok(Outcome::Exec(plan)) => {
            let err = cnmd::cli::exec::exec(&plan);
            eprintln!("cnmctl: error: {}", cnm::Chain(&err));
            std::process::exit(err.exit_code());
        }
        Err(e) => {
            eprintln!("cnmctl: error: {}", cnm::Chain(&e));
            std::process::exit(1);
        }
    }
}
