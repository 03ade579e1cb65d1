//! What the end-to-end tests share: starting the built `sluice` binary and
//! stopping it the way an operator would.

#![allow(dead_code)] // each test binary uses its own subset

pub mod clickhouse;
pub mod http_server;

use std::process::{Child, Command};

/// The `sluice` binary under test.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// SIGTERM a running sluice and require a clean exit (status 0).
pub fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "sluice did not exit cleanly");
}
