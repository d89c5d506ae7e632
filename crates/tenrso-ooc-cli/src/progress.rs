//! Progress bars on stderr.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tenrso_ooc::exec::Progress;

/// Draws library progress as indicatif bars on stderr, one per phase; hidden
/// when stderr is not a terminal or with `--quiet`.
pub struct Bar {
    visible: bool,
    lines: bool,
    current: Mutex<Option<ProgressBar>>,
}

impl Bar {
    /// Bars, drawn only if `visible` and stderr is a terminal.
    pub fn new(visible: bool) -> Self {
        Self {
            visible: visible && std::io::stderr().is_terminal(),
            lines: visible,
            current: Mutex::new(None),
        }
    }

    /// Prints a line of progress on stderr (above the bar), unless quiet.
    pub fn line(&self, text: &str) {
        if !self.lines {
            return;
        }
        match self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(bar) if self.visible => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            f(bar);
        }
    }
}

impl Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        if !self.visible {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(8));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>8} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(250));
        if let Some(old) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn advance(&self, delta: u64) {
        self.with_bar(|bar| bar.inc(delta));
    }

    fn finish(&self) {
        if let Some(bar) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }
}
