//! The `fileupload` binary: parses the command line and dispatches.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use fileupload::cli::{Cli, Command};
use fileupload::front::{cgi, listen};

fn main() -> ExitCode {
    let cli = Cli::parse_from(arguments());
    let under_cgi = matches!(cli.command, Command::Cgi(_));
    match fileupload::commands::run(cli) {
        Ok(code) => code,
        Err(message) => {
            fileupload::log::message(format_args!("{message}"));
            if under_cgi {
                cgi::answer_startup_failure();
            }
            ExitCode::from(2)
        }
    }
}

/// The command line, with the subcommand a web server cannot give: the
/// binary started as a CGI script acts as `cgi`, and started with a
/// listening socket on fd 0 and no arguments (spawn-fcgi, lighttpd) as
/// `fastcgi`.
fn arguments() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let given = args.get(1..).unwrap_or_default();
    let implied = if std::env::var_os("GATEWAY_INTERFACE").is_some() {
        let query = std::env::var("QUERY_STRING").ok();
        cgi::is_script_invocation(given, query.as_deref()).then_some("cgi")
    } else if given.is_empty() && listen::inherited_listener() {
        Some("fastcgi")
    } else {
        None
    };
    if let Some(command) = implied {
        // Arguments a server derived from the query are not ours to parse.
        args.truncate(1);
        args.push(command.into());
    }
    args
}
