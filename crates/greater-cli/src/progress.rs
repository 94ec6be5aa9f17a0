//! The terminal side of the libraries' progress traits: byte bars for downloads, one bar per
//! phase (with ETA) for evaluation and optimisation, a step bar for the loop, and Ctrl-C.
//!
//! Bars draw on stderr and hide themselves when stderr is not a terminal; messages are then
//! printed as plain lines, so logs and tests still see them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use greater_models::fetch::FetchProgress;
use greater_opt::Observer;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Set by the first Ctrl-C; a second one exits at once.
static STOP: AtomicBool = AtomicBool::new(false);

/// The exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT_CODE: u8 = 130;

/// Install the Ctrl-C handler: the first press asks the work to stop at its next checkpoint
/// ([`stop_requested`]), the second exits immediately with [`INTERRUPTED_EXIT_CODE`].
pub fn install_ctrlc() -> anyhow::Result<()> {
    use anyhow::Context as _;
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(INTERRUPTED_EXIT_CODE));
        }
        eprintln!("\nstopping after the current unit of work (press Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")
}

/// Whether the user pressed Ctrl-C.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// A [`FetchProgress`] that prints each stage and draws a byte bar while bytes move.
#[derive(Debug, Default)]
pub struct FetchBar {
    bar: Mutex<Option<ProgressBar>>,
}

impl FetchBar {
    /// A bar that shows nothing until the first stage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Clear the current bar, if any.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}

impl FetchProgress for FetchBar {
    fn stage(&self, message: &str) {
        self.finish();
        eprintln!("{message}");
    }

    fn bytes(&self, done: u64, total: u64) {
        let mut slot = self.bar.lock().expect("progress lock");
        let bar = slot.get_or_insert_with(|| {
            let style =
                ProgressStyle::with_template("  [{bar:40.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> ");
            ProgressBar::new(total).with_style(style)
        });
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// An [`Observer`] that draws one bar per phase, an optional bar over the loop's steps, and
/// answers [`Observer::should_stop`] from Ctrl-C.
#[derive(Debug)]
pub struct Bars {
    multi: MultiProgress,
    steps: Option<ProgressBar>,
    phase: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// Phase bars only (evaluation).
    pub fn new() -> Self {
        Self { multi: MultiProgress::new(), steps: None, phase: Mutex::new(None) }
    }

    /// Phase bars under a bar of `total` loop steps, `done` of which are already complete.
    pub fn with_steps(total: usize, done: usize) -> Self {
        let multi = MultiProgress::new();
        let style =
            ProgressStyle::with_template("{prefix:>10} [{bar:30.green/white}] {pos}/{len} elapsed {elapsed} eta {eta}")
                .expect("valid template")
                .progress_chars("=> ");
        let steps = multi.add(ProgressBar::new(total as u64).with_style(style).with_prefix("steps"));
        steps.set_position(done as u64);
        Self { multi, steps: Some(steps), phase: Mutex::new(None) }
    }

    /// Print a line above the bars (or plainly when bars are hidden).
    pub fn println(&self, text: &str) {
        if self.multi.is_hidden() || self.multi.println(text).is_err() {
            eprintln!("{text}");
        }
    }

    /// Remove every bar from the terminal.
    pub fn finish(&self) {
        if let Some(bar) = self.phase.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
        if let Some(steps) = &self.steps {
            steps.finish_and_clear();
        }
    }
}

impl Drop for Bars {
    /// Bars left by an error or an interruption would otherwise stay drawn above the message.
    fn drop(&mut self) {
        self.finish();
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer for Bars {
    fn phase(&self, name: &str, total: usize) {
        let mut slot = self.phase.lock().expect("progress lock");
        if let Some(old) = slot.take() {
            old.finish_and_clear();
            self.multi.remove(&old);
        }
        let style =
            ProgressStyle::with_template("{prefix:>10} [{bar:30.cyan/blue}] {pos}/{len} elapsed {elapsed} eta {eta}")
                .expect("valid template")
                .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(total as u64).with_style(style).with_prefix(name.to_owned()));
        *slot = Some(bar);
    }

    fn advance(&self, n: usize) {
        if let Some(bar) = self.phase.lock().expect("progress lock").as_ref() {
            bar.inc(n as u64);
        }
    }

    fn message(&self, text: &str) {
        // The loop reports each finished step as "step N: …"; that moves the step bar.
        if let (Some(steps), Some(n)) = (&self.steps, finished_step(text)) {
            steps.set_position(n as u64);
        }
        self.println(text);
    }

    fn should_stop(&self) -> bool {
        stop_requested()
    }
}

/// `N` of a message `"step N: …"`.
fn finished_step(text: &str) -> Option<usize> {
    text.strip_prefix("step ")?.split(':').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_messages_are_recognised() {
        assert_eq!(finished_step("step 3: \"Use care.\" (score 0.250)"), Some(3));
        assert_eq!(finished_step("evaluating final prompt on dev"), None);
        assert_eq!(finished_step("step x: y"), None);
    }
}
