//! Spend that survives a restart: the ledgers' states written atomically to
//! `budget.json` in the data directory and read back at start. A state
//! file that cannot be read is set aside, never a reason to stop the
//! pipeline; ledgers keyed another way than the configuration now keys
//! them are skipped with a warning.

use std::collections::HashMap;

use sluice_config::BudgetClock;

use crate::{BudgetError, BudgetStage, LedgerState, KEY_SEPARATOR};

impl BudgetStage {
    pub(crate) fn restore(&mut self) -> Result<(), BudgetError> {
        let Some(path) = self.state_path.clone() else {
            return Ok(());
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(BudgetError(format!("reading {}: {e}", path.display()))),
        };
        let saved: HashMap<String, LedgerState> = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                // Never block the pipeline on a bad state file: keep it aside.
                let aside = path.with_extension("json.corrupt");
                let _ = std::fs::rename(&path, &aside);
                tracing::error!(stage = "budget", error = %e, moved_to = %aside.display(), "budget state file unreadable; set aside, spend starts from zero");
                return Ok(());
            }
        };
        let parts = 1 + usize::from(self.split_env) + usize::from(self.split_namespace);
        for (name, state) in saved {
            // Ledgers keyed another way (overrides by env or namespace were
            // added or removed since) match no event any more.
            if name.split(KEY_SEPARATOR).count() != parts {
                tracing::warn!(
                    stage = "budget",
                    ledger = %name.replace(KEY_SEPARATOR, "/"),
                    path = %path.display(),
                    "not restoring a ledger: the configuration keys ledgers differently now (by env or namespace)"
                );
                continue;
            }
            if self.clock == BudgetClock::Event {
                // Records before the first `ts` are judged where the last
                // run stopped: from zero, a first batch without one rolled
                // every restored window back to 1970, its spend lost. The
                // first `ts` then sets the clock, older or not (a backfill
                // of an earlier day after a restart opens that day's
                // window, as it always did).
                self.event_now = self.event_now.max(state.last);
            }
            let id = self.service_id(name.as_bytes(), state.window_start);
            self.ledgers[id].restore(state, &self.windows);
        }
        Ok(())
    }

    /// Write the ledgers (atomically) so spend survives a restart.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.state_path else { return Ok(()) };
        let map: HashMap<String, &LedgerState> = self
            .names
            .iter()
            .zip(&self.ledgers)
            .map(|(k, l)| (String::from_utf8_lossy(k).into_owned(), &l.state))
            .collect();
        if let Some(dir) = path.parent() {
            sluice_state::create_dir(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        sluice_state::write_file(&tmp, &serde_json::to_vec(&map).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }
}
