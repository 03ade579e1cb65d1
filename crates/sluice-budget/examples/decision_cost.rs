//! Instructions per budget decision, counted by callgrind: the figure the
//! README's budget paragraph cites, free of the machine's noise.
//!
//! ```text
//! cargo build --release -p sluice-budget --example decision_cost
//! valgrind --tool=callgrind --toggle-collect='*decide_passes*' \
//!     target/release/examples/decision_cost
//! ```
//!
//! The same events as the criterion bench (generator output, 20 services,
//! event clock, 256 KiB batches), the first `BATCHES` (default 30) of them;
//! one untimed pass first, so services and routes are registered, then
//! `PASSES` (default 7) passes over fresh copies, which alone callgrind
//! counts. Divide its `Collected` by the decisions this prints. `CLOCK=wall`
//! runs the wall-clock configuration instead of the event clock's (its
//! decisions follow the run's pace, so they vary from run to run).

#[path = "../../../benches/budget_input.rs"]
mod budget_input;

use budget_input::{fresh_copy, generator_batches, CONFIG, WALL_CLOCK_CONFIG};
use sluice_budget::BudgetStage;
use sluice_core::{Batch, Registry};

/// The measured work: every batch's decisions (kept events returned so the
/// work cannot be optimised away).
#[inline(never)]
fn decide_passes(stage: &mut BudgetStage, batches: &mut [Batch]) -> usize {
    let mut kept = 0;
    for b in batches {
        stage.decide(b);
        kept += b.events().len();
    }
    kept
}

fn main() {
    let setting = |name: &str, default: usize| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let mut input = generator_batches();
    input.truncate(setting("BATCHES", 30));
    let passes = setting("PASSES", 7);
    let text = if std::env::var("CLOCK").as_deref() == Ok("wall") {
        WALL_CLOCK_CONFIG
    } else {
        CONFIG
    };
    let cfg: sluice_config::Config = sluice_config::parse(text, std::path::Path::new("decision_cost"), &|_| None)
        .expect("the embedded config is valid");
    let mut stage = BudgetStage::new(cfg.budget.as_ref().expect("it has a budget"), &Registry::new(), None)
        .expect("the budget is valid");
    let fresh = || fresh_copy(&input);
    for b in &mut fresh() {
        stage.decide(b);
    }
    let events: usize = input.iter().map(|b| b.events().len()).sum();
    let mut kept = 0;
    for _ in 0..passes {
        kept += decide_passes(&mut stage, &mut fresh());
    }
    println!(
        "{} decisions measured ({events} events x {passes} passes), {kept} kept",
        events * passes
    );
}
