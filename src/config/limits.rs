//! `[limits]`: the bounds on connections, heads, bodies, script run time and resources,
//! and lingering closes ([`Limits`]), each from its flag, else the file, else the
//! built-in default, checked once.
//!
//! It does not enforce them: `server`, `body`, `cgi` and `connection` do, per request.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::source::{ConfigError, Validator};
use super::value::pick;
use crate::cli::ServeArgs;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    pub body_memory_bytes: usize,
    pub header_read_timeout: Duration,
    /// The longest a response write may wait on a client that does not read: past it the
    /// connection is closed and the program behind it ended (nginx's `send_timeout`).
    pub send_timeout: Duration,
    /// The longest pause in a request body (nginx's `client_body_timeout`).
    pub body_read_timeout: Duration,
    pub script_head_timeout: Duration,
    pub script_idle_timeout: Duration,
    pub script_total_timeout: Duration,
    pub kill_grace: Duration,
    pub max_concurrent_scripts: usize,
    pub queue_timeout: Duration,
    pub max_local_redirects: u32,
    pub shutdown_timeout: Duration,
    /// How long a connection closed by Portico may go on reading what the client still
    /// sends (RFC 9112 §9.6), in all and between two reads, and how many bytes of it.
    pub lingering_time: Duration,
    pub lingering_timeout: Duration,
    pub max_lingering_bytes: u64,
    /// RLIMIT_CPU of every script, in seconds of CPU time; `None`: Portico's own.
    pub script_cpu_seconds: Option<u64>,
    /// RLIMIT_AS of every script, in bytes; `None`: Portico's own.
    pub script_memory_bytes: Option<u64>,
    /// RLIMIT_FSIZE of every script, the largest file it may write, in bytes; `None`:
    /// Portico's own.
    pub script_file_size_bytes: Option<u64>,
    /// Whether processes that escape a script's or worker's process group are killed
    /// (`orphans`).
    pub kill_orphans: bool,
}

impl Default for Limits {
    /// The built-in defaults, documented in `conf/portico.toml`. Scripts running at once
    /// default to 8 per CPU: far more CPU-bound children than cores only adds context
    /// switches (measured: 64 at once on 2 CPUs gave 6% fewer requests/s and a 40% longer
    /// p99 than 16), while a queued request waits in FIFO order.
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 10 << 20,
            body_memory_bytes: 256 << 10,
            header_read_timeout: Duration::from_secs(10),
            // nginx's `send_timeout` and Apache's `Timeout`.
            send_timeout: Duration::from_secs(60),
            // nginx's `client_body_timeout`.
            body_read_timeout: Duration::from_secs(60),
            script_head_timeout: Duration::from_secs(30),
            script_idle_timeout: Duration::from_secs(30),
            script_total_timeout: Duration::from_secs(300),
            kill_grace: Duration::from_secs(1),
            max_concurrent_scripts: 8 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_timeout: Duration::from_secs(5),
            max_local_redirects: 10,
            shutdown_timeout: Duration::from_secs(10),
            // Apache's and nginx's 30 s in all; nginx's 5 s between reads.
            lingering_time: Duration::from_secs(30),
            lingering_timeout: Duration::from_secs(2),
            max_lingering_bytes: 10 << 20,
            script_cpu_seconds: None,
            script_memory_bytes: None,
            script_file_size_bytes: None,
            kill_orphans: true,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    max_connections: Option<Spanned<usize>>,
    max_header_bytes: Option<Spanned<usize>>,
    max_body_bytes: Option<Spanned<u64>>,
    body_memory_bytes: Option<Spanned<usize>>,
    header_read_timeout_seconds: Option<Spanned<f64>>,
    send_timeout_seconds: Option<Spanned<f64>>,
    body_read_timeout_seconds: Option<Spanned<f64>>,
    script_head_timeout_seconds: Option<Spanned<f64>>,
    script_idle_timeout_seconds: Option<Spanned<f64>>,
    script_total_timeout_seconds: Option<Spanned<f64>>,
    kill_grace_seconds: Option<Spanned<f64>>,
    max_concurrent_scripts: Option<Spanned<usize>>,
    queue_timeout_seconds: Option<Spanned<f64>>,
    max_local_redirects: Option<Spanned<u32>>,
    shutdown_timeout_seconds: Option<Spanned<f64>>,
    lingering_time_seconds: Option<Spanned<f64>>,
    lingering_timeout_seconds: Option<Spanned<f64>>,
    max_lingering_bytes: Option<Spanned<u64>>,
    script_cpu_seconds: Option<Spanned<u64>>,
    script_memory_mb: Option<Spanned<u64>>,
    script_file_size_mb: Option<Spanned<u64>>,
    kill_orphans: Option<Spanned<bool>>,
}

