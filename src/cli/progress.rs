//! Progress of a training run, and Ctrl-C.
//!
//! On a terminal a bar shows the run's iterations with loss, lr, images/s and ETA; when stderr is not a terminal
//! (a log file, a CI job) plain lines are printed instead, after the first iteration and then every
//! `--log-interval` seconds. `train.log` receives those plain lines either way; `--quiet` keeps them (and every
//! other progress line) off stderr. Lines printed while a bar is drawn go above it ([`print_line`]).
//!
//! Ctrl-C (SIGINT) and SIGTERM set a flag that the training loop polls before every iteration: the run saves a
//! resumable checkpoint there and exits with [`INTERRUPTED_EXIT_CODE`]. A second signal exits at once.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::training::epochs::IterationLog;

/// Exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

static STOP: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);
/// The bar being drawn, if any: other lines are printed above it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Installs the SIGINT/SIGTERM handler (once per process): the first signal asks the loop to stop, a second one
/// exits immediately without saving.
pub fn catch_interrupts() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted again: exiting without saving");
                std::process::exit(INTERRUPTED_EXIT_CODE);
            }
            print_line("\ninterrupt received: saving a checkpoint at the end of this iteration (interrupt again to exit at once)");
        });
        if let Err(e) = installed {
            // Training still works; only Ctrl-C falls back to the default (immediate exit, last epoch's checkpoint).
            eprintln!("note: cannot catch Ctrl-C ({e}); an interrupted run resumes from its last epoch");
        }
    });
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn interrupt_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// `--quiet`: progress and informational lines stay off stderr (they still go to `train.log`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

pub fn is_quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

/// Prints an informational line on stderr (above the bar, if one is drawn) unless `--quiet`.
pub fn print_line(line: &str) {
    if is_quiet() {
        return;
    }
    match BAR.lock().ok().and_then(|g| g.clone()) {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// `1h 02m`, `3m 05s`, `12s`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// Reports the iterations of one training loop.
pub struct ProgressReport {
    bar: Option<ProgressBar>,
    /// Iterations of the whole run.
    total: usize,
    /// Iterations done by this process, their images and seconds (for images/s and the ETA).
    done: usize,
    images: usize,
    seconds: f64,
    interval: Duration,
    last_line: Option<Instant>,
    epochs: usize,
}

impl ProgressReport {
    /// A report for a loop of `total` iterations (over `epochs` epochs) that starts at iteration `first` (a resumed
    /// run); a bar when stderr is a terminal and not `--quiet`, plain lines every `interval` otherwise.
    pub fn new(total: usize, first: usize, epochs: usize, interval: Duration) -> Self {
        let bar = (std::io::stderr().is_terminal() && !is_quiet()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            // `wide_msg` last: the line is cut to the terminal's width instead of wrapping.
            let style = ProgressStyle::with_template("{prefix} [{bar:20}] {pos}/{len} ETA {eta} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("epoch {}/{epochs}", (first / (total / epochs.max(1)).max(1) + 1).min(epochs.max(1))));
            bar.set_position(first as u64);
            bar.reset_eta();
            if let Ok(mut g) = BAR.lock() {
                *g = Some(bar.clone());
            }
            bar
        });
        ProgressReport { bar, total, done: 0, images: 0, seconds: 0.0, interval, last_line: None, epochs }
    }

    /// The plain progress line after iteration `it`.
    pub fn line(&self, it: &IterationLog) -> String {
        let pos = it.iteration + 1;
        let rate = self.images as f64 / self.seconds.max(1e-9);
        let eta = self.seconds / self.done.max(1) as f64 * self.total.saturating_sub(pos) as f64;
        format!(
            "epoch {}/{}, iteration {pos}/{} ({:.0}%): loss {:.4}, lr {:.3e}, {rate:.1} img/s, ETA {}",
            it.epoch + 1,
            self.epochs,
            self.total,
            100.0 * pos as f64 / self.total.max(1) as f64,
            mean_loss(it),
            it.lr,
            format_duration(eta)
        )
    }

    /// Records one iteration: moves the bar, or prints a plain line when the interval has passed (and always writes
    /// that line to `train.log`).
    pub fn iteration(&mut self, it: &IterationLog) {
        self.done += 1;
        self.images += it.images;
        self.seconds += it.seconds;
        let due = self.last_line.is_none_or(|t| t.elapsed() >= self.interval);
        if due {
            self.last_line = Some(Instant::now());
            let line = self.line(it);
            super::run_dir::log_line(&line);
            if self.bar.is_none() && !is_quiet() {
                eprintln!("{line}");
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_prefix(format!("epoch {}/{}", it.epoch + 1, self.epochs));
            let rate = self.images as f64 / self.seconds.max(1e-9);
            bar.set_message(format!("loss {:.4} lr {:.2e} {rate:.1} img/s", mean_loss(it), it.lr));
            bar.set_position((it.iteration + 1).min(self.total) as u64);
        }
    }

    /// Removes the bar (at the end of the loop, or before an error is printed).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            if let Ok(mut g) = BAR.lock() {
                *g = None;
            }
        }
    }
}

impl Drop for ProgressReport {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Mean of the iteration's step losses (the four progressive steps, or the one CE step).
fn mean_loss(it: &IterationLog) -> f32 {
    it.steps.iter().map(|s| s.loss).sum::<f32>() / it.steps.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::ssl::SslStepLog;

    #[test]
    fn plain_lines_show_epoch_position_loss_lr_rate_and_eta() {
        let mut p = ProgressReport::new(10, 0, 2, Duration::from_secs(3600));
        let step = |loss| SslStepLog { loss, on_diag: 0.0, off_diag: 0.0, collapse_std: 0.0 };
        let it = IterationLog { epoch: 0, iteration: 3, lr: 0.01, images: 8, seconds: 2.0, steps: vec![step(1.0), step(3.0)] };
        p.iteration(&it);
        let line = p.line(&it);
        assert_eq!(line, "epoch 1/2, iteration 4/10 (40%): loss 2.0000, lr 1.000e-2, 4.0 img/s, ETA 12s", "6 iterations left at 2 s each");
        assert_eq!(format_duration(3725.0), "1h 02m");
        assert_eq!(format_duration(185.0), "3m 05s");
    }
}
