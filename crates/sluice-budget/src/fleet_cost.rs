//! The coordination's cost at 10,000 services: a measurement, not a check
//! (`cargo test --release -p sluice-budget -- --ignored --nocapture
//! fleet_cost`). Five peers report the same 10,000 services; prints the
//! report's size, the CPU time of one round (publish, read, derive) and
//! what the figures held (every node's, this one's included) take; the
//! exchange holds no report once the round has read it.

use super::*;
use crate::ledger::Zone;
use sluice_config::{Budget, BudgetWindow};

#[test]
#[ignore]
fn fleet_cost_at_10k_services() {
    const SERVICES: usize = 10_000;
    const PEERS: usize = 5;
    let rule = WindowRule {
        window: BudgetWindow::Calendar,
        zone: Zone::Offset(0),
    };
    let budget = Budget {
        bytes: 1 << 30,
        period_secs: 86_400,
        events_per_sec: None,
    };
    let names: Vec<Vec<u8>> = (0..SERVICES).map(|i| format!("service-{i:05}").into_bytes()).collect();
    let ids: crate::FastMap<Box<[u8]>, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone().into_boxed_slice(), i))
        .collect();
    let ledgers = |spent: f64| -> Vec<BudgetLedger> {
        (0..SERVICES)
            .map(|i| {
                let mut l = BudgetLedger::new(budget, 43_200.0, &rule, 0.01, 1.0);
                l.state.spent = spent + i as f64;
                l.state.normal_rate.rate = 1000.0 + i as f64;
                l
            })
            .collect()
    };
    let toml = "[sources.s]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[budget]\nscope = \"fleet\"\n[budget.fleet]\nbrokers = \"k:9092\"\nnode_id = \"a\"\n";
    let cfg = sluice_config::parse(toml, std::path::Path::new("t.toml"), &|_| None).unwrap();
    let cfg = cfg.budget.unwrap().fleet.unwrap();
    let exchange = FleetExchange::new("me");
    let mut fleet = Fleet::new(&cfg, exchange.clone(), &Registry::new());
    let mut mine = ledgers(0.0);
    // The peers' reports, as they would publish them.
    let reports: Vec<(String, std::sync::Arc<[u8]>)> = (0..PEERS)
        .map(|peer| {
            let x = FleetExchange::new(&format!("peer-{peer}"));
            let mut f = Fleet::new(&cfg, x.clone(), &Registry::new());
            f.round(&mut ledgers(peer as f64), &names, &ids, &rule, 43_200.0);
            (format!("peer-{peer}"), x.outgoing().unwrap())
        })
        .collect();
    for (node, report) in &reports {
        exchange.receive(node, report, SystemTime::now());
    }
    // Each round reads five new reports (every peer publishes every
    // interval): the bytes change, so each is parsed again.
    let rounds = 20;
    let cpu = || {
        let (user, system) = cpu_seconds();
        user + system
    };
    let start = cpu();
    for r in 0..rounds {
        for (node, report) in &reports {
            // Received again: a new payload, parsed again.
            exchange.receive(node, report, SystemTime::now());
        }
        fleet.round(&mut mine, &names, &ids, &rule, 43_200.0 + r as f64);
    }
    let per_round = (cpu() - start) / rounds as f64;
    let held: usize = fleet
        .parsed
        .values()
        .map(|h| std::mem::size_of::<Held>() + h.figures.capacity() * std::mem::size_of::<Figures>())
        .sum();
    let report_bytes = exchange.outgoing().map_or(0, |o| o.len());
    // A node with 200 of the fleet's services holds only theirs.
    for (node, report) in &reports {
        exchange.receive(node, report, SystemTime::now());
    }
    let mut small = Fleet::new(&cfg, exchange.clone(), &Registry::new());
    let few: crate::FastMap<Box<[u8]>, usize> = ids
        .iter()
        .filter(|(_, &i)| i < 200)
        .map(|(k, &i)| (k.clone(), i))
        .collect();
    small.round(&mut ledgers(0.0)[..200], &names[..200], &few, &rule, 43_200.0);
    let small_held: usize = small
        .parsed
        .values()
        .map(|h| std::mem::size_of::<Held>() + h.figures.capacity() * std::mem::size_of::<Figures>())
        .sum();
    println!(
        "{SERVICES} services, {PEERS} peers: report {report_bytes} bytes; \
         one round {:.1} ms of CPU ({:.2}% of a core at a 5 s interval); the figures held take {:.2} MB \
         when this node has all 10,000 services, {:.3} MB when it has 200",
        per_round * 1e3,
        per_round / 5.0 * 100.0,
        held as f64 / 1e6,
        small_held as f64 / 1e6
    );
}

/// (user, system) CPU seconds of this process (100 ticks a second).
fn cpu_seconds() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = text.rsplit(") ").next().unwrap().split(' ').collect();
    let ticks = 100.0;
    (
        fields[11].parse::<f64>().unwrap() / ticks,
        fields[12].parse::<f64>().unwrap() / ticks,
    )
}
