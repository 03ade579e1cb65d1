//! End-to-end acknowledgements: how a source learns that every sink accepted
//! (or failed) the data it read, so it can checkpoint a file offset or commit
//! a Kafka offset only behind delivered data.
//!
//! A source numbers what it emits and attaches an [`AckToken`] to each batch.
//! Every clone of a token is an obligation of whoever holds it: it ends
//! either in [`AckToken::release`] (this holder's part is done: a sink or a
//! durable buffer took the data, or a stage dropped it on purpose) or in a
//! plain drop, which **fails** it — a failed write, a batch left in a closed
//! channel, a shutdown, a panic. Delivered is never the default, so no path
//! that forgets a batch can tell its source it arrived. Stages that split or
//! hold events clone the token; fan-out gives each sink its own clone. When
//! the last clone is gone the source receives one [`Acknowledgement`]:
//! `Delivered` only if every clone was released. The source feeds
//! acknowledgements to an [`AckTracker`] to find the newest checkpoint with
//! nothing unacknowledged before it.

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

/// One holder's claim on one unit of source data. See the module docs:
/// release it once the data is delivered; dropping it fails it.
#[derive(Debug)]
#[must_use = "a token dropped without release() fails its data"]
pub struct AckToken {
    inner: Arc<Inner>,
    released: bool,
}

impl Clone for AckToken {
    /// Another holder's claim, which must be released in its own right.
    fn clone(&self) -> Self {
        AckToken {
            inner: Arc::clone(&self.inner),
            released: false,
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if !self.released {
            self.inner.failed.store(true, Ordering::Release);
        }
    }
}

impl AckToken {
    /// Mark the data as not delivered. Idempotent.
    pub fn fail(&self) {
        self.inner.failed.store(true, Ordering::Release);
    }

    /// This holder's part is done: the data reached a sink's target or a
    /// durable buffer, or was dropped on purpose (sampling, `drop_newest`).
    pub fn release(mut self) {
        self.released = true;
    }

    /// The sequence number this token acknowledges.
    pub fn seq(&self) -> u64 {
        self.inner.seq
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
        AckToken {
            inner: Arc::new(Inner {
                seq,
                failed: AtomicBool::new(false),
                tx: self.tx.clone(),
            }),
            released: false,
        }
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
            if self.blocked {
                // The checkpoint is frozen for good: a settled unit is of no
                // more use, and kept it would grow the queue by a unit per
                // batch for the rest of the source's life.
                self.pending.remove(i);
                return;
            }
            self.pending[i].2 = Some(ack.status);
        }
        while !self.blocked {
            match self.pending.front() {
                Some((_, _, Some(AckStatus::Delivered))) => {
                    let (_, c, _) = self.pending.pop_front().expect("front exists");
                    on_commit(&c);
                    self.committed = Some(c);
                }
                Some((_, _, Some(AckStatus::Failed))) => {
                    self.blocked = true;
                    self.pending.retain(|(_, _, status)| status.is_none());
                }
                _ => break,
            }
        }
    }

    /// The newest checkpoint behind which everything was delivered.
    pub fn checkpoint(&self) -> Option<&C> {
        self.committed.as_ref()
    }

    /// Units emitted and not yet settled.
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
        t.release();
        assert_eq!(rx.try_recv(), None);
        t2.release();
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
    fn a_token_dropped_without_release_fails_the_unit() {
        let (tx, mut rx) = channel();
        let t = tx.token(2);
        let t2 = t.clone();
        t.release();
        // A holder that forgot it (a batch left in a closed channel, a
        // write that failed): never a delivery.
        drop(t2);
        assert_eq!(rx.try_recv().unwrap().status, AckStatus::Failed);
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
        assert_eq!(tr.outstanding(), 0);
        // Behind the failure, units settle without moving the checkpoint
        // and without being kept.
        for seq in 3..1003u64 {
            tr.emitted(seq, seq);
            tr.acknowledge(Acknowledgement {
                seq,
                status: AckStatus::Delivered,
            });
        }
        tr.emitted(1003, 1003);
        assert_eq!((tr.checkpoint(), tr.outstanding()), (Some(&0), 1));
    }

    /// What a holder of a token does next.
    #[derive(Debug, Clone)]
    enum Step {
        /// Hand a clone to a new holder.
        Clone(usize),
        /// The holder's part is done.
        Release(usize),
        /// The holder lets go without release (an error, a shutdown).
        Drop(usize),
        /// The holder marks it failed and keeps it.
        Fail(usize),
    }

    fn steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                (0..64usize).prop_map(Step::Clone),
                (0..64usize).prop_map(Step::Release),
                (0..64usize).prop_map(Step::Drop),
                (0..64usize).prop_map(Step::Fail),
            ],
            0..60,
        )
    }

    proptest::proptest! {
        /// Any interleaving of clones, releases, drops and failures over a
        /// few units settles each unit exactly once, and as delivered only
        /// when every holder released it and none failed it; whatever is
        /// still held at the end (a shutdown) is dropped and fails.
        #[test]
        fn every_unit_settles_once_and_delivered_only_if_all_released(
            units in 1..4u64,
            steps in steps(),
            release_rest in proptest::bool::ANY,
        ) {
            let (tx, mut rx) = channel();
            // Holders: (unit, token); a slot is None once its holder let go.
            let mut holders: Vec<Option<(u64, AckToken)>> =
                (0..units).map(|u| Some((u, tx.token(u)))).collect();
            let mut spoiled = vec![false; units as usize];
            for step in steps {
                let live: Vec<usize> = (0..holders.len()).filter(|&i| holders[i].is_some()).collect();
                if live.is_empty() {
                    break;
                }
                match step {
                    Step::Clone(i) => {
                        let (u, t) = holders[live[i % live.len()]].as_ref().unwrap();
                        let c = (*u, t.clone());
                        holders.push(Some(c));
                    }
                    Step::Release(i) => {
                        let (_, t) = holders[live[i % live.len()]].take().unwrap();
                        t.release();
                    }
                    Step::Drop(i) => {
                        let (u, t) = holders[live[i % live.len()]].take().unwrap();
                        spoiled[u as usize] = true;
                        drop(t);
                    }
                    Step::Fail(i) => {
                        let (u, t) = holders[live[i % live.len()]].as_ref().unwrap();
                        spoiled[*u as usize] = true;
                        t.fail();
                    }
                }
            }
            for h in holders.iter_mut() {
                if let Some((u, t)) = h.take() {
                    if release_rest {
                        t.release();
                    } else {
                        spoiled[u as usize] = true;
                        drop(t);
                    }
                }
            }
            let mut got: Vec<Acknowledgement> = std::iter::from_fn(|| rx.try_recv()).collect();
            got.sort_by_key(|a| a.seq);
            let expected: Vec<Acknowledgement> = (0..units)
                .map(|seq| Acknowledgement {
                    seq,
                    status: if spoiled[seq as usize] { AckStatus::Failed } else { AckStatus::Delivered },
                })
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
