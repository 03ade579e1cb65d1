//! sluice's own logs on stderr: text for a person at a terminal, JSON
//! lines for a collector (`--log-format auto`, the default, picks by
//! whether stderr is a terminal), and a rate limit per call site so a
//! broken target or a flood of bad lines cannot make sluice log more than
//! [`PER_SECOND`] lines a second from one place. What the limit held back
//! is reported, per call site, in one line every [`REPORT_EVERY`].

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use tracing::callsite::Identifier;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Lines one call site may log in a second; the rest are counted.
pub const PER_SECOND: u32 = 5;
/// How often the counts of held-back lines are reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);
/// The target of the report lines (never limited themselves).
const REPORT_TARGET: &str = "sluice::log_limit";

/// Format of sluice's own logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, else text.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One call site's window.
struct Window {
    started: Instant,
    seen: u32,
    held: u64,
    what: &'static str,
}

/// The limiter's state, shared with the reporting thread.
#[derive(Default, Clone)]
struct Limits(Arc<Mutex<HashMap<Identifier, Window>>>);

impl Limits {
    /// Whether the event may be logged now.
    fn admit(&self, event: &Event<'_>) -> bool {
        let meta = event.metadata();
        if meta.target() == REPORT_TARGET {
            return true;
        }
        let now = Instant::now();
        let mut all = self.0.lock().expect("log limit lock");
        let w = all.entry(meta.callsite()).or_insert(Window {
            started: now,
            seen: 0,
            held: 0,
            what: meta.name(),
        });
        if now.duration_since(w.started) >= Duration::from_secs(1) {
            w.started = now;
            w.seen = 0;
        }
        w.seen += 1;
        if w.seen > PER_SECOND {
            w.held += 1;
            return false;
        }
        true
    }

    /// Take the counts held back since the last call.
    fn take_held(&self) -> Vec<(&'static str, u64)> {
        let mut all = self.0.lock().expect("log limit lock");
        all.values_mut()
            .filter(|w| w.held > 0)
            .map(|w| (w.what, std::mem::take(&mut w.held)))
            .collect()
    }
}

struct RateLimit(Limits);

impl<S: Subscriber> Layer<S> for RateLimit {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        self.0.admit(event)
    }
}

/// Install the subscriber for the process.
pub fn init(filter: &str, format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Auto => !terminal,
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
    let limits = Limits::default();
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(RateLimit(limits.clone()));
    // Colour only for a person at a terminal: escape codes in a collected
    // log (a pod's, a file's) are noise.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(terminal)
        .with_writer(std::io::stderr);
    if json {
        registry.with(fmt.json().flatten_event(true)).init();
    } else {
        registry.with(fmt).init();
    }
    let _ = std::thread::Builder::new()
        .name("sluice-log-limit".into())
        .spawn(move || loop {
            std::thread::sleep(REPORT_EVERY);
            for (what, held) in limits.take_held() {
                tracing::warn!(target: REPORT_TARGET, held, call_site = what, "log lines held back by the rate limit");
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the events that reach it.
    struct Count(Arc<AtomicUsize>);

    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, _event: &Event<'_>, _cx: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_flood_from_one_call_site_is_held_back_and_counted() {
        let limits = Limits::default();
        let logged = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(RateLimit(limits.clone()))
            .with(Count(logged.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..100 {
                tracing::warn!(i, "the same complaint");
            }
            tracing::warn!("another call site");
            tracing::warn!(target: REPORT_TARGET, "a report is never held back");
        });
        assert_eq!(logged.load(Ordering::Relaxed), PER_SECOND as usize + 2);
        let held = limits.take_held();
        assert_eq!(held.len(), 1, "{:?}", held);
        assert_eq!(held[0].1, 100 - u64::from(PER_SECOND));
        assert!(limits.take_held().is_empty(), "counts are taken once");
    }
}
