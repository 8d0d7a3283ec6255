//! What Portico's log says about the explained request: its access line (target
//! `portico::access`, written once by whoever ends the request), read from the event's
//! fields. A client cannot see what only the server knows: that a script answered with a
//! local redirect (RFC 3875 §6.2.2 has the server hide it; the line names the path that
//! answered instead), the script's pid, exit status, CPU time and peak memory, or why
//! Portico answered with an error. The log is where the product says these things, so
//! `explain` reads them there instead of asking the server's insides.
//!
//! The lines are captured by a subscriber of `explain`'s own, set for the thread that runs
//! the in-process server; it also prints warnings to stderr, as `main` does for the rest.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Where `backend::log` writes access lines.
const TARGET: &str = "portico::access";

/// One access line: its fields by name, as text.
#[derive(Debug, Default, Clone)]
pub struct AccessLine(BTreeMap<&'static str, String>);

impl AccessLine {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    fn answered(&self) -> bool {
        self.get("redirect").is_none()
    }
}

/// The access lines written while it was the thread's subscriber, in order.
#[derive(Clone, Default)]
pub struct AccessLines {
    lines: Arc<Mutex<Vec<AccessLine>>>,
    written: Arc<Notify>,
}

impl AccessLines {
    /// A subscriber that records access lines here and prints warnings to stderr.
    pub fn subscriber(&self) -> impl Subscriber + Send + Sync + 'static {
        // The access line is part of the explanation, not printed again.
        let warnings = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter_fn(|meta| {
                *meta.level() <= Level::WARN && meta.target() != TARGET
            }));
        tracing_subscriber::registry()
            .with(warnings)
            .with(self.clone())
    }

    /// The last line of a request that was answered: a script that answered with a local
    /// redirect writes a line too, naming the path the request went on as, and it may be
    /// reaped after the script that answered.
    pub fn last(&self) -> Option<AccessLine> {
        self.lock().iter().rev().find(|l| l.answered()).cloned()
    }

    /// Waits until `count` answered requests' lines are written, or for `timeout`. A
    /// script's line comes once it is reaped, which may be after its response's last byte.
    pub async fn wait_for(&self, count: usize, timeout: Duration) {
        let enough = async {
            loop {
                let written = self.written.notified();
                if self.lock().iter().filter(|l| l.answered()).count() >= count {
                    return;
                }
                written.await;
            }
        };
        let _ = tokio::time::timeout(timeout, enough).await;
    }

    fn lock(&self) -> MutexGuard<'_, Vec<AccessLine>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: Subscriber> Layer<S> for AccessLines {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut line = AccessLine::default();
        event.record(&mut line);
        self.lock().push(line);
        self.written.notify_waiters();
    }
}

impl Visit for AccessLine {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_are_kept_with_their_fields_and_other_events_are_not() {
        let lines = AccessLines::default();
        tracing::subscriber::with_default(lines.subscriber(), || {
            tracing::info!(target: "portico::other", path = "/x", "not an access line");
            tracing::info!(
                target: "portico::access", path = "/cgi-bin/a", status = 200u16, pid = 7u32,
                exit = "0", cpu_ms = format_args!("{:.2}", 1.5),
            );
        });
        let line = lines.last().expect("one line");
        assert_eq!(line.get("path"), Some("/cgi-bin/a"));
        tracing::subscriber::with_default(lines.subscriber(), || {
            tracing::info!(target: "portico::access", path = "/r", redirect = "/cgi-bin/a");
        });
        let line = lines.last().expect("the answered line");
        assert_eq!(
            line.get("path"),
            Some("/cgi-bin/a"),
            "a redirect is not the answer"
        );
        assert_eq!(line.get("status"), Some("200"));
        assert_eq!(line.get("pid"), Some("7"));
        assert_eq!(line.get("exit"), Some("0"));
        assert_eq!(line.get("cpu_ms"), Some("1.50"));
        assert_eq!(line.get("cause"), None);
    }
}
