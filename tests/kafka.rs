//! Kafka end to end on a real Apache Kafka 4.4 broker (`common::kafka`:
//! Maven Central's jars, one KRaft node started by the test), or on the
//! brokers in `SLUICE_TEST_KAFKA_BROKERS` when set: a node sluice produces
//! the generator's output, an aggregation-tier sluice consumes it as a
//! consumer group into files, and is killed with -9 mid-stream: nothing is
//! lost, and offsets end committed exactly at the end of what was written.
//! Two aggregators in one group, one killed: its partitions move to the
//! other and nothing is lost (duplicates are reported, not bounded: see
//! the test).

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::kafka::Kafka;
use common::{count_lines, generated, raw_file_source, sluice, spawn_logged, stop, write_config};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 4;

/// The brokers to use, with `topic` created on them: external ones, or a
/// fresh real broker kept alive by the returned guard.
fn brokers(topic: &str) -> (String, Option<Kafka>) {
    if let Ok(external) = std::env::var("SLUICE_TEST_KAFKA_BROKERS") {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &external)
            .create()
            .unwrap();
        let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(admin.create_topics([&new], &AdminOptions::new()))
            .unwrap();
        return (external, None);
    }
    let kafka = Kafka::start();
    kafka.create_topic(topic, PARTITIONS);
    (kafka.brokers(), Some(kafka))
}

/// Start `sluice run`; its stderr goes to `<config>.<n>.stderr` for
/// diagnosis.
fn spawn(config: &Path, n: u32) -> Child {
    let log = std::fs::File::create(config.with_extension(format!("{n}.stderr"))).unwrap();
    spawn_logged(config, log)
}

/// Kills what is left of the sluice processes if the test fails midway.
struct Reaper(Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            // SAFETY: kill(2) on a child of this test (harmless if it exited).
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
}

