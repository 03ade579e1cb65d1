use std::sync::Arc;
use std::time::Duration;

use sluice_config::{BufferConfig, BufferKind, ByteSize, WhenFull};
use sluice_core::ack::{self, AckStatus};
use sluice_core::{Batch, Event, Registry, SinkBatch, Span};

use super::*;

fn frame(n: usize, bytes_each: usize) -> Frame {
    let mut f = Frame::default();
    for _ in 0..n {
        f.bytes.extend(std::iter::repeat_n(b'x', bytes_each));
        f.finish_record();
    }
    f
}

fn batch_with_ack(sender: &ack::AckSender, seq: u64) -> SinkBatch {
    let mut b = Batch::new(
        b"x".to_vec(),
        vec![Event::unparsed(Span::new(0, 1), 0, Event::NO_ORIGIN)],
    );
    b.add_ack(sender.token(seq));
    SinkBatch::sole(b)
}

fn cfg(kind: BufferKind, max: u64, when_full: WhenFull) -> BufferConfig {
    BufferConfig {
        kind,
        max_bytes: Some(ByteSize(max)),
        when_full,
        fsync_interval: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn memory_buffer_acknowledges_only_on_commit_and_fails_on_abandon() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::new();
    let buf = Buffer::open(&cfg(BufferKind::Memory, 1 << 20, WhenFull::Block), dir.path(), &r, "s").unwrap();
    let (tx, mut rx) = ack::channel();
    let mut first = Batch::new(
        b"x".to_vec(),
        vec![Event::unparsed(Span::new(0, 1), 0, Event::NO_ORIGIN)],
    );
    first.add_ack(tx.token(0));
    let acks = first.take_acks();
    let first = Arc::new(first);
    let first_alive = Arc::downgrade(&first);
    buf.push(frame(2, 10), SinkBatch::new(first, acks)).await.unwrap();
    assert!(
        first_alive.upgrade().is_none(),
        "the buffer keeps the batch's acknowledgement, not its bytes"
    );
    buf.push(frame(3, 10), batch_with_ack(&tx, 1)).await.unwrap();
    assert_eq!(
        r.value("buffer_bytes", &[("sink", "s")]),
        Some(5 * (10 + 4)),
        "record bytes plus an end offset each"
    );
    let t = buf
        .take(1 << 20, 100, Duration::from_millis(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.records(), 5);
    assert!(
        rx.try_recv().is_none(),
        "nothing acknowledged before the target took it"
    );
    buf.commit(t).unwrap();
    let mut acks: Vec<_> = std::iter::from_fn(|| rx.try_recv())
        .map(|a| (a.seq, a.status))
        .collect();
    acks.sort_by_key(|a| a.0);
    assert_eq!(acks, vec![(0, AckStatus::Delivered), (1, AckStatus::Delivered)]);

    buf.push(frame(1, 10), batch_with_ack(&tx, 2)).await.unwrap();
    buf.push(frame(1, 10), batch_with_ack(&tx, 3)).await.unwrap();
    let t = buf.take(14, 100, Duration::from_millis(10)).await.unwrap().unwrap();
    assert_eq!(t.records(), 1, "the request stops at max_bytes");
    assert_eq!(buf.abandon(Some(t)).unwrap(), 2);
    let mut acks: Vec<_> = std::iter::from_fn(|| rx.try_recv())
        .map(|a| (a.seq, a.status))
        .collect();
    acks.sort_by_key(|a| a.0);
    assert_eq!(acks, vec![(2, AckStatus::Failed), (3, AckStatus::Failed)]);
}

#[tokio::test]
async fn a_full_buffer_blocks_until_a_commit_or_drops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::new();
    let buf = Arc::new(Buffer::open(&cfg(BufferKind::Memory, 30, WhenFull::Block), dir.path(), &r, "s").unwrap());
    let (tx, _rx) = ack::channel();
    buf.push(frame(1, 20), batch_with_ack(&tx, 0)).await.unwrap();
    let b2 = Arc::clone(&buf);
    let second = batch_with_ack(&tx, 1);
    let blocked = tokio::spawn(async move { b2.push(frame(1, 20), second).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!blocked.is_finished(), "push waits for room");
    let t = buf.take(1 << 20, 100, Duration::ZERO).await.unwrap().unwrap();
    buf.commit(t).unwrap();
    assert_eq!(blocked.await.unwrap(), Pushed::Stored);

    let dropping = Buffer::open(&cfg(BufferKind::Memory, 30, WhenFull::DropNewest), dir.path(), &r, "d").unwrap();
    assert_eq!(
        dropping.push(frame(1, 20), batch_with_ack(&tx, 2)).await.unwrap(),
        Pushed::Stored
    );
    assert_eq!(
        dropping.push(frame(1, 20), batch_with_ack(&tx, 3)).await.unwrap(),
        Pushed::Dropped
    );
    assert_eq!(r.value("buffer_dropped_events_total", &[("sink", "d")]), Some(1));
}

#[tokio::test]
async fn disk_buffer_acknowledges_on_write_and_keeps_what_was_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::new();
    let c = cfg(BufferKind::Disk, 1 << 20, WhenFull::Block);
    let (tx, mut rx) = ack::channel();
    {
        let buf = Buffer::open(&c, dir.path(), &r, "s").unwrap();
        buf.push(frame(2, 5), batch_with_ack(&tx, 0)).await.unwrap();
        buf.push(frame(1, 7), batch_with_ack(&tx, 1)).await.unwrap();
        let a: Vec<_> = std::iter::from_fn(|| rx.try_recv()).map(|a| a.status).collect();
        assert_eq!(a, vec![AckStatus::Delivered, AckStatus::Delivered]);
        let t = buf.take(1 << 20, 2, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(t.records(), 2);
        buf.commit(t).unwrap();
        // Taken but never committed, as if the process died mid-request.
        let t = buf.take(1 << 20, 100, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(t.frames, vec![frame(1, 7)]);
    }
    let buf = Buffer::open(&c, dir.path(), &r, "s").unwrap();
    buf.close();
    let t = buf.take(1 << 20, 100, Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(t.frames, vec![frame(1, 7)]);
    buf.commit(t).unwrap();
    assert!(buf.take(1 << 20, 100, Duration::ZERO).await.unwrap().is_none());
}

/// What happens next to a buffer in the property test.
#[derive(Debug, Clone)]
enum Op {
    /// A batch arrives from the pipeline.
    Push,
    /// Delivery takes a request's worth of frames.
    Take,
    /// The target stored the n-th request in flight.
    Commit(usize),
    /// The n-th request in flight is dropped (an error path).
    Lose(usize),
    /// Shutdown: delivery gives up on the n-th request in flight (or none).
    Abandon(Option<usize>),
}

fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
    use proptest::prelude::*;
    proptest::collection::vec(
        prop_oneof![
            4 => Just(Op::Push),
            2 => Just(Op::Take),
            2 => (0..4usize).prop_map(Op::Commit),
            1 => (0..4usize).prop_map(Op::Lose),
            1 => proptest::option::of(0..4usize).prop_map(Op::Abandon),
        ],
        0..40,
    )
}

/// A one-record frame naming its batch.
fn frame_of(seq: u64) -> Frame {
    let mut f = Frame::default();
    f.bytes.extend_from_slice(&seq.to_le_bytes());
    f.finish_record();
    f
}

fn seqs_of(t: &Taken) -> Vec<u64> {
    t.frames
        .iter()
        .flat_map(|f| {
            f.records()
                .map(|r| u64::from_le_bytes(r.try_into().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Any interleaving of push, take, commit, loss and shutdown settles
    /// each batch's acknowledgement exactly once, and as delivered only
    /// when the target stored it (memory), the disk took it (disk), or
    /// drop_newest dropped it on purpose.
    #[test]
    fn every_batch_settles_once_and_delivered_only_when_taken_for_good(
        disk in proptest::bool::ANY,
        drop_newest in proptest::bool::ANY,
        ops in ops(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kind = if disk { BufferKind::Disk } else { BufferKind::Memory };
        // Drop-newest buffers are small so they drop; blocking ones large
        // enough never to block (this test runs on one thread).
        let (max, when_full) = if drop_newest { (3 * 12, WhenFull::DropNewest) } else { (1 << 20, WhenFull::Block) };
        let (expected, got) = rt.block_on(async {
            let r = Registry::new();
            let buf = Buffer::open(&cfg(kind, max, when_full), dir.path(), &r, "p").unwrap();
            let (tx, mut rx) = ack::channel();
            let mut delivered = std::collections::BTreeSet::new();
            let mut in_flight: Vec<Taken> = Vec::new();
            let mut pushed = 0u64;
            for op in ops {
                match op {
                    Op::Push => {
                        let seq = pushed;
                        pushed += 1;
                        match buf.push(frame_of(seq), batch_with_ack(&tx, seq)).await.unwrap() {
                            Pushed::Stored if disk => {
                                delivered.insert(seq);
                            }
                            Pushed::Dropped => {
                                delivered.insert(seq);
                            }
                            _ => {}
                        }
                    }
                    Op::Take => {
                        let t = tokio::time::timeout(
                            Duration::from_millis(5),
                            buf.take(1 << 20, 2, Duration::ZERO),
                        )
                        .await;
                        if let Ok(Ok(Some(t))) = t {
                            in_flight.push(t);
                        }
                    }
                    Op::Commit(i) if !in_flight.is_empty() => {
                        let t = in_flight.remove(i % in_flight.len());
                        if !disk {
                            delivered.extend(seqs_of(&t));
                        }
                        buf.commit(t).unwrap();
                    }
                    Op::Lose(i) if !in_flight.is_empty() => {
                        drop(in_flight.remove(i % in_flight.len()));
                    }
                    Op::Abandon(i) => {
                        let t = i.filter(|_| !in_flight.is_empty()).map(|i| in_flight.remove(i % in_flight.len()));
                        buf.abandon(t).unwrap();
                    }
                    _ => {}
                }
            }
            drop(in_flight);
            drop(buf);
            drop(tx);
            let mut got = std::collections::BTreeMap::new();
            while let Some(a) = rx.recv().await {
                assert!(got.insert(a.seq, a.status).is_none(), "seq {} settled twice", a.seq);
            }
            let expected: std::collections::BTreeMap<u64, AckStatus> = (0..pushed)
                .map(|s| (s, if delivered.contains(&s) { AckStatus::Delivered } else { AckStatus::Failed }))
                .collect();
            (expected, got)
        });
        proptest::prop_assert_eq!(got, expected);
    }
}
