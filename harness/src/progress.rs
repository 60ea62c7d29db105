//! Progress display: an indicatif bar on an interactive terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    last_line: Instant,
    total: Option<u64>,
    done: u64,
    failed: u64,
    tokens: u64,
    started: Instant,
}

impl Progress {
    /// `total` is the number of requests when known; `quiet` disables everything.
    pub fn new(total: Option<u64>, no_bar: bool, quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && !no_bar && tty).then(|| {
            let b = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} requests {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self {
            plain: !quiet && bar.is_none(),
            bar,
            last_line: Instant::now(),
            total,
            done: 0,
            failed: 0,
            tokens: 0,
            started: Instant::now(),
        }
    }

    pub fn phase(&mut self, name: &str) {
        if let Some(b) = &self.bar {
            b.set_message(name.to_string());
        } else if self.plain {
            eprintln!("charter: {name}");
        }
    }

    pub fn request_done(&mut self, failed: bool, tokens: u64) {
        self.done += 1;
        self.failed += u64::from(failed);
        self.tokens += tokens;
        if let Some(b) = &self.bar {
            b.inc(1);
        } else if self.plain && self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            let total = self.total.map(|t| format!("/{t}")).unwrap_or_default();
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "charter: {}{total} requests done ({} failed), {:.1} output tokens/s, {:.0}s elapsed",
                self.done,
                self.failed,
                self.tokens as f64 / secs.max(1e-9),
                secs
            );
        }
    }

    pub fn reset(&mut self, total: Option<u64>) {
        self.total = total;
        self.done = 0;
        self.failed = 0;
        self.tokens = 0;
        self.started = Instant::now();
        if let Some(b) = &self.bar {
            b.reset();
            if let Some(t) = total {
                b.set_length(t);
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
