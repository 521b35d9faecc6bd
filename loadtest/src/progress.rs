//! The live display while a run goes: an indicatif progress bar on a terminal (phase, rate,
//! errors, p99 of the last interval), or a plain line every few seconds when stderr is not a
//! terminal (CI logs, redirected output).

use crate::record::Sample;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, lines otherwise.
    Auto,
    /// Nothing.
    Off,
}

/// Seconds between plain progress lines.
const LINE_EVERY_S: f64 = 5.0;

/// The live display.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    last_line_t: f64,
    total: Duration,
}

/// A latency in microseconds, printed with a unit that suits it.
pub fn format_us(us: f64) -> String {
    if us <= 0.0 {
        "-".into()
    } else if us < 1.0 {
        format!("{:.0} ns", us * 1000.0)
    } else if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

impl Progress {
    /// A display for a run of `total` (warmup included).
    pub fn new(mode: ProgressMode, total: Duration) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (mode == ProgressMode::Auto && terminal).then(|| {
            let bar = ProgressBar::new(total.as_millis() as u64);
            let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {percent:>3}% {msg}")
                .expect("constant template")
                .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar, lines: mode == ProgressMode::Auto && !terminal, last_line_t: f64::NEG_INFINITY, total }
    }

    /// Shows an interval's figures.
    pub fn update(&mut self, sample: &Sample) {
        let phase = if sample.measuring { "measuring" } else { "warmup" };
        let msg = format!(
            "{phase} | {:>9.0} calls/s | errors {:>6.0}/s | p99 {}",
            sample.rate_per_s,
            sample.errors_per_s,
            format_us(sample.p99_us)
        );
        if let Some(bar) = &self.bar {
            bar.set_position((sample.t_s * 1000.0) as u64);
            bar.set_message(msg);
        } else if self.lines && sample.t_s - self.last_line_t >= LINE_EVERY_S {
            self.last_line_t = sample.t_s;
            eprintln!("[{:>6.1}/{:.0} s] {msg}", sample.t_s, self.total.as_secs_f64());
        }
    }

    /// Prints a note without breaking the bar.
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.lines => eprintln!("{text}"),
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_get_units_that_suit_them() {
        assert_eq!(format_us(0.35), "350 ns");
        assert_eq!(format_us(812.0), "812.0 µs");
        assert_eq!(format_us(1234.0), "1.23 ms");
        assert_eq!(format_us(2_500_000.0), "2.50 s");
        assert_eq!(format_us(0.0), "-");
    }
}
