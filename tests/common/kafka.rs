//! A real Apache Kafka broker for the tests: Kafka 4.4 from Maven Central's
//! jars (`tests/kafka/pom.xml`, copied into `target/kafka-broker/` by
//! `scripts/test.sh`), one KRaft node with the broker and controller
//! roles, loopback listeners on free ports, its storage in a temp dir,
//! formatted with `kafka.tools.StorageTool` and started as a plain
//! `java -cp 'target/kafka-broker/*' kafka.Kafka` process, stopped by PID.

use super::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// A running broker and its directory.
pub struct Kafka {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The client port.
    pub port: u16,
}

fn jars() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/kafka-broker");
    assert!(
        dir.join(".complete").exists(),
        "the Kafka broker's jars are missing from {}: run scripts/test.sh (it fetches them with Maven from tests/kafka/pom.xml)",
        dir.display()
    );
    dir
}

fn java(dir: &Path) -> Command {
    let mut c = Command::new("java");
    // Two cores and a short life: a small heap and the serial collector.
    c.args(["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-cp"])
        .arg(format!("{}/*", jars().display()))
        .current_dir(dir);
    c
}

impl Kafka {
    /// Format a fresh single-node cluster and start it.
    pub fn start() -> Kafka {
        let dir = tempfile::tempdir().unwrap();
        let (port, controller) = (free_port(), free_port());
        let properties = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             inter.broker.listener.name=PLAINTEXT\n\
             log.dirs={data}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=4\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             auto.create.topics.enable=false\n",
            data = dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("server.properties"), properties).unwrap();
        let format = java(dir.path())
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                "c2x1aWNlLXRlc3QtY2x1c3Rlcg",
                "--config",
                "server.properties",
            ])
            .output()
            .expect("java (scripts/test.sh installs OpenJDK 17)");
        assert!(
            format.status.success(),
            "kafka.tools.StorageTool format failed: {}{}",
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );
        let mut k = Kafka { child: None, dir, port };
        k.launch();
        k
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("broker.log")).unwrap();
        let child = java(self.dir.path())
            .args(["kafka.Kafka", "server.properties"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the Kafka broker");
        self.child = Some(child);
        // Up when it answers a metadata request with itself in it.
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", "sluice-test-probe")
            .set("log_level", "0")
            .create()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Ok(m) = client.fetch_metadata(None, Duration::from_secs(1)) {
                if !m.brokers().is_empty() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the Kafka broker exited ({status}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the Kafka broker did not answer within 90 s: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// `bootstrap.servers` for a client.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Create `topic` with `partitions` partitions (retried while the
    /// freshly started controller settles).
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
            let result = runtime.block_on(admin.create_topics([&new], &AdminOptions::new()));
            match result.as_deref() {
                Ok([Ok(_)]) => return,
                other => assert!(Instant::now() < deadline, "creating topic {topic}: {other:?}"),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stop the broker (SIGTERM, wait; SIGKILL after 30 s): an outage.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            super::terminate(child);
        }
    }

    /// Start it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
