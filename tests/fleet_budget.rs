//! A service's budget is the fleet's: three sluice nodes on a real Kafka
//! broker (`common::kafka`), each generating two simulated hours of the
//! built-in workload (the same services, different traffic), sampled on
//! the event clock against hourly budgets. With `scope = "fleet"` each
//! sampled service's spend over the whole fleet lands on its budget; with
//! `scope = "node"` (the contrast) each node spends the whole budget, and
//! the fleet about three times it.

mod common;
use common::kafka::Kafka;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

const NODES: usize = 3;
/// Bytes per hour per service.
const BUDGET: f64 = 512.0 * 1024.0;
/// Lines per node: a little over two simulated hours at `SIMULATED_RATE`
/// (about one line in eight is a stack-trace line, which takes no time).
const EVENTS: u64 = 84_000;
const SIMULATED_RATE: f64 = 10.0;

fn node_config(dir: &Path, node: usize, scope: &str, brokers: &str) -> std::path::PathBuf {
    let d = dir.display();
    let fleet = if scope == "fleet" {
        format!("[budget.fleet]\nbrokers = \"{brokers}\"\nnode_id = \"node-{node}\"\ninterval = \"250ms\"\n")
    } else {
        String::new()
    };
    write_config(
        dir,
        &format!("{scope}-{node}.toml"),
        &format!(
            r#"
data_dir = "{d}/{scope}-{node}-state"
[report]
progress = false
[admin]
enabled = false
[sources.gen]
type = "generator"
seed = {seed}
count = {EVENTS}
rate = 4500
simulated_rate = {SIMULATED_RATE}
[budget]
clock = "event"
default = "512KiB/h"
floor = 0.0005
lookback = "0s"
scope = "{scope}"
{fleet}
[sinks.out]
type = "file"
directory = "{d}/{scope}-{node}-out"
compression = "none"
"#,
            seed = 100 + node
        ),
    )
}

/// What one scope's run kept of a service in the second simulated hour
/// (the first one warms the rates), over every node.
#[derive(Debug, Default, Clone, Copy)]
struct Kept {
    /// The bytes the budget counted for the lines kept.
    spent: f64,
    /// Of which kept without a sample rate: errors and slow requests
    /// (and, where p was 1, normal events).
    unsampled: f64,
    /// Whether any kept line was sampled (p < 1).
    sampled: bool,
}

fn second_hour_spend(dirs: &[std::path::PathBuf]) -> BTreeMap<String, Kept> {
    let mut spend: BTreeMap<String, Kept> = BTreeMap::new();
    for dir in dirs {
        for (line, n) in count_lines(dir) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let (Some(service), Some(ts)) = (v["service"].as_str(), v["ts"].as_str()) else {
                continue;
            };
            if !ts.starts_with("2026-11-25T01:") {
                continue;
            }
            // The budget counts the line as it came, before sluice
            // appended its sample rate.
            let sampled = line.find(",\"sample_rate\":");
            let size = sampled.map_or(line.len(), |at| at + 1) + 1;
            let e = spend.entry(service.to_string()).or_default();
            let bytes = (size as u64 * n) as f64;
            e.spent += bytes;
            if sampled.is_none() {
                e.unsampled += bytes;
            }
            e.sampled |= sampled.is_some();
        }
    }
    spend
}

fn run_fleet(dir: &Path, scope: &str, brokers: &str) -> BTreeMap<String, Kept> {
    let children: Vec<Child> = (0..NODES)
        .map(|n| {
            let config = node_config(dir, n, scope, brokers);
            let log = std::fs::File::create(dir.join(format!("{scope}-{n}.stderr"))).unwrap();
            spawn_logged(&config, log)
        })
        .collect();
    let _guards: Vec<KillOnDrop> = children.iter().map(|c| KillOnDrop(c.id())).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for (n, mut child) in children.into_iter().enumerate() {
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "{scope} node {n} never finished");
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = std::fs::read_to_string(dir.join(format!("{scope}-{n}.stderr"))).unwrap();
        assert!(status.success(), "{scope} node {n}: {log}");
        if scope == "fleet" {
            assert!(log.contains("deciding with the fleet's figures"), "node {n}: {log}");
        }
    }
    let dirs: Vec<_> = (0..NODES).map(|n| dir.join(format!("{scope}-{n}-out"))).collect();
    second_hour_spend(&dirs)
}

#[test]
fn a_fleet_scope_budget_holds_across_nodes_where_node_scope_spends_it_on_each() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let fleet = run_fleet(dir.path(), "fleet", &kafka.brokers());
    let node = run_fleet(dir.path(), "node", &kafka.brokers());

    for (service, f) in &fleet {
        eprintln!(
            "{service:>16}: fleet scope {:.2} of the budget ({:.2} unsampled), node scope {:.2}",
            f.spent / BUDGET,
            f.unsampled / BUDGET,
            node[service].spent / BUDGET
        );
    }
    // The services every node's budget binds for in node scope (each node
    // sampling them) show the difference; the rest keep what they offer.
    let mut checked = 0;
    for (service, f) in &fleet {
        let n = node[service];
        if !(n.sampled && n.spent > 2.2 * BUDGET) {
            assert!(
                f.spent <= BUDGET * 1.1,
                "{service}: the fleet spent {:.2} budgets",
                f.spent / BUDGET
            );
            continue;
        }
        checked += 1;
        if f.unsampled > BUDGET {
            // Its errors and slow requests alone are more than the budget
            // over the fleet: all kept, and nothing else (p at the floor).
            assert!(f.spent < f.unsampled * 1.05, "{service}: {f:?}");
            continue;
        }
        // Node scope: each node spent the whole budget. Fleet scope: the
        // fleet did, once: 0.99-1.01, also with the machine's cores kept
        // busy. Two simulated hours pass in 16 s here, so the nodes'
        // clocks are minutes of simulated time apart; a node behind the
        // others counts what they closed its hour with (up to 1.09 was
        // seen before they published it).
        assert!(
            (2.7..=3.1).contains(&(n.spent / BUDGET)),
            "{service}: node scope spent {:.2} budgets",
            n.spent / BUDGET
        );
        assert!(
            (0.95..=1.05).contains(&(f.spent / BUDGET)),
            "{service}: the fleet spent {:.2} budgets",
            f.spent / BUDGET
        );
    }
    assert!(checked >= 3, "the budget bound only {checked} services: {fleet:?}");
}
