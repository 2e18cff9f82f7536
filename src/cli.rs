//! The command line: every setting is a flag and a `FILEUPLOAD_*` variable,
//! the flag winning.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;

/// Takes browser file uploads into a pool directory, reports their progress
/// by identifier, and answers with a JSON description of what it stored.
#[derive(Debug, Parser)]
#[command(name = "fileupload", version)]
pub struct Cli {
    /// Settings every subcommand shares.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every subcommand shares.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Pool directory; created (mode 0700) if missing.
    #[arg(
        long,
        env = "FILEUPLOAD_DIRECTORY",
        default_value = "./uploads",
        global = true,
        value_name = "DIR"
    )]
    pub directory: PathBuf,
    /// Largest accepted upload: a bare number is megabytes, or give a unit
    /// K, M or G (powers of 1024); 0 is no limit.
    #[arg(
        long,
        env = "FILEUPLOAD_MAX_SIZE",
        default_value = "0",
        global = true,
        value_name = "SIZE"
    )]
    pub max_size: String,
    /// Most files in one upload.
    #[arg(
        long,
        env = "FILEUPLOAD_MAX_FILES",
        default_value_t = 20,
        global = true,
        value_name = "N"
    )]
    pub max_files: usize,
    /// A dedicated upload server: this instance then takes no uploads, and
    /// `id new` prints the URL to upload to.
    #[arg(long, env = "FILEUPLOAD_UPLOAD_URL", global = true, value_name = "URL")]
    pub upload_url: Option<String>,
    /// File holding the private key that signs identifiers (the key itself
    /// may be given in FILEUPLOAD_KEY instead, never as a flag).
    #[arg(long, env = "FILEUPLOAD_KEY_FILE", global = true, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// How long an unfinished tus upload lives after its last write (or
    /// its creation): 45s, 30m, 12h, 7d. Then it answers 410 and is
    /// removed (by the daemon and the FastCGI responder themselves, by
    /// `gc --unfinished` for CGI).
    #[arg(
        long,
        env = "FILEUPLOAD_EXPIRE_AFTER",
        default_value = "24h",
        global = true,
        value_name = "DURATION"
    )]
    pub expire_after: String,
}

impl SettingsArgs {
    /// The settings, with the key from `FILEUPLOAD_KEY`.
    pub fn settings(&self) -> Settings {
        use std::os::unix::ffi::OsStringExt;
        Settings {
            directory: self.directory.clone(),
            max_size: self.max_size.clone(),
            max_files: self.max_files,
            upload_url: self.upload_url.clone(),
            key_file: self.key_file.clone(),
            expire_after: self.expire_after.clone(),
            key: std::env::var_os("FILEUPLOAD_KEY").map(|k| k.into_vec()),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make or check identifiers.
    Id {
        /// What to do with identifiers.
        #[command(subcommand)]
        command: IdCommand,
    },
    /// Print an upload's status JSON.
    Status {
        /// The identifier.
        id: String,
    },
    /// Print the absolute path of a complete upload's file N (default 0).
    Path {
        /// The identifier.
        id: String,
        /// Which file, from 0.
        #[arg(default_value_t = 0)]
        n: usize,
    },
    /// Remove an upload.
    Clear {
        /// The identifier.
        id: String,
    },
    /// Print every upload's status, one JSON per line.
    List,
    /// Remove finished uploads older than a duration, and interrupted ones
    /// (--older-than); remove expired unfinished tus uploads
    /// (--unfinished). Prints the identifiers removed.
    #[command(group(
        clap::ArgGroup::new("what")
            .required(true)
            .multiple(true)
            .args(["older_than", "unfinished"])
    ))]
    Gc {
        /// Age past which finished uploads go: 30m, 12h, 7d.
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Remove the unfinished tus uploads that have expired (see
        /// --expire-after): what the daemon and the FastCGI responder do
        /// by themselves, for CGI deployments.
        #[arg(long)]
        unfinished: bool,
    },
    /// Print the pool's gauges (buckets by state, bytes stored) in the
    /// Prometheus text format, for node_exporter's textfile collector.
    Metrics,
    /// Run the HTTP daemon.
    Serve(ServeArgs),
    /// Answer one request as a CGI program (RFC 3875); the default when
    /// started by a web server (GATEWAY_INTERFACE set) with no subcommand.
    Cgi(CgiArgs),
    /// Run a FastCGI responder.
    Fastcgi(FastcgiArgs),
}

/// Identifier subcommands.
#[derive(Debug, Subcommand)]
pub enum IdCommand {
    /// Print a new identifier (and the URL to upload to, with --upload-url).
    New,
    /// Exit 0 when the identifier is valid, 1 with the reason when not.
    Check {
        /// The identifier.
        id: String,
    },
}

