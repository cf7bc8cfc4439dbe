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

/// A bar for one symbol's backfill (`total` chunks, `done` already stored), or `None` when
/// stderr is not a terminal. Finish it with [`finish`].
pub fn backfill_bar(total: u64, done: u64, label: &str) -> Option<ProgressBar> {
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
    Some(bar)
}

/// Removes a bar from the screen (its outcome is reported by a log line instead).
pub fn finish(bar: &ProgressBar) {
    bar.finish_and_clear();
    BARS.remove(bar);
}

/// Clears every bar still drawn (e.g. on shutdown, before the last lines are printed).
pub fn clear() {
    let _ = BARS.clear();
}
