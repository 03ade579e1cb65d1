//! Cooperative shutdown, in the style of mini-redis: one [`Shutdown`] is
//! cloned into every source; `trigger` flips it once, and each source notices
//! at its next await point, stops reading, and drops its output channel. The
//! close then ripples down the chain (stages flush what they hold, sinks flush
//! and acknowledge), so nothing in flight is lost: the signal stops new input,
//! it never aborts work already accepted.

use std::time::Instant;

use tokio::sync::watch;

/// A clonable shutdown signal. See the module docs.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<Option<Instant>>>,
    rx: watch::Receiver<Option<Instant>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        Shutdown {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }

    /// Fire the signal (idempotent: the first time counts).
    pub fn trigger(&self) {
        self.tx.send_if_modified(|at| {
            let first = at.is_none();
            at.get_or_insert_with(Instant::now);
            first
        });
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        self.rx.borrow().is_some()
    }

    /// When the signal fired: the shutdown deadlines count from here.
    pub fn triggered_at(&self) -> Option<Instant> {
        *self.rx.borrow()
    }

    /// Resolve once the signal has fired.
    pub async fn wait(&mut self) {
        // The sender lives in `self`, so `wait_for` cannot see it closed.
        let _ = self.rx.wait_for(Option::is_some).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let s = Shutdown::new();
        let mut a = s.clone();
        let waiter = tokio::spawn(async move {
            a.wait().await;
            a.is_triggered()
        });
        assert!(!s.is_triggered());
        s.trigger();
        assert!(waiter.await.unwrap());
        let mut late = s.clone();
        late.wait().await;
        assert!(late.is_triggered());
    }
}