/// Options of the HTTP daemon.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT, unix:PATH, or fd:N for a listening
    /// socket inherited as file descriptor N (systemd socket activation:
    /// fd:0 with StandardInput=socket, fd:3 with LISTEN_FDS).
    #[arg(
        long,
        env = "FILEUPLOAD_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: String,
    /// Options shared with the FastCGI responder.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Do not serve the demo pages at /, /iframe and /resumable (in the variable:
    /// 1, true, yes or on).
    #[arg(long, env = "FILEUPLOAD_NO_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_demo: bool,
}

/// Options of the long-running front ends (daemon and FastCGI responder).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Uploads in progress at once; one more gets 503 with Retry-After.
    #[arg(
        long,
        env = "FILEUPLOAD_MAX_UPLOADS",
        default_value_t = 32,
        value_name = "N"
    )]
    pub max_uploads: usize,
    /// Connections open at once; at the limit the oldest idle connection is
    /// closed to make room (503, or for FastCGI a close, only when every one
    /// is busy).
    #[arg(
        long,
        env = "FILEUPLOAD_MAX_CONNECTIONS",
        default_value_t = 256,
        value_name = "N"
    )]
    pub max_connections: usize,
    /// Cut off a client that sends nothing (or less than 1 KiB) for this long.
    #[arg(
        long,
        env = "FILEUPLOAD_IDLE_TIMEOUT",
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub idle_timeout: String,
    /// On SIGINT or SIGTERM, let uploads in progress finish for this long.
    #[arg(
        long,
        env = "FILEUPLOAD_GRACE",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub grace: String,
    /// After a successful upload, POST its description to this URL and
    /// relay the answer.
    #[arg(long, env = "FILEUPLOAD_BACKEND", value_name = "URL")]
    pub backend: Option<String>,
    /// The host name each request log line carries (default: the kernel's,
    /// as `uname -n` gives it), so that a fleet's logs can be merged.
    #[arg(long, env = "FILEUPLOAD_HOST_NAME", value_name = "NAME")]
    pub host_name: Option<String>,
    /// Whether to serve `…/metrics`.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Which other origins browser pages may call from.
    #[command(flatten)]
    pub cors: CorsArgs,
}

/// The origins whose browser pages may call the endpoints: by every front
/// end alike.
#[derive(Debug, Args)]
pub struct CorsArgs {
    /// Answer browser pages on this origin (scheme://host or
    /// scheme://host:port, matched exactly) on the tus, upload, status and clear endpoints: CORS
    /// preflights and Access-Control-Allow-Origin. Repeat it, or separate
    /// origins with commas (in the variable too); none by default, and then
    /// no CORS header at all.
    #[arg(
        long,
        env = "FILEUPLOAD_CORS_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origin: Vec<String>,
}

/// Whether `…/metrics` is served: by every front end alike.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Serve `GET …/metrics` in the Prometheus text format (404 without;
    /// in the variable: 1, true, yes or on).
    #[arg(long, env = "FILEUPLOAD_METRICS", value_parser = clap::builder::BoolishValueParser::new())]
    pub metrics: bool,
}

/// Options of the CGI front end.
#[derive(Debug, Args)]
pub struct CgiArgs {
    /// After a successful upload, POST its description to this URL and
    /// relay the answer.
    #[arg(
        long,
        env = "FILEUPLOAD_BACKEND",
        value_name = "URL",
        conflicts_with = "exec"
    )]
    pub backend: Option<String>,
    /// After a successful upload, run PROGRAM as a CGI program with the
    /// description on its stdin; other requests go to it unchanged. Takes
    /// every argument after it.
    #[arg(
        long,
        env = "FILEUPLOAD_EXEC",
        num_args = 1..,
        allow_hyphen_values = true,
        value_name = "PROGRAM [ARGS]..."
    )]
    pub exec: Vec<std::ffi::OsString>,
    /// Whether to serve `…/metrics`.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Which other origins browser pages may call from.
    #[command(flatten)]
    pub cors: CorsArgs,
}

/// Options of the FastCGI responder.
#[derive(Debug, Args)]
pub struct FastcgiArgs {
    /// Address to listen on: HOST:PORT, unix:PATH or fd:N; without it, the
    /// listening socket inherited as file descriptor 0.
    #[arg(long, env = "FILEUPLOAD_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Ignored: kept so that command lines and unit files written for
    /// earlier versions still start. Connections now get a thread each,
    /// up to --max-connections.
    #[arg(long, env = "FILEUPLOAD_THREADS", hide = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Options shared with the daemon.
    #[command(flatten)]
    pub server: ServerArgs,
}