impl Validator<'_> {
    pub(super) fn limits(&self, raw: &RawLimits, args: &ServeArgs) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let flag = |name: &'static str, value: Option<f64>| value.map(|v| (name, v));
        let script_timeout = flag("script-timeout-seconds", args.script_timeout_seconds);
        if args.max_concurrent_scripts == Some(0) {
            return Err(Self::flag_error(
                "max-concurrent-scripts",
                "must be at least 1",
            ));
        }
        Ok(Limits {
            max_connections: self
                .at_least(pick(None, &raw.max_connections, d.max_connections), 1)?,
            max_header_bytes: self
                .at_least(pick(None, &raw.max_header_bytes, d.max_header_bytes), 8192)?,
            max_body_bytes: pick(args.max_body_bytes, &raw.max_body_bytes, d.max_body_bytes).0,
            body_memory_bytes: pick(None, &raw.body_memory_bytes, d.body_memory_bytes).0,
            header_read_timeout: self.seconds(
                flag(
                    "header-read-timeout-seconds",
                    args.header_read_timeout_seconds,
                ),
                &raw.header_read_timeout_seconds,
                d.header_read_timeout,
            )?,
            send_timeout: self.seconds(None, &raw.send_timeout_seconds, d.send_timeout)?,
            body_read_timeout: self.seconds(
                None,
                &raw.body_read_timeout_seconds,
                d.body_read_timeout,
            )?,
            script_head_timeout: self.seconds(
                script_timeout,
                &raw.script_head_timeout_seconds,
                d.script_head_timeout,
            )?,
            script_idle_timeout: self.seconds(
                script_timeout,
                &raw.script_idle_timeout_seconds,
                d.script_idle_timeout,
            )?,
            script_total_timeout: self.seconds(
                flag(
                    "script-total-timeout-seconds",
                    args.script_total_timeout_seconds,
                ),
                &raw.script_total_timeout_seconds,
                d.script_total_timeout,
            )?,
            kill_grace: self.seconds(
                flag("kill-grace-seconds", args.kill_grace_seconds),
                &raw.kill_grace_seconds,
                d.kill_grace,
            )?,
            max_concurrent_scripts: self.at_least(
                pick(
                    args.max_concurrent_scripts,
                    &raw.max_concurrent_scripts,
                    d.max_concurrent_scripts,
                ),
                1,
            )?,
            queue_timeout: self.seconds(
                flag("queue-timeout-seconds", args.queue_timeout_seconds),
                &raw.queue_timeout_seconds,
                d.queue_timeout,
            )?,
            max_local_redirects: pick(None, &raw.max_local_redirects, d.max_local_redirects).0,
            shutdown_timeout: self.seconds(
                flag("shutdown-timeout-seconds", args.shutdown_timeout_seconds),
                &raw.shutdown_timeout_seconds,
                d.shutdown_timeout,
            )?,
            lingering_time: self.seconds(None, &raw.lingering_time_seconds, d.lingering_time)?,
            lingering_timeout: self.seconds(
                None,
                &raw.lingering_timeout_seconds,
                d.lingering_timeout,
            )?,
            max_lingering_bytes: pick(None, &raw.max_lingering_bytes, d.max_lingering_bytes).0,
            script_cpu_seconds: self.script_rlimit(&raw.script_cpu_seconds, 1, libc::RLIMIT_CPU)?,
            script_memory_bytes: self.script_rlimit(
                &raw.script_memory_mb,
                1 << 20,
                libc::RLIMIT_AS,
            )?,
            script_file_size_bytes: self.script_rlimit(
                &raw.script_file_size_mb,
                1 << 20,
                libc::RLIMIT_FSIZE,
            )?,
            kill_orphans: pick(None, &raw.kill_orphans, d.kill_orphans).0,
        })
    }

    /// A script's resource limit in units of one. Above Portico's own hard limit it would
    /// fail every spawn (only a privileged process may raise one), so it is refused here.
    fn script_rlimit(
        &self,
        file: &Option<Spanned<u64>>,
        unit: u64,
        resource: crate::cgi::exec::Resource,
    ) -> Result<Option<u64>, ConfigError> {
        let Some(value) = self.positive(file, unit)? else {
            return Ok(None);
        };
        // SAFETY: getrlimit fills the local struct; geteuid has no effects.
        let mut own = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let known = unsafe { libc::getrlimit(resource, &mut own) } == 0;
        let privileged = unsafe { libc::geteuid() } == 0;
        // The CPU limit's hard value is one second above its soft one (`cgi::spawn`).
        let hard = value.saturating_add(u64::from(resource == libc::RLIMIT_CPU));
        if known && !privileged && own.rlim_max != libc::RLIM_INFINITY && hard > own.rlim_max {
            let span = file.as_ref().map(Spanned::span);
            return Err(self.at(span, "is above the hard limit Portico itself runs under"));
        }
        Ok(Some(value))
    }

    /// An optional count of `unit`s, at least one, returned in units of one.
    fn positive(&self, file: &Option<Spanned<u64>>, unit: u64) -> Result<Option<u64>, ConfigError> {
        let Some(value) = file else {
            return Ok(None);
        };
        match value.get_ref().checked_mul(unit) {
            Some(0) => Err(self.at(Some(value.span()), "must be at least 1")),
            Some(n) => Ok(Some(n)),
            None => Err(self.at(Some(value.span()), "is too large")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::source::Source;
    use super::*;

    /// The `[limits]` of a whole config text, checked as `load_file` checks them.
    fn parse(text: &str) -> Result<Limits, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            limits: RawLimits,
        }
        let file: File = toml::from_str(text).unwrap();
        let validator = Validator {
            source: Some(Source::new(Path::new("p.toml"), text)),
        };
        validator.limits(&file.limits, &ServeArgs::default())
    }

    #[test]
    fn script_resource_limits_are_read_in_their_units() {
        let cgi = "[[cgi]]\nmount='/c'\ndir='bin'\n";
        let limits = parse(cgi).unwrap();
        assert_eq!(limits.script_cpu_seconds, None);
        assert_eq!(limits.script_memory_bytes, None);
        let limits = parse(&format!(
            "[limits]\nscript_cpu_seconds = 5\nscript_memory_mb = 256\nscript_file_size_mb = 3\n{cgi}"
        ))
        .unwrap();
        assert_eq!(limits.script_cpu_seconds, Some(5));
        assert_eq!(limits.script_memory_bytes, Some(256 << 20));
        assert_eq!(limits.script_file_size_bytes, Some(3 << 20));
        for (line, key) in [
            ("script_cpu_seconds = 0", "limits.script_cpu_seconds"),
            ("script_memory_mb = 0", "limits.script_memory_mb"),
            ("script_file_size_mb = 0", "limits.script_file_size_mb"),
            (
                "script_memory_mb = 18446744073709551615",
                "limits.script_memory_mb",
            ),
        ] {
            let err = parse(&format!("{cgi}[limits]\n{line}\n")).unwrap_err();
            assert_eq!(
                (err.line, err.key.as_deref()),
                (Some(5), Some(key)),
                "{line}"
            );
        }
    }

    #[test]
    fn lingering_bounds_are_read_in_their_units() {
        let cgi = "[[cgi]]\nmount='/c'\ndir='bin'\n";
        let limits = parse(cgi).unwrap();
        assert_eq!(
            (
                limits.lingering_time,
                limits.lingering_timeout,
                limits.max_lingering_bytes
            ),
            (Duration::from_secs(30), Duration::from_secs(2), 10 << 20)
        );
        let limits = parse(&format!(
            "[limits]\nlingering_time_seconds = 2.5\nlingering_timeout_seconds = 0.5\nmax_lingering_bytes = 4096\n{cgi}"
        ))
        .unwrap();
        assert_eq!(
            (
                limits.lingering_time,
                limits.lingering_timeout,
                limits.max_lingering_bytes
            ),
            (
                Duration::from_millis(2500),
                Duration::from_millis(500),
                4096
            )
        );
        for key in ["lingering_time_seconds", "lingering_timeout_seconds"] {
            let err = parse(&format!("{cgi}[limits]\n{key} = 0\n")).unwrap_err();
            let key = format!("limits.{key}");
            assert_eq!(
                (err.line, err.key.as_deref()),
                (Some(5), Some(key.as_str()))
            );
        }
    }
}
