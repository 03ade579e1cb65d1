//! The live progress line (`sluice run`) and bar (`sluice bench`), drawn by
//! indicatif on stderr from the pipeline's own counters.

use sluice_core::metric_names;
use std::time::Duration;

use indicatif::{HumanBytes, HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_core::Registry;

/// A running progress display.
pub struct Live {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    /// Start drawing every `interval`; with `total_bytes`, a bar toward it.
    pub fn start(registry: &Registry, interval: Duration, total_bytes: Option<u64>) -> Live {
        let bar = match total_bytes {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("static template"),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("static template"),
            ),
        };
        let registry = registry.clone();
        let b = bar.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            loop {
                every.tick().await;
                let bytes_in = registry.total(metric_names::BYTES_IN_TOTAL);
                let events_in = registry.total(metric_names::EVENTS_IN_TOTAL);
                let events_out = registry.total("events_out_total");
                let text = registry.total(metric_names::PARSE_ERRORS_TOTAL);
                let secs = b.elapsed().as_secs_f64().max(1e-3);
                b.set_position(bytes_in);
                b.set_message(format!(
                    "in {} ev ({}) · out {} ev · {}/s · {} text",
                    HumanCount(events_in),
                    HumanBytes(bytes_in),
                    HumanCount(events_out),
                    HumanBytes((bytes_in as f64 / secs) as u64),
                    HumanCount(text),
                ));
                b.tick();
            }
        });
        Live { bar, task }
    }

    /// Stop and clear the display.
    pub fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
