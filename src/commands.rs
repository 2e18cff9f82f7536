//! The subcommands: the library's API for shell scripts and applications in
//! any language. Output is stable and machine-readable; diagnostics go to
//! stderr.

use std::process::ExitCode;

use crate::app::render::exposition;
use crate::cli::{CgiArgs, Cli, Command, CorsArgs, FastcgiArgs, IdCommand, ServeArgs, ServerArgs};
use crate::config::Config;
use crate::front::driver::Workers;
use crate::front::{cgi, fastcgi, http};
use crate::handoff::{Application, Backend, Service};
use crate::log;
use crate::model::http::parse_origin;
use crate::model::units::parse_duration;

/// Runs a parsed command line. `Err` is a start-up failure (exit status 2);
/// other outcomes carry their own exit status.
pub fn run(cli: Cli) -> Result<ExitCode, String> {
    let settings = cli.settings.settings();
    if let Command::Id { command } = &cli.command {
        let signer = Config::signer(&settings)?;
        return Ok(match command {
            IdCommand::New => {
                let id = signer.create().map_err(|e| e.to_string())?;
                let text = signer.format(&id);
                println!("{text}");
                if let Some(url) = Config::upload_url(&settings) {
                    println!("{url}?X-Progress-ID={text}");
                }
                ExitCode::SUCCESS
            }
            IdCommand::Check { id } => refused(signer.verify(id).map(|_| ())),
        });
    }
    let config = Config::load(&settings)?;
    let pool = &config.pool;
    Ok(match cli.command {
        Command::Id { .. } => ExitCode::SUCCESS,
        Command::Status { id } => refused(pool.verify_identifier(&id).and_then(|id| {
            let status = pool.access_upload_bucket(&id).status()?;
            println!("{}", json_line(&status));
            Ok(())
        })),
        Command::Path { id, n } => {
            let path = pool
                .verify_identifier(&id)
                .and_then(|id| pool.access_upload_bucket(&id).filename(n));
            match path {
                Ok(Some(path)) => {
                    println!("{}", path.display());
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    crate::log::say!("upload {id} has no complete file {n}");
                    ExitCode::FAILURE
                }
                Err(e) => refused(Err(e)),
            }
        }
        Command::Clear { id } => refused(
            pool.verify_identifier(&id)
                .and_then(|id| pool.clear_upload_bucket(&id)),
        ),
        Command::List => {
            for status in pool.list().map_err(|e| e.to_string())? {
                println!("{}", json_line(&status));
            }
            ExitCode::SUCCESS
        }
        Command::Gc {
            older_than,
            unfinished,
        } => {
            let age = older_than
                .map(|age| parse_duration(&age).map_err(|e| format!("--older-than: {e}")))
                .transpose()?;
            let mut removed = Vec::new();
            if unfinished {
                removed.extend(pool.expire().map_err(|e| e.to_string())?);
            }
            if let Some(age) = age {
                removed.extend(pool.gc(age).map_err(|e| e.to_string())?);
            }
            for id in removed {
                println!("{}", id.as_str());
            }
            ExitCode::SUCCESS
        }
        Command::Metrics => refused(pool.gauges().map(|gauges| {
            print!("{}", exposition(None, &gauges));
        })),
        Command::Serve(args) => serve(config, &args)?,
        Command::Cgi(args) => run_cgi(config, args)?,
        Command::Fastcgi(args) => run_fastcgi(config, &args)?,
    })
}

fn serve(config: Config, args: &ServeArgs) -> Result<ExitCode, String> {
    let (service, workers) = server(config, &args.server, !args.no_demo)?;
    http::serve(service, &args.listen, &workers)?;
    Ok(ExitCode::SUCCESS)
}

fn run_cgi(config: Config, args: CgiArgs) -> Result<ExitCode, String> {
    let mut exec = args.exec.into_iter();
    let application = match exec.next() {
        Some(program) => Some(Application::Exec {
            program,
            args: exec.collect(),
        }),
        None => backend(&args.backend)?,
    };
    // One request, one upload at most: no thread pool, no slot to share.
    cgi::run(&service(
        config,
        1,
        application,
        false,
        args.metrics.metrics,
        &args.cors,
    )?)
    .map_err(|e| format!("cannot write the answer: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn run_fastcgi(config: Config, args: &FastcgiArgs) -> Result<ExitCode, String> {
    let (service, workers) = server(config, &args.server, false)?;
    fastcgi::serve(service, args.listen.as_deref(), &workers)?;
    Ok(ExitCode::SUCCESS)
}

/// What the two long-running front ends set up alike: the host name of
/// the log lines, the workers, the application and the service.
fn server(mut config: Config, args: &ServerArgs, demo: bool) -> Result<(Service, Workers), String> {
    log::set_host(args.host_name.as_deref());
    config.pool = config.pool.with_lagging_hash();
    let workers = workers(&mut config, args)?;
    let application = backend(&args.backend)?;
    let service = service(
        config,
        workers.max_uploads,
        application,
        demo,
        args.metrics.metrics,
        &args.cors,
    )?;
    Ok((service, workers))
}

/// The upload slots, timeouts and grace of the daemon and the FastCGI
/// responder; the idle timeout also paces the core's body reading.
fn workers(config: &mut Config, args: &ServerArgs) -> Result<Workers, String> {
    let idle_timeout =
        parse_duration(&args.idle_timeout).map_err(|e| format!("--idle-timeout: {e}"))?;
    if idle_timeout.is_zero() {
        return Err("--idle-timeout: must be more than 0".into());
    }
    config.limits.idle_timeout = Some(idle_timeout);
    Ok(Workers {
        max_uploads: args.max_uploads,
        max_connections: args.max_connections,
        idle_timeout,
        grace: parse_duration(&args.grace).map_err(|e| format!("--grace: {e}"))?,
    })
}

fn backend(url: &Option<String>) -> Result<Option<Application>, String> {
    url.as_deref()
        .map(|url| Backend::new(url).map(Application::Backend))
        .transpose()
}

fn service(
    config: Config,
    max_uploads: usize,
    application: Option<Application>,
    demo: bool,
    metrics: bool,
    cors: &CorsArgs,
) -> Result<Service, String> {
    let origins = cors
        .cors_origin
        .iter()
        .map(|o| parse_origin(o).map_err(|e| format!("--cors-origin: {e}")))
        .collect::<Result<Vec<_>, String>>()?;
    let takes_uploads = config.upload_url.is_none();
    let app = config
        .app(max_uploads)
        .with_demo(demo)
        .with_metrics(metrics)
        .with_cors_origins(origins);
    Ok(Service::new(app, takes_uploads, application))
}

/// Exit 0, or 1 with the reason on stderr.
fn refused(result: crate::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::log::say!("{}", e.message());
            ExitCode::FAILURE
        }
    }
}

fn json_line(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}
