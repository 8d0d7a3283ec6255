//! The `portico` binary: parse the command line, load the config, run the command,
//! map failures to exit codes (2: bad config or usage, 1: anything else).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use portico::cli::{Cli, Command, ListenAddr, LogFormat, ServeArgs};
use portico::server::Listener;
use portico::{config, server, systemd};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match config::load_file(&config) {
            Ok(_) => {
                println!("ok: {}", config.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(2)
            }
        },
        Command::Serve(args) => serve(*args),
        Command::Explain(args) => {
            init_logging(Some("warn"), LogFormat::Text);
            match portico::explain::run(&args) {
                Ok(explanation) if args.json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&explanation).unwrap_or_default()
                    );
                    ExitCode::SUCCESS
                }
                Ok(explanation) => {
                    print!("{}", explanation.text());
                    ExitCode::SUCCESS
                }
                Err(portico::explain::ExplainError::Config(error)) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(args) => {
            init_logging(
                Some(args.log_level.as_deref().unwrap_or("warn")),
                LogFormat::Text,
            );
            match portico::bench::run(&args) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(portico::bench::BenchError::Config(error)) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    // The config first: it may choose the log's format (reading it logs nothing).
    let config = match config::load(&args) {
        Ok(config) => Arc::new(config),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(args.log_level.as_deref(), config.log_format);
    // SAFETY: no other thread exists yet (the runtime starts below).
    let inherited = match unsafe { portico::systemd::take_listen_fds() } {
        Ok(inherited) => inherited,
        Err(error) => {
            eprintln!("error: cannot take the sockets systemd passed: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The blocking pool runs file spooling, and CGI spawns when there is one runtime thread:
    // a few threads per CPU are enough and each one costs memory.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Err(error) = portico::cgi::exec::keep_inherited_fds_from_scripts() {
        tracing::warn!(%error, "fds inherited from the parent may reach scripts");
    }
    if !config.cgi.is_empty() {
        // Before the runtime opens its fds, so that the slots get the lowest numbers. Runtime
        // threads and blocking threads may each be spawning a script at once.
        portico::cgi::stdio_slots::reserve(config.threads + 4 * cpus);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .max_blocking_threads(4 * cpus)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Installed before `listening on` is printed, so a signal sent right after is handled.
        let shutdown = match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(error) => {
                eprintln!("error: cannot install signal handlers: {error}");
                return ExitCode::FAILURE;
            }
        };
        let listeners = if inherited.is_empty() {
            match bind(&config).await {
                Ok(listeners) => listeners,
                Err((addr, error)) => {
                    eprintln!("error: cannot listen on {addr}: {error}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            // Socket activation: the unit's sockets replace `listen` and `[tls] listen`.
            let mut listeners = Vec::new();
            for socket in inherited {
                let tls = socket.name == "https";
                if tls && config.tls.is_none() {
                    eprintln!("error: systemd passed a socket named https, and there is no [tls]");
                    return ExitCode::FAILURE;
                }
                match Listener::inherited(socket.fd, tls) {
                    Ok(listener) => listeners.push(listener),
                    Err(error) => {
                        eprintln!(
                            "error: cannot serve the socket `{}` systemd passed: {error}",
                            socket.name
                        );
                        return ExitCode::FAILURE;
                    }
                }
            }
            listeners
        };
        // Bound, so a privileged port is held: nothing after this needs root.
        if let Some(run_as) = &config.run_as {
            if let Err(error) = run_as.switch() {
                eprintln!("error: cannot serve as `{}`: {error}", run_as.user);
                return ExitCode::FAILURE;
            }
        } else if nix::unistd::geteuid().is_root() {
            tracing::warn!("serving as root: scripts run as root too; set `user` to change that");
        }
        // Printed whatever the log level: what started Portico waits for these lines.
        for listener in &listeners {
            let line = format!("listening on {}", listener.describe());
            match config.log_format {
                LogFormat::Text => eprintln!("{line}"),
                LogFormat::Json => eprintln!("{}", listening_json(&line, &listener.describe())),
            }
        }
        portico::systemd::notify(portico::systemd::State::Ready);
        let reloads = match reload_on_hangup(args.clone()) {
            Ok(reloads) => reloads,
            Err(error) => {
                eprintln!("error: cannot install signal handlers: {error}");
                return ExitCode::FAILURE;
            }
        };
        match server::run(config, listeners, shutdown, reloads).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Binds `listen` and `[tls] listen`; the address that failed, and why.
async fn bind(config: &config::Config) -> Result<Vec<Listener>, (ListenAddr, std::io::Error)> {
    let mut listeners = Vec::new();
    let tls = config.tls.iter().flat_map(|tls| &tls.listen);
    let plain = config.listen.iter().map(|addr| (addr.clone(), false));
    for (addr, is_tls) in plain.chain(tls.map(|addr| (ListenAddr::Tcp(*addr), true))) {
        let bound = match &addr {
            ListenAddr::Tcp(tcp) => TcpListener::bind(tcp).await.map(|socket| match is_tls {
                true => Listener::tls(socket),
                false => Listener::plain(socket),
            }),
            ListenAddr::Unix(path) => {
                let unix = config.unix_socket;
                Listener::unix(path, unix.mode, unix.group)
            }
        };
        listeners.push(bound.map_err(|error| (addr, error))?);
    }
    Ok(listeners)
}

/// `--log-level` if given, else RUST_LOG, else `info`; as text or JSON lines.
fn init_logging(level: Option<&str>, format: LogFormat) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => log
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // Fields at the top level beside time, level and target, so that a shipper finds
        // `id`, `status` or `cause` without knowing tracing's nesting.
        LogFormat::Json => log
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// On SIGHUP, reads the config again the way `serve` did; a bad one is logged and skipped.
fn reload_on_hangup(args: ServeArgs) -> std::io::Result<mpsc::Receiver<Arc<config::Config>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            systemd::notify(systemd::State::Reloading);
            match config::load(&args) {
                Ok(config) => {
                    if tx.send(Arc::new(config)).await.is_err() {
                        break;
                    }
                }
                Err(error) => tracing::error!("config reload refused: {error}"),
            }
            systemd::notify(systemd::State::Ready);
        }
    });
    Ok(rx)
}

/// Resolves on SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        systemd::notify(systemd::State::Stopping);
    })
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The `listening on` line as a JSON log line, in the fields `--log-format json` uses.
fn listening_json(message: &str, address: &str) -> String {
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "timestamp": timestamp,
        "level": "INFO",
        "target": "portico",
        "message": message,
        "address": address,
    })
    .to_string()
}
