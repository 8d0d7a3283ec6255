//! The progress bar `portico bench` shows on the terminal while a target is loaded.
//!
//! The bar measures time, not requests, so a thread of its own moves it with the clock;
//! when stderr is not a terminal the bar is hidden and no thread is started.

use std::sync::Arc;
use std::time::Duration;

/// A progress bar on the terminal while a target is loaded; nothing when stderr is not one.
pub(super) struct Progress {
    bar: indicatif::ProgressBar,
    ticker: Option<std::thread::JoinHandle<()>>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl Progress {
    pub(super) fn start(target: &str, round: usize, rounds: usize, duration: Duration) -> Progress {
        use std::sync::atomic::{AtomicBool, Ordering};
        let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:32} [{bar:40}] {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let round = if rounds > 1 {
            format!(" (round {}/{rounds})", round + 1)
        } else {
            String::new()
        };
        bar.set_message(format!("{target}{round}"));
        let done = Arc::new(AtomicBool::new(false));
        let ticker = (!bar.is_hidden()).then(|| {
            let (bar, done) = (bar.clone(), done.clone());
            let started = std::time::Instant::now();
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    bar.set_position(started.elapsed().as_millis() as u64);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        Progress { bar, ticker, done }
    }

    pub(super) fn finish(self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(ticker) = self.ticker {
            let _ = ticker.join();
        }
        self.bar.finish_and_clear();
    }
}
