//! End-to-end acknowledgements: how a source learns that every sink accepted
//! (or failed) the data it read, so it can checkpoint a file offset or commit
//! a Kafka offset only behind delivered data.
//!
//! A source numbers what it emits and attaches an [`AckToken`] to each batch.
//! Stages that split or hold events clone the token; fan-out clones it once
//! per sink. When the last clone is dropped the source receives one
//! [`Acknowledgement`]: `Delivered` unless some holder called
//! [`AckToken::fail`] or dropped it while panicking. Dropping after a sink
//! accepted the data is the normal path; a sink that could not deliver calls
//! `fail` first. The source feeds acknowledgements to an [`AckTracker`] to
//! find the newest checkpoint with nothing unacknowledged before it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// How a batch's journey ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// Every sink accepted the data (or a stage deliberately dropped it).
    Delivered,
    /// At least one sink could not deliver it.
    Failed,
}

/// What a source receives when the last holder of a token lets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The sequence number the source gave the token.
    pub seq: u64,
    /// Delivered or failed.
    pub status: AckStatus,
}

#[derive(Debug)]
struct Inner {
    seq: u64,
    failed: AtomicBool,
    tx: mpsc::UnboundedSender<Acknowledgement>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A holder that panicked never accepted the data: never let a crash
        // look like a delivery.
        let failed = self.failed.load(Ordering::Acquire) || std::thread::panicking();
        let status = if failed {
            AckStatus::Failed
        } else {
            AckStatus::Delivered
        };
        // The source may be gone (shutting down); nothing left to tell.
        let _ = self.tx.send(Acknowledgement { seq: self.seq, status });
    }
}

/// A shared handle on one unit of source data. See the module docs.
#[derive(Debug, Clone)]
pub struct AckToken(Arc<Inner>);

impl AckToken {
    /// Mark the data as not delivered. Idempotent.
    pub fn fail(&self) {
        self.0.failed.store(true, Ordering::Release);
    }

    /// The sequence number this token acknowledges.
    pub fn seq(&self) -> u64 {
        self.0.seq
    }
}

/// Issues tokens for one source.
#[derive(Debug, Clone)]
pub struct AckSender {
    tx: mpsc::UnboundedSender<Acknowledgement>,
}

impl AckSender {
    /// A token for the data numbered `seq`.
    pub fn token(&self, seq: u64) -> AckToken {
        AckToken(Arc::new(Inner {
            seq,
            failed: AtomicBool::new(false),
            tx: self.tx.clone(),
        }))
    }
}

/// Where a source receives its acknowledgements. Unbounded because the number
/// of outstanding tokens is already bounded by the pipeline's channels.
#[derive(Debug)]
pub struct AckReceiver {
    rx: mpsc::UnboundedReceiver<Acknowledgement>,
}

impl AckReceiver {
    /// Wait for the next acknowledgement; `None` once every sender and token
    /// is gone.
    pub async fn recv(&mut self) -> Option<Acknowledgement> {
        self.rx.recv().await
    }

    /// An acknowledgement if one is ready.
    pub fn try_recv(&mut self) -> Option<Acknowledgement> {
        self.rx.try_recv().ok()
    }

    /// Block the thread until the next acknowledgement (`None` once every
    /// sender and token is gone). Not for async code.
    pub fn blocking_recv(&mut self) -> Option<Acknowledgement> {
        self.rx.blocking_recv()
    }
}

/// A sender/receiver pair for one source.
pub fn channel() -> (AckSender, AckReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (AckSender { tx }, AckReceiver { rx })
}

/// Orders out-of-order acknowledgements into a checkpoint a source can trust.
///
/// The source registers each emitted unit with increasing `seq` and the
/// checkpoint reached once that unit is delivered (a file offset after its
/// last line, say). [`AckTracker::checkpoint`] is the newest checkpoint with
/// every earlier unit delivered. A failed unit stops the checkpoint there for
/// good: the source must re-read from it (after a restart) rather than skip it.
#[derive(Debug)]
pub struct AckTracker<C> {
    pending: VecDeque<(u64, C, Option<AckStatus>)>,
    committed: Option<C>,
    blocked: bool,
}

