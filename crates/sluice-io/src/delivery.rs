//! The source side of the acknowledgement path for sources that do not
//! checkpoint (stdin, generator): it still attaches a token to every batch
//! and waits for every token to come back, so a run can say exactly how many
//! events reached every sink, and tests can prove none went missing.

use sluice_core::ack::{self, AckSender};
use sluice_core::{AckReceiver, AckStatus, AckTracker, Batch, Counter, Registry, SourceSummary};

/// Issues acknowledgement tokens and settles them. See the module docs.
#[derive(Debug)]
pub struct DeliveryLedger {
    /// `None` once settling: no more tokens.
    sender: Option<AckSender>,
    receiver: AckReceiver,
    tracker: AckTracker<u64>,
    next_seq: u64,
    emitted: u64,
    failed_batches: u64,
    delivered_counter: Counter,
}

impl DeliveryLedger {
    /// A ledger for source `id`.
    pub fn new(registry: &Registry, id: &str) -> DeliveryLedger {
        let (sender, receiver) = ack::channel();
        DeliveryLedger {
            sender: Some(sender),
            receiver,
            tracker: AckTracker::new(),
            next_seq: 0,
            emitted: 0,
            failed_batches: 0,
            delivered_counter: registry.counter(
                "events_acknowledged_total",
                "Events every sink accepted, by source.",
                &[("source", id)],
            ),
        }
    }

    /// Attach a token to `batch` before it is sent.
    pub fn attach(&mut self, batch: &mut Batch) {
        let Some(sender) = &self.sender else { return };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.emitted += batch.len() as u64;
        self.tracker.emitted(seq, self.emitted);
        batch.add_ack(sender.token(seq));
        self.drain_ready();
    }

    /// Record acknowledgements that have already arrived.
    pub fn drain_ready(&mut self) {
        while let Some(a) = self.receiver.try_recv() {
            self.record(a);
        }
    }

    fn record(&mut self, a: sluice_core::Acknowledgement) {
        if a.status == AckStatus::Failed {
            self.failed_batches += 1;
        }
        let before = self.tracker.checkpoint().copied().unwrap_or(0);
        self.tracker.acknowledge(a);
        let after = self.tracker.checkpoint().copied().unwrap_or(0);
        self.delivered_counter.add(after - before);
    }

    /// Wait until every token issued has come back, then report.
    pub async fn settle(mut self) -> SourceSummary {
        // Our own sender must go for `recv` to end once every token is back.
        self.sender = None;
        while let Some(a) = self.receiver.recv().await {
            self.record(a);
        }
        SourceSummary {
            emitted_events: self.emitted,
            delivered_events: self.tracker.checkpoint().copied().unwrap_or(0),
            failed_batches: self.failed_batches,
            problems: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Event, Span};

    fn batch(n: usize) -> Batch {
        let events = (0..n)
            .map(|i| Event::unparsed(Span::new(i, 1), 0, Event::NO_ORIGIN))
            .collect();
        Batch::new(vec![b'x'; n], events)
    }

    #[tokio::test]
    async fn settles_once_every_batch_ends() {
        let r = Registry::new();
        let mut l = DeliveryLedger::new(&r, "s");
        let (mut a, mut b) = (batch(3), batch(4));
        l.attach(&mut a);
        l.attach(&mut b);
        a.release_acks();
        let waiter = tokio::spawn(l.settle());
        tokio::task::yield_now().await;
        // Dropped without release: not delivered.
        drop(b);
        let s = waiter.await.unwrap();
        assert_eq!(
            s,
            SourceSummary {
                emitted_events: 7,
                delivered_events: 3,
                failed_batches: 1,
                problems: vec![],
            }
        );
        assert_eq!(r.value("events_acknowledged_total", &[("source", "s")]), Some(3));
    }
}
