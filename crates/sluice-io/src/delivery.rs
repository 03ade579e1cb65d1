//! The source side of the acknowledgement path: a token on every batch, and
//! the acknowledgements settled in order, so a run can say exactly how many
//! events reached every sink. Sources that do not checkpoint (stdin,
//! generator) use it bare; a source that does (Kafka) gives each batch the
//! checkpoint it reaches and commits [`DeliveryLedger::checkpoint`].

use sluice_core::ack::{self, AckSender};
use sluice_core::{AckReceiver, AckStatus, AckTracker, Batch, Counter, Registry, SourceSummary};

/// Issues acknowledgement tokens and settles them; `C` is what a batch's
/// delivery lets its source commit. See the module docs.
#[derive(Debug)]
pub struct DeliveryLedger<C = ()> {
    /// `None` once settling: no more tokens.
    sender: Option<AckSender>,
    receiver: AckReceiver,
    /// Per batch: the events emitted up to its end, and its checkpoint.
    tracker: AckTracker<(u64, C)>,
    next_seq: u64,
    emitted: u64,
    failed_batches: u64,
    delivered_counter: Counter,
}

impl DeliveryLedger {
    /// Attach a token to `batch` before it is sent.
    pub fn attach(&mut self, batch: &mut Batch) {
        self.attach_at(batch, ());
    }
}

impl<C> DeliveryLedger<C> {
    /// A ledger for source `id`.
    pub fn new(registry: &Registry, id: &str) -> DeliveryLedger<C> {
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

    /// Attach a token to `batch` before it is sent; once it and every batch
    /// before it are delivered, `checkpoint` is the source's to commit.
    pub fn attach_at(&mut self, batch: &mut Batch, checkpoint: C) {
        let Some(sender) = &self.sender else { return };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.emitted += batch.len() as u64;
        self.tracker.emitted(seq, (self.emitted, checkpoint));
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
        let before = self.delivered();
        self.tracker.acknowledge(a);
        self.delivered_counter.add(self.delivered() - before);
    }

    fn delivered(&self) -> u64 {
        self.tracker.checkpoint().map_or(0, |(n, _)| *n)
    }

    /// The checkpoint of the newest batch delivered with every one before it.
    pub fn checkpoint(&self) -> Option<&C> {
        self.tracker.checkpoint().map(|(_, c)| c)
    }

    /// Whether every batch sent has come back, or a failed one stopped the
    /// checkpoint for good: nothing more to wait for.
    pub fn settled(&self) -> bool {
        self.tracker.outstanding() == 0 || self.tracker.is_blocked()
    }

    /// Batches sent and not yet settled.
    pub fn outstanding(&self) -> usize {
        self.tracker.outstanding()
    }

    /// Wait for the next acknowledgement; `false` when none can come (every
    /// token is back and no more are issued).
    pub async fn next(&mut self) -> bool {
        match self.receiver.recv().await {
            Some(a) => {
                self.record(a);
                true
            }
            None => false,
        }
    }

    /// Issue no more tokens and wait until every one issued has come back.
    pub async fn close(&mut self) {
        // Our own sender must go for `recv` to end once every token is back.
        self.sender = None;
        while self.next().await {}
    }

    /// What the source emitted and what was delivered.
    pub fn summary(&self) -> SourceSummary {
        SourceSummary {
            emitted_events: self.emitted,
            delivered_events: self.delivered(),
            failed_batches: self.failed_batches,
            problems: Vec::new(),
        }
    }

    /// Wait until every token issued has come back, then report.
    pub async fn settle(mut self) -> SourceSummary {
        self.close().await;
        self.summary()
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
