//! The chain's failure paths: what a panicking stage, a dead sink and a
//! stage holding events cost, told by the acknowledgements the source gets.

use std::time::{Duration, Instant};

use sluice_core::ack::{self, AckReceiver, AckSender};
use sluice_core::{AckStatus, Batch, Event, Registry, SinkBatch, Span, Stage};
use tokio::sync::mpsc;

use super::*;

/// A batch of `n` one-byte events carrying token `seq`.
fn batch(acks: &AckSender, seq: u64, n: usize) -> Batch {
    batch_of(acks, seq, &vec![b'x'; n])
}

/// A batch of one-byte events, one per byte of `data`, carrying token `seq`.
fn batch_of(acks: &AckSender, seq: u64, data: &[u8]) -> Batch {
    let events = (0..data.len())
        .map(|i| Event::unparsed(Span::new(i, 1), 0, Event::NO_ORIGIN))
        .collect();
    let mut b = Batch::new(data.to_vec(), events);
    b.add_ack(acks.token(seq));
    b
}

/// Every acknowledgement until the source's last token is gone, by seq.
async fn settle(mut rx: AckReceiver) -> Vec<(u64, AckStatus)> {
    let mut all = Vec::new();
    while let Some(a) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("acknowledgements settle")
    {
        all.push((a.seq, a.status));
    }
    all.sort_by_key(|(seq, _)| *seq);
    all
}

/// Panics on a batch whose first byte is `!`, passes others on.
struct PanicsOnBang;

impl Stage for PanicsOnBang {
    fn name(&self) -> &'static str {
        "bang"
    }
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) {
        assert!(batch.data().first() != Some(&b'!'), "a bug in a stage");
        out.push(batch);
    }
}

/// Holds every batch until the input ends (a stitching stage's worst case).
#[derive(Default)]
struct HoldsAll(Vec<Batch>);

impl Stage for HoldsAll {
    fn name(&self) -> &'static str {
        "holds"
    }
    fn process(&mut self, batch: Batch, _out: &mut Vec<Batch>) {
        self.0.push(batch);
    }
    fn tick(&mut self, _now: Instant, _out: &mut Vec<Batch>) {}
    fn finish(&mut self, out: &mut Vec<Batch>) {
        out.append(&mut self.0);
    }
}

/// A sink that takes every batch and reports it delivered.
fn delivering_sink() -> (mpsc::Sender<SinkBatch>, tokio::task::JoinHandle<usize>) {
    let (tx, mut rx) = mpsc::channel::<SinkBatch>(4);
    let task = tokio::spawn(async move {
        let mut events = 0;
        while let Some(b) = rx.recv().await {
            events += b.len();
            b.delivered();
        }
        events
    });
    (tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_stage_costs_one_batch_and_its_acks_fail() {
    let registry = Registry::new();
    let (acks, ack_rx) = ack::channel();
    let (head_tx, head_rx) = mpsc::channel(4);
    let (sink, delivered) = delivering_sink();
    let chain = start(
        vec![Box::new(PanicsOnBang)],
        head_rx,
        vec![("out".to_string(), sink)],
        4,
        &registry,
    )
    .unwrap();
    head_tx.send(batch(&acks, 0, 3)).await.unwrap();
    head_tx.send(batch_of(&acks, 1, b"!!")).await.unwrap();
    head_tx.send(batch(&acks, 2, 4)).await.unwrap();
    drop((head_tx, acks));
    assert_eq!(
        settle(ack_rx).await,
        [
            (0, AckStatus::Delivered),
            (1, AckStatus::Failed),
            (2, AckStatus::Delivered)
        ]
    );
    assert_eq!(
        tokio::task::spawn_blocking(move || chain.join()).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(delivered.await.unwrap(), 7);
    assert_eq!(registry.value("stage_panics_total", &[("stage", "bang")]), Some(1));
    // The component view: 3 + 2 + 4 events in, the panicking batch's 2 not
    // out, and the panic under the stage's errors.
    let c = |name, id| {
        registry.value(
            name,
            &[
                ("component_kind", if id == "out" { "sink" } else { "stage" }),
                ("component", id),
            ],
        )
    };
    assert_eq!(c("component_received_events_total", "bang"), Some(9));
    assert_eq!(c("component_sent_events_total", "bang"), Some(7));
    assert_eq!(c("component_received_events_total", "out"), Some(7));
    assert_eq!(
        registry.value(
            "component_errors_total",
            &[("component_kind", "stage"), ("component", "bang"), ("kind", "panic")]
        ),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_sink_fails_what_it_did_not_take() {
    let registry = Registry::new();
    let (acks, ack_rx) = ack::channel();
    let (head_tx, head_rx) = mpsc::channel(4);
    let (live, delivered) = delivering_sink();
    let (dead, dead_rx) = mpsc::channel::<SinkBatch>(4);
    drop(dead_rx);
    let chain = start(
        vec![],
        head_rx,
        vec![("live".to_string(), live), ("dead".to_string(), dead)],
        4,
        &registry,
    )
    .unwrap();
    head_tx.send(batch(&acks, 0, 2)).await.unwrap();
    head_tx.send(batch(&acks, 1, 5)).await.unwrap();
    drop((head_tx, acks));
    // The live sink delivered both, but every sink must accept a batch for
    // its source to pass it.
    assert_eq!(settle(ack_rx).await, [(0, AckStatus::Failed), (1, AckStatus::Failed)]);
    let received = |id| {
        registry.value(
            "component_received_events_total",
            &[("component_kind", "sink"), ("component", id)],
        )
    };
    assert_eq!((received("live"), received("dead")), (Some(7), Some(0)));
    assert_eq!(
        tokio::task::spawn_blocking(move || chain.join()).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(delivered.await.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_sink_is_gone_queued_batches_fail() {
    let registry = Registry::new();
    let (acks, ack_rx) = ack::channel();
    let (head_tx, head_rx) = mpsc::channel(8);
    let (dead, dead_rx) = mpsc::channel::<SinkBatch>(4);
    drop(dead_rx);
    let chain = start(
        vec![Box::new(HoldsAll::default())],
        head_rx,
        vec![("dead".to_string(), dead)],
        8,
        &registry,
    )
    .unwrap();
    for seq in 0..3 {
        head_tx.send(batch(&acks, seq, 1)).await.unwrap();
    }
    drop((head_tx, acks));
    assert_eq!(
        settle(ack_rx).await,
        [(0, AckStatus::Failed), (1, AckStatus::Failed), (2, AckStatus::Failed)]
    );
    assert_eq!(
        tokio::task::spawn_blocking(move || chain.join()).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_batches_are_released_at_the_end_and_empty_ones_count_as_done() {
    let registry = Registry::new();
    let (acks, ack_rx) = ack::channel();
    let (head_tx, head_rx) = mpsc::channel(4);
    let (sink, delivered) = delivering_sink();
    let chain = start(
        vec![Box::new(HoldsAll::default())],
        head_rx,
        vec![("out".to_string(), sink)],
        4,
        &registry,
    )
    .unwrap();
    head_tx.send(batch(&acks, 0, 2)).await.unwrap();
    // Every event sampled away: nothing reaches a sink, and it is done.
    head_tx.send(batch(&acks, 1, 0)).await.unwrap();
    drop((head_tx, acks));
    assert_eq!(
        settle(ack_rx).await,
        [(0, AckStatus::Delivered), (1, AckStatus::Delivered)]
    );
    assert_eq!(
        tokio::task::spawn_blocking(move || chain.join()).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(delivered.await.unwrap(), 2);
}
