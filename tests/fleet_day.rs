//! A fleet's day on a real Kafka broker (`common::kafka`): six sluice
//! nodes tail their own log files, which this test appends to in step, a
//! simulated minute at a time, a whole day on the event clock in about 70
//! seconds. Twenty services are spread unevenly over the nodes: one on
//! node 5 only, one on all six, one moving to the next node every four
//! hours, one bursting tenfold for an hour, requests that span two
//! replicas of a service on two nodes and two services on two nodes.
//! Mid-day a node is killed with SIGKILL and started again, and later the
//! broker is stopped for a few seconds (a simulated hour and more).
//!
//! Checked per service over the fleet: the day's spend within 3% of its
//! budget; every error and slow request kept; the sample_rate-weighted
//! count of normal events within 3% of the truth; and requests kept or
//! dropped whole across nodes (all but 0.1% while the fleet is
//! undisturbed, all but 1% over the day).
//!
//! `SLUICE_FLEET_DAY_SCOPE=node` runs the same day in node scope and
//! prints what each service spent (the contrast in BENCHMARKS.md).

mod common;
use common::kafka::Kafka;
use common::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const NODES: usize = 6;
const SERVICES: usize = 20;
/// Simulated seconds per step, and the wall time a step takes.
const STEP_SECS: u64 = 60;
const STEP_WALL: Duration = Duration::from_millis(48);
const STEPS: u64 = 86_400 / STEP_SECS;
/// The day (2026-11-25, UTC) in seconds since the epoch.
const DAY_START: u64 = 1_764_028_800;
/// Steps at which node `KILLED` is killed and started again, and at which
/// the broker is stopped (it is started again a few seconds later).
const KILL_AT: u64 = 600;
const RESTART_AT: u64 = 640;
const KILLED: usize = 2;
const BROKER_DOWN_AT: u64 = 960;
const BROKER_DOWN_FOR: Duration = Duration::from_secs(4);

/// splitmix64: a deterministic stream per step, so the day can be made
/// twice (once to size the budgets, once to write it).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn service_name(s: usize) -> String {
    match s {
        0 => "edge".into(),
        1 => "users".into(),
        2 => "solo".into(),
        3 => "mover".into(),
        4 => "burst".into(),
        19 => "archive".into(),
        n => format!("svc-{n:02}"),
    }
}

/// The nodes service `s` runs on at `hour`, with their shares of its
/// traffic.
fn placement(s: usize, hour: u64) -> Vec<(usize, u64)> {
    match s {
        0 => (0..NODES).map(|n| (n, n as u64 + 1)).collect(),
        1 => vec![(1, 1), (3, 2)],
        2 => vec![(5, 1)],
        3 => vec![((hour / 4) as usize % NODES, 1)],
        _ => {
            let a = s % NODES;
            let b = (s * 7 + 1) % NODES;
            let c = (s * 5 + 2) % NODES;
            let mut v: Vec<(usize, u64)> = vec![(a, 1), (b, 2), (c, 4)];
            v.sort();
            v.dedup_by(|x, y| {
                if x.0 == y.0 {
                    y.1 += x.1;
                    true
                } else {
                    false
                }
            });
            v
        }
    }
}

/// Normal requests per simulated minute of service `s` at `hour`.
fn requests_per_minute(s: usize, hour: u64) -> u64 {
    let base = 20 + (s as u64 * 13) % 21;
    if s == 4 && hour == 14 {
        base * 10
    } else {
        base
    }
}

/// The keep-probability service `s`'s budget is sized for; `archive`'s
/// budget is twice what it offers (it keeps everything).
fn target_p(s: usize) -> f64 {
    0.4 + (s % 5) as f64 * 0.05
}

fn pick(rng: &mut Rng, nodes: &[(usize, u64)]) -> usize {
    let total: u64 = nodes.iter().map(|n| n.1).sum();
    let mut r = rng.below(total);
    for &(n, w) in nodes {
        if r < w {
            return n;
        }
        r -= w;
    }
    unreachable!()
}

/// One line as written.
struct Line {
    node: usize,
    service: usize,
    must_keep: bool,
    text: String,
}

