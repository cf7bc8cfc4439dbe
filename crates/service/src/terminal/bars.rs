//! The live progress bars (one [`MultiProgress`] for the process, drawn at the bottom of stderr
//! when it is a terminal). Log lines are printed above them by writing with the bars suspended
//! ([`suspend`]: cleared, then redrawn below the line), so a line never tears a bar.

use std::io::{self, IsTerminal};
use std::sync::LazyLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressState, ProgressStyle};

static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// How often a live bar redraws by itself (rate and ETA move even between chunks).
const TICK: Duration = Duration::from_millis(250);

/// Template of a backfill bar: `linear BTCUSDT [=====>    ] 12/88 chunks  3.1/s ETA 24s`.
pub const BACKFILL_TEMPLATE: &str =
    "{prefix:<18} [{bar:30}] {pos}/{len} chunks {rate:>7} ETA {eta}";

/// `{rate}`: chunks per second with one decimal.
fn rate(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.1}/s", state.per_sec());
}

/// Runs `f` (which writes to the terminal) with the bars cleared, then redraws them below.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    BARS.suspend(f)
}

/// A live bar; dropping it (finished, failed, or its task aborted on shutdown) removes it from the
/// screen, so no stale bar is left between the log lines.
#[derive(Debug)]
pub struct LiveBar(ProgressBar);

impl LiveBar {
    /// Chunks done so far.
    pub fn set_position(&self, done: u64) {
        self.0.set_position(done);
    }
}

impl Drop for LiveBar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
        BARS.remove(&self.0);
    }
}

/// A bar for one symbol's backfill (`total` chunks, `done` already stored), or `None` when
/// stderr is not a terminal. Drop it when the backfill ends (its outcome is a log line).
pub fn backfill_bar(total: u64, done: u64, label: &str) -> Option<LiveBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let style = ProgressStyle::with_template(BACKFILL_TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", rate)
        .progress_chars("=> ");
    let bar = BARS.add(ProgressBar::new(total).with_style(style));
    bar.set_prefix(label.to_string());
    bar.set_position(done);
    bar.enable_steady_tick(TICK);
    Some(LiveBar(bar))
}

/// Clears every bar still drawn (e.g. on shutdown, before the last lines are printed).
pub fn clear() {
    let _ = BARS.clear();
}
