//! The `quiver` binary: parse the command line, run it, print one `error:` line on failure.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = quiverdb_cli::Cli::parse();
    quiverdb_cli::exit_code(quiverdb_cli::run(cli, &mut std::io::stdout()))
}