/// Poll `arrived` until it holds every line of `expected`.
fn wait_for_every_line(
    expected: &std::collections::HashMap<String, u64>,
    deadline: Instant,
    arrived: impl Fn() -> std::collections::HashMap<String, u64>,
) {
    loop {
        let got = arrived();
        if expected.keys().all(|l| got.contains_key(l)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} distinct lines arrived",
            got.len(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every line in the files of two output directories, counted.
fn union_of(a: &Path, b: &Path) -> std::collections::HashMap<String, u64> {
    let mut all = count_lines(a);
    for (line, n) in count_lines(b) {
        *all.entry(line).or_insert(0) += n;
    }
    all
}

/// `group`'s committed offset and the high watermark of each partition.
fn committed_and_high(brokers: &str, topic: &str, group: &str) -> (Vec<i64>, Vec<i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition(topic, p);
    }
    let list = consumer.committed_offsets(wanted, Duration::from_secs(10)).unwrap();
    let mut committed = Vec::new();
    let mut high = Vec::new();
    for p in 0..PARTITIONS {
        committed.push(match list.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(c) => c,
            _ => 0, // nothing committed yet
        });
        high.push(consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1);
    }
    // The list must go before the consumer it came from (librdkafka trap).
    drop(list);
    drop(consumer);
    (committed, high)
}

/// A node: 30,000 generator lines at 6,000 a second → the Kafka sink, and a
/// plain copy in `node-copy/` (what was sent).
fn node_config(dir: &Path, brokers: &str, topic: &str) -> std::path::PathBuf {
    let d = dir.display();
    write_config(
        dir,
        "node.toml",
        &format!(
            r#"
data_dir = "{d}/node-state"
[sources.gen]
type = "generator"
count = 30000
rate = 6000
seed = 9
[sinks.kafka]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
[sinks.copy]
type = "file"
directory = "{d}/node-copy"
compression = "none"
"#
        ),
    )
}

/// An aggregator `name` in consumer group `group`: the topic → files in
/// `<name>-out/`.
fn aggregator_config(dir: &Path, brokers: &str, topic: &str, name: &str, group: &str) -> std::path::PathBuf {
    let d = dir.display();
    write_config(
        dir,
        &format!("{name}.toml"),
        &format!(
            r#"
data_dir = "{d}/{name}-state"
[sources.kafka]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
commit_interval = "500ms"
[sources.kafka.options]
# A member killed with -9 is noticed after this, not librdkafka's 45 s.
"session.timeout.ms" = "6000"
[sinks.out]
type = "file"
directory = "{d}/{name}-out"
compression = "none"
"#
        ),
    )
}

#[test]
fn node_to_kafka_to_aggregator_survives_kill_9_without_loss() {
    let topic = format!("logs-{}", std::process::id());
    let (brokers, _mock) = brokers(&topic);
    let dir = tempfile::tempdir().unwrap();
    let node = node_config(dir.path(), &brokers, &topic);
    let aggregator = aggregator_config(dir.path(), &brokers, &topic, "agg", "aggregator");

    let producer = spawn(&node, 1);
    let first = spawn(&aggregator, 1);
    let mut reaper = Reaper(vec![producer.id(), first.id()]);
    let out = dir.path().join("agg-out");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_lines(&out).values().sum::<u64>() < 8000 {
        assert!(Instant::now() < deadline, "the aggregator received nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Mid-stream: the node is still producing.
    let mut first = first;
    first.kill().unwrap();
    first.wait().unwrap();
    // What the killed run had written, and what it had committed: a commit
    // may trail the acknowledgements but never run ahead of them.
    let written_before_kill: u64 = count_lines(&out).values().sum();
    let committed_before_kill: u64 = committed_and_high(&brokers, &topic, "aggregator").0.iter().sum::<i64>() as u64;
    assert!(
        committed_before_kill <= written_before_kill,
        "committed {committed_before_kill} messages but only {written_before_kill} reached the sink"
    );
    let producer_status = producer.wait_with_output().unwrap().status;
    assert!(producer_status.success());
    let expected = count_lines(&dir.path().join("node-copy"));
    let total: u64 = expected.values().sum();
    assert!(total > 29_000);

    let second = spawn(&aggregator, 2);
    reaper.0.push(second.id());
    wait_for_every_line(&expected, deadline, || count_lines(&out));
    stop(second);

    let got = count_lines(&out);
    let mut duplicates = 0;
    for (line, n) in &expected {
        let g = got.get(line).copied().unwrap_or(0);
        assert!(g >= *n, "lost: {line}");
        duplicates += g - n;
    }
    assert_eq!(got.len(), expected.len(), "nothing arrived that was not sent");
    eprintln!(
        "kafka kill -9: {duplicates} duplicates of {total} ({written_before_kill} written, {committed_before_kill} committed before the kill)"
    );
    // Exactly the acknowledged-but-not-yet-committed tail comes again.
    assert_eq!(duplicates, written_before_kill - committed_before_kill);

    // The group's committed offsets end exactly at the end of the topic.
    let (committed, high) = committed_and_high(&brokers, &topic, "aggregator");
    assert_eq!(committed, high, "per partition");
    assert_eq!(committed.iter().sum::<i64>() as u64, total, "one message per event");

    // Keys: every message is keyed by its service.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "verify")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    reader.subscribe(&[&topic]).unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen < total && Instant::now() < deadline {
        let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let key = m.key().map(|k| String::from_utf8_lossy(k).to_string());
        assert_eq!(key.as_deref(), value["service"].as_str(), "{value}");
        seen += 1;
    }
    assert_eq!(seen, total);
}

#[test]
fn two_aggregators_in_one_group_lose_nothing_when_one_is_killed() {
    let topic = format!("rebalance-{}", std::process::id());
    let (brokers, _kafka) = brokers(&topic);
    let dir = tempfile::tempdir().unwrap();
    let node = node_config(dir.path(), &brokers, &topic);
    let a = aggregator_config(dir.path(), &brokers, &topic, "a", "pair");
    let b = aggregator_config(dir.path(), &brokers, &topic, "b", "pair");
    let (a_out, b_out) = (dir.path().join("a-out"), dir.path().join("b-out"));

    let producer = spawn(&node, 1);
    let mut first = spawn(&a, 1);
    let second = spawn(&b, 1);
    let _reaper = Reaper(vec![producer.id(), first.id(), second.id()]);
    // Both members got partitions and are delivering.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_lines(&a_out).is_empty() || count_lines(&b_out).is_empty() {
        assert!(Instant::now() < deadline, "the two aggregators never both received");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let written_by_a: u64 = count_lines(&a_out).values().sum();
    assert!(producer.wait_with_output().unwrap().status.success());
    let expected = count_lines(&dir.path().join("node-copy"));
    let total: u64 = expected.values().sum();

    // The survivor takes over the killed member's partitions from their
    // committed offsets.
    let union = || union_of(&a_out, &b_out);
    wait_for_every_line(&expected, Instant::now() + Duration::from_secs(90), union);
    stop(second);

    let got = union();
    assert_eq!(got.len(), expected.len(), "nothing arrived that was not sent");
    let mut duplicates = 0;
    for (line, n) in &expected {
        let g = got[line];
        assert!(g >= *n, "lost: {line}");
        duplicates += g - n;
    }
    // At least once: what the killed member delivered past its last
    // commit comes again (a handover needs a member alive to make it).
    eprintln!("kafka rebalance: {duplicates} duplicates of {total} ({written_by_a} written by the killed member)");
    let (committed, high) = committed_and_high(&brokers, &topic, "pair");
    assert_eq!(committed, high, "per partition");
    assert_eq!(committed.iter().sum::<i64>() as u64, total);
}

/// A member joins mid-stream and the first one leaves: each rebalance
/// hands the revoked partitions over (what was read is delivered and
/// committed first), so with commits otherwise a minute apart not one line
/// arrives twice.
#[test]
fn members_joining_and_leaving_hand_partitions_over_without_a_duplicate() {
    let topic = format!("handover-{}", std::process::id());
    let (brokers, _kafka) = brokers(&topic);
    let dir = tempfile::tempdir().unwrap();
    let node = node_config(dir.path(), &brokers, &topic);
    let member = |name: &str| {
        let config = aggregator_config(dir.path(), &brokers, &topic, name, "handover");
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("commit_interval = \"500ms\"", "commit_interval = \"60s\"");
        std::fs::write(&config, text).unwrap();
        config
    };
    let (a, b) = (member("a"), member("b"));
    let (a_out, b_out) = (dir.path().join("a-out"), dir.path().join("b-out"));

    let producer = spawn(&node, 1);
    let first = spawn(&a, 1);
    let mut reaper = Reaper(vec![producer.id(), first.id()]);
    let wait_until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_until("the first member never received", &|| !count_lines(&a_out).is_empty());
    let second = spawn(&b, 1);
    reaper.0.push(second.id());
    wait_until("the second member never received", &|| !count_lines(&b_out).is_empty());
    // The first leaves while the producer is still writing.
    stop(first);
    assert!(producer.wait_with_output().unwrap().status.success());
    let expected = count_lines(&dir.path().join("node-copy"));
    let union = || union_of(&a_out, &b_out);
    wait_for_every_line(&expected, Instant::now() + Duration::from_secs(90), union);
    stop(second);
    let got = union();
    let twice = expected.iter().filter(|(line, n)| got[*line] > **n).count();
    assert_eq!(got.len(), expected.len(), "nothing arrived that was not sent");
    assert_eq!(twice, 0, "lines that arrived more than once, of {}", expected.len());
    let (committed, high) = committed_and_high(&brokers, &topic, "handover");
    assert_eq!(committed, high, "per partition");
}

/// Benchmark, not a check (run it by name: `cargo test --release --test
/// kafka -- --ignored --nocapture bench`): 300,000 generator lines from a
/// file through parse → Kafka sink on the real broker; prints sluice's own
/// MB/s, CPU and RSS (the broker's CPU, in its own process, is not
/// counted).
#[test]
#[ignore]
fn bench_file_to_kafka() {
    let topic = format!("bench-{}", std::process::id());
    let (brokers, _mock) = brokers(&topic);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.log");
    std::fs::write(&input, generated(300_000, 1)).unwrap();
    let config = write_config(
        dir.path(),
        "bench.toml",
        &format!(
            r#"
{source}[sinks.kafka]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
"#,
            source = raw_file_source(dir.path(), &input),
        ),
    );
    let out = sluice().args(["bench", "-c"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let (_, high) = committed_and_high(&brokers, &topic, "aggregator");
    assert_eq!(high.iter().sum::<i64>(), 299_656);
}
