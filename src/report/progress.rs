//! Progress bars on stderr for long runs (hidden when stderr is not a terminal).

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::observe::{Observer, Phase};

/// Shows one bar per phase of each transport run.
#[derive(Default)]
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn with_bar(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        f(&mut self.bar.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Connecting => "connecting",
        Phase::Publishing => "publishing",
        Phase::Draining => "draining",
    }
}

impl Observer for Bars {
    fn phase(&self, transport: &str, phase: Phase, len: u64) {
        self.with_bar(|bar| {
            if let Some(old) = bar.take() {
                old.finish_and_clear();
            }
            let new = ProgressBar::new(len).with_style(
                ProgressStyle::with_template(
                    "{prefix:>32} {spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            new.set_prefix(format!("{transport} {}", phase_name(phase)));
            *bar = Some(new);
        });
    }

    fn update(&self, position: u64, status: &str) {
        self.with_bar(|bar| {
            if let Some(bar) = bar {
                bar.set_position(position);
                bar.set_message(status.to_string());
            }
        });
    }

    fn done(&self) {
        self.with_bar(|bar| {
            if let Some(old) = bar.take() {
                old.finish_and_clear();
            }
        });
    }
}
