//! The `fileupload` binary: parses the command line and dispatches.

use std::process::ExitCode;

use clap::Parser;
use fileupload::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match fileupload::commands::run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("fileupload: {message}");
            ExitCode::from(2)
        }
    }
}
