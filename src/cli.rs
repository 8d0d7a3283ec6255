//! Command-line definitions (clap). Raw `Option`s only: merging with the config file
//! and validation happen in `config`, once.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "portico",
    version,
    about = "CGI/1.1 gateway and process launcher"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP, running scripts per the config (default `conf/portico.toml`).
    Serve(Box<ServeArgs>),
    /// Measure requests/s, latency and CPU per request of URL paths: the in-process
    /// Portico of a config, or any server at --url.
    Bench(BenchArgs),
    /// Run one request and show it the three ways Portico hands it over: CGI, FastCGI, WSGI.
    Explain(ExplainArgs),
    /// Validate a config file and exit (0 valid, 2 invalid).
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Flags of `serve`. Every setting here has the same name as its TOML key and wins over it.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// Config file; without it and without --cgi-dir, `conf/portico.toml`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Quick mode: serve this directory of scripts (no config file needed).
    #[arg(long, value_name = "DIR")]
    pub cgi_dir: Option<PathBuf>,
    /// URL path where --cgi-dir is mounted.
    #[arg(long, value_name = "PATH", requires = "cgi_dir")]
    pub mount: Option<String>,
    /// Directory given as DOCUMENT_ROOT; PATH_TRANSLATED is it joined with PATH_INFO.
    /// Default in quick mode: the current directory.
    #[arg(long, value_name = "DIR")]
    pub document_root: Option<PathBuf>,
    /// Address to listen on (host:port, or unix:PATH); repeat for several.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<ListenAddr>,
    /// Deadline for the response head and for idle time between output chunks.
    #[arg(long, value_name = "SECONDS")]
    pub script_timeout_seconds: Option<f64>,
    /// Deadline for the whole script run.
    #[arg(long, value_name = "SECONDS")]
    pub script_total_timeout_seconds: Option<f64>,
    /// Scripts running at once; further requests queue.
    #[arg(long, value_name = "N")]
    pub max_concurrent_scripts: Option<usize>,
    /// How long a request may queue for a script slot before 503.
    #[arg(long, value_name = "SECONDS")]
    pub queue_timeout_seconds: Option<f64>,
    /// Largest request body accepted (413 above).
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<u64>,
    /// Time a client has to send the request head.
    #[arg(long, value_name = "SECONDS")]
    pub header_read_timeout_seconds: Option<f64>,
    /// Time between SIGTERM and SIGKILL when a script's process group is ended.
    #[arg(long, value_name = "SECONDS")]
    pub kill_grace_seconds: Option<f64>,
    /// Time running requests get to finish after SIGTERM/SIGINT.
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_timeout_seconds: Option<f64>,
    /// User to serve as once the listening sockets are bound (Portico must start as root).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Group to serve as with --user (default: the user's own).
    #[arg(long, value_name = "NAME", requires = "user")]
    pub group: Option<String>,
    /// Threads serving requests (default: one per CPU with CGI mounts, else half the CPUs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Append a line per request to FILE, in the Combined Log Format (reopened on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `portico=trace`...); RUST_LOG works too.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// `text` (default) or `json`: one JSON object per line, for log shippers.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How the log on stderr is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `key=value` fields after the message, for people.
    #[default]
    Text,
    /// One JSON object per line: time, level, target, message and every field by name.
    Json,
}

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Log filter for the in-process Portico (default `warn`: no access lines).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Config of the in-process Portico (default `conf/portico.toml`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Load a running server instead (Portico or any other): http://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Connections kept open at once.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub connections: usize,
    /// Threads of the load generator.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds of load per target.
    #[arg(short = 'd', long = "duration-seconds", default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of load per target before measuring.
    #[arg(long = "warmup-seconds", default_value_t = 1.0)]
    pub warmup: f64,
    /// Stop each target after this many requests instead of after the duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Send this many requests per second in all, evenly spaced, and count latency from
    /// when each was due (latency under load, without coordinated omission).
    #[arg(long, value_name = "REQUESTS_PER_SECOND")]
    pub rate: Option<f64>,
    /// Load the whole set of targets this many times, in turn (A B A B), so drift shows.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write an HTML page with charts (throughput, latency, CPU split) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// URL paths to load, e.g. /cgi-bin/hello.sh /fcgi/hello, or `cgi:NAME` (NAME under the
    /// first CGI mount) and `fcgi:NAME` (the FastCGI mount named NAME). Default: the hello
    /// examples of the default config, as CGI in each language and as a launched FastCGI pool.
    pub targets: Vec<String>,
}

/// Flags of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Config (default `conf/portico.toml`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Send this as the request body (a form, unless -H gives a Content-Type).
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// Send the file's bytes as the request body, like --data (for bodies too large for
    /// a command line).
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
    /// An extra request header, `Name: value`; repeat for more.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Show Cookie and Authorization values instead of masking them.
    #[arg(long)]
    pub show_secrets: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// GET, POST...
    pub method: String,
    /// The request target: a path like /cgi-bin/hello.sh?x=1, or a full http:// URL.
    pub url: String,
}

/// Where a listener is bound: a TCP address, or a unix socket's path (`unix:PATH`) for a
/// front proxy on the same host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<ListenAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a path, like unix:/run/portico.sock".into());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        text.parse().map(ListenAddr::Tcp).map_err(|_| {
            format!("`{text}` is not an address like 127.0.0.1:8080 or unix:/run/portico.sock")
        })
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}