impl<C> Default for AckTracker<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> AckTracker<C> {
    /// An empty tracker.
    pub fn new() -> Self {
        AckTracker {
            pending: VecDeque::new(),
            committed: None,
            blocked: false,
        }
    }

    /// Register an emitted unit. `seq` must grow with each call.
    pub fn emitted(&mut self, seq: u64, checkpoint: C) {
        debug_assert!(self.pending.back().is_none_or(|(s, _, _)| *s < seq));
        self.pending.push_back((seq, checkpoint, None));
    }

    /// Record an acknowledgement. Unknown sequence numbers are ignored.
    pub fn acknowledge(&mut self, ack: Acknowledgement) {
        self.acknowledge_each(ack, |_| {});
    }

    /// Record an acknowledgement and hand every checkpoint it commits, in
    /// order, to `on_commit` (a source whose checkpoints are per-file deltas
    /// applies each one).
    pub fn acknowledge_each(&mut self, ack: Acknowledgement, mut on_commit: impl FnMut(&C)) {
        if let Ok(i) = self.pending.binary_search_by_key(&ack.seq, |(s, _, _)| *s) {
            self.pending[i].2 = Some(ack.status);
        }
        while !self.blocked {
            match self.pending.front() {
                Some((_, _, Some(AckStatus::Delivered))) => {
                    let (_, c, _) = self.pending.pop_front().expect("front exists");
                    on_commit(&c);
                    self.committed = Some(c);
                }
                Some((_, _, Some(AckStatus::Failed))) => self.blocked = true,
                _ => break,
            }
        }
    }

    /// The newest checkpoint behind which everything was delivered.
    pub fn checkpoint(&self) -> Option<&C> {
        self.committed.as_ref()
    }

    /// Units emitted and not yet settled (including any behind a failure).
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Whether a failed unit has frozen the checkpoint.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_clone_sends_one_acknowledgement() {
        let (tx, mut rx) = channel();
        let t = tx.token(7);
        let t2 = t.clone();
        drop(t);
        assert_eq!(rx.try_recv(), None);
        drop(t2);
        assert_eq!(
            rx.try_recv(),
            Some(Acknowledgement {
                seq: 7,
                status: AckStatus::Delivered
            })
        );
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn any_holder_can_fail_the_unit() {
        let (tx, mut rx) = channel();
        let t = tx.token(1);
        let t2 = t.clone();
        t2.fail();
        drop(t2);
        drop(t);
        assert_eq!(rx.try_recv().unwrap().status, AckStatus::Failed);
    }

    #[test]
    fn a_panicking_holder_fails_the_unit() {
        let (tx, mut rx) = channel();
        let t = tx.token(3);
        let r = std::thread::spawn(move || {
            let _held = t;
            panic!("sink crashed");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(rx.try_recv().unwrap().status, AckStatus::Failed);
    }

    #[test]
    fn tracker_orders_out_of_order_acks() {
        let mut tr = AckTracker::new();
        for seq in 0..4u64 {
            tr.emitted(seq, seq * 100);
        }
        let ok = |seq| Acknowledgement {
            seq,
            status: AckStatus::Delivered,
        };
        tr.acknowledge(ok(1));
        assert_eq!(tr.checkpoint(), None);
        tr.acknowledge(ok(0));
        assert_eq!(tr.checkpoint(), Some(&100));
        tr.acknowledge(ok(3));
        assert_eq!(tr.checkpoint(), Some(&100));
        tr.acknowledge(ok(2));
        assert_eq!(tr.checkpoint(), Some(&300));
        assert_eq!(tr.outstanding(), 0);
    }

    #[test]
    fn tracker_freezes_at_a_failure() {
        let mut tr = AckTracker::new();
        for seq in 0..3u64 {
            tr.emitted(seq, seq);
        }
        tr.acknowledge(Acknowledgement {
            seq: 0,
            status: AckStatus::Delivered,
        });
        tr.acknowledge(Acknowledgement {
            seq: 1,
            status: AckStatus::Failed,
        });
        tr.acknowledge(Acknowledgement {
            seq: 2,
            status: AckStatus::Delivered,
        });
        assert_eq!(tr.checkpoint(), Some(&0));
        assert!(tr.is_blocked());
        assert_eq!(tr.outstanding(), 2);
    }
}
