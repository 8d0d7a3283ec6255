//! A mount's traffic as the status page shows it: requests and response bytes since the
//! start and over the last minute, and the latency percentiles of its latest requests.
//!
//! Fed by the mount's access line (`MountMetrics::record`), under one lock per mount held
//! for a few stores. The minute is 60 one-second buckets. The percentiles are exact
//! (nearest rank) over a ring of the latest `SAMPLES` durations still inside the minute,
//! not estimates from the Prometheus histogram: its buckets double in width, too coarse
//! to tell a p99 of 40 ms from one of 60 ms. It knows nothing of mounts or of the page.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The recent window, in seconds.
pub const WINDOW_SECONDS: u64 = 60;
/// Durations kept for the percentiles: at a few requests per second they cover the whole
/// minute; under load, the latest requests.
pub const SAMPLES: usize = 1024;

/// What second a time falls in, counted from the first use.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn second(at: Instant) -> u64 {
    at.saturating_duration_since(*EPOCH).as_secs()
}

#[derive(Default)]
pub struct Traffic {
    inner: Mutex<Inner>,
}

struct Inner {
    requests: u64,
    bytes: u64,
    seconds: [Second; WINDOW_SECONDS as usize],
    samples: Vec<Sample>,
    /// Where the next sample goes once `samples` is full.
    next: usize,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            requests: 0,
            bytes: 0,
            seconds: [Second::default(); WINDOW_SECONDS as usize],
            samples: Vec::with_capacity(SAMPLES),
            next: 0,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Second {
    at: u64,
    requests: u64,
    bytes: u64,
}

#[derive(Clone, Copy)]
struct Sample {
    at: u64,
    duration: Duration,
}

/// A mount's traffic at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Since the start.
    pub requests: u64,
    pub bytes: u64,
    /// In the current second and the 59 before it.
    pub recent_requests: u64,
    pub recent_bytes: u64,
    /// `None` without a request in the window.
    pub latency: Option<Percentiles>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// How many durations they are taken from.
    pub samples: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
}

impl Traffic {
    /// Counts one request answered now with `bytes` of body, `duration` after its head.
    pub fn record(&self, duration: Duration, bytes: u64) {
        self.record_at(Instant::now(), duration, bytes);
    }

    fn record_at(&self, now: Instant, duration: Duration, bytes: u64) {
        let at = second(now);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.requests += 1;
        inner.bytes += bytes;
        let bucket = &mut inner.seconds[(at % WINDOW_SECONDS) as usize];
        if bucket.at != at {
            *bucket = Second {
                at,
                ..Second::default()
            };
        }
        bucket.requests += 1;
        bucket.bytes += bytes;
        let sample = Sample { at, duration };
        if inner.samples.len() < SAMPLES {
            inner.samples.push(sample);
        } else {
            let next = inner.next;
            inner.samples[next] = sample;
            inner.next = (next + 1) % SAMPLES;
        }
    }

    pub fn summary(&self) -> Summary {
        self.summary_at(Instant::now())
    }

    fn summary_at(&self, now: Instant) -> Summary {
        let now = second(now);
        let is_recent = |at: u64| at + WINDOW_SECONDS > now;
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let recent = inner.seconds.iter().filter(|s| is_recent(s.at));
        let (recent_requests, recent_bytes) =
            recent.fold((0, 0), |(r, b), s| (r + s.requests, b + s.bytes));
        let mut durations: Vec<Duration> = inner
            .samples
            .iter()
            .filter(|s| is_recent(s.at))
            .map(|s| s.duration)
            .collect();
        let totals = (inner.requests, inner.bytes);
        drop(inner);
        durations.sort_unstable();
        Summary {
            requests: totals.0,
            bytes: totals.1,
            recent_requests,
            recent_bytes,
            latency: percentiles(&durations),
        }
    }
}

/// Nearest rank: the smallest duration with at least p of them at or below it.
fn percentiles(sorted: &[Duration]) -> Option<Percentiles> {
    let n = sorted.len();
    let rank = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    (n > 0).then(|| Percentiles {
        samples: n,
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        let p = percentiles(&sorted).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (ms(50), ms(90), ms(99)));
        let one = percentiles(&[ms(7)]).unwrap();
        assert_eq!((one.p50, one.p99, one.samples), (ms(7), ms(7), 1));
        assert_eq!(percentiles(&[]), None);
    }

    #[test]
    fn the_minute_keeps_what_came_in_it_and_the_totals_keep_everything() {
        let traffic = Traffic::default();
        let start = *EPOCH + Duration::from_secs(1000);
        let at = |s: u64| start + Duration::from_secs(s);
        traffic.record_at(at(0), ms(10), 100);
        traffic.record_at(at(30), ms(20), 200);
        traffic.record_at(at(59), ms(30), 300);
        let summary = traffic.summary_at(at(59));
        assert_eq!((summary.recent_requests, summary.recent_bytes), (3, 600));
        assert_eq!(summary.latency.unwrap().p50, ms(20));

        // One minute on, the first second has left the window.
        let summary = traffic.summary_at(at(60));
        assert_eq!((summary.recent_requests, summary.recent_bytes), (2, 500));
        assert_eq!(summary.latency.unwrap().samples, 2);
        // Its bucket is reused by a later second, not added to.
        traffic.record_at(at(120), ms(40), 400);
        let summary = traffic.summary_at(at(120));
        assert_eq!((summary.recent_requests, summary.recent_bytes), (1, 400));
        assert_eq!((summary.requests, summary.bytes), (4, 1000));
        assert_eq!(traffic.summary_at(at(500)).latency, None);
    }

    #[test]
    fn the_ring_keeps_the_latest_durations() {
        let traffic = Traffic::default();
        let now = *EPOCH + Duration::from_secs(5000);
        for _ in 0..SAMPLES {
            traffic.record_at(now, ms(1), 0);
        }
        for _ in 0..SAMPLES / 2 + 1 {
            traffic.record_at(now, ms(9), 0);
        }
        let summary = traffic.summary_at(now);
        let latency = summary.latency.unwrap();
        assert_eq!(latency.samples, SAMPLES);
        assert_eq!(latency.p50, ms(9), "the older half was overwritten");
        assert_eq!(summary.recent_requests, (SAMPLES + SAMPLES / 2 + 1) as u64);
    }
}