/// Everything written in step `step`, in order.
fn step_lines(step: u64) -> Vec<Line> {
    let mut rng = Rng(step.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
    let hour = step * STEP_SECS / 3600;
    let mut lines = Vec::new();
    let mut id = step * 1_000_000;
    let mut line = |rng: &mut Rng, node: usize, service: usize, trace: u64, kind: u8| {
        let ts = DAY_START + step * STEP_SECS + rng.below(STEP_SECS);
        let ms = rng.below(1000);
        let (level, duration) = match kind {
            1 => ("error", 20 + rng.below(200)),
            2 => ("info", 1000 + rng.below(4000)),
            _ => ("info", 3 + rng.below(400)),
        };
        let pad = "x".repeat(rng.below(120) as usize);
        let text = format!(
            "{{\"ts\":\"{}.{ms:03}Z\",\"service\":\"{}\",\"level\":\"{level}\",\"trace_id\":\"{trace:016x}\",\"duration_ms\":{duration},\"id\":{id},\"msg\":\"request {pad}\"}}",
            iso(ts),
            service_name(service),
        );
        id += 1;
        Line {
            node,
            service,
            must_keep: kind != 0,
            text,
        }
    };
    for s in 0..SERVICES {
        let nodes = placement(s, hour);
        for _ in 0..requests_per_minute(s, hour) {
            let trace = rng.next();
            let first = pick(&mut rng, &nodes);
            lines.push(line(&mut rng, first, s, trace, 0));
            match rng.below(4) {
                // The request's next line on another replica (or the
                // same one where the service runs on one node).
                0 | 1 => {
                    let second = pick(&mut rng, &nodes);
                    lines.push(line(&mut rng, second, s, trace, 0));
                }
                // Edge calls users on a node of its own.
                2 if s == 0 => {
                    let second = pick(&mut rng, &placement(1, hour));
                    lines.push(line(&mut rng, second, 1, trace, 0));
                }
                _ => {}
            }
        }
        // Errors and slow requests: about 2.5% more, each a request of
        // its own.
        let must = (requests_per_minute(s, hour) + rng.below(40)) / 40;
        for k in 0..must {
            let node = pick(&mut rng, &nodes);
            let trace = rng.next();
            lines.push(line(&mut rng, node, s, trace, 1 + (k % 2) as u8));
        }
    }
    lines.sort_by(|a, b| a.text[7..30].cmp(&b.text[7..30]));
    lines
}

/// `2026-11-25T13:05:07` for seconds since the epoch within the day.
fn iso(ts: u64) -> String {
    let s = ts - DAY_START;
    format!("2026-11-25T{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// What the day offers per service: normal bytes, must-keep bytes, and
/// the normal lines' count.
fn offered() -> Vec<(f64, f64, u64)> {
    let mut o = vec![(0.0, 0.0, 0u64); SERVICES];
    for step in 0..STEPS {
        for l in step_lines(step) {
            let bytes = (l.text.len() + 1) as f64;
            if l.must_keep {
                o[l.service].1 += bytes;
            } else {
                o[l.service].0 += bytes;
                o[l.service].2 += 1;
            }
        }
    }
    o
}

fn node_config(dir: &Path, node: usize, scope: &str, brokers: &str, port: u16, budgets: &[u64]) -> PathBuf {
    let d = dir.display();
    let fleet = if scope == "fleet" {
        // Stale after 30 s: the broker's outage (its restart included) is
        // bridged at the last rates heard.
        format!(
            "[budget.fleet]\nbrokers = \"{brokers}\"\nnode_id = \"node-{node}\"\ninterval = \"250ms\"\nstale_intervals = 120\n"
        )
    } else {
        String::new()
    };
    let services: String = budgets
        .iter()
        .enumerate()
        .map(|(s, b)| format!("\"{}\" = \"{b}B/day\"\n", service_name(s)))
        .collect();
    write_config(
        dir,
        &format!("{scope}-{node}.toml"),
        &format!(
            r#"
data_dir = "{d}/{scope}-{node}/state"
[report]
progress = false
[admin]
address = "127.0.0.1:{port}"
[sources.pods]
type = "file"
include = ["{d}/{scope}-{node}/in/*.log"]
format = "raw"
[budget]
clock = "event"
window = "calendar"
utc_offset = "+00:00"
default = "1GiB/day"
slow_ms = 1000
floor = 0.01
lookback = "2s"
scope = "{scope}"
{fleet}
[budget.services]
{services}
[sinks.out]
type = "file"
directory = "{d}/{scope}-{node}/out"
compression = "none"
"#
        ),
    )
}

fn start_node(config: &Path, log: &Path) -> Child {
    // Appended to: the restarted node's log follows the killed one's.
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    spawn_logged(config, log)
}

/// `sluice_file_lag_bytes` of the node's file source, if it answers.
fn lag(port: u16) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("sluice_file_lag_bytes{source=\"pods\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// What the fleet kept of each service.
#[derive(Debug, Default)]
struct Kept {
    /// Bytes stored (duplicates after the SIGKILL included: they were
    /// stored, and the budget counted them).
    spent: f64,
    /// Σ sample_rate over the distinct normal lines kept.
    weighted: f64,
}

#[test]
fn a_fleet_day_lands_every_service_on_its_budget_through_a_kill_and_an_outage() {
    let scope = std::env::var("SLUICE_FLEET_DAY_SCOPE").unwrap_or_else(|_| "fleet".into());
    let offered = offered();
    let budgets: Vec<u64> = offered
        .iter()
        .enumerate()
        .map(|(s, &(normal, must, _))| {
            if s == 19 {
                (2.0 * (normal + must)) as u64
            } else {
                (must + target_p(s) * normal) as u64
            }
        })
        .collect();

    let mut kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let configs: Vec<PathBuf> = (0..NODES)
        .map(|n| {
            std::fs::create_dir_all(d.join(format!("{scope}-{n}/in"))).unwrap();
            node_config(d, n, &scope, &kafka.brokers(), ports[n], &budgets)
        })
        .collect();
    let logs: Vec<PathBuf> = (0..NODES).map(|n| d.join(format!("{scope}-{n}.stderr"))).collect();
    let mut files: Vec<BufWriter<std::fs::File>> = (0..NODES)
        .map(|n| BufWriter::new(std::fs::File::create(d.join(format!("{scope}-{n}/in/app.log"))).unwrap()))
        .collect();
    let mut children: Vec<Option<Child>> = (0..NODES).map(|n| Some(start_node(&configs[n], &logs[n]))).collect();
    let mut guards: Vec<KillOnDrop> = children.iter().map(|c| KillOnDrop(c.as_ref().unwrap().id())).collect();
    for &p in &ports {
        wait_for_listener(p);
    }

    let mut must_ids: HashMap<usize, HashSet<u64>> = HashMap::new();
    let start = Instant::now();
    let mut broker = Some(&mut kafka);
    std::thread::scope(|threads| {
        let mut outage = None;
        for step in 0..STEPS {
            for l in step_lines(step) {
                writeln!(files[l.node], "{}", l.text).unwrap();
                if l.must_keep {
                    let id = l.text.rsplit("\"id\":").next().unwrap();
                    let id: u64 = id[..id.find(',').unwrap()].parse().unwrap();
                    must_ids.entry(l.service).or_default().insert(id);
                }
            }
            for f in &mut files {
                f.flush().unwrap();
            }
            if step == KILL_AT {
                let mut child = children[KILLED].take().unwrap();
                child.kill().unwrap();
                child.wait().unwrap();
            }
            if step == RESTART_AT {
                let child = start_node(&configs[KILLED], &logs[KILLED]);
                guards[KILLED] = KillOnDrop(child.id());
                children[KILLED] = Some(child);
            }
            if step == BROKER_DOWN_AT && scope == "fleet" {
                let kafka = broker.take().unwrap();
                outage = Some(threads.spawn(move || {
                    kafka.stop();
                    std::thread::sleep(BROKER_DOWN_FOR);
                    kafka.restart();
                }));
            }
            let due = start + STEP_WALL * (step as u32 + 1);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        if let Some(o) = outage {
            o.join().unwrap();
        }
    });
    drop(files);
    eprintln!("the day was written in {:.1} s", start.elapsed().as_secs_f64());

    // Every node has stored all it read before it is stopped.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (n, &p) in ports.iter().enumerate() {
        while lag(p) != Some(0) {
            assert!(Instant::now() < deadline, "node {n} never caught up");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    for (n, child) in children.into_iter().enumerate() {
        let mut child = child.unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(&logs[n]).unwrap();
        assert!(status.success(), "node {n}: {log}");
        if scope == "fleet" {
            assert!(log.contains("deciding with the fleet's figures"), "node {n}: {log}");
        }
    }

    // What the fleet stored.
    let mut kept: BTreeMap<usize, Kept> = BTreeMap::new();
    let mut seen_ids: HashSet<u64> = HashSet::new();
    let mut stored_must: HashMap<usize, HashSet<u64>> = HashMap::new();
    // trace → (lines kept, services kept in) for normal lines.
    let mut traces_kept: HashMap<String, u32> = HashMap::new();
    let index: HashMap<String, usize> = (0..SERVICES).map(|s| (service_name(s), s)).collect();
    for n in 0..NODES {
        for (line, count) in count_lines(&d.join(format!("{scope}-{n}/out"))) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let s = index[v["service"].as_str().unwrap()];
            let id = v["id"].as_u64().unwrap();
            let sampled = line.find(",\"sample_rate\":");
            let size = sampled.map_or(line.len(), |at| at + 1) + 1;
            let k = kept.entry(s).or_default();
            k.spent += (size as u64 * count) as f64;
            let must = v["level"] == "error" || v["duration_ms"].as_u64().unwrap() >= 1000;
            if must {
                stored_must.entry(s).or_default().insert(id);
            } else if seen_ids.insert(id) {
                k.weighted += v["sample_rate"].as_f64().unwrap_or(1.0);
                *traces_kept
                    .entry(v["trace_id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }

    // Requests of two normal lines: whole, or split between nodes (or,
    // edge → users, between services whose p differ).
    let mut lines_of: HashMap<String, (u32, bool, bool)> = HashMap::new();
    let mut step_of: HashMap<String, u64> = HashMap::new();
    for step in 0..STEPS {
        let lines = step_lines(step);
        let mut node_of: HashMap<&str, (usize, usize)> = HashMap::new();
        for l in lines.iter().filter(|l| !l.must_keep) {
            let trace = &l.text[l.text.find("trace_id\":\"").unwrap() + 11..][..16];
            step_of.insert(trace.to_string(), step);
            let e = lines_of.entry(trace.to_string()).or_default();
            e.0 += 1;
            if let Some(&(node, service)) = node_of.get(trace) {
                e.1 |= node != l.node;
                e.2 |= service != l.service;
            }
            node_of.insert(trace, (l.node, l.service));
        }
    }
    let (mut across_nodes, mut split_nodes, mut across_services, mut split_services) = (0, 0, 0, 0);
    // Requests on two nodes written while the fleet was undisturbed:
    // after the first simulated half hour, outside the kill and restart
    // (and the second of input the killed node reads again), and outside
    // the broker's outage and the seconds its restart takes.
    let steady = |step: u64| {
        step >= 30
            && !(KILL_AT - 30..RESTART_AT + 30).contains(&step)
            && !(BROKER_DOWN_AT..BROKER_DOWN_AT + 200).contains(&step)
    };
    let (mut across_steady, mut split_steady) = (0u32, 0u32);
    for (trace, &(n, other_node, other_service)) in &lines_of {
        if n < 2 || !other_node {
            continue;
        }
        let k = traces_kept.get(trace).copied().unwrap_or(0);
        let split = k != 0 && k != n;
        if other_service {
            across_services += 1;
            split_services += u32::from(split);
        } else {
            across_nodes += 1;
            split_nodes += u32::from(split);
            if steady(step_of[trace]) {
                across_steady += 1;
                split_steady += u32::from(split);
            }
        }
    }

    eprintln!("{scope} scope, a day of six nodes (spend / budget, weighted count / truth):");
    for (s, k) in &kept {
        let (_, _, truth) = offered[*s];
        eprintln!(
            "{:>10}: spent {:.3} of the budget, weighted count {:.3} of the truth, {} of {} errors and slow requests",
            service_name(*s),
            k.spent / budgets[*s] as f64,
            k.weighted / truth as f64,
            stored_must.get(s).map_or(0, |m| m.len()),
            must_ids[s].len()
        );
    }
    eprintln!(
        "requests on two nodes of one service: {split_nodes} of {across_nodes} split \
         ({split_steady} of {across_steady} while undisturbed); \
         on two services on two nodes: {split_services} of {across_services} split"
    );

    assert_eq!(kept.len(), SERVICES);
    for (s, k) in &kept {
        let name = service_name(*s);
        // Every error and slow request, from every node.
        assert_eq!(
            stored_must.get(s),
            must_ids.get(s),
            "{name}: errors or slow requests lost"
        );
        if scope != "fleet" {
            continue;
        }
        let truth = offered[*s].2 as f64;
        assert!(
            (k.weighted / truth - 1.0).abs() <= 0.03,
            "{name}: weighted count {:.3} of the truth",
            k.weighted / truth
        );
        let spend = k.spent / budgets[*s] as f64;
        if *s == 19 {
            // Twice its offer: all kept, unsampled.
            assert_eq!(k.weighted, truth, "{name}");
            continue;
        }
        // Within 3%, the services of the node killed mid-day included
        // (0.3% was seen at most: the restarted node waits for the
        // fleet's reports before it reads its backlog).
        assert!(
            (spend - 1.0).abs() <= 0.03,
            "{name}: the fleet spent {spend:.3} budgets"
        );
    }
    if scope == "fleet" {
        assert!(
            across_nodes > 10_000 && across_services > 5_000,
            "{across_nodes} {across_services}"
        );
        // Every node switches to a round's p at the same instant, from the
        // same reports: undisturbed, a request splits only when its lines
        // straddle that instant (0 to 23 in 158,146 were seen). Most
        // splits are at the fleet's cold start, when no node has heard
        // another yet and each decides alone (about 470); the kill and the
        // outage add a few dozen (0.25-0.46% of the day's were seen in
        // all, against 2.8% when each node summed its live figures with
        // the others' last reports).
        assert!(
            f64::from(split_steady) <= 1e-3 * f64::from(across_steady),
            "{split_steady} of {across_steady} requests on two nodes split while undisturbed"
        );
        assert!(
            f64::from(split_nodes) <= 0.01 * f64::from(across_nodes),
            "{split_nodes} of {across_nodes} requests on two nodes split"
        );
    }
}
